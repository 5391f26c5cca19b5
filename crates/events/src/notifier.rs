//! The [`Notifier`]: the [`EventSink`] that records events in the outbox and runs a delivery task
//! per endpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use registry_storage::StorageDriver;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Delivery, HttpsClient, https_client};
use crate::endpoint::Endpoint;
use crate::event::{Action, Event, SourceRecord, Stamped};
use crate::outbox::{MAX_BATCH, Outbox};
use crate::{EVENTS_LOST, EVENTS_QUEUED, EventSink};

/// How many submissions may wait for the outbox writer before handlers wait too.
const QUEUE_CAPACITY: usize = 1024;

/// The most events the writer takes off the queue at once; it writes them in batches of at most
/// [`MAX_BATCH`].
const MAX_GATHERED: usize = 4 * MAX_BATCH;

/// `submissions` in runs of at most [`MAX_BATCH`] events (a submission is never split).
fn chunks(submissions: &[Submission]) -> Vec<&[Submission]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (index, submission) in submissions.iter().enumerate() {
        if count > 0 && count + submission.events.len() > MAX_BATCH {
            chunks.push(&submissions[start..index]);
            start = index;
            count = 0;
        }
        count += submission.events.len();
    }
    if start < submissions.len() {
        chunks.push(&submissions[start..]);
    }
    chunks
}

/// How long the writer gathers pull events before writing them, when no request waits.
const PULL_LINGER: Duration = Duration::from_millis(20);

/// What the notifier needs besides storage.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// The endpoints events go to; disabled ones left out.
    pub endpoints: Vec<Endpoint>,
    /// Whether manifest events list the manifest's references.
    pub include_references: bool,
    /// This instance's `host:port`, sent as each event's `source.addr`.
    pub source_addr: String,
    /// How often an idle delivery task looks for batches written by other processes over the
    /// same storage (its own are delivered at once).
    pub poll_interval: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            endpoints: Vec::new(),
            include_references: false,
            source_addr: String::new(),
            poll_interval: Duration::from_secs(10),
        }
    }
}

/// Records events durably and delivers them to every endpoint that wants them. Cheap to share
/// behind an `Arc`. Its tasks (the outbox writer, a delivery task per endpoint) start with
/// [`Notifier::start`] or with the first event, on the tokio runtime of the caller;
/// [`Notifier::shutdown`] stops them.
#[derive(Debug)]
pub struct Notifier {
    queue: mpsc::Sender<Submission>,
    /// Told when a submission someone waits for is queued, so the writer stops gathering.
    urgent: Arc<Notify>,
    source: SourceRecord,
    include_references: bool,
    /// The actions some endpoint does not ignore.
    wanted: Vec<Action>,
    stop: CancellationToken,
    /// What the tasks need, until they are started.
    unstarted: Mutex<Option<Unstarted>>,
    /// Set once the tasks run, so that recording an event does not take the lock above.
    started: AtomicBool,
    tasks: Mutex<JoinSet<()>>,
}

/// The parts of a notifier whose tasks have not started yet.
#[derive(Debug)]
struct Unstarted {
    submissions: mpsc::Receiver<Submission>,
    outbox: Outbox,
    endpoints: Vec<Endpoint>,
    client: HttpsClient,
    poll_interval: Duration,
}

/// Events from one request, and who to tell once they are stored.
#[derive(Debug)]
struct Submission {
    events: Vec<Encoded>,
    stored: Option<oneshot::Sender<()>>,
}

/// An event encoded as it is sent, on the task of the request that made it (whose thread also
/// frees the event's many strings), with what the writer routes it by.
#[derive(Debug)]
struct Encoded {
    json: Vec<u8>,
    action: Action,
    /// The target's media type, which an endpoint may ignore.
    media_type: String,
}

/// Room for a typical event's JSON, so encoding one allocates once.
const ENCODED_CAPACITY: usize = 1024;

impl Encoded {
    /// `event` stamped with `source`, or `None` (logged) when it cannot be encoded.
    fn new(mut event: Event, source: &SourceRecord) -> Option<Encoded> {
        let mut json = Vec::with_capacity(ENCODED_CAPACITY);
        if let Err(error) = serde_json::to_writer(&mut json, &Stamped::new(&event, source)) {
            tracing::error!(%error, id = event.id, "an event could not be encoded; dropped");
            return None;
        }
        Some(Encoded {
            json,
            action: event.action,
            media_type: std::mem::take(&mut event.target.media_type),
        })
    }
}

