//! The content layer's promises that the HTTP tests cannot see: the exact on-disk layout shared
//! with registry:2, resumable uploads that do not re-read what they already hashed, and reading a
//! tree that registry:2 wrote.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;
use registry_content::{ContentError, ContentOptions, ContentStore, Page};
use registry_model::{Digest, DigestAlgorithm, Reference, RepositoryName, media_type};
use registry_storage::{
    ByteStream, Durability, FileInfo, FileWriter, FilesystemDriver, InMemoryDriver, ObjectVersion,
    PutMode, StorageDriver, StorageError, StoragePath, WalkVisitor,
};

fn name(text: &str) -> RepositoryName {
    text.parse().expect("valid repository name")
}

fn body(chunks: &[&[u8]]) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    let chunks: Vec<Result<Bytes, Infallible>> = chunks
        .iter()
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    stream::iter(chunks)
}

fn store(driver: Arc<dyn StorageDriver>) -> ContentStore {
    ContentStore::new(
        driver,
        ContentOptions {
            delete_enabled: true,
            ..ContentOptions::default()
        },
    )
}

fn image_manifest(config: &Digest, config_size: usize, layer: &Digest, layer_size: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"{}","digest":"{layer}","size":{layer_size}}}]}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        media_type::OCI_IMAGE_CONFIG,
        media_type::OCI_LAYER_TAR,
    ))
}

async fn read_file(root: &std::path::Path, relative: &str) -> String {
    std::fs::read_to_string(root.join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

#[tokio::test]
async fn pushed_image_is_stored_in_the_registry2_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = Arc::new(FilesystemDriver::new(dir.path()).expect("driver"));
    let repository = store(driver).repository(name("library/app"));
    let config = b"{}".as_slice();
    let layer = b"layer bytes".as_slice();
    let config_digest = Digest::sha256(config);
    let layer_digest = Digest::sha256(layer);
    repository
        .put_blob(&config_digest, body(&[config]))
        .await
        .expect("config");
    repository
        .put_blob(&layer_digest, body(&[layer]))
        .await
        .expect("layer");
    let manifest = image_manifest(&config_digest, config.len(), &layer_digest, layer.len());
    let tag = Reference::Tag("v1".parse().expect("tag"));
    let pushed = repository
        .put_manifest(
            &tag,
            Some(media_type::OCI_IMAGE_MANIFEST),
            manifest.clone(),
            &[],
        )
        .await
        .expect("manifest");

    let root = dir.path().join("docker/registry/v2");
    let layer_hex = layer_digest.hex();
    assert_eq!(
        std::fs::read(root.join(format!("blobs/sha256/{}/{layer_hex}/data", &layer_hex[..2])))
            .expect("layer data"),
        layer
    );
    let manifest_hex = pushed.digest.hex();
    assert_eq!(
        std::fs::read(root.join(format!(
            "blobs/sha256/{}/{manifest_hex}/data",
            &manifest_hex[..2]
        )))
        .expect("manifest data"),
        manifest.as_ref()
    );
    let repo = "repositories/library/app";
    assert_eq!(
        read_file(&root, &format!("{repo}/_layers/sha256/{layer_hex}/link")).await,
        layer_digest.as_str()
    );
    assert_eq!(
        read_file(
            &root,
            &format!("{repo}/_manifests/revisions/sha256/{manifest_hex}/link")
        )
        .await,
        pushed.digest.as_str()
    );
    assert_eq!(
        read_file(&root, &format!("{repo}/_manifests/tags/v1/current/link")).await,
        pushed.digest.as_str()
    );
    assert_eq!(
        read_file(
            &root,
            &format!("{repo}/_manifests/tags/v1/index/sha256/{manifest_hex}/link")
        )
        .await,
        pushed.digest.as_str()
    );
    assert!(
        !root.join(format!("{repo}/_uploads")).exists()
            || std::fs::read_dir(root.join(format!("{repo}/_uploads")))
                .expect("uploads dir")
                .next()
                .is_none(),
        "finished uploads leave nothing behind"
    );
}

#[tokio::test]
async fn tree_written_by_registry2_is_served() {
    // The files registry:2 writes for one tagged manifest, written by hand.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("docker/registry/v2");
    let config = b"{\"architecture\":\"amd64\"}";
    let config_digest = Digest::sha256(config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config_digest}","size":{}}},"layers":[]}}"#,
        media_type::DOCKER_MANIFEST_V2,
        media_type::DOCKER_CONTAINER_CONFIG,
        config.len()
    );
    let manifest_digest = Digest::sha256(manifest.as_bytes());
    let write = |relative: String, content: &[u8]| {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    };
    for (digest, content) in [
        (&config_digest, config.as_slice()),
        (&manifest_digest, manifest.as_bytes()),
    ] {
        let hex = digest.hex();
        write(format!("blobs/sha256/{}/{hex}/data", &hex[..2]), content);
    }
    let repo = "repositories/old/app";
    write(
        format!("{repo}/_layers/sha256/{}/link", config_digest.hex()),
        config_digest.as_str().as_bytes(),
    );
    write(
        format!(
            "{repo}/_manifests/revisions/sha256/{}/link",
            manifest_digest.hex()
        ),
        manifest_digest.as_str().as_bytes(),
    );
    write(
        format!("{repo}/_manifests/tags/latest/current/link"),
        manifest_digest.as_str().as_bytes(),
    );

    let content = store(Arc::new(FilesystemDriver::new(dir.path()).expect("driver")));
    let catalog = content.catalog(&Page::default()).await.expect("catalog");
    assert_eq!(catalog.to_vec(), vec![name("old/app")]);
    let repository = content.repository(name("old/app"));
    let stored = repository
        .manifest(&Reference::Tag("latest".parse().expect("tag")))
        .await
        .expect("manifest by tag");
    assert_eq!(stored.digest, manifest_digest);
    assert_eq!(stored.media_type, media_type::DOCKER_MANIFEST_V2);
    assert_eq!(stored.bytes.as_ref(), manifest.as_bytes());
    let blob = repository.blob(&config_digest).await.expect("config blob");
    assert_eq!(blob.size(), config.len() as u64);
}

