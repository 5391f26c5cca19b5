//! What stays true when requests race each other, storage fails and processes crash: one request
//! at a time per upload session, in every process over a store; deletes and pushes that never
//! interleave; completions cut short that the next request finishes; failures that leave either
//! the old state or the new one.
//!
//! Failures and interleavings are forced with `registry_storage::faults::FaultyDriver`, which
//! stops an operation until the test lets it go on, or fails it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{Either, select};
use futures_util::{Stream, StreamExt, stream};
use registry_content::{
    ContentError, ContentOptions, ContentStore, Repository, UploadId, UploadStatus,
};
use registry_model::{Digest, DigestAlgorithm, Reference, RepositoryName, Tag, media_type};
use registry_storage::faults::{Fault, FaultyDriver, Operation, Stall};
use registry_storage::{FilesystemDriver, InMemoryDriver, StorageDriver};
use tokio::sync::mpsc;

fn name(text: &str) -> RepositoryName {
    text.parse().expect("valid repository name")
}

fn tag(text: &str) -> Tag {
    text.parse().expect("valid tag")
}

fn options() -> ContentOptions {
    ContentOptions {
        delete_enabled: true,
        // Nothing here is cached: every read goes to storage, as from another process.
        manifest_cache_bytes: 0,
        listing_cache_bytes: 0,
        ..ContentOptions::default()
    }
}

fn faulty_memory() -> Arc<FaultyDriver> {
    Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())))
}

fn store(driver: Arc<dyn StorageDriver>) -> ContentStore {
    ContentStore::new(driver, options())
}

fn body(chunks: &[&[u8]]) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + use<> {
    let chunks: Vec<Result<Bytes, Infallible>> = chunks
        .iter()
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    stream::iter(chunks)
}

/// A body whose chunks the test sends one by one; it ends when the sender is dropped.
fn held_body() -> (
    mpsc::UnboundedSender<Bytes>,
    impl Stream<Item = Result<Bytes, Infallible>> + Send,
) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let chunks = stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok(chunk), receiver))
    });
    (sender, chunks)
}

/// A PATCH on the upload `id` that has sent `first` and holds the rest of its body: returns once
/// the request is writing (so it holds the session), with the sender of the rest (drop it to end
/// the body) and the request's task.
async fn hold_patch(
    driver: &FaultyDriver,
    repository: &Repository,
    id: &UploadId,
    start: Option<u64>,
    first: Vec<u8>,
) -> (
    mpsc::UnboundedSender<Bytes>,
    tokio::task::JoinHandle<Result<UploadStatus, ContentError>>,
) {
    let (sender, held) = held_body();
    let patch = tokio::spawn({
        let (repository, id) = (repository.clone(), id.clone());
        async move { repository.append_upload(&id, start, held).await }
    });
    let (fault, writing) = Fault::stall(Operation::Write);
    driver.inject(fault.on_path("/_uploads/"));
    sender.send(Bytes::from(first)).expect("send");
    writing.reached().await;
    writing.release();
    (sender, patch)
}

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn blob_bytes(repository: &Repository, digest: &Digest) -> Vec<u8> {
    let blob = repository.blob(digest).await.expect("blob");
    let mut stream = blob.open(0, None).await.expect("open blob");
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.expect("read blob"));
    }
    read
}

/// Pushes a one-layer image whose config holds `seed`, tagged `tags`; returns its digest.
async fn push(repository: &Repository, tags: &[&str], seed: &str) -> Digest {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let config_digest = Digest::sha256(config.as_bytes());
    repository
        .put_blob(&config_digest, body(&[config.as_bytes()]))
        .await
        .expect("config blob");
    let manifest = image_manifest(&config_digest, config.len());
    let digest = Digest::sha256(&manifest);
    let tags: Vec<Tag> = tags.iter().map(|text| tag(text)).collect();
    repository
        .put_manifest(&Reference::Digest(digest.clone()), None, manifest, &tags)
        .await
        .expect("manifest");
    digest
}

fn image_manifest(config: &Digest, size: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":{size}}},"layers":[{{"mediaType":"{}","digest":"{config}","size":{size}}}]}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        media_type::OCI_IMAGE_CONFIG,
        media_type::OCI_LAYER_TAR,
    ))
}