impl Notifier {
    /// A notifier writing to the outbox in `driver`'s storage. Nothing runs until
    /// [`Notifier::start`] or the first event.
    ///
    /// Fails only when no TLS client can be made for `https://` endpoints.
    pub fn new(
        driver: Arc<dyn StorageDriver>,
        options: NotifierOptions,
    ) -> Result<Notifier, rustls::Error> {
        let (queue, submissions) = mpsc::channel(QUEUE_CAPACITY);
        let wanted = [Action::Push, Action::Pull, Action::Mount, Action::Delete]
            .into_iter()
            .filter(|action| {
                options
                    .endpoints
                    .iter()
                    .any(|endpoint| !endpoint.ignored_actions.contains(action))
            })
            .collect();
        Ok(Notifier {
            wanted,
            queue,
            urgent: Arc::new(Notify::new()),
            source: SourceRecord {
                addr: options.source_addr,
                instance_id: uuid::Uuid::new_v4().to_string(),
            },
            include_references: options.include_references,
            stop: CancellationToken::new(),
            started: AtomicBool::new(false),
            unstarted: Mutex::new(Some(Unstarted {
                submissions,
                outbox: Outbox::new(driver),
                endpoints: options.endpoints,
                client: https_client()?,
                poll_interval: options.poll_interval,
            })),
            tasks: Mutex::new(JoinSet::new()),
        })
    }

    /// Starts the outbox writer and one delivery task per endpoint on the current tokio runtime,
    /// unless they run already. Batches left in the outbox by an earlier run are delivered first.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(&self) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Some(unstarted) = lock(&self.unstarted).take() else {
            return;
        };
        let mut tasks = lock(&self.tasks);
        let mut queues = Vec::with_capacity(unstarted.endpoints.len());
        for endpoint in unstarted.endpoints {
            tracing::info!(
                endpoint = endpoint.name,
                url = %endpoint.url,
                timeout = ?endpoint.timeout,
                threshold = endpoint.threshold,
                backoff = ?endpoint.backoff,
                "configuring notification endpoint"
            );
            let written = Arc::new(Notify::new());
            let delivery = Delivery::new(
                endpoint.clone(),
                unstarted.outbox.clone(),
                Arc::clone(&written),
                unstarted.poll_interval,
                self.stop.clone(),
                unstarted.client.clone(),
            );
            tasks.spawn(delivery.run());
            queues.push((endpoint, written));
        }
        let writer = Writer {
            urgent: Arc::clone(&self.urgent),
            outbox: unstarted.outbox,
            queues,
            instance: self.source.instance_id.chars().take(8).collect(),
            sequence: AtomicU64::new(0),
        };
        tasks.spawn(writer.run(unstarted.submissions, self.stop.clone()));
        self.started.store(true, Ordering::Release);
    }

    /// This instance as events name it.
    pub fn source(&self) -> &SourceRecord {
        &self.source
    }

    /// Stops delivering and waits for the tasks to end. Events already submitted are written to
    /// the outbox first; batches not yet delivered stay there for the next start.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        while tasks.join_next().await.is_some() {}
    }
}

/// The lock's value, also after a panic while it was held (the values stay consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl EventSink for Notifier {
    async fn record(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        self.start();
        let wait = events.iter().any(|event| event.action.changes_content());
        let events: Vec<Encoded> = events
            .into_iter()
            .filter_map(|event| Encoded::new(event, &self.source))
            .collect();
        // A pull waits for no one, and needs no channel to be told by.
        let (stored, written) = if wait {
            let (stored, written) = oneshot::channel();
            (Some(stored), Some(written))
        } else {
            (None, None)
        };
        let submission = Submission { events, stored };
        if self.queue.send(submission).await.is_err() {
            tracing::warn!("notifications are shut down; events of a request were not recorded");
            return;
        }
        // The writer stops gathering pulls and writes now: someone waits, or the queue is half
        // full (requests would soon wait for room in it).
        if wait || self.queue.capacity() < QUEUE_CAPACITY / 2 {
            self.urgent.notify_one();
        }
        if let Some(written) = written {
            // An error means the writer ended without storing them; it logged why.
            let _ = written.await;
        }
    }

    fn wants(&self, action: Action) -> bool {
        self.wanted.contains(&action)
    }

    fn include_references(&self) -> bool {
        self.include_references
    }
}

/// Takes submissions off the queue and writes them to each endpoint's queue in the outbox, as
/// many at once as are waiting, so concurrent pushes share one write.
struct Writer {
    urgent: Arc<Notify>,
    outbox: Outbox,
    queues: Vec<(Endpoint, Arc<Notify>)>,
    instance: String,
    sequence: AtomicU64,
}