/// A driver that counts how often blob data is read back (streamed or whole) and how often a
/// directory is listed or walked.
#[derive(Debug)]
struct CountingDriver {
    inner: Box<dyn StorageDriver>,
    reads: AtomicUsize,
    blob_gets: AtomicUsize,
    listings: AtomicUsize,
}

impl CountingDriver {
    fn over(inner: impl StorageDriver + 'static) -> CountingDriver {
        CountingDriver {
            inner: Box::new(inner),
            reads: AtomicUsize::new(0),
            blob_gets: AtomicUsize::new(0),
            listings: AtomicUsize::new(0),
        }
    }

    fn listings(&self) -> usize {
        self.listings.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl StorageDriver for CountingDriver {
    fn name(&self) -> &'static str {
        "counting"
    }
    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError> {
        if path.as_str().starts_with("/docker/registry/v2/blobs/") {
            self.blob_gets.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get_content(path).await
    }
    async fn put_content(&self, path: &StoragePath, content: Bytes) -> Result<(), StorageError> {
        self.inner.put_content(path, content).await
    }
    async fn get_content_versioned(
        &self,
        path: &StoragePath,
    ) -> Result<(Bytes, ObjectVersion), StorageError> {
        self.inner.get_content_versioned(path).await
    }
    async fn put_content_if(
        &self,
        path: &StoragePath,
        content: Bytes,
        mode: PutMode,
        durability: Durability,
    ) -> Result<ObjectVersion, StorageError> {
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
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.reader(path, offset, length).await
    }
    async fn writer(
        &self,
        path: &StoragePath,
        append: bool,
    ) -> Result<Box<dyn FileWriter>, StorageError> {
        self.inner.writer(path, append).await
    }
    async fn stat(&self, path: &StoragePath) -> Result<FileInfo, StorageError> {
        self.inner.stat(path).await
    }
    async fn stat_many(&self, paths: &[StoragePath]) -> Vec<Result<FileInfo, StorageError>> {
        self.inner.stat_many(paths).await
    }
    async fn list(&self, path: &StoragePath) -> Result<Vec<StoragePath>, StorageError> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        self.inner.list(path).await
    }
    async fn move_object(
        &self,
        source: &StoragePath,
        destination: &StoragePath,
    ) -> Result<(), StorageError> {
        self.inner.move_object(source, destination).await
    }
    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        self.inner.delete(path).await
    }
    async fn walk(
        &self,
        from: &StoragePath,
        visitor: &mut WalkVisitor<'_>,
    ) -> Result<(), StorageError> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        self.inner.walk(from, visitor).await
    }
}