/// Every listed tag of `repository` with the manifest it resolves to; panics naming a tag that is
/// listed but does not resolve.
async fn resolved_tags(repository: &Repository) -> Vec<(String, Digest)> {
    let tags = match repository.tags(&registry_content::Page::default()).await {
        Ok(tags) => tags.to_vec(),
        Err(ContentError::NameUnknown { .. }) => Vec::new(),
        Err(error) => panic!("tags: {error}"),
    };
    let mut resolved = Vec::new();
    for listed in tags {
        let reference = Reference::Tag(listed.clone());
        match repository.manifest(&reference).await {
            Ok(manifest) => resolved.push((listed.to_string(), manifest.digest)),
            Err(error) => panic!("tag {listed} is listed but does not resolve: {error}"),
        }
    }
    resolved
}

/// Runs `racer` while `first` is stopped at `stall`, and lets `first` go on once `racer` has
/// either finished or stopped at `racer_waits` (where it would wait for `first`). Returns both
/// outcomes.
async fn race<A, B>(first: A, stall: Stall, racer: B, racer_waits: Stall) -> (A::Output, B::Output)
where
    A: Future + Send + 'static,
    A::Output: Send + 'static,
    B: Future,
{
    let first = tokio::spawn(first);
    stall.reached().await;
    let mut racer = pin!(racer);
    let racer_done = match select(racer.as_mut(), pin!(racer_waits.reached())).await {
        Either::Left((outcome, _)) => Some(outcome),
        Either::Right(((), _)) => None,
    };
    racer_waits.release();
    stall.release();
    let racer_outcome = match racer_done {
        Some(outcome) => outcome,
        None => racer.await,
    };
    (first.await.expect("first task"), racer_outcome)
}

