//! Leases: exclusive, time-limited ownership of something stored (an upload session, the tags of a
//! repository), held through a small object written only with the driver's conditional writes, so
//! that it excludes writers in every process over the same store, not just in this one.
//!
//! The lease object holds its holder (a random id per acquisition) and when it expires, as a
//! wall-clock time. A holder takes a free lease by creating the object ([`PutMode::Create`]) or by
//! replacing an expired or released one it has read ([`PutMode::Update`]); of two processes
//! trying at once, exactly one succeeds. While held, a task renews it every third of its term,
//! again with `Update`, so a lease outlives a slow request but not a crashed process: a holder
//! that dies stops renewing and its lease expires within one term.
//!
//! A holder trusts its lease for two thirds of the term after each renewal began, on its own
//! monotonic clock, and checks [`Lease::ensure_held`] before each write it protects: if renewal
//! fails for that long, it stops writing before anyone else can consider the lease expired. This
//! assumes the clocks of processes sharing a store agree to within a third of the term (one host,
//! or NTP).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use registry_storage::{
    Durability, ObjectVersion, PutMode, StorageDriver, StorageError, StoragePath,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::ContentError;

/// How lease objects are written: a crash of the machine ends every holder that ran there, and a
/// lease lost or left empty by it reads as free, so nothing is flushed to disk for them.
const VOLATILE: Durability = Durability::Volatile;

/// The default term of a lease: how long a crashed holder keeps others out.
pub(crate) const DEFAULT_TERM: Duration = Duration::from_secs(10);

/// The stored form of a lease.
#[derive(Serialize, Deserialize)]
struct Record {
    /// Who holds it: a random id per acquisition.
    holder: String,
    /// Milliseconds since the Unix epoch after which the lease is free; 0 once released.
    expires: u64,
}

impl Record {
    fn held_by(holder: &str, term: Duration) -> Bytes {
        let expires = unix_millis(SystemTime::now() + term);
        Record::encode(holder, expires)
    }

    fn released(holder: &str) -> Bytes {
        Record::encode(holder, 0)
    }

    fn encode(holder: &str, expires: u64) -> Bytes {
        let record = Record {
            holder: holder.to_owned(),
            expires,
        };
        Bytes::from(serde_json::to_vec(&record).unwrap_or_default())
    }
}

/// What becomes of a lease object when its holder gives it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Removed: for a lease in a directory that holds other objects (an upload session's), so
    /// taking it is one write that creates it.
    Removed,
    /// Kept, marked released: for a lease alone in its directory (a repository's), which a
    /// driver would otherwise remove and create again with each holder.
    Kept,
}

/// A lease held by someone else, and until when at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Busy {
    /// How long until the lease expires unless its holder renews it.
    pub(crate) retry_after: Duration,
}