#[tokio::test]
async fn resumed_upload_is_never_read_back() {
    let driver = Arc::new(CountingDriver::over(InMemoryDriver::new()));
    let chunks: [&[u8]; 3] = [b"first chunk, ", b"second chunk, ", b"last chunk"];
    let whole: Vec<u8> = chunks.concat();
    let digest = Digest::sha256(&whole);

    // Each piece goes through a fresh store, as if registryd restarted between requests.
    let id = store(driver.clone())
        .repository(name("app"))
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let mut start = 0;
    for chunk in &chunks[..2] {
        let status = store(driver.clone())
            .repository(name("app"))
            .append_upload(&id, Some(start), body(&[chunk]))
            .await
            .expect("append");
        start += chunk.len() as u64;
        assert_eq!(status.size, start);
    }
    let blob = store(driver.clone())
        .repository(name("app"))
        .complete_upload(&id, &digest, Some(start), body(&[chunks[2]]))
        .await
        .expect("complete");
    assert_eq!(blob.size(), whole.len() as u64);
    assert_eq!(
        driver.reads.load(Ordering::SeqCst),
        0,
        "no data was read back"
    );
}

#[tokio::test]
async fn upload_whose_hash_state_is_lost_is_rehashed() {
    let driver: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    let repository = store(driver.clone()).repository(name("app"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    repository
        .append_upload(&id, Some(0), body(&[b"hello "]))
        .await
        .expect("append");
    let states = StoragePath::parse(&format!(
        "/docker/registry/v2/repositories/app/_uploads/{id}/hashstates"
    ))
    .expect("path");
    driver.delete(&states).await.expect("lose the hash state");
    let digest = Digest::sha256(b"hello world");
    let blob = repository
        .complete_upload(&id, &digest, None, body(&[b"world"]))
        .await
        .expect("complete after rehash");
    assert_eq!(blob.digest(), &digest);
}

#[tokio::test]
async fn sha512_upload_hashes_with_sha512_throughout() {
    let driver: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    let repository = store(driver).repository(name("app"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha512)
        .await
        .expect("start")
        .id;
    repository
        .append_upload(&id, Some(0), body(&[b"abc"]))
        .await
        .expect("append");
    let digest = Digest::compute(DigestAlgorithm::Sha512, b"abcdef");
    let blob = repository
        .complete_upload(&id, &digest, Some(3), body(&[b"def"]))
        .await
        .expect("complete");
    assert_eq!(blob.digest(), &digest);
}

#[tokio::test]
async fn digest_mismatch_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = Arc::new(FilesystemDriver::new(dir.path()).expect("driver"));
    let repository = store(driver).repository(name("app"));
    let claimed = Digest::sha256(b"something else");
    let error = repository
        .put_blob(&claimed, body(&[b"actual content"]))
        .await
        .expect_err("mismatch");
    assert!(
        matches!(error, ContentError::DigestMismatch { .. }),
        "{error:?}"
    );
    assert!(matches!(
        repository.blob(&claimed).await,
        Err(ContentError::BlobUnknown { .. })
    ));
    let blobs = dir.path().join("docker/registry/v2/blobs");
    assert!(!blobs.exists(), "no blob data was written");
    let uploads = dir
        .path()
        .join("docker/registry/v2/repositories/app/_uploads");
    assert!(
        !uploads.exists() || std::fs::read_dir(&uploads).expect("dir").next().is_none(),
        "the failed upload was removed"
    );
}

#[tokio::test]
async fn catalog_lists_nested_repositories_and_skips_internal_folders() {
    let content = store(Arc::new(InMemoryDriver::new()));
    for repository in ["b", "a/b/c", "a", "a/_x"] {
        let Ok(repository_name) = repository.parse::<RepositoryName>() else {
            continue; // "a/_x" is not a valid name: it cannot be pushed
        };
        let blob = Digest::sha256(b"{}");
        let repository = content.repository(repository_name);
        repository
            .put_blob(&blob, body(&[b"{}"]))
            .await
            .expect("blob");
        let manifest = image_manifest(&blob, 2, &blob, 2);
        repository
            .put_manifest(
                &Reference::Tag("t".parse().expect("tag")),
                None,
                manifest,
                &[],
            )
            .await
            .expect("manifest");
    }
    let all = content.catalog(&Page::default()).await.expect("catalog");
    assert_eq!(all.to_vec(), vec![name("a"), name("a/b/c"), name("b")]);
    let first = content
        .catalog(&Page {
            n: Some(2),
            last: None,
        })
        .await
        .expect("page");
    assert_eq!(first.to_vec(), vec![name("a"), name("a/b/c")]);
    assert!(first.more);
    let rest = content
        .catalog(&Page {
            n: Some(2),
            last: Some("a/b/c".into()),
        })
        .await
        .expect("page");
    assert_eq!(rest.to_vec(), vec![name("b")]);
    assert!(!rest.more);
}

#[tokio::test]
async fn deleted_referrer_disappears_from_referrers() {
    let content = store(Arc::new(InMemoryDriver::new()));
    let repository = content.repository(name("app"));
    let empty = Digest::sha256(media_type::EMPTY_JSON);
    repository
        .put_blob(&empty, body(&[media_type::EMPTY_JSON]))
        .await
        .expect("empty config");
    let subject = Digest::sha256(b"not pushed yet");
    let referrer = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x-signature","config":{{"mediaType":"{}","digest":"{empty}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{subject}","size":14}}}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        media_type::OCI_EMPTY,
        media_type::OCI_IMAGE_MANIFEST,
    ));
    let referrer_digest = Digest::sha256(&referrer);
    repository
        .put_manifest(
            &Reference::Digest(referrer_digest.clone()),
            None,
            referrer,
            &[],
        )
        .await
        .expect("referrer pushed before its subject");
    let found = repository
        .referrers(&subject, None, &Page::default())
        .await
        .expect("referrers")
        .descriptors;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, referrer_digest);
    assert_eq!(
        found[0].artifact_type.as_deref(),
        Some("application/x-signature")
    );
    assert!(
        repository
            .referrers(&subject, Some("application/other"), &Page::default())
            .await
            .expect("filtered")
            .descriptors
            .is_empty()
    );

    repository
        .delete_manifest(&Reference::Digest(referrer_digest))
        .await
        .expect("delete");
    assert!(
        repository
            .referrers(&subject, None, &Page::default())
            .await
            .expect("referrers")
            .descriptors
            .is_empty()
    );
}