#[tokio::test]
async fn a_session_in_use_refuses_other_requests_at_once_and_the_blob_never_changes() {
    let driver = faulty_memory();
    let content = store(driver.clone());
    let repository = content.repository(name("race/x"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let first = data(1, 100);
    let digest = Digest::sha256(&first);
    repository
        .append_upload(&id, Some(0), body(&[&first]))
        .await
        .expect("first chunk");

    // A second PATCH sends 16 bytes and holds the rest.
    let (sender, patch) = hold_patch(&driver, &repository, &id, None, data(2, 16)).await;

    // The PUT of the first 100 bytes, a third PATCH and a cancel are refused at once.
    let refused = repository
        .complete_upload(&id, &digest, None, body(&[]))
        .await;
    assert!(
        matches!(refused, Err(ContentError::UploadInUse { .. })),
        "PUT during a PATCH: {refused:?}"
    );
    let refused = repository.append_upload(&id, None, body(&[b"x"])).await;
    assert!(
        matches!(refused, Err(ContentError::UploadInUse { .. })),
        "{refused:?}"
    );
    let refused = repository.cancel_upload(&id).await;
    assert!(
        matches!(refused, Err(ContentError::UploadInUse { .. })),
        "{refused:?}"
    );

    sender.send(Bytes::from(data(3, 4080))).expect("send");
    drop(sender);
    let status = patch.await.expect("join").expect("held PATCH");
    assert_eq!(status.size, 4196);
    assert!(
        matches!(
            repository.blob(&digest).await,
            Err(ContentError::BlobUnknown { .. })
        ),
        "no blob appeared under the digest of the first 100 bytes"
    );
    // The session is free again: the PUT is now checked against all 4,196 bytes.
    let mismatch = repository
        .complete_upload(&id, &digest, None, body(&[]))
        .await;
    assert!(
        matches!(mismatch, Err(ContentError::DigestMismatch { .. })),
        "{mismatch:?}"
    );
}

#[tokio::test]
async fn a_blob_completed_first_is_never_changed_by_a_later_request() {
    let content = store(Arc::new(InMemoryDriver::new()));
    let repository = content.repository(name("race/y"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let bytes = data(4, 100);
    let digest = Digest::sha256(&bytes);
    repository
        .complete_upload(&id, &digest, None, body(&[&bytes]))
        .await
        .expect("complete");
    let late = repository.append_upload(&id, None, body(&[b"late"])).await;
    assert!(
        matches!(late, Err(ContentError::UploadUnknown { .. })),
        "{late:?}"
    );
    assert_eq!(blob_bytes(&repository, &digest).await, bytes);
}

#[tokio::test]
async fn two_stores_over_one_directory_exclude_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one_driver = Arc::new(FaultyDriver::new(Arc::new(
        FilesystemDriver::new(dir.path()).expect("driver"),
    )));
    let other_driver = Arc::new(FilesystemDriver::new(dir.path()).expect("driver"));
    let one = store(one_driver.clone()).repository(name("shared/app"));
    let other = store(other_driver).repository(name("shared/app"));
    let id = one
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let (sender, patch) = hold_patch(&one_driver, &one, &id, Some(0), data(5, 10)).await;

    // The other store, with its own caches and driver, sees the session in use.
    let refused = other.append_upload(&id, None, body(&[b"x"])).await;
    assert!(
        matches!(refused, Err(ContentError::UploadInUse { .. })),
        "{refused:?}"
    );
    let refused = other
        .complete_upload(&id, &Digest::sha256(b""), None, body(&[]))
        .await;
    assert!(
        matches!(refused, Err(ContentError::UploadInUse { .. })),
        "{refused:?}"
    );
    drop(sender);
    assert_eq!(patch.await.expect("join").expect("PATCH").size, 10);
    let status = other
        .append_upload(&id, Some(10), body(&[b"more"]))
        .await
        .expect("the other store continues once the session is free");
    assert_eq!(status.size, 14);
}

/// An upload of 3,000 bytes whose completion "died" right after its data moved into the blob
/// store (linking it into the repository failed); returns the session, its content and digest.
async fn upload_cut_short_after_the_move(
    driver: &Arc<FaultyDriver>,
    lease: &LeaseAfterCrash,
) -> (UploadId, Vec<u8>, Digest) {
    let repository = store(driver.clone()).repository(name("crash/app"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let bytes = data(6, 3000);
    let digest = Digest::sha256(&bytes);
    repository
        .append_upload(&id, Some(0), body(&[&bytes[..1000]]))
        .await
        .expect("first chunk");
    driver.inject(Fault::fail(Operation::PutContent).on_path("/_layers/"));
    if *lease == LeaseAfterCrash::StillHeld {
        driver.inject(Fault::fail(Operation::Delete).on_path("registryd-lease"));
    }
    repository
        .complete_upload(&id, &digest, Some(1000), body(&[&bytes[1000..]]))
        .await
        .expect_err("the completion is cut short");
    driver.clear();
    (id, bytes, digest)
}

/// Whether the session's lease outlives the request a crash cut short, as it does until its term
/// ends when the process dies.
#[derive(PartialEq)]
enum LeaseAfterCrash {
    Released,
    StillHeld,
}

#[tokio::test]
async fn a_completion_cut_short_after_the_data_became_the_blob_completes_again() {
    let driver = faulty_memory();
    let (id, bytes, digest) =
        upload_cut_short_after_the_move(&driver, &LeaseAfterCrash::Released).await;

    let restarted = store(driver.clone()).repository(name("crash/app"));
    let blob = restarted
        .complete_upload(&id, &digest, None, body(&[]))
        .await
        .expect("a repeated PUT finishes the completion");
    assert_eq!(blob.size(), 3000);
    assert_eq!(blob_bytes(&restarted, &digest).await, bytes);
    let again = restarted
        .complete_upload(&id, &digest, None, body(&[]))
        .await;
    assert!(
        matches!(again, Err(ContentError::UploadUnknown { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_completion_cut_short_after_the_data_became_the_blob_is_unknown_and_the_blob_linked() {
    for lease in [LeaseAfterCrash::Released, LeaseAfterCrash::StillHeld] {
        let driver = faulty_memory();
        let (id, bytes, digest) = upload_cut_short_after_the_move(&driver, &lease).await;

        let restarted = store(driver.clone()).repository(name("crash/app"));
        let status = restarted.upload_status(&id).await;
        assert!(
            matches!(status, Err(ContentError::UploadUnknown { .. })),
            "status of an upload whose data became the blob: {status:?}"
        );
        // Told to start over, the client looks for the blob first, and finds it.
        assert_eq!(blob_bytes(&restarted, &digest).await, bytes);
        let again = restarted
            .complete_upload(&id, &digest, None, body(&[]))
            .await;
        // Until the lease of the request the crash cut off expires, the session is in use.
        let expected = matches!(
            (&lease, &again),
            (
                LeaseAfterCrash::Released,
                Err(ContentError::UploadUnknown { .. })
            ) | (
                LeaseAfterCrash::StillHeld,
                Err(ContentError::UploadInUse { .. })
            )
        );
        assert!(expected, "a repeated PUT: {again:?}");
    }
}

#[tokio::test]
async fn a_completion_cut_short_before_the_move_leaves_a_resumable_upload() {
    let driver = faulty_memory();
    let repository = store(driver.clone()).repository(name("crash/app"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let bytes = data(7, 3000);
    let digest = Digest::sha256(&bytes);
    repository
        .append_upload(&id, Some(0), body(&[&bytes]))
        .await
        .expect("the data");
    driver.inject(Fault::fail(Operation::Move));
    repository
        .complete_upload(&id, &digest, Some(3000), body(&[]))
        .await
        .expect_err("the move fails");
    driver.clear();

    let restarted = store(driver.clone()).repository(name("crash/app"));
    let status = restarted.upload_status(&id).await.expect("status");
    assert_eq!(status.size, 3000);
    let blob = restarted
        .complete_upload(&id, &digest, Some(3000), body(&[]))
        .await
        .expect("completed again");
    assert_eq!(blob.size(), 3000);
    assert_eq!(blob_bytes(&restarted, &digest).await, bytes);
}

#[tokio::test]
async fn a_failed_commit_in_a_completion_leaves_the_session_resumable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = Arc::new(FaultyDriver::new(Arc::new(
        FilesystemDriver::new(dir.path()).expect("driver"),
    )));
    let repository = store(driver.clone()).repository(name("fail/commit"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let bytes = data(8, 3 << 20);
    let digest = Digest::sha256(&bytes);
    repository
        .append_upload(&id, Some(0), body(&[&bytes[..1000]]))
        .await
        .expect("first chunk");
    driver.inject(Fault::fail(Operation::Commit));
    let failed = repository
        .complete_upload(&id, &digest, Some(1000), body(&[&bytes[1000..]]))
        .await;
    assert!(failed.is_err(), "{failed:?}");
    driver.clear();

    // Whatever reached storage before the failure is the session's true size.
    let size = repository.upload_status(&id).await.expect("status").size;
    assert!((1000..=bytes.len() as u64).contains(&size), "size {size}");
    let start = usize::try_from(size).expect("size");
    let blob = repository
        .complete_upload(&id, &digest, Some(size), body(&[&bytes[start..]]))
        .await
        .expect("resumed and completed");
    assert_eq!(blob_bytes(&repository, blob.digest()).await, bytes);
}

#[tokio::test]
async fn a_full_disk_in_the_middle_of_an_upload_stores_nothing_and_the_session_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = Arc::new(FaultyDriver::new(Arc::new(
        FilesystemDriver::new(dir.path()).expect("driver"),
    )));
    let repository = store(driver.clone()).repository(name("full/disk"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let bytes = data(9, 4 << 20);
    let digest = Digest::sha256(&bytes);
    let chunks: Vec<&[u8]> = bytes.chunks(256 << 10).collect();
    driver.inject(
        Fault::fail(Operation::Write)
            .on_path("/_uploads/")
            .nth(5)
            .storage_full()
            .repeatedly(),
    );
    let full = repository.append_upload(&id, Some(0), body(&chunks)).await;
    match full {
        Err(ContentError::Storage(error)) => assert!(error.is_storage_full(), "{error}"),
        other => panic!("a full disk answered {other:?}"),
    }
    assert!(
        matches!(
            repository.blob(&digest).await,
            Err(ContentError::BlobUnknown { .. })
        ),
        "nothing stored"
    );
    // Space is freed: the session continues from what it holds.
    driver.clear();
    let size = repository.upload_status(&id).await.expect("status").size;
    let start = usize::try_from(size).expect("size");
    let blob = repository
        .complete_upload(&id, &digest, Some(size), body(&[&bytes[start..]]))
        .await
        .expect("completed after the disk was freed");
    assert_eq!(blob_bytes(&repository, blob.digest()).await, bytes);
}

#[tokio::test]
async fn a_whole_blob_in_one_completion_that_fails_to_commit_stores_nothing_and_can_be_sent_again()
{
    let driver = faulty_memory();
    let repository = store(driver.clone()).repository(name("direct/app"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let bytes = data(10, 3000);
    let digest = Digest::sha256(&bytes);
    driver.inject(Fault::fail(Operation::Commit).on_path("/blobs/"));
    repository
        .complete_upload(&id, &digest, Some(0), body(&[&bytes]))
        .await
        .expect_err("the commit fails");
    driver.clear();

    assert!(
        matches!(
            repository.blob(&digest).await,
            Err(ContentError::BlobUnknown { .. })
        ),
        "nothing stored"
    );
    // The session holds nothing, and the client sends the whole blob again.
    assert_eq!(repository.upload_status(&id).await.expect("status").size, 0);
    let blob = repository
        .complete_upload(&id, &digest, Some(0), body(&[&bytes]))
        .await
        .expect("sent again");
    assert_eq!(blob_bytes(&repository, blob.digest()).await, bytes);
    assert!(matches!(
        repository.upload_status(&id).await,
        Err(ContentError::UploadUnknown { .. })
    ));
}

#[tokio::test]
async fn a_blob_sent_whole_again_keeps_the_stored_copy_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = Arc::new(FilesystemDriver::new(dir.path()).expect("driver"));
    let content = store(driver);
    let repository = content.repository(name("direct/again"));
    let bytes = data(12, 3 << 20);
    let digest = Digest::sha256(&bytes);
    repository
        .put_blob(&digest, body(&[&bytes]))
        .await
        .expect("stored");
    let blob_file = dir.path().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{}/data",
        &digest.hex()[..2],
        digest.hex()
    ));
    let first = std::fs::metadata(&blob_file).expect("blob file");

    // Another repository sends the same bytes: the stored copy is claimed, the new one dropped.
    let other = content.repository(name("direct/other"));
    other
        .put_blob(&digest, body(&[&bytes]))
        .await
        .expect("stored again");
    let again = std::fs::metadata(&blob_file).expect("blob file");
    assert_eq!(
        first.modified().expect("time"),
        again.modified().expect("time"),
        "the stored copy was replaced"
    );
    assert_eq!(blob_bytes(&other, &digest).await, bytes);
    let mut pending = vec![dir.path().to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read_dir") {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".tmp~"), "left behind: {name}");
            if entry.file_type().expect("type").is_dir() {
                pending.push(entry.path());
            }
        }
    }
}

#[tokio::test]
async fn a_wrong_digest_sent_whole_leaves_the_stored_blob_of_that_digest_as_it_was() {
    let driver = faulty_memory();
    let repository = store(driver.clone()).repository(name("direct/wrong"));
    let bytes = data(11, 5000);
    let digest = Digest::sha256(&bytes);
    repository
        .put_blob(&digest, body(&[&bytes]))
        .await
        .expect("stored");
    let wrong = repository
        .put_blob(&digest, body(&[b"not those bytes"]))
        .await;
    assert!(
        matches!(wrong, Err(ContentError::DigestMismatch { .. })),
        "{wrong:?}"
    );
    assert_eq!(blob_bytes(&repository, &digest).await, bytes);
}

#[tokio::test]
async fn a_failure_between_the_revision_link_and_the_tag_leaves_nothing_visible() {
    let driver = faulty_memory();
    let repository = store(driver.clone()).repository(name("half/app"));
    let old = push(&repository, &["v1"], "old").await;
    let config = b"{\"seed\":\"new\"}";
    let config_digest = Digest::sha256(config);
    repository
        .put_blob(&config_digest, body(&[config]))
        .await
        .expect("config");
    let manifest = image_manifest(&config_digest, config.len());
    let new = Digest::sha256(&manifest);
    driver.inject(Fault::fail(Operation::PutContent).on_path("/_manifests/tags/"));
    repository
        .put_manifest(&Reference::Tag(tag("v1")), None, manifest, &[])
        .await
        .expect_err("tagging fails");
    driver.clear();

    assert_eq!(
        resolved_tags(&repository).await,
        vec![("v1".to_owned(), old)]
    );
    let by_digest = repository.manifest(&Reference::Digest(new)).await;
    assert!(
        matches!(by_digest, Err(ContentError::ManifestUnknown { .. })),
        "the manifest of the failed push is not visible: {by_digest:?}"
    );
}

#[tokio::test]
async fn a_manifest_delete_never_removes_a_tag_that_a_push_moved_meanwhile() {
    let driver = faulty_memory();
    let repository = store(driver.clone()).repository(name("race/tags"));
    let old = push(&repository, &["latest"], "old").await;

    // The delete stops just before it removes the tag it found naming the old manifest.
    let (fault, deleting_tag) = Fault::stall(Operation::Delete);
    driver.inject(fault.on_path("/_manifests/tags/latest"));
    let (fault, push_waits) = Fault::stall(Operation::GetContentVersioned);
    driver.inject(fault.on_path("/_registryd/lease").nth(2));
    let delete = {
        let (repository, old) = (repository.clone(), old.clone());
        async move { repository.delete_manifest(&Reference::Digest(old)).await }
    };
    let (deleted, new) = race(
        delete,
        deleting_tag,
        push(&repository, &["latest"], "new"),
        push_waits,
    )
    .await;
    deleted.expect("delete");

    assert_eq!(
        resolved_tags(&repository).await,
        vec![("latest".to_owned(), new)],
        "the tag the push moved survives the delete"
    );
}

#[tokio::test]
async fn a_push_racing_a_delete_never_leaves_a_tag_naming_the_deleted_manifest() {
    let driver = faulty_memory();
    let repository = store(driver.clone()).repository(name("race/revive"));
    let digest = push(&repository, &["v1"], "same").await;

    // The push of the same manifest under a second tag stops before it writes that tag.
    let (fault, tagging) = Fault::stall(Operation::PutContent);
    driver.inject(fault.on_path("/_manifests/tags/v2/"));
    let (fault, delete_waits) = Fault::stall(Operation::GetContentVersioned);
    driver.inject(fault.on_path("/_registryd/lease").nth(2));
    let pushing = {
        let repository = repository.clone();
        async move { push(&repository, &["v2"], "same").await }
    };
    let (pushed, deleted) = race(
        pushing,
        tagging,
        repository.delete_manifest(&Reference::Digest(digest.clone())),
        delete_waits,
    )
    .await;
    assert_eq!(pushed, digest);
    deleted.expect("delete");

    // The push came first and the delete removed the manifest with every tag: nothing is
    // left naming it.
    assert_eq!(resolved_tags(&repository).await, Vec::new());
}

#[tokio::test]
async fn a_tag_delete_racing_a_tag_push_leaves_no_tag_that_does_not_resolve() {
    let driver = faulty_memory();
    let repository = store(driver.clone()).repository(name("race/untag"));
    push(&repository, &["v1"], "old").await;

    // The push stops between the tag's link and its history entry.
    let (fault, tagging) = Fault::stall(Operation::PutContent);
    driver.inject(fault.on_path("/_manifests/tags/v1/index/"));
    let (fault, delete_waits) = Fault::stall(Operation::GetContentVersioned);
    driver.inject(fault.on_path("/_registryd/lease").nth(2));
    let pushing = {
        let repository = repository.clone();
        async move { push(&repository, &["v1"], "new").await }
    };
    let (_, deleted) = race(
        pushing,
        tagging,
        repository.delete_manifest(&Reference::Tag(tag("v1"))),
        delete_waits,
    )
    .await;
    deleted.expect("tag delete");
    assert_eq!(resolved_tags(&repository).await, Vec::new());
}

#[test]
fn a_lease_left_by_a_crashed_process_expires_after_its_term() {
    let driver = faulty_memory();
    let short = ContentOptions {
        lease_term: Duration::from_millis(300),
        ..options()
    };
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };

    // A request that never ends, in a runtime that then stops, as a killed process does: its
    // lease is neither renewed nor released.
    let crashed = runtime();
    let repository =
        ContentStore::new(driver.clone(), short.clone()).repository(name("crash/lease"));
    let (id, _sender) = crashed.block_on(async {
        let id = repository
            .start_upload(DigestAlgorithm::Sha256)
            .await
            .expect("start")
            .id;
        let (sender, _) = hold_patch(&driver, &repository, &id, Some(0), b"abc".to_vec()).await;
        (id, sender)
    });
    drop(crashed);

    driver.clear();
    runtime().block_on(async {
        let restarted = ContentStore::new(driver, short).repository(name("crash/lease"));
        let mut refusals = 0;
        let resumed = loop {
            match restarted.append_upload(&id, None, body(&[b"def"])).await {
                Err(ContentError::UploadInUse { retry_after, .. }) => {
                    assert!(retry_after <= Duration::from_millis(300), "{retry_after:?}");
                    refusals += 1;
                    // The lease's expiry is a time: waiting for it is waiting for the condition.
                    tokio::time::sleep(retry_after).await;
                }
                resumed => break resumed,
            }
        };
        assert!(
            refusals > 0,
            "the crashed request's lease was never seen held"
        );
        resumed.expect("the session is free once the crashed holder's term has passed");
    });
}

#[tokio::test]
async fn purging_keeps_a_session_a_request_is_using() {
    let driver = faulty_memory();
    let content = store(driver.clone());
    let repository = content.repository(name("purge/busy"));
    let id = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start")
        .id;
    let (sender, patch) = hold_patch(&driver, &repository, &id, Some(0), b"abc".to_vec()).await;

    // Every session is older than a cutoff in the future; the one in use stays.
    let cutoff = std::time::SystemTime::now() + Duration::from_secs(3600);
    let report = content.purge_uploads(cutoff, false).await.expect("purge");
    assert!(report.purged.is_empty(), "{report:?}");
    assert_eq!(report.kept, 1);
    drop(sender);
    assert_eq!(patch.await.expect("join").expect("PATCH").size, 3);

    let report = content.purge_uploads(cutoff, false).await.expect("purge");
    assert_eq!(report.purged, vec![(name("purge/busy"), id.to_string())]);
}

#[tokio::test]
async fn an_upload_whose_data_a_collection_deletes_as_it_completes_is_lost_not_corrupt() {
    let memory: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    let driver = Arc::new(FaultyDriver::new(Arc::clone(&memory)));
    let repository = store(driver.clone()).repository(name("race/lost"));
    let content = data(7, 4096);
    let digest = Digest::sha256(&content);

    // The upload has moved its data into place and is about to link it, when the data is
    // deleted (a collection with no grace period that looked at the links just before).
    let (fault, linking) = Fault::stall(Operation::PutContent);
    driver.inject(fault.on_path("/_layers/"));
    let upload = tokio::spawn({
        let (repository, digest, content) = (repository.clone(), digest.clone(), content.clone());
        async move { repository.put_blob(&digest, body(&[&content])).await }
    });
    linking.reached().await;
    let hex = digest.hex();
    let blob_data = registry_storage::StoragePath::parse(&format!(
        "/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ))
    .expect("path");
    memory.delete(&blob_data).await.expect("data deleted");
    linking.release();

    let lost = upload.await.expect("upload task");
    assert!(
        matches!(lost, Err(ContentError::UploadLost { .. })),
        "{lost:?}"
    );
    // Nothing is left claiming the blob: the repository does not have it, and uploading again
    // stores it.
    assert!(matches!(
        repository.blob(&digest).await,
        Err(ContentError::BlobUnknown { .. })
    ));
    repository
        .put_blob(&digest, body(&[&content]))
        .await
        .expect("uploaded again");
    assert_eq!(blob_bytes(&repository, &digest).await, content);
}
