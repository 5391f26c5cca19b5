//! The durable outbox: events wait in storage, one queue per endpoint, until the endpoint has
//! taken them.
//!
//! ```text
//! /docker/registry/v2/registryd/events/<endpoint>/<nanoseconds>-<instance>-<sequence>.json
//! /docker/registry/v2/registryd/events/<endpoint>/queue      (keeps the directory)
//! ```
//!
//! Each file is one batch, written whole before the requests whose events it holds are answered
//! (durably, with [`StorageDriver::put_content`], when one of them changed content; a batch of
//! pulls only is left to the operating system to write back), and holding exactly the body that
//! is POSTed: an
//! [`Envelope`](crate::Envelope) of up to [`MAX_BATCH`] events. A batch is deleted only after its
//! endpoint answered 2xx or 3xx, so an event is delivered at least once, across restarts and
//! crashes, and every delivery of it carries the same ids. Names sort by the time they were
//! written, which is the order they are delivered in. registry:2 never looks under `registryd/`.

use std::sync::Arc;

use bytes::Bytes;
use registry_storage::{Durability, PutMode, StorageDriver, StorageError, StoragePath};

/// The most events one batch (one delivery) holds.
pub const MAX_BATCH: usize = 256;

const ROOT: &str = "/docker/registry/v2/registryd/events";

/// The object that keeps an empty queue's directory.
const QUEUE_MARKER: &str = "queue";

/// The outbox over a storage driver.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    driver: Arc<dyn StorageDriver>,
}

impl Outbox {
    pub(crate) fn new(driver: Arc<dyn StorageDriver>) -> Outbox {
        Outbox { driver }
    }

    /// Stores one batch for `queue` under `name`: on disk before returning when `durable`,
    /// otherwise left to the operating system to write back (a crash may lose it).
    pub(crate) async fn append(
        &self,
        queue: &str,
        name: &str,
        body: Bytes,
        durable: bool,
    ) -> Result<(), StorageError> {
        let path = queue_dir(queue)?.join(name)?;
        if durable {
            return self.driver.put_content(&path, body).await;
        }
        self.driver
            .put_content_if(&path, body, PutMode::Create, Durability::Volatile)
            .await
            .map(|_| ())
    }

    /// Keeps `queue`'s directory in place while it is empty, with a small marker object
    /// (`queue`, not a batch): without it a filesystem would remove the directory with the last
    /// delivered batch and create it again for the next, two more metadata updates for every
    /// batch to sync.
    pub(crate) async fn keep(&self, queue: &str) -> Result<(), StorageError> {
        let marker = queue_dir(queue)?.join(QUEUE_MARKER)?;
        let written = self
            .driver
            .put_content_if(&marker, Bytes::new(), PutMode::Create, Durability::Durable)
            .await;
        match written {
            Err(StorageError::AlreadyExists { .. }) | Ok(_) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The batches waiting for `queue`, oldest first.
    pub(crate) async fn pending(&self, queue: &str) -> Result<Vec<StoragePath>, StorageError> {
        match self.driver.list(&queue_dir(queue)?).await {
            Ok(mut batches) => {
                batches.retain(|path| path.as_str().ends_with(".json"));
                batches.sort();
                Ok(batches)
            }
            Err(error) if error.is_not_found() => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    /// A batch's body; `None` when it is gone (delivered by another process).
    pub(crate) async fn read(&self, batch: &StoragePath) -> Result<Option<Bytes>, StorageError> {
        match self.driver.get_content(batch).await {
            Ok(body) => Ok(Some(body)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Removes a delivered batch; one already gone is fine.
    pub(crate) async fn remove(&self, batch: &StoragePath) -> Result<(), StorageError> {
        match self.driver.delete(batch).await {
            Err(error) if !error.is_not_found() => Err(error),
            _ => Ok(()),
        }
    }
}

/// The directory of an endpoint's queue. A name that is a valid path segment names it as it is;
/// any other is written as `x-` and its bytes in hex.
fn queue_dir(queue: &str) -> Result<StoragePath, StorageError> {
    let root = StoragePath::parse(ROOT)?;
    let plain = !queue.is_empty()
        && queue != "."
        && queue != ".."
        && queue
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if plain {
        root.join(queue)
    } else {
        root.join(&format!("x-{}", hex_encode(queue.as_bytes())))
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use registry_storage::InMemoryDriver;

    use super::*;

    #[test]
    fn endpoint_names_map_to_one_path_segment_each() {
        let plain = queue_dir("ci-hook_1.prod").map(|path| path.as_str().to_owned());
        assert_eq!(
            plain.ok().as_deref(),
            Some("/docker/registry/v2/registryd/events/ci-hook_1.prod")
        );
        let spaced = queue_dir("my listener").map(|path| path.as_str().to_owned());
        assert_eq!(
            spaced.ok().as_deref(),
            Some("/docker/registry/v2/registryd/events/x-6d79206c697374656e6572")
        );
        assert!(queue_dir("..").is_ok());
        assert!(queue_dir("a/b").is_ok());
    }

    #[tokio::test]
    async fn batches_are_pending_in_name_order_until_removed() -> Result<(), StorageError> {
        let outbox = Outbox::new(Arc::new(InMemoryDriver::new()));
        assert!(outbox.pending("hook").await?.is_empty());
        outbox
            .append("hook", "2-b.json", Bytes::from("two"), false)
            .await?;
        outbox
            .append("hook", "1-a.json", Bytes::from("one"), true)
            .await?;
        let pending = outbox.pending("hook").await?;
        assert_eq!(pending.len(), 2);
        assert_eq!(outbox.read(&pending[0]).await?, Some(Bytes::from("one")));
        outbox.remove(&pending[0]).await?;
        outbox.remove(&pending[0]).await?;
        assert_eq!(outbox.read(&pending[0]).await?, None);
        assert_eq!(outbox.pending("hook").await?, vec![pending[1].clone()]);
        Ok(())
    }
}