#[tokio::test]
async fn purge_removes_only_uploads_started_before_the_cutoff() {
    let content = store(Arc::new(InMemoryDriver::new()));
    let old = content.repository(name("team/app"));
    let abandoned = old
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    old.append_upload(&abandoned, Some(0), body(&[b"partial"]))
        .await
        .expect("append");
    let cutoff = std::time::SystemTime::now() + std::time::Duration::from_millis(10);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let recent = content
        .repository(name("other"))
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;

    let dry = content.purge_uploads(cutoff, true).await.expect("dry run");
    assert_eq!(dry.purged, vec![(name("team/app"), abandoned.to_string())]);
    assert!(
        old.upload_status(&abandoned).await.is_ok(),
        "a dry run removes nothing"
    );

    let report = content.purge_uploads(cutoff, false).await.expect("purge");
    assert_eq!(report.purged.len(), 1);
    assert_eq!(report.kept, 1);
    assert!(matches!(
        old.upload_status(&abandoned).await,
        Err(ContentError::UploadUnknown { .. })
    ));
    assert!(
        content
            .repository(name("other"))
            .upload_status(&recent)
            .await
            .is_ok()
    );
}

/// Pushes a small image tagged `tag` whose config differs with `seed`; returns its digest.
async fn push_tagged(repository: &registry_content::Repository, tag: &str, seed: &str) -> Digest {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let config_digest = Digest::sha256(config.as_bytes());
    repository
        .put_blob(&config_digest, body(&[config.as_bytes()]))
        .await
        .expect("config");
    let manifest = image_manifest(&config_digest, config.len(), &config_digest, config.len());
    repository
        .put_manifest(
            &Reference::Tag(tag.parse().expect("tag")),
            None,
            manifest,
            &[],
        )
        .await
        .expect("manifest")
        .digest
}

