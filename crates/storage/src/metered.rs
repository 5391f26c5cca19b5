//! [`MeteredDriver`]: any driver, with the latency and failures of each operation recorded
//! through the [`metrics`] facade.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `registry_storage_operation_duration_seconds` | histogram | `driver`, `operation` |
//! | `registry_storage_operation_errors_total` | counter | `driver`, `operation`, `error` |
//!
//! `operation` is the driver method (`get_content`, `put_content_if`, `writer`, `write`,
//! `commit`, ...). An answer that is part of the contract (nothing at the path, a conditional
//! write that lost) is not an error; `error` is `backend` for a failure of the backend (I/O,
//! network, full disk) and `other` for the rest. With no metrics recorder installed, recording
//! costs a few atomic loads.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    ByteStream, Durability, FileInfo, FileWriter, ObjectVersion, PutMode, StorageDriver,
    StorageError, StoragePath, WalkVisitor,
};

/// The histogram of operation latencies, in seconds.
pub const OPERATION_DURATION: &str = "registry_storage_operation_duration_seconds";
/// The counter of failed operations.
pub const OPERATION_ERRORS: &str = "registry_storage_operation_errors_total";

/// The operations timed, each a label value of `operation`.
const OPERATIONS: &[&str] = &[
    "get_content",
    "put_content",
    "get_content_versioned",
    "put_content_if",
    "reader",
    "writer",
    "write",
    "close",
    "commit",
    "cancel",
    "abandon",
    "stat",
    "stat_many",
    "list",
    "move",
    "delete",
    "delete_object",
    "redirect_url",
    "walk",
];

/// A driver whose operations are timed and counted. Behaves exactly as the driver it wraps.
///
/// The latency histograms are registered with the recorder installed when the driver is made:
/// install a recorder before.
#[derive(Debug)]
pub struct MeteredDriver {
    inner: Arc<dyn StorageDriver>,
    meters: Arc<Meters>,
}

/// A driver's histograms, one an operation, registered once.
#[derive(Debug)]
struct Meters {
    driver: &'static str,
    durations: Vec<(&'static str, metrics::Histogram)>,
}

impl MeteredDriver {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn StorageDriver>) -> MeteredDriver {
        let driver = inner.name();
        let durations = OPERATIONS
            .iter()
            .map(|&operation| {
                let histogram = metrics::histogram!(
                    OPERATION_DURATION,
                    "driver" => driver,
                    "operation" => operation
                );
                (operation, histogram)
            })
            .collect();
        MeteredDriver {
            inner,
            meters: Arc::new(Meters { driver, durations }),
        }
    }

    /// Runs `run`, the driver's `operation`, timing it.
    async fn metered<T>(
        &self,
        operation: &'static str,
        run: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        self.meters.metered(operation, run).await
    }
}

impl Meters {
    async fn metered<T>(
        &self,
        operation: &'static str,
        run: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let started = Instant::now();
        let result = run.await;
        self.record(operation, started, result.as_ref().err());
        result
    }

    fn record(&self, operation: &'static str, started: Instant, error: Option<&StorageError>) {
        let elapsed = started.elapsed().as_secs_f64();
        match self.durations.iter().find(|(name, _)| *name == operation) {
            Some((_, histogram)) => histogram.record(elapsed),
            None => metrics::histogram!(
                OPERATION_DURATION,
                "driver" => self.driver,
                "operation" => operation
            )
            .record(elapsed),
        }
        record_error(self.driver, operation, error);
    }
}

/// Counts `error`, unless it is an answer of the contract rather than a failure.
fn record_error(driver: &'static str, operation: &'static str, error: Option<&StorageError>) {
    let kind = match error {
        None
        | Some(
            StorageError::NotFound { .. }
            | StorageError::AlreadyExists { .. }
            | StorageError::Precondition { .. },
        ) => return,
        Some(StorageError::Backend { .. }) => "backend",
        Some(_) => "other",
    };
    metrics::counter!(
        OPERATION_ERRORS,
        "driver" => driver,
        "operation" => operation,
        "error" => kind
    )
    .increment(1);
}