impl Writer {
    async fn run(self, mut submissions: mpsc::Receiver<Submission>, stop: CancellationToken) {
        for (endpoint, _) in &self.queues {
            if let Err(error) = self.outbox.keep(&endpoint.name).await {
                tracing::warn!(endpoint = endpoint.name, %error, "the outbox queue could not be prepared");
            }
        }
        loop {
            let first = tokio::select! {
                submission = submissions.recv() => submission,
                () = stop.cancelled() => {
                    // Write what was submitted before the stop, then end.
                    submissions.close();
                    submissions.recv().await
                }
            };
            let Some(first) = first else { return };
            let mut batch = vec![first];
            let mut count = batch[0].events.len();
            // Pulls wait for no one: let more gather for a moment, so that a busy registry writes
            // a few large batches instead of a file (and a wake-up) for every few pulls. A
            // submission someone waits for ends the moment at once.
            if batch[0].stored.is_none() {
                tokio::select! {
                    () = tokio::time::sleep(PULL_LINGER) => {}
                    () = self.urgent.notified() => {}
                    () = stop.cancelled() => {}
                }
            }
            while count < MAX_GATHERED {
                let Ok(submission) = submissions.try_recv() else {
                    break;
                };
                count += submission.events.len();
                batch.push(submission);
            }
            for chunk in chunks(&batch) {
                self.write(chunk).await;
            }
            for submission in batch {
                if let Some(stored) = submission.stored {
                    let _ = stored.send(());
                }
            }
        }
    }

    /// Writes the events of `batch` that each endpoint wants as one batch file in its queue:
    /// durably when one of them changed content.
    async fn write(&self, batch: &[Submission]) {
        let name = self.batch_name();
        let events = || batch.iter().flat_map(|submission| &submission.events);
        let room = 64 + events().map(|event| event.json.len() + 1).sum::<usize>();
        for (endpoint, written) in &self.queues {
            let mut body = Vec::with_capacity(room);
            body.extend_from_slice(b"{\"events\":[");
            let mut count = 0usize;
            let mut durable = false;
            for event in
                events().filter(|event| endpoint.wants_kind(event.action, &event.media_type))
            {
                if count > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&event.json);
                count += 1;
                durable |= event.action.changes_content();
            }
            body.extend_from_slice(b"]}");
            if count == 0 {
                continue;
            }
            match self
                .outbox
                .append(&endpoint.name, &name, Bytes::from(body), durable)
                .await
            {
                Ok(()) => {
                    metrics::counter!(EVENTS_QUEUED, "endpoint" => endpoint.name.clone())
                        .increment(count as u64);
                    written.notify_one();
                }
                Err(error) => {
                    metrics::counter!(EVENTS_LOST, "endpoint" => endpoint.name.clone())
                        .increment(count as u64);
                    tracing::error!(
                        endpoint = endpoint.name,
                        %error,
                        "{count} events could not be stored in the outbox and will not be delivered"
                    );
                }
            }
        }
    }

    /// A name that sorts by time and is unique to this process: nanoseconds since the epoch,
    /// the instance, and a sequence number.
    fn batch_name(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or(0);
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        format!("{nanos:020}-{}-{sequence:010}.json", self.instance)
    }
}

#[cfg(test)]
mod tests {
    use registry_storage::InMemoryDriver;

    use super::*;

    #[test]
    fn actions_every_endpoint_ignores_are_not_wanted() -> Result<(), rustls::Error> {
        let mut quiet = Endpoint::new("quiet", http::Uri::from_static("http://127.0.0.1:9/"));
        quiet.ignored_actions = vec![Action::Pull, Action::Mount];
        let mut mounts = Endpoint::new("mounts", http::Uri::from_static("http://127.0.0.1:9/"));
        mounts.ignored_actions = vec![Action::Pull];
        let options = NotifierOptions {
            endpoints: vec![quiet, mounts],
            ..NotifierOptions::default()
        };
        let notifier = Notifier::new(Arc::new(InMemoryDriver::new()), options)?;
        assert!(!notifier.wants(Action::Pull));
        assert!(notifier.wants(Action::Mount));
        assert!(notifier.wants(Action::Push) && notifier.wants(Action::Delete));
        Ok(())
    }

    #[test]
    fn submissions_are_written_in_batches_of_at_most_max_batch_events() {
        let submission = |events: usize| Submission {
            events: (0..events)
                .map(|_| Encoded {
                    json: b"{}".to_vec(),
                    action: Action::Pull,
                    media_type: String::new(),
                })
                .collect(),
            stored: None,
        };
        let submissions: Vec<Submission> = (0..600).map(|_| submission(1)).collect();
        let sizes: Vec<usize> = chunks(&submissions)
            .iter()
            .map(|chunk| chunk.len())
            .collect();
        assert_eq!(sizes, [MAX_BATCH, MAX_BATCH, 600 - 2 * MAX_BATCH]);
        let large = vec![submission(300), submission(1)];
        let sizes: Vec<usize> = chunks(&large).iter().map(|chunk| chunk.len()).collect();
        assert_eq!(sizes, [1, 1], "a submission is never split");
    }
}