#[tokio::test]
async fn cached_manifests_are_served_without_reading_their_data() {
    let driver = Arc::new(CountingDriver::over(InMemoryDriver::new()));
    let repository = store(driver.clone()).repository(name("app"));
    let digest = push_tagged(&repository, "v1", "a").await;
    let before = driver.blob_gets.load(Ordering::SeqCst);
    for _ in 0..3 {
        let stored = repository
            .manifest(&Reference::Digest(digest.clone()))
            .await
            .expect("manifest");
        assert_eq!(stored.digest, digest);
    }
    assert_eq!(driver.blob_gets.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn cache_never_serves_a_moved_tag_or_a_deleted_manifest() {
    let driver: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    let content = store(driver);
    let repository = content.repository(name("app"));
    let v1 = Reference::Tag("v1".parse().expect("tag"));
    let first = push_tagged(&repository, "v1", "first").await;
    assert_eq!(repository.manifest(&v1).await.expect("first").digest, first);

    // The tag moves: the next read follows it.
    let second = push_tagged(&repository, "v1", "second").await;
    assert_eq!(
        repository.manifest(&v1).await.expect("second").digest,
        second
    );

    // The manifest is deleted: neither its digest nor its tag serves it, though it was cached.
    repository
        .delete_manifest(&Reference::Digest(second.clone()))
        .await
        .expect("delete");
    assert!(matches!(
        repository
            .manifest(&Reference::Digest(second.clone()))
            .await,
        Err(ContentError::ManifestUnknown { .. })
    ));
    assert!(matches!(
        repository.manifest(&v1).await,
        Err(ContentError::ManifestUnknown { .. })
    ));

    // Another repository never sees it through the shared cache.
    let other = content.repository(name("other"));
    assert!(matches!(
        other.manifest(&Reference::Digest(first)).await,
        Err(ContentError::ManifestUnknown { .. })
    ));
}

/// Makes every directory below `root` look last changed an hour ago, so that listings read from
/// them are old enough to be kept as snapshots.
fn age_directories(root: &std::path::Path) {
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("read_dir") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("file type").is_dir() {
                pending.push(entry.path());
            }
        }
        set_directory_time(&directory, hour_ago);
    }
}

fn set_directory_time(directory: &std::path::Path, time: std::time::SystemTime) {
    std::fs::File::open(directory)
        .and_then(|opened| opened.set_modified(time))
        .unwrap_or_else(|error| panic!("set time of {}: {error}", directory.display()));
}

/// A filesystem driver over a new temporary directory, counting what is read through it.
fn counted_filesystem() -> (tempfile::TempDir, Arc<CountingDriver>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = CountingDriver::over(FilesystemDriver::new(dir.path()).expect("driver"));
    (dir, Arc::new(driver))
}

async fn tag_names(repository: &registry_content::Repository) -> Vec<String> {
    let listing = repository.tags(&Page::default()).await.expect("tags");
    listing.items().map(|tag| tag.to_string()).collect()
}

async fn catalog_names(content: &ContentStore) -> Vec<String> {
    let listing = content.catalog(&Page::default()).await.expect("catalog");
    listing.items().map(|name| name.to_string()).collect()
}

