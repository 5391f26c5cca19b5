//! Users from an Apache htpasswd file, as registry:2's `auth: htpasswd` does.
//!
//! The file holds `user:hash` lines (blank lines and `#` comments are ignored). Only bcrypt
//! hashes (`$2y$`, `$2a$`, `$2b$`) are accepted, as registry:2 only ever verifies bcrypt: any
//! other entry, or an unusable bcrypt hash, is refused when the file is read, with an error that
//! names the file, the line and the user. Create entries with `registryd htpasswd -B USER` or
//! Apache's `htpasswd -B`.
//!
//! - bcrypt runs on tokio's blocking threads, never on an async worker.
//! - A user that does not exist costs one bcrypt verification, like a wrong password, against a
//!   hash of the file's median cost, so timing does not tell which users exist.
//! - Verified credentials are cached (see `cache.rs`), so that the `Basic` header clients send
//!   with every request costs a digest and a lookup, not a bcrypt verification. Failures are
//!   never cached.
//! - The file is reloaded when it changes, without a restart: requests look at its metadata at
//!   most once a second. A file that is read but refused (a half-finished edit, an entry that is
//!   not bcrypt) keeps the previous users and is logged
//!   ([`HtpasswdAuthenticator::last_reload_error`] reports it too). A file that cannot be read at
//!   all (removed, no permission) leaves no way to tell which users are meant: until it can be
//!   read again, credentials are answered with [`AuthError::Unavailable`] (503), so clients
//!   retry rather than conclude that their password is wrong. Anonymous requests do not need the
//!   file and go on as before.

mod cache;
mod file;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{Access, AuthError, Authenticator, Challenge, ChallengeError, Credentials, Principal};
use cache::CredentialCache;
use file::{Stamp, Users};

pub use file::{DEFAULT_COST, HtpasswdError, entry_line, hash_password};

/// How often requests look at the file's metadata for changes.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Authenticates `Basic` credentials against the users of an htpasswd file (bcrypt only).
///
/// See the [module documentation](self) for the file format, caching and reloading.
pub struct HtpasswdAuthenticator {
    realm: String,
    shared: Arc<Shared>,
    /// Bounds the bcrypt checks running at once, so a flood of wrong passwords queues here
    /// instead of filling the blocking thread pool that file I/O also needs.
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
}

/// What the blocking threads (bcrypt, reloads) share with the authenticator.
struct Shared {
    path: PathBuf,
    users: RwLock<Arc<Users>>,
    /// Held while the file is checked, so that one check runs at a time.
    reload: Mutex<ReloadState>,
    cache: CredentialCache,
    /// When the next check of the file is due, in nanoseconds since `started`.
    next_check: AtomicU64,
    /// Whether the last check could not read the file. Kept apart from `reload`, which is held
    /// while a check does its blocking I/O, so that requests never wait for it.
    unreadable: AtomicBool,
    started: Instant,
    check_interval: Duration,
    /// bcrypt verifications run, for tests to count.
    #[cfg(test)]
    verifications: std::sync::atomic::AtomicUsize,
}

struct ReloadState {
    /// The version of the file the users come from, or the last one that failed to load;
    /// `None` when the file could not be opened.
    seen: Option<Stamp>,
    /// Why the current file is not in use.
    error: Option<HtpasswdError>,
}

