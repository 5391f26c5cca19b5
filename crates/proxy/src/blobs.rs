//! Blobs fetched from upstream: one fetch per repository and digest however many clients ask,
//! stored as it streams to the client that started it, linked only once its digest verifies. A
//! blob already stored for another repository is linked after a `HEAD` confirms the upstream
//! repository has it, instead of fetched again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use registry_content::{BlobReader, BodyError, ContentError, ContentStore};
use registry_model::{Digest, RepositoryName};
use registry_storage::{ByteStream, StorageError, StoragePath};
use tokio::sync::{mpsc, watch};

use crate::Failure;
use crate::eviction::Usage;
use crate::upstream::UpstreamClient;

/// How many chunks may wait for the client a fetch streams to.
const LIVE_CHUNKS: usize = 8;

/// How long a fetch waits for its client to take a chunk before it goes on without it (the
/// client's answer then ends with an error; the blob is still stored for the next request).
const LIVE_PATIENCE: Duration = Duration::from_secs(30);

/// The fetches under way, by repository and digest.
#[derive(Debug, Default)]
pub(crate) struct Fetches {
    running: Mutex<HashMap<(RepositoryName, Digest), Arc<Fetch>>>,
}

/// One blob being fetched from upstream into the store.
#[derive(Debug)]
pub(crate) struct Fetch {
    state: watch::Receiver<State>,
}

/// How far a fetch got.
#[derive(Clone, Debug)]
enum State {
    /// The request is on its way.
    Asking,
    /// The upstream answered with the blob's size; its bytes are streaming into the store.
    Streaming { size: u64 },
    /// The blob is stored and linked in the repository.
    Stored { size: u64 },
    /// It failed; nothing was linked.
    Failed(Failure),
}

/// What the client a fetch streams to receives.
enum Piece {
    Data(Bytes),
    /// Every byte was sent and the digest verified.
    Verified,
    /// The blob cannot be delivered in full.
    Failed(String),
}

/// Where a fetch reads from and stores to.
pub(crate) struct Origin {
    pub(crate) upstream: Arc<UpstreamClient>,
    pub(crate) store: ContentStore,
    /// The repository here.
    pub(crate) name: RepositoryName,
    /// The repository upstream.
    pub(crate) remote: String,
    /// Told how much was fetched.
    pub(crate) usage: Arc<Usage>,
}

impl Fetches {
    /// The blob `digest` from `origin`: the fetch under way for it, or a new one. Waits until
    /// the upstream has answered with its size.
    pub(crate) async fn blob(
        self: &Arc<Self>,
        origin: Origin,
        digest: &Digest,
    ) -> Result<(u64, Arc<dyn BlobReader>), ContentError> {
        let (fetch, live) = {
            let key = (origin.name.clone(), digest.clone());
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            match running.get(&key) {
                Some(fetch) => (Arc::clone(fetch), None),
                None => {
                    let (fetch, live) = Fetch::start(&origin, digest, Arc::downgrade(self));
                    running.insert(key, Arc::clone(&fetch));
                    (fetch, Some(live))
                }
            }
        };
        let mut state = fetch.state.clone();
        let size = match state
            .wait_for(|state| !matches!(state, State::Asking))
            .await
            .map(|state| state.clone())
        {
            Ok(State::Streaming { size } | State::Stored { size }) => size,
            Ok(State::Failed(failure)) => return Err(fetch_error(failure, &origin, digest)),
            Ok(State::Asking) | Err(_) => {
                return Err(origin
                    .upstream
                    .failed("the fetch ended unexpectedly".into()));
            }
        };
        let reader = FetchReader {
            fetch,
            live: Mutex::new(live),
            origin,
            digest: digest.clone(),
            size,
        };
        Ok((size, Arc::new(reader)))
    }

    fn finished(&self, key: &(RepositoryName, Digest), fetch: &Weak<Fetch>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running
            .get(key)
            .is_some_and(|current| Weak::ptr_eq(&Arc::downgrade(current), fetch))
        {
            running.remove(key);
        }
    }
}