#[tokio::test]
async fn tags_snapshot_never_serves_an_added_or_deleted_tag_late() {
    let (dir, driver) = counted_filesystem();
    let repository = store(driver.clone()).repository(name("app"));
    push_tagged(&repository, "v1", "a").await;
    push_tagged(&repository, "v2", "b").await;
    age_directories(dir.path());

    // Unchanged tags: read once, then served from the snapshot.
    assert_eq!(tag_names(&repository).await, ["v1", "v2"]);
    let read = driver.listings();
    assert_eq!(tag_names(&repository).await, ["v1", "v2"]);
    assert_eq!(driver.listings(), read, "served from the snapshot");

    // Tags pushed and deleted through the store are seen at once.
    push_tagged(&repository, "v3", "c").await;
    assert_eq!(tag_names(&repository).await, ["v1", "v2", "v3"]);
    age_directories(dir.path());
    assert_eq!(tag_names(&repository).await, ["v1", "v2", "v3"]);
    repository
        .delete_manifest(&Reference::Tag("v1".parse().expect("tag")))
        .await
        .expect("delete tag");
    assert_eq!(tag_names(&repository).await, ["v2", "v3"]);

    // So are changes made behind registryd's back (another registry over the same directory).
    let tags = dir
        .path()
        .join("docker/registry/v2/repositories/app/_manifests/tags");
    age_directories(dir.path());
    assert_eq!(tag_names(&repository).await, ["v2", "v3"]);
    std::fs::create_dir_all(tags.join("v4/current")).expect("tag by hand");
    std::fs::copy(tags.join("v2/current/link"), tags.join("v4/current/link")).expect("link");
    assert_eq!(tag_names(&repository).await, ["v2", "v3", "v4"]);
    age_directories(dir.path());
    assert_eq!(tag_names(&repository).await, ["v2", "v3", "v4"]);
    std::fs::remove_dir_all(tags.join("v2")).expect("untag by hand");
    assert_eq!(tag_names(&repository).await, ["v3", "v4"]);
}

#[tokio::test]
async fn tags_read_while_they_change_are_read_again() {
    let (_dir, driver) = counted_filesystem();
    let repository = store(driver.clone()).repository(name("app"));
    push_tagged(&repository, "v1", "a").await;
    // The tags directory changed a moment ago: its time may not move again for a second change
    // within the same clock tick, so no snapshot is kept.
    for _ in 0..3 {
        let read = driver.listings();
        assert_eq!(tag_names(&repository).await, ["v1"]);
        assert_eq!(driver.listings(), read + 1, "read afresh");
    }
}

#[tokio::test]
async fn catalog_snapshot_never_serves_an_added_or_removed_repository_late() {
    let (dir, driver) = counted_filesystem();
    let content = store(driver.clone());
    push_tagged(&content.repository(name("a")), "v1", "a").await;
    push_tagged(&content.repository(name("team/b")), "v1", "b").await;
    age_directories(dir.path());

    assert_eq!(catalog_names(&content).await, ["a", "team/b"]);
    let read = driver.listings();
    assert_eq!(catalog_names(&content).await, ["a", "team/b"]);
    assert_eq!(driver.listings(), read, "served from the snapshot");

    // A new repository at the top, one nested in a namespace, one nested in a repository, and a
    // repository that held only blobs until its first manifest: each is listed at once.
    for (repository, expected) in [
        ("c", vec!["a", "c", "team/b"]),
        ("team/d", vec!["a", "c", "team/b", "team/d"]),
        ("a/e", vec!["a", "a/e", "c", "team/b", "team/d"]),
    ] {
        age_directories(dir.path());
        assert_eq!(catalog_names(&content).await.len(), expected.len() - 1);
        push_tagged(&content.repository(name(repository)), "v1", repository).await;
        assert_eq!(catalog_names(&content).await, expected);
    }
    let blobs_only = content.repository(name("team/f"));
    let layer = b"layer".as_slice();
    blobs_only
        .put_blob(&Digest::sha256(layer), body(&[layer]))
        .await
        .expect("blob");
    age_directories(dir.path());
    assert!(!catalog_names(&content).await.contains(&"team/f".to_owned()));
    push_tagged(&blobs_only, "v1", "f").await;
    assert!(catalog_names(&content).await.contains(&"team/f".to_owned()));

    // A repository removed by hand (as operators do with registry:2) disappears at once.
    age_directories(dir.path());
    assert_eq!(catalog_names(&content).await.len(), 6);
    std::fs::remove_dir_all(dir.path().join("docker/registry/v2/repositories/team/b"))
        .expect("remove by hand");
    assert_eq!(
        catalog_names(&content).await,
        ["a", "a/e", "c", "team/d", "team/f"]
    );
}

