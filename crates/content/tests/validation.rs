//! What a manifest push checks before it stores anything: that its references are present,
//! checked a few at a time however many there are.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;
use registry_content::{ContentError, ContentOptions, ContentStore, Repository};
use registry_model::{Digest, Reference, media_type};
use registry_storage::{
    ByteStream, FileInfo, FileWriter, InMemoryDriver, ObjectVersion, PutMode, StorageDriver,
    StorageError, StoragePath, WalkVisitor,
};

/// A driver that counts the operations in progress at once and remembers the most there ever
/// were. Each operation yields once before it runs, so operations started together really overlap
/// (the in-memory driver would otherwise finish each before the next is polled).
#[derive(Debug)]
struct InFlightDriver {
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
    fn new() -> InFlightDriver {
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
    fn reset(&self) {
        self.peak.store(0, Ordering::SeqCst);
        self.started.store(0, Ordering::SeqCst);
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    fn started(&self) -> usize {
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
    ) -> Result<ObjectVersion, StorageError> {
        let _running = self.enter().await;
        self.inner.put_content_if(path, content, mode).await
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

fn body(bytes: &[u8]) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    stream::iter([Ok(Bytes::copy_from_slice(bytes))])
}

fn repository(driver: Arc<dyn StorageDriver>, options: ContentOptions) -> Repository {
    ContentStore::new(driver, options).repository("app".parse().expect("name"))
}

async fn put_blob(repository: &Repository, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256(bytes);
    repository
        .put_blob(&digest, body(bytes))
        .await
        .expect("push blob");
    digest
}

fn descriptor_json(media_type: &str, digest: &Digest, size: usize) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
}

/// An image manifest with `config` and `layers` (each of `size` bytes).
fn image_manifest(config: &Digest, layers: &[Digest], size: usize) -> Bytes {
    let layers: Vec<String> = layers
        .iter()
        .map(|layer| descriptor_json(media_type::OCI_LAYER_TAR_GZIP, layer, size))
        .collect();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        descriptor_json(media_type::OCI_IMAGE_CONFIG, config, 2),
        layers.join(",")
    ))
}

async fn push(repository: &Repository, manifest: Bytes) -> Result<Digest, ContentError> {
    let tag = Reference::Tag("latest".parse().expect("tag"));
    repository
        .put_manifest(&tag, None, manifest, &[])
        .await
        .map(|pushed| pushed.digest)
}

/// `distinct` pushed layers, each named `times` over: as many descriptors to check as a large
/// manifest has, for a fraction of the uploads.
async fn layers_repeated(repository: &Repository, distinct: u32, times: usize) -> Vec<Digest> {
    let mut layers = Vec::new();
    for n in 0..distinct {
        let layer = put_blob(repository, &n.to_le_bytes()).await;
        layers.extend(std::iter::repeat_n(layer, times));
    }
    layers
}

/// The most storage operations a push may have in flight while it checks references.
const IN_FLIGHT_LIMIT: usize = 16;

#[tokio::test]
async fn thousands_of_references_are_checked_a_few_at_a_time() {
    let driver = Arc::new(InFlightDriver::new());
    let repository = repository(driver.clone(), ContentOptions::default());
    let config = put_blob(&repository, b"{}").await;
    let layers = layers_repeated(&repository, 300, 10).await;
    let manifest = image_manifest(&config, &layers, 4);

    driver.reset();
    push(&repository, manifest).await.expect("push");
    let peak = driver.peak();
    assert!(
        peak <= IN_FLIGHT_LIMIT,
        "{peak} storage operations were in flight at once"
    );
    assert!(peak > 1, "the checks ran one at a time ({peak})");
    assert!(
        driver.started() > layers.len(),
        "every layer was checked ({} operations)",
        driver.started()
    );
}

#[tokio::test]
async fn the_first_missing_reference_stops_the_checks() {
    let driver = Arc::new(InFlightDriver::new());
    let repository = repository(driver.clone(), ContentOptions::default());
    let config = put_blob(&repository, b"{}").await;
    let missing = Digest::sha256(b"never pushed");
    let mut layers = vec![missing.clone()];
    layers.extend(layers_repeated(&repository, 300, 10).await);
    let manifest = image_manifest(&config, &layers, 4);

    driver.reset();
    let error = push(&repository, manifest)
        .await
        .expect_err("a layer is missing");
    assert!(
        matches!(&error, ContentError::ManifestBlobUnknown { digest } if digest == &missing),
        "{error:?}"
    );
    assert!(driver.peak() <= IN_FLIGHT_LIMIT);
    assert!(
        driver.started() < layers.len(),
        "the checks went on after the missing layer ({} operations)",
        driver.started()
    );
}