impl Fetch {
    /// Starts fetching `digest`; the receiver is for the client that starts it.
    fn start(
        origin: &Origin,
        digest: &Digest,
        fetches: Weak<Fetches>,
    ) -> (Arc<Fetch>, mpsc::Receiver<Piece>) {
        let (state, watched) = watch::channel(State::Asking);
        let (live, receiver) = mpsc::channel(LIVE_CHUNKS);
        let fetch = Arc::new(Fetch { state: watched });
        let weak = Arc::downgrade(&fetch);
        let origin = Origin {
            upstream: Arc::clone(&origin.upstream),
            store: origin.store.clone(),
            name: origin.name.clone(),
            remote: origin.remote.clone(),
            usage: Arc::clone(&origin.usage),
        };
        let digest = digest.clone();
        tokio::spawn(async move {
            let outcome = run(&origin, &digest, &state, live).await;
            if let Err(failure) = &outcome {
                tracing::warn!(
                    upstream = origin.upstream.url(),
                    repository = %origin.name,
                    %digest,
                    "fetching a blob failed: {}",
                    fetch_error(failure.clone(), &origin, &digest)
                );
            }
            state.send_replace(match outcome {
                Ok(size) => State::Stored { size },
                Err(failure) => State::Failed(failure),
            });
            if let Some(fetches) = fetches.upgrade() {
                fetches.finished(&(origin.name.clone(), digest), &weak);
            }
        });
        (fetch, receiver)
    }
}

/// Fetches the blob, streams it into the store (and to `live` while its client keeps up) and
/// verifies it; its size when it is stored.
async fn run(
    origin: &Origin,
    digest: &Digest,
    state: &watch::Sender<State>,
    live: mpsc::Sender<Piece>,
) -> Result<u64, Failure> {
    let path = format!("/v2/{}/blobs/{digest}", origin.remote);
    let scope = format!("repository:{}:pull", origin.remote);
    let stored = origin
        .store
        .stored_size(digest)
        .await
        .map_err(|error| Failure::Failed(error.to_string()))?;
    if stored.is_some()
        && let Some(size) = link_confirmed(origin, digest, &path, &scope).await?
    {
        return Ok(size);
    }
    let answer = origin
        .upstream
        .send(Method::GET, &path, &scope, None)
        .await
        .map_err(|error| Failure::Failed(error.to_string()))?;
    let status = answer.status();
    if status == StatusCode::NOT_FOUND {
        return Err(Failure::Unknown);
    }
    if status != StatusCode::OK {
        return Err(refusal(origin, status, answer.headers()));
    }
    let size = answer
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .ok_or_else(|| {
            Failure::Failed("the upstream sent the blob without a Content-Length".into())
        })?;
    state.send_replace(State::Streaming { size });

    // Chunks go to the client that started the fetch while it keeps up; a client that stops
    // taking them is left behind (its answer ends with an error) and the fetch goes on.
    let abandoned = Arc::new(AtomicBool::new(false));
    let body = answer.into_body().into_data_stream();
    let forwarded = stream::unfold(
        (body, Some(live.clone()), Arc::clone(&abandoned)),
        |(mut body, mut live, abandoned)| async move {
            let chunk = body.next().await?;
            if let (Ok(bytes), Some(sender)) = (&chunk, &live) {
                let sent =
                    tokio::time::timeout(LIVE_PATIENCE, sender.send(Piece::Data(bytes.clone())));
                match sent.await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => live = None,
                    Err(_) => {
                        abandoned.store(true, Ordering::SeqCst);
                        live = None;
                    }
                }
            }
            let chunk = chunk.map_err(|error| -> BodyError { Box::new(error) });
            Some((chunk, (body, live, abandoned)))
        },
    );
    let stored = origin
        .store
        .repository(origin.name.clone())
        .put_blob(digest, forwarded)
        .await;
    let last = match &stored {
        Ok(_) if !abandoned.load(Ordering::SeqCst) => Piece::Verified,
        Ok(_) => Piece::Failed("the client did not keep up with the upstream".into()),
        Err(error) => Piece::Failed(error.to_string()),
    };
    let _ = tokio::time::timeout(LIVE_PATIENCE, live.send(last)).await;
    match stored {
        Ok(_) => {
            origin.usage.fetched(size);
            Ok(size)
        }
        Err(ContentError::DigestMismatch { actual, .. }) => Err(Failure::Failed(format!(
            "the upstream sent content whose digest is {actual}"
        ))),
        Err(error) => Err(Failure::Failed(error.to_string())),
    }
}

