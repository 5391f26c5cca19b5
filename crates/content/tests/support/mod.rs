//! Helpers shared by the content layer's test binaries.

// Each test binary uses a different part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use registry_storage::{
    ByteStream, Durability, FileInfo, FileWriter, InMemoryDriver, ObjectVersion, PutMode,
    StorageDriver, StorageError, StoragePath, WalkVisitor,
};

/// A driver that counts the operations in progress at once and remembers the most there ever
/// were. Each operation yields once before it runs, so operations started together really overlap
/// (the in-memory driver would otherwise finish each before the next is polled).
#[derive(Debug)]
pub(crate) struct InFlightDriver {
    inner: InMemoryDriver,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
}

/// One operation in progress; counted out when dropped.
struct Running<'a>(&'a InFlightDriver);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlightDriver {
    pub(crate) fn new() -> InFlightDriver {
        InFlightDriver {
            inner: InMemoryDriver::new(),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        }
    }

    async fn enter(&self) -> Running<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        let running = Running(self);
        tokio::task::yield_now().await;
        running
    }

    /// Forgets what was counted so far.
    pub(crate) fn reset(&self) {
        self.peak.store(0, Ordering::SeqCst);
        self.started.store(0, Ordering::SeqCst);
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub(crate) fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl StorageDriver for InFlightDriver {
    fn name(&self) -> &'static str {
        "in-flight"
    }
    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError> {
        let _running = self.enter().await;
        self.inner.get_content(path).await
    }
    async fn put_content(&self, path: &StoragePath, content: Bytes) -> Result<(), StorageError> {
        let _running = self.enter().await;
        self.inner.put_content(path, content).await
    }
    async fn get_content_versioned(
        &self,
        path: &StoragePath,
    ) -> Result<(Bytes, ObjectVersion), StorageError> {
        let _running = self.enter().await;
        self.inner.get_content_versioned(path).await
    }
    async fn put_content_if(
        &self,
        path: &StoragePath,
        content: Bytes,
        mode: PutMode,
        durability: Durability,
    ) -> Result<ObjectVersion, StorageError> {
        let _running = self.enter().await;
        self.inner
            .put_content_if(path, content, mode, durability)
            .await
    }
    async fn reader(
        &self,
        path: &StoragePath,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteStream, StorageError> {
        let _running = self.enter().await;
        self.inner.reader(path, offset, length).await
    }
    async fn writer(
        &self,
        path: &StoragePath,
        append: bool,
    ) -> Result<Box<dyn FileWriter>, StorageError> {
        let _running = self.enter().await;
        self.inner.writer(path, append).await
    }
    async fn stat(&self, path: &StoragePath) -> Result<FileInfo, StorageError> {
        let _running = self.enter().await;
        self.inner.stat(path).await
    }
    async fn list(&self, path: &StoragePath) -> Result<Vec<StoragePath>, StorageError> {
        let _running = self.enter().await;
        self.inner.list(path).await
    }
    async fn move_object(
        &self,
        source: &StoragePath,
        destination: &StoragePath,
    ) -> Result<(), StorageError> {
        let _running = self.enter().await;
        self.inner.move_object(source, destination).await
    }
    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        let _running = self.enter().await;
        self.inner.delete(path).await
    }
    async fn walk(
        &self,
        from: &StoragePath,
        visitor: &mut WalkVisitor<'_>,
    ) -> Result<(), StorageError> {
        let _running = self.enter().await;
        self.inner.walk(from, visitor).await
    }
}