#[async_trait]
impl StorageDriver for MeteredDriver {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError> {
        self.metered("get_content", self.inner.get_content(path))
            .await
    }

    async fn put_content(&self, path: &StoragePath, content: Bytes) -> Result<(), StorageError> {
        let run = self.inner.put_content(path, content);
        self.metered("put_content", run).await
    }

    async fn get_content_versioned(
        &self,
        path: &StoragePath,
    ) -> Result<(Bytes, ObjectVersion), StorageError> {
        let run = self.inner.get_content_versioned(path);
        self.metered("get_content_versioned", run).await
    }

    async fn put_content_if(
        &self,
        path: &StoragePath,
        content: Bytes,
        mode: PutMode,
        durability: Durability,
    ) -> Result<ObjectVersion, StorageError> {
        let run = self.inner.put_content_if(path, content, mode, durability);
        self.metered("put_content_if", run).await
    }

    async fn reader(
        &self,
        path: &StoragePath,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteStream, StorageError> {
        let run = self.inner.reader(path, offset, length);
        self.metered("reader", run).await
    }

    async fn writer(
        &self,
        path: &StoragePath,
        append: bool,
    ) -> Result<Box<dyn FileWriter>, StorageError> {
        let inner = self
            .metered("writer", self.inner.writer(path, append))
            .await?;
        Ok(Box::new(MeteredWriter {
            inner,
            meters: Arc::clone(&self.meters),
        }))
    }

    async fn stat(&self, path: &StoragePath) -> Result<FileInfo, StorageError> {
        self.metered("stat", self.inner.stat(path)).await
    }

    async fn stat_many(&self, paths: &[StoragePath]) -> Vec<Result<FileInfo, StorageError>> {
        let started = Instant::now();
        let stats = self.inner.stat_many(paths).await;
        let error = stats.iter().find_map(|stat| stat.as_ref().err());
        self.meters.record("stat_many", started, error);
        stats
    }

    async fn list(&self, path: &StoragePath) -> Result<Vec<StoragePath>, StorageError> {
        self.metered("list", self.inner.list(path)).await
    }

    async fn move_object(
        &self,
        source: &StoragePath,
        destination: &StoragePath,
    ) -> Result<(), StorageError> {
        let run = self.inner.move_object(source, destination);
        self.metered("move", run).await
    }

    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        self.metered("delete", self.inner.delete(path)).await
    }

    async fn delete_object(&self, path: &StoragePath) -> Result<(), StorageError> {
        self.metered("delete_object", self.inner.delete_object(path))
            .await
    }

    async fn redirect_url(&self, path: &StoragePath) -> Result<Option<String>, StorageError> {
        self.metered("redirect_url", self.inner.redirect_url(path))
            .await
    }

    async fn walk(
        &self,
        from: &StoragePath,
        visitor: &mut WalkVisitor<'_>,
    ) -> Result<(), StorageError> {
        self.metered("walk", self.inner.walk(from, visitor)).await
    }
}

/// A writer of a [`MeteredDriver`].
struct MeteredWriter {
    inner: Box<dyn FileWriter>,
    meters: Arc<Meters>,
}

#[async_trait]
impl FileWriter for MeteredWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.meters.metered("write", self.inner.write(chunk)).await
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn close(self: Box<Self>) -> Result<(), StorageError> {
        self.meters.metered("close", self.inner.close()).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StorageError> {
        self.meters.metered("commit", self.inner.commit()).await
    }

    async fn cancel(self: Box<Self>) -> Result<(), StorageError> {
        self.meters.metered("cancel", self.inner.cancel()).await
    }

    async fn abandon(self: Box<Self>) -> Result<(), StorageError> {
        self.meters.metered("abandon", self.inner.abandon()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryDriver, testsuite};

    #[tokio::test]
    async fn a_metered_driver_passes_the_testsuite() {
        let driver = MeteredDriver::new(Arc::new(InMemoryDriver::new()));
        testsuite::run_all(&driver).await;
    }
}