/// Links the stored blob `digest` into the repository if the upstream says its repository has
/// it; its size, or `None` when the data went meanwhile (it is fetched then).
async fn link_confirmed(
    origin: &Origin,
    digest: &Digest,
    path: &str,
    scope: &str,
) -> Result<Option<u64>, Failure> {
    let answer = origin
        .upstream
        .send(Method::HEAD, path, scope, None)
        .await
        .map_err(|error| Failure::Failed(error.to_string()))?;
    match answer.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Err(Failure::Unknown),
        status => return Err(refusal(origin, status, answer.headers())),
    }
    let linked = origin
        .store
        .repository(origin.name.clone())
        .link_stored_blob(digest)
        .await
        .map_err(|error| Failure::Failed(error.to_string()))?;
    Ok(linked.map(|blob| blob.size()))
}

/// The failure for an upstream answer that is neither the blob nor "not found".
fn refusal(origin: &Origin, status: StatusCode, headers: &http::HeaderMap) -> Failure {
    match origin.upstream.refusal(status, headers) {
        ContentError::UpstreamBusy { retry_after, .. } => Failure::Busy(retry_after),
        other => Failure::Failed(other.to_string()),
    }
}

/// The error for a fetch that failed.
fn fetch_error(failure: Failure, origin: &Origin, digest: &Digest) -> ContentError {
    failure.into_error(&origin.upstream, || ContentError::BlobUnknown {
        digest: digest.clone(),
    })
}

/// Reads a blob that was not stored when it was asked for.
struct FetchReader {
    fetch: Arc<Fetch>,
    /// The chunks as they arrive, for the request that started the fetch.
    live: Mutex<Option<mpsc::Receiver<Piece>>>,
    origin: Origin,
    digest: Digest,
    size: u64,
}

impl std::fmt::Debug for FetchReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchReader")
            .field("digest", &self.digest)
            .field("upstream", &self.origin.upstream.url())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl BlobReader for FetchReader {
    async fn open(&self, offset: u64, length: Option<u64>) -> Result<ByteStream, ContentError> {
        let whole = offset == 0 && length.is_none_or(|length| length >= self.size);
        // A blob linked without a fetch (stored for another repository) never streams.
        let streaming = matches!(*self.fetch.state.borrow(), State::Streaming { .. });
        if whole && streaming {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(live) = live {
                return Ok(live_stream(live, &self.digest));
            }
        }
        // Anyone else reads what was stored, once it is.
        let mut state = self.fetch.state.clone();
        let outcome = state
            .wait_for(|state| matches!(state, State::Stored { .. } | State::Failed(_)))
            .await
            .map(|state| state.clone());
        match outcome {
            Ok(State::Stored { .. }) => {
                let blob = self
                    .origin
                    .store
                    .repository(self.origin.name.clone())
                    .blob(&self.digest)
                    .await?;
                blob.open(offset, length).await
            }
            Ok(State::Failed(failure)) => Err(fetch_error(failure, &self.origin, &self.digest)),
            _ => Err(self
                .origin
                .upstream
                .failed("the fetch ended unexpectedly".into())),
        }
    }
}

/// The chunks of a fetch as its client receives them. The last chunk is held back until the
/// digest has verified, so a client can never take a blob that failed verification for whole.
fn live_stream(receiver: mpsc::Receiver<Piece>, digest: &Digest) -> ByteStream {
    let digest = digest.clone();
    Box::pin(stream::unfold(
        (receiver, None::<Bytes>, false),
        move |(mut receiver, mut held, done)| {
            let digest = digest.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    match receiver.recv().await {
                        Some(Piece::Data(bytes)) => {
                            if let Some(previous) = held.replace(bytes) {
                                return Some((Ok(previous), (receiver, held, false)));
                            }
                        }
                        Some(Piece::Verified) => {
                            return held.map(|last| (Ok(last), (receiver, None, true)));
                        }
                        Some(Piece::Failed(reason)) => {
                            return Some((Err(cut(&digest, reason)), (receiver, None, true)));
                        }
                        None => {
                            let reason = "the fetch stopped".to_owned();
                            return Some((Err(cut(&digest, reason)), (receiver, None, true)));
                        }
                    }
                }
            }
        },
    ))
}

/// The error that ends a client's stream of a blob that could not be delivered in full.
fn cut(digest: &Digest, reason: String) -> StorageError {
    StorageError::Backend {
        driver: "proxy",
        operation: "fetch",
        path: StoragePath::root(),
        source: format!("blob {digest} from upstream: {reason}").into(),
    }
}