#[tokio::test]
async fn without_directory_times_tags_are_always_read_and_the_catalog_is_kept_per_generation() {
    let driver = Arc::new(CountingDriver::over(InMemoryDriver::new()));
    let content = store(driver.clone());
    let repository = content.repository(name("app"));
    push_tagged(&repository, "v1", "a").await;
    let read = driver.listings();
    assert_eq!(catalog_names(&content).await, ["app"]);
    assert_eq!(tag_names(&repository).await, ["v1"]);
    assert_eq!(driver.listings(), read + 2, "both read");
    for _ in 0..2 {
        let read = driver.listings();
        assert_eq!(catalog_names(&content).await, ["app"]);
        assert_eq!(tag_names(&repository).await, ["v1"]);
        assert_eq!(
            driver.listings(),
            read + 1,
            "the tags read afresh, the catalog kept"
        );
    }

    // Another process over the same store (a replica) adds a repository, then empties one: the
    // kept catalog follows at once.
    let replica = store(driver.clone());
    push_tagged(&replica.repository(name("team/b")), "v1", "b").await;
    assert_eq!(catalog_names(&content).await, ["app", "team/b"]);
    assert_eq!(catalog_names(&content).await, ["app", "team/b"]);
    replica
        .repository(name("app"))
        .delete_manifest(&Reference::Tag("v1".parse().expect("tag")))
        .await
        .expect("delete the tag");
    let digest = replica
        .repository(name("app"))
        .manifest_links()
        .await
        .expect("links")[0]
        .0
        .clone();
    replica
        .repository(name("app"))
        .delete_manifest(&Reference::Digest(digest))
        .await
        .expect("delete the manifest");
    assert_eq!(catalog_names(&content).await, ["team/b"]);

    // Pushing to it again through the first process brings it back, for the replica too.
    push_tagged(&repository, "v2", "c").await;
    assert_eq!(catalog_names(&replica).await, ["app", "team/b"]);
    assert_eq!(catalog_names(&content).await, ["app", "team/b"]);
}

/// Two changes within one tick of the clock that stamps directories leave the directory's time
/// where it was; simulated by setting the time back after the second change.
#[tokio::test]
async fn changes_within_one_directory_clock_tick_are_seen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver: Arc<dyn StorageDriver> =
        Arc::new(FilesystemDriver::new(dir.path()).expect("driver"));
    let content = store(driver);
    let repositories = dir.path().join("docker/registry/v2/repositories");
    let tags = repositories.join("app/_manifests/tags");
    let repository = content.repository(name("app"));
    push_tagged(&repository, "v1", "a").await;
    let tick = std::time::SystemTime::now();
    set_directory_time(&repositories, tick);
    set_directory_time(&tags, tick);
    assert_eq!(catalog_names(&content).await, ["app"]);
    assert_eq!(tag_names(&repository).await, ["v1"]);

    push_tagged(&content.repository(name("other")), "v1", "b").await;
    push_tagged(&repository, "v2", "c").await;
    set_directory_time(&repositories, tick);
    set_directory_time(&tags, tick);
    assert_eq!(catalog_names(&content).await, ["app", "other"]);
    assert_eq!(tag_names(&repository).await, ["v1", "v2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_pieces_hash_to_their_digest_and_resume_without_reading_back() {
    let driver = Arc::new(CountingDriver::over(InMemoryDriver::new()));
    let repository = store(driver.clone()).repository(name("app"));
    // Pieces of several MiB in odd-sized chunks: hashed in batches off the receiving task.
    let whole: Vec<u8> = (0..7 * 1024 * 1024 + 13)
        .map(|i: usize| (i.wrapping_mul(31) ^ (i >> 11)) as u8)
        .collect();
    let digest = Digest::sha256(&whole);
    let (first, last) = whole.split_at(3 * 1024 * 1024 + 5);
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let status = repository
        .append_upload(
            &id,
            Some(0),
            body(&first.chunks(65_537).collect::<Vec<_>>()),
        )
        .await
        .expect("first piece");
    assert_eq!(status.size, first.len() as u64);
    let blob = repository
        .complete_upload(
            &id,
            &digest,
            Some(status.size),
            body(&last.chunks(1_000_003).collect::<Vec<_>>()),
        )
        .await
        .expect("last piece");
    assert_eq!(blob.size(), whole.len() as u64);
    assert_eq!(driver.reads.load(Ordering::SeqCst), 0, "nothing read back");
}