/// A lease this process holds. Renewed in the background until [`Lease::release`]d, or
/// [`Lease::forget`]-ed when the leased thing was deleted together with the lease; dropping it
/// releases it in the background.
#[derive(Debug)]
pub(crate) struct Lease {
    state: Arc<State>,
    renewal: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct State {
    driver: Arc<dyn StorageDriver>,
    path: StoragePath,
    holder: String,
    term: Duration,
    kind: Kind,
    /// The version of the lease object as this holder last wrote it.
    version: Mutex<ObjectVersion>,
    /// Until when this holder may trust the lease, on its monotonic clock.
    trusted_until: Mutex<Instant>,
    /// Set when a renewal found the lease taken by someone else.
    lost: AtomicBool,
}

impl Lease {
    /// Takes the lease at `path` for `term` if it is free (never held, released, expired or
    /// unreadable), without waiting; `Err(Busy)` inside `Ok` when someone else holds it. A
    /// [`Kind::Removed`] lease is usually absent, so it is created straight away; a
    /// [`Kind::Kept`] one is read first.
    pub(crate) async fn try_acquire(
        driver: &Arc<dyn StorageDriver>,
        path: &StoragePath,
        term: Duration,
        kind: Kind,
    ) -> Result<Result<Lease, Busy>, ContentError> {
        let holder = uuid::Uuid::new_v4().to_string();
        let mut create_first = kind == Kind::Removed;
        // Each refusal means another writer changed the lease object in between: try again a few
        // times with what it wrote, then report it busy.
        for _ in 0..8 {
            let began = Instant::now();
            let record = Record::held_by(&holder, term);
            let written = if create_first {
                create_first = false;
                driver
                    .put_content_if(path, record, PutMode::Create, VOLATILE)
                    .await
            } else {
                match driver.get_content_versioned(path).await {
                    Err(StorageError::NotFound { .. }) => {
                        driver
                            .put_content_if(path, record, PutMode::Create, VOLATILE)
                            .await
                    }
                    Err(error) => return Err(error.into()),
                    Ok((content, version)) => {
                        if let Some(busy) = busy(&content) {
                            return Ok(Err(busy));
                        }
                        driver
                            .put_content_if(path, record, PutMode::Update(version), VOLATILE)
                            .await
                    }
                }
            };
            match written {
                Ok(version) => {
                    let lease = Lease::held(driver, path, holder, term, kind, version, began);
                    return Ok(Ok(lease));
                }
                Err(StorageError::AlreadyExists { .. } | StorageError::Precondition { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Err(Busy {
            retry_after: Duration::from_secs(1),
        }))
    }

    /// Takes the lease at `path` for `term`, waiting while others hold it, for at most `patience`;
    /// `Err(Busy)` inside `Ok` when it is still held then.
    pub(crate) async fn acquire(
        driver: &Arc<dyn StorageDriver>,
        path: &StoragePath,
        term: Duration,
        kind: Kind,
        patience: Duration,
    ) -> Result<Result<Lease, Busy>, ContentError> {
        let deadline = Instant::now() + patience;
        let mut pause = Duration::from_millis(1);
        loop {
            match Lease::try_acquire(driver, path, term, kind).await? {
                Ok(lease) => return Ok(Ok(lease)),
                Err(busy) if Instant::now() + pause > deadline => return Ok(Err(busy)),
                Err(_) => {
                    // Holders keep the lease for a few writes: poll soon, then back off.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    fn held(
        driver: &Arc<dyn StorageDriver>,
        path: &StoragePath,
        holder: String,
        term: Duration,
        kind: Kind,
        version: ObjectVersion,
        began: Instant,
    ) -> Lease {
        let state = Arc::new(State {
            driver: Arc::clone(driver),
            path: path.clone(),
            holder,
            term,
            kind,
            version: Mutex::new(version),
            trusted_until: Mutex::new(began + term * 2 / 3),
            lost: AtomicBool::new(false),
        });
        let renewal = tokio::spawn(renew(Arc::clone(&state)));
        Lease {
            state,
            renewal: Some(renewal),
        }
    }

    /// `Ok` while this holder may still act under the lease; else [`ContentError::LeaseLost`].
    /// Call it before each write the lease protects.
    pub(crate) fn ensure_held(&self) -> Result<(), ContentError> {
        let trusted_until = *lock(&self.state.trusted_until);
        if self.state.lost.load(Ordering::SeqCst) || Instant::now() >= trusted_until {
            return Err(ContentError::LeaseLost {
                path: self.state.path.to_string(),
            });
        }
        Ok(())
    }

    /// Gives the lease up: the next taker need not wait for it to expire.
    pub(crate) async fn release(mut self) -> Result<(), ContentError> {
        self.stop_renewing();
        release(&self.state).await
    }

    /// Stops renewing without writing: for a lease object that was deleted together with what it
    /// guarded (a finished upload session).
    pub(crate) fn forget(mut self) {
        self.stop_renewing();
    }

    fn stop_renewing(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Dropped while held: the request was cancelled (its client went away). Release it in
        // the background, so that the client can continue the upload without waiting for expiry.
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
            let state = Arc::clone(&self.state);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    // Best effort: if it fails, the lease expires on its own.
                    let _ = release(&state).await;
                });
            }
        }
    }
}

/// Renews the lease every third of its term until stopped or lost.
async fn renew(state: Arc<State>) {
    loop {
        tokio::time::sleep(state.term / 3).await;
        let began = Instant::now();
        let version = lock(&state.version).clone();
        let record = Record::held_by(&state.holder, state.term);
        match state
            .driver
            .put_content_if(&state.path, record, PutMode::Update(version), VOLATILE)
            .await
        {
            Ok(version) => {
                *lock(&state.version) = version;
                *lock(&state.trusted_until) = began + state.term * 2 / 3;
            }
            Err(StorageError::Precondition { .. }) => {
                // Taken over: the holder sees `LeaseLost` before its next write.
                state.lost.store(true, Ordering::SeqCst);
                return;
            }
            // A failing store: keep trying while the lease is still trusted; the holder stops
            // writing once it is not.
            Err(_) => {}
        }
    }
}

async fn release(state: &State) -> Result<(), ContentError> {
    if state.kind == Kind::Removed {
        // Only while the lease is trusted can nobody else hold it: then the object is this
        // holder's to remove. Otherwise it is left to expire, or to whoever took it over.
        let trusted =
            !state.lost.load(Ordering::SeqCst) && Instant::now() < *lock(&state.trusted_until);
        if !trusted {
            return Ok(());
        }
        state.driver.delete_object(&state.path).await?;
        return Ok(());
    }
    let version = lock(&state.version).clone();
    let record = Record::released(&state.holder);
    match state
        .driver
        .put_content_if(&state.path, record, PutMode::Update(version), VOLATILE)
        .await
    {
        // Gone or taken over: it is not ours to release any more.
        Ok(_) | Err(StorageError::Precondition { .. } | StorageError::NotFound { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Whether the stored lease `content` is held, and for how long at most.
fn busy(content: &[u8]) -> Option<Busy> {
    // A record that does not parse was not written by a holder: it holds nothing.
    let record: Record = serde_json::from_slice(content).ok()?;
    let now = unix_millis(SystemTime::now());
    (record.expires > now).then(|| Busy {
        retry_after: Duration::from_millis(record.expires - now),
    })
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each guarded value is replaced whole: a panicking holder cannot leave it half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