impl HtpasswdAuthenticator {
    /// Reads the htpasswd file at `path`, refusing it unless every entry is a usable bcrypt hash;
    /// `realm` is the realm of the `Basic` challenge.
    ///
    /// This reads the file with blocking I/O: call it at start-up or from a blocking thread.
    pub fn open(
        realm: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> Result<HtpasswdAuthenticator, HtpasswdError> {
        HtpasswdAuthenticator::open_with(realm.into(), path.into(), CHECK_INTERVAL)
    }

    fn open_with(
        realm: String,
        path: PathBuf,
        check_interval: Duration,
    ) -> Result<HtpasswdAuthenticator, HtpasswdError> {
        let (text, stamp) = file::read(&path)?;
        let users = file::parse(&path, &text)?;
        let started = Instant::now();
        let shared = Shared {
            users: RwLock::new(Arc::new(users)),
            reload: Mutex::new(ReloadState {
                seen: Some(stamp),
                error: None,
            }),
            cache: CredentialCache::new(),
            next_check: AtomicU64::new(nanos(check_interval)),
            unreadable: AtomicBool::new(false),
            started,
            check_interval,
            path,
            #[cfg(test)]
            verifications: std::sync::atomic::AtomicUsize::new(0),
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(HtpasswdAuthenticator {
            realm,
            shared: Arc::new(shared),
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(2 * cores)),
        })
    }

    /// Checks the file now rather than at the next request after the once-a-second interval,
    /// and reloads it if it changed (for a `SIGHUP` handler, say). `Ok(true)` when the users
    /// changed, `Ok(false)` when they did not; an error when the file cannot be
    /// used, in which case the previous users stay.
    ///
    /// This is blocking I/O: from async code, call it through `tokio::task::spawn_blocking`.
    pub fn refresh(&self) -> Result<bool, HtpasswdError> {
        self.shared.check_file()
    }

    /// Why the file as it is now is not in use (the previous users are), or `None` when the
    /// users come from the current file.
    pub fn last_reload_error(&self) -> Option<HtpasswdError> {
        self.shared.lock_reload().error.clone()
    }

    /// How many users the file in use has.
    pub fn user_count(&self) -> usize {
        self.shared.users().hashes.len()
    }

    /// Checks the file if the interval has passed since the last check. One request makes the
    /// check, on a blocking thread, while the others carry on with the users they have.
    async fn check_file_if_due(&self) {
        let now = self.shared.now();
        let due = self.shared.next_check.load(Ordering::Acquire);
        if now < due {
            return;
        }
        let next = now.saturating_add(nanos(self.shared.check_interval));
        if self
            .shared
            .next_check
            .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let shared = Arc::clone(&self.shared);
        // A failed reload is logged and kept in `ReloadState`, and a file that could not be read
        // at all is flagged in `unreadable`; the request reads the outcome from there.
        if let Err(error) = tokio::task::spawn_blocking(move || shared.check_file()).await {
            tracing::warn!(%error, "checking the htpasswd file for changes did not finish");
        }
    }

    /// Whether `password` matches `hash`, with bcrypt on a blocking thread.
    async fn verify(&self, password: &str, hash: Arc<str>) -> Result<bool, AuthError> {
        #[cfg(test)]
        self.shared.verifications.fetch_add(1, Ordering::SeqCst);
        let password = password.to_owned();
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return Err(AuthError::Unavailable {
                reason: "the password checker is shut down".to_owned(),
            });
        };
        match tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash)).await {
            Ok(Ok(matched)) => Ok(matched),
            // Hashes are checked when the file is read, so this is not expected; the error
            // names neither password nor hash.
            Ok(Err(error)) => Err(AuthError::Unavailable {
                reason: format!("the password hash could not be checked: {error}"),
            }),
            Err(error) => Err(AuthError::Unavailable {
                reason: format!("the password check did not finish: {error}"),
            }),
        }
    }

    async fn authenticate_basic(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        self.check_file_if_due().await;
        if self.shared.unreadable.load(Ordering::Acquire) {
            return Err(AuthError::Unavailable {
                reason: format!(
                    "the htpasswd file {} cannot be read",
                    self.shared.path.display()
                ),
            });
        }
        let users = self.shared.users();
        let stored = users.hashes.get(user).cloned();
        let digest = self.shared.cache.digest(user, password);
        let principal = || Principal {
            name: Some(user.to_owned()),
            granted: None,
        };
        if let Some(hash) = &stored
            && self.shared.cache.contains(user, &digest, hash)
        {
            return Ok(principal());
        }
        // An unknown user costs the same bcrypt verification as a wrong password.
        let checked = stored.clone().unwrap_or_else(|| Arc::clone(&users.dummy));
        drop(users);
        let matched = self.verify(password, checked).await?;
        match stored {
            Some(hash) if matched => {
                self.shared.cache.insert(user, digest, hash);
                Ok(principal())
            }
            // Told apart in the log only: the client's answer is the same for both.
            Some(_) => {
                tracing::debug!(user, "login refused: wrong password");
                Err(AuthError::InvalidCredentials)
            }
            None => {
                tracing::debug!(
                    user,
                    "login refused: unknown user (not in {})",
                    self.shared.path.display()
                );
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    #[cfg(test)]
    fn verifications(&self) -> usize {
        self.shared.verifications.load(Ordering::SeqCst)
    }
}

impl Shared {
    fn users(&self) -> Arc<Users> {
        Arc::clone(&self.users.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn lock_reload(&self) -> MutexGuard<'_, ReloadState> {
        self.reload.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        nanos(self.started.elapsed())
    }

    /// Reloads the file if its metadata changed since it was last read. Blocking.
    fn check_file(&self) -> Result<bool, HtpasswdError> {
        let mut state = self.lock_reload();
        let loaded = match std::fs::metadata(&self.path) {
            Ok(metadata) => {
                let stamp = Stamp::of(&metadata);
                if state.seen.is_some_and(|seen| !stamp.differs_from(&seen)) {
                    return state.error.clone().map_or(Ok(false), Err);
                }
                file::read(&self.path).and_then(|(text, stamp)| {
                    state.seen = Some(stamp);
                    file::parse(&self.path, &text)
                })
            }
            Err(error) => Err(HtpasswdError::Read {
                path: self.path.clone(),
                source: Arc::new(error),
            }),
        };
        self.unreadable.store(
            matches!(loaded, Err(HtpasswdError::Read { .. })),
            Ordering::Release,
        );
        match loaded {
            Ok(users) => {
                state.error = None;
                self.cache.retain_current(&users.hashes);
                let count = users.hashes.len();
                let mut current = self.users.write().unwrap_or_else(PoisonError::into_inner);
                // A file re-read only because it had just been written may hold the same users.
                let changed = current.hashes != users.hashes;
                *current = Arc::new(users);
                drop(current);
                if changed {
                    tracing::info!(path = %self.path.display(), users = count, "reloaded the htpasswd file");
                }
                Ok(changed)
            }
            Err(error) => {
                if matches!(error, HtpasswdError::Read { .. }) {
                    state.seen = None;
                }
                // Logged once per distinct problem rather than at every check.
                let message = error.to_string();
                if state
                    .error
                    .as_ref()
                    .is_none_or(|old| old.to_string() != message)
                {
                    tracing::warn!(
                        "keeping the previous htpasswd users because the file cannot be used: {message}"
                    );
                }
                state.error = Some(error.clone());
                Err(error)
            }
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Authenticator for HtpasswdAuthenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<Option<Principal>, AuthError> {
        match credentials {
            Credentials::None => Ok(None),
            Credentials::Basic { user, password } => {
                self.authenticate_basic(user, password).await.map(Some)
            }
            Credentials::Bearer(_) => Err(AuthError::WrongScheme { expected: "Basic" }),
            Credentials::Malformed => Err(AuthError::MalformedHeader),
        }
    }

    fn challenge(&self, _accesses: &[Access], _error: Option<ChallengeError>) -> Challenge {
        Challenge::Basic {
            realm: self.realm.clone(),
        }
    }
}

/// Shows the realm, the file and the number of users, never a hash.
impl fmt::Debug for HtpasswdAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HtpasswdAuthenticator")
            .field("realm", &self.realm)
            .field("path", &self.shared.path)
            .field("users", &self.user_count())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
