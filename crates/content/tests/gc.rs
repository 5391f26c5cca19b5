//! Garbage collection: what it keeps, what it deletes, and that pushes running beside it never
//! lose what they were told is stored. Interleavings are forced with `FaultyDriver` stalls.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use registry_content::{
    ContentError, ContentOptions, ContentStore, GcEvent, GcOptions, GcReport, Page, Repository,
    RepositoryPattern, RetentionPolicy, TagPattern,
};
use registry_model::{Digest, Reference, RepositoryName, Tag, media_type};
use registry_storage::faults::{Fault, FaultyDriver, Operation, Stall};
use registry_storage::{FilesystemDriver, InMemoryDriver, StorageDriver};

fn name(text: &str) -> RepositoryName {
    text.parse().expect("valid repository name")
}

fn tag(text: &str) -> Tag {
    text.parse().expect("valid tag")
}

fn store(driver: Arc<dyn StorageDriver>) -> ContentStore {
    ContentStore::new(
        driver,
        ContentOptions {
            delete_enabled: true,
            manifest_cache_bytes: 0,
            listing_cache_bytes: 0,
            lease_term: Duration::from_secs(2),
            ..ContentOptions::default()
        },
    )
}

fn memory() -> ContentStore {
    store(Arc::new(InMemoryDriver::new()))
}

fn body(data: &[u8]) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + use<> {
    stream::iter(vec![Ok(Bytes::copy_from_slice(data))])
}

/// Collects everything unreachable at once: no grace period.
fn at_once(delete_untagged: bool) -> GcOptions {
    GcOptions {
        dry_run: false,
        delete_untagged,
        grace_period: Duration::ZERO,
        ..GcOptions::default()
    }
}

/// Waits until an operation reaches `stall`; fails the test if it never does.
async fn reached(stall: &Stall) {
    tokio::time::timeout(Duration::from_secs(10), stall.reached())
        .await
        .expect("the stalled operation is reached within 10 s");
}

async fn collect(store: &ContentStore, options: &GcOptions) -> (GcReport, Vec<GcEvent>) {
    let mut events = Vec::new();
    let report = store
        .collect_garbage(options, |event| events.push(event.clone()))
        .await
        .expect("garbage collection");
    (report, events)
}

async fn upload(repository: &Repository, data: &[u8]) -> Digest {
    let digest = Digest::sha256(data);
    repository
        .put_blob(&digest, body(data))
        .await
        .expect("blob upload");
    digest
}

/// An image: a config and layers already uploaded, and the manifest naming them.
struct Image {
    config: Digest,
    layers: Vec<Digest>,
    manifest: Bytes,
    digest: Digest,
}

/// Uploads a config and the `layers` to `repository` and returns the image's manifest, not yet
/// pushed.
async fn image(repository: &Repository, seed: &str, layers: &[&[u8]]) -> Image {
    let config = upload(repository, format!("{{\"seed\":\"{seed}\"}}").as_bytes()).await;
    let mut digests = Vec::new();
    for layer in layers {
        digests.push(upload(repository, layer).await);
    }
    let descriptors: Vec<String> = digests
        .iter()
        .zip(layers)
        .map(|(digest, layer)| {
            format!(
                r#"{{"mediaType":"{}","digest":"{digest}","size":{}}}"#,
                media_type::OCI_LAYER_TAR,
                layer.len()
            )
        })
        .collect();
    let config_size = format!("{{\"seed\":\"{seed}\"}}").len();
    let manifest = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":{config_size}}},"layers":[{}]}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        media_type::OCI_IMAGE_CONFIG,
        descriptors.join(",")
    ));
    let digest = Digest::sha256(&manifest);
    Image {
        config,
        layers: digests,
        manifest,
        digest,
    }
}

async fn push(repository: &Repository, image: &Image, tags: &[&str]) {
    let tags: Vec<Tag> = tags.iter().map(|text| tag(text)).collect();
    repository
        .put_manifest(
            &Reference::Digest(image.digest.clone()),
            None,
            image.manifest.clone(),
            &tags,
        )
        .await
        .expect("manifest push");
}

async fn has_manifest(repository: &Repository, digest: &Digest) -> bool {
    match repository
        .manifest(&Reference::Digest(digest.clone()))
        .await
    {
        Ok(_) => true,
        Err(ContentError::ManifestUnknown { .. }) => false,
        Err(error) => panic!("manifest {digest}: {error}"),
    }
}

/// The blob's bytes as the repository serves them; `None` when it does not have the blob.
async fn blob(repository: &Repository, digest: &Digest) -> Option<Vec<u8>> {
    let blob = match repository.blob(digest).await {
        Ok(blob) => blob,
        Err(ContentError::BlobUnknown { .. }) => return None,
        Err(error) => panic!("blob {digest}: {error}"),
    };
    let mut stream = match blob.open(0, None).await {
        Ok(stream) => stream,
        Err(ContentError::BlobUnknown { .. }) => return None,
        Err(error) => panic!("blob {digest}: {error}"),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("blob read"));
    }
    Some(bytes)
}

/// Whether the blob's data is in the store at all, whatever links it.
async fn stored(store: &ContentStore, digest: &Digest) -> bool {
    let hex = digest.hex();
    let path = format!(
        "/docker/registry/v2/blobs/{}/{}/{hex}/data",
        digest.algorithm(),
        &hex[..2]
    );
    store
        .driver()
        .stat(&registry_storage::StoragePath::parse(&path).expect("path"))
        .await
        .is_ok()
}

#[tokio::test]
async fn everything_a_tag_reaches_stays_and_the_rest_is_deleted() {
    let store = memory();
    let app = store.repository(name("gc/app"));
    let kept = image(&app, "kept", &[b"shared layer", b"kept layer"]).await;
    push(&app, &kept, &["v1"]).await;
    let dropped = image(&app, "dropped", &[b"shared layer", b"dropped layer"]).await;
    push(&app, &dropped, &["v2"]).await;
    app.delete_manifest(&Reference::Tag(tag("v2")))
        .await
        .expect("untag");
    let stray = upload(&app, b"uploaded, never used").await;

    let (report, events) = collect(&store, &at_once(true)).await;

    assert!(has_manifest(&app, &kept.digest).await);
    for digest in kept.layers.iter().chain([&kept.config]) {
        assert!(
            blob(&app, digest).await.is_some(),
            "{digest} of the tagged image"
        );
    }
    assert!(!has_manifest(&app, &dropped.digest).await);
    for digest in [&dropped.layers[1], &dropped.config, &stray, &dropped.digest] {
        assert!(blob(&app, digest).await.is_none(), "{digest} unlinked");
        assert!(!stored(&store, digest).await, "{digest} deleted");
    }
    assert_eq!(report.manifests_deleted, 1);
    assert_eq!(
        report.layer_links_deleted, 3,
        "dropped layer, config, stray"
    );
    assert_eq!(report.blobs_deleted, 4, "those three and the manifest");
    assert!(events.contains(&GcEvent::DeleteManifest {
        repository: name("gc/app"),
        digest: dropped.digest.clone(),
    }));
}

#[tokio::test]
async fn without_delete_untagged_every_manifest_stays_with_what_it_references() {
    let store = memory();
    let app = store.repository(name("gc/app"));
    let untagged = image(&app, "untagged", &[b"its layer"]).await;
    push(&app, &untagged, &[]).await;
    let stray = upload(&app, b"stray").await;

    let (report, _) = collect(&store, &at_once(false)).await;

    assert!(has_manifest(&app, &untagged.digest).await);
    assert!(blob(&app, &untagged.layers[0]).await.is_some());
    assert!(!stored(&store, &stray).await);
    assert_eq!(report.manifests_deleted, 0);
    assert_eq!(report.blobs_deleted, 1);
}

#[tokio::test]
async fn untagged_children_of_a_tagged_index_and_referrers_of_kept_manifests_survive() {
    let store = memory();
    let app = store.repository(name("gc/multi"));
    let amd64 = image(&app, "amd64", &[b"amd64 layer"]).await;
    push(&app, &amd64, &[]).await;
    let index = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
        media_type::OCI_IMAGE_INDEX,
        media_type::OCI_IMAGE_MANIFEST,
        amd64.digest,
        amd64.manifest.len()
    ));
    let index_digest = Digest::sha256(&index);
    app.put_manifest(&Reference::Tag(tag("latest")), None, index.clone(), &[])
        .await
        .expect("index");
    // A signature of the index, untagged, as cosign and notation push them.
    let signature_config = upload(&app, b"{}").await;
    let signature = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{signature_config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{signature_config}","size":2}}],"subject":{{"mediaType":"{}","digest":"{index_digest}","size":{}}}}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        media_type::OCI_IMAGE_INDEX,
        index.len()
    ));
    let signature_digest = Digest::sha256(&signature);
    app.put_manifest(
        &Reference::Digest(signature_digest.clone()),
        None,
        signature,
        &[],
    )
    .await
    .expect("signature");
    let orphan = image(&app, "orphan", &[b"orphan layer"]).await;
    push(&app, &orphan, &[]).await;

    let (report, _) = collect(&store, &at_once(true)).await;

    assert!(has_manifest(&app, &index_digest).await);
    assert!(
        has_manifest(&app, &amd64.digest).await,
        "an index's child survives"
    );
    assert!(blob(&app, &amd64.layers[0]).await.is_some());
    assert!(
        has_manifest(&app, &signature_digest).await,
        "a referrer of a kept manifest survives"
    );
    assert!(blob(&app, &signature_config).await.is_some());
    assert!(!has_manifest(&app, &orphan.digest).await);
    assert!(!stored(&store, &orphan.layers[0]).await);
    assert_eq!(report.manifests_deleted, 1);
}

#[tokio::test]
async fn nothing_written_within_the_grace_period_is_collected() {
    let store = memory();
    let app = store.repository(name("gc/app"));
    let untagged = image(&app, "new", &[b"new layer"]).await;
    push(&app, &untagged, &[]).await;
    let pending = upload(&app, b"a layer whose manifest comes next").await;

    let options = GcOptions {
        delete_untagged: true,
        grace_period: Duration::from_secs(3600),
        ..GcOptions::default()
    };
    let (report, _) = collect(&store, &options).await;

    assert!(has_manifest(&app, &untagged.digest).await);
    assert!(blob(&app, &pending).await.is_some());
    assert_eq!(
        (
            report.manifests_deleted,
            report.layer_links_deleted,
            report.blobs_deleted
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn a_dry_run_reports_what_a_collection_deletes_and_deletes_nothing() {
    let store = memory();
    let app = store.repository(name("gc/app"));
    let dropped = image(&app, "dropped", &[b"dropped layer"]).await;
    push(&app, &dropped, &[]).await;

    let dry = GcOptions {
        dry_run: true,
        ..at_once(true)
    };
    let (planned, _) = collect(&store, &dry).await;
    assert!(has_manifest(&app, &dropped.digest).await);
    assert!(blob(&app, &dropped.layers[0]).await.is_some());

    let (done, _) = collect(&store, &at_once(true)).await;
    assert_eq!(planned, done);
    assert!(done.bytes_freed > 0);
}

async fn tag_names(repository: &Repository) -> Vec<String> {
    let listing = repository
        .tags(&Page::default())
        .await
        .expect("tags of the repository");
    listing.items().map(|tag| tag.as_str().to_owned()).collect()
}

/// `team/*` keeps its 2 newest tags and its `release-*` tags, and drops what they no longer
/// reach; other repositories keep every tag.
fn team_retention() -> GcOptions {
    GcOptions {
        retention: vec![RetentionPolicy {
            repositories: vec![RepositoryPattern::new("team/*").expect("valid pattern")],
            keep_newest: Some(2),
            keep_tags: vec![TagPattern::new("release-.*").expect("valid pattern")],
            untagged_older_than: Some(Duration::ZERO),
        }],
        ..at_once(false)
    }
}

#[tokio::test]
async fn a_retention_policy_keeps_the_newest_and_matching_tags_and_drops_what_the_rest_reached() {
    let store = memory();
    let app = store.repository(name("team/app"));
    let other = store.repository(name("other/app"));
    let mut images = Vec::new();
    for (number, tag) in ["release-1", "old-1", "old-2", "new-1", "new-2"]
        .into_iter()
        .enumerate()
    {
        let image = image(&app, tag, &[format!("layer {number}").as_bytes()]).await;
        push(&app, &image, &[tag]).await;
        let elsewhere = self::image(&other, tag, &[format!("other {number}").as_bytes()]).await;
        push(&other, &elsewhere, &[tag]).await;
        // Tags are ranked by when they were pushed, each push later than the last.
        images.push((tag, image));
    }

    let (planned, planned_events) = collect(
        &store,
        &GcOptions {
            dry_run: true,
            ..team_retention()
        },
    )
    .await;
    assert_eq!(tag_names(&app).await.len(), 5);
    let (report, events) = collect(&store, &team_retention()).await;

    assert_eq!(planned, report, "the dry run foretold the collection");
    assert_eq!(planned_events, events);
    assert_eq!(tag_names(&app).await, ["new-1", "new-2", "release-1"]);
    assert_eq!(tag_names(&other).await.len(), 5);
    for (tag, image) in &images {
        let kept = !tag.starts_with("old");
        assert_eq!(has_manifest(&app, &image.digest).await, kept, "{tag}");
        assert_eq!(
            stored(&store, &image.layers[0]).await,
            kept,
            "{tag}'s layer"
        );
    }
    assert_eq!(report.tags_deleted, 2);
    assert_eq!(report.manifests_deleted, 2);
    assert!(events.contains(&GcEvent::DeleteTag {
        repository: name("team/app"),
        tag: tag("old-1"),
        digest: images[1].1.digest.clone(),
    }));
}

#[tokio::test]
async fn nothing_is_collected_in_read_only_mode() {
    let store = memory();
    let app = store.repository(name("gc/app"));
    let stray = upload(&app, b"stray").await;
    store.set_read_only(true);

    let refused = store.collect_garbage(&at_once(true), |_| {}).await;

    assert!(
        matches!(refused, Err(ContentError::ReadOnly)),
        "{refused:?}"
    );
    assert!(stored(&store, &stray).await);
    store.set_read_only(false);
    let (report, _) = collect(&store, &at_once(true)).await;
    assert_eq!(report.blobs_deleted, 1);
}

#[tokio::test]
async fn a_blob_linked_after_it_was_condemned_is_rescued() {
    let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
    let store = store(driver.clone());
    let app = store.repository(name("gc/app"));
    let data = b"deleted from one repository, uploaded to another";
    let digest = upload(&app, data).await;
    app.delete_blob(&digest).await.expect("unlink");

    // The collection stops where it would mark the blob for deletion: after its second look.
    let (fault, deleting) = Fault::stall(Operation::PutContentIf);
    driver.inject(fault.on_path("registryd-gc").nth(2));
    let collecting = {
        let store = store.clone();
        tokio::spawn(async move { collect(&store, &at_once(true)).await })
    };
    reached(&deleting).await;
    let other = store.repository(name("gc/other"));
    assert_eq!(upload(&other, data).await, digest);
    deleting.release();
    let (report, _) = collecting.await.expect("collection");

    assert_eq!(report.blobs_deleted, 0);
    assert_eq!(blob(&other, &digest).await.as_deref(), Some(&data[..]));
}

#[tokio::test]
async fn an_upload_of_a_blob_being_deleted_stores_its_own_copy() {
    let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
    let store = store(driver.clone());
    let app = store.repository(name("gc/app"));
    let data = b"old content pushed again";
    let digest = upload(&app, data).await;
    app.delete_blob(&digest).await.expect("unlink");

    // The collection stops just before it deletes the data it marked `deleting`.
    let (fault, deleting) = Fault::stall(Operation::Delete);
    driver.inject(fault.on_path("/blobs/sha256/"));
    let collecting = {
        let store = store.clone();
        tokio::spawn(async move { collect(&store, &at_once(true)).await })
    };
    reached(&deleting).await;
    // The upload finds the blob stored, links it, and reads the marker: `deleting`. It waits for
    // the deletion to finish, then stores its own copy.
    let (fault, claiming) = Fault::stall(Operation::GetContentVersioned);
    driver.inject(fault.on_path("registryd-gc"));
    let uploading = {
        let app = app.clone();
        tokio::spawn(async move { upload(&app, data).await })
    };
    reached(&claiming).await;
    claiming.release();
    deleting.release();
    let (report, _) = collecting.await.expect("collection");
    assert_eq!(uploading.await.expect("upload"), digest);

    assert_eq!(report.blobs_deleted, 1);
    assert_eq!(blob(&app, &digest).await.as_deref(), Some(&data[..]));
}

#[tokio::test]
async fn a_layer_link_written_again_during_its_sweep_stays() {
    let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
    let store = store(driver.clone());
    let app = store.repository(name("gc/app"));
    let data = b"uploaded long ago, uploaded again now";
    let digest = upload(&app, data).await;

    // The collection stops just before it removes the layer link it found unused.
    let (fault, removing) = Fault::stall(Operation::Delete);
    driver.inject(fault.on_path("/_layers/"));
    let collecting = {
        let store = store.clone();
        tokio::spawn(async move { collect(&store, &at_once(true)).await })
    };
    reached(&removing).await;
    // The upload writes the link again and finds the sweep under way: it waits for it to end,
    // then writes the link once more if the sweep removed it.
    let (fault, waiting) = Fault::stall(Operation::GetContent);
    driver.inject(fault.on_path("/_registryd/sweeping"));
    let uploading = {
        let app = app.clone();
        tokio::spawn(async move { upload(&app, data).await })
    };
    reached(&waiting).await;
    waiting.release();
    removing.release();
    collecting.await.expect("collection");
    assert_eq!(uploading.await.expect("upload"), digest);

    assert_eq!(blob(&app, &digest).await.as_deref(), Some(&data[..]));
}

/// A collection that died between marking a blob `deleting` and deleting its data (its delete
/// fails here, as a crash would leave it).
async fn collection_dies_while_deleting(driver: &FaultyDriver, store: &ContentStore) {
    driver.inject(Fault::fail(Operation::Delete).on_path("/data"));
    let died = store.collect_garbage(&at_once(true), |_| {}).await;
    assert!(died.is_err(), "the collection failed: {died:?}");
    driver.clear();
}

#[tokio::test]
async fn the_next_collection_finishes_what_a_dead_one_left_deleting() {
    let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
    let store = store(driver.clone());
    let app = store.repository(name("gc/app"));
    let stray = upload(&app, b"unlinked, old").await;
    app.delete_blob(&stray).await.expect("unlink");
    collection_dies_while_deleting(&driver, &store).await;
    assert!(
        stored(&store, &stray).await,
        "the data outlived the dead collection"
    );

    let (report, _) = collect(&store, &at_once(true)).await;

    assert_eq!(report.blobs_deleted, 1);
    assert!(!stored(&store, &stray).await);
}

#[tokio::test]
async fn an_upload_waits_out_a_dead_collections_deleting_marker_and_keeps_the_blob() {
    let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
    let store = store(driver.clone());
    let app = store.repository(name("gc/app"));
    let data = b"unlinked, old, wanted again";
    let digest = upload(&app, data).await;
    app.delete_blob(&digest).await.expect("unlink");
    collection_dies_while_deleting(&driver, &store).await;

    // The marker says `deleting` until it expires (one lease term): the upload waits that long,
    // then finds the data still there and keeps it.
    assert_eq!(upload(&app, data).await, digest);
    assert_eq!(blob(&app, &digest).await.as_deref(), Some(&data[..]));
    // Linked again just now: a collection with a grace period keeps it.
    let (report, _) = collect(&store, &GcOptions::default()).await;

    assert_eq!(report.blobs_deleted, 0);
    assert_eq!(blob(&app, &digest).await.as_deref(), Some(&data[..]));
}

#[tokio::test]
async fn two_collections_never_run_at_once() {
    let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
    let store = store(driver.clone());
    let app = store.repository(name("gc/app"));
    upload(&app, b"something to look at").await;

    let (fault, listing) = Fault::stall(Operation::List);
    driver.inject(fault.on_path("/repositories"));
    let first = {
        let store = store.clone();
        tokio::spawn(async move { collect(&store, &at_once(true)).await })
    };
    reached(&listing).await;
    let second = store.collect_garbage(&at_once(true), |_| {}).await;
    assert!(
        matches!(second, Err(ContentError::CollectionRunning)),
        "{second:?}"
    );
    listing.release();
    first.await.expect("first collection");
}

/// Pushes, retags, deletes and mounts from several tasks while collections run back to back;
/// afterwards every image whose push succeeded and whose tag remains is there byte for byte, and
/// a last collection leaves nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collections_in_a_loop_beside_twenty_pushers_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(Arc::new(
        FilesystemDriver::new(dir.path()).expect("filesystem driver"),
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                store
                    .collect_garbage(&at_once(true), |_| {})
                    .await
                    .expect("collection");
                runs += 1;
            }
            runs
        })
    };
    let pushers: Vec<_> = (0..20)
        .map(|client| {
            let store = store.clone();
            tokio::spawn(async move { push_retag_delete_mount(&store, client).await })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for pusher in pushers {
        acknowledged.extend(pusher.await.expect("pusher"));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let runs = collector.await.expect("collector");
    assert!(runs > 1, "collections ran during the pushes: {runs}");
    assert!(
        acknowledged.len() >= 20,
        "most pushes succeed beside the collections: {} acknowledged",
        acknowledged.len()
    );

    for (repository, tag, image, data) in &acknowledged {
        let repository = store.repository(repository.clone());
        let Ok(manifest) = repository.manifest(&Reference::Tag(tag.clone())).await else {
            continue;
        };
        assert_eq!(manifest.digest, image.digest);
        for (digest, bytes) in image.layers.iter().zip(data) {
            assert_eq!(
                blob(&repository, digest).await.as_deref(),
                Some(&bytes[..]),
                "layer {digest} of {tag}"
            );
        }
        assert!(blob(&repository, &image.config).await.is_some());
    }

    // Nothing unreferenced is left once a last collection has run.
    collect(&store, &at_once(true)).await;
    let (again, _) = collect(&store, &at_once(true)).await;
    assert_eq!(
        (
            again.manifests_deleted,
            again.layer_links_deleted,
            again.blobs_deleted
        ),
        (0, 0, 0)
    );
}

type Acknowledged = (RepositoryName, Tag, Image, Vec<Vec<u8>>);

/// One client: pushes images to its repository (each with a layer shared by all clients and one
/// of its own), moves its `latest` tag, deletes every other image, and mounts the shared layer
/// into a repository of its own. Returns the tagged images whose push succeeded.
async fn push_retag_delete_mount(store: &ContentStore, client: usize) -> Vec<Acknowledged> {
    let repository = store.repository(name(&format!("load/c{client}")));
    let mut acknowledged = Vec::new();
    for round in 0..6 {
        let own = format!("layer of client {client}, round {round}").into_bytes();
        let shared = format!("shared layer of round {round}").into_bytes();
        let pushed = image(
            &repository,
            &format!("{client}-{round}"),
            &[&shared[..], &own[..]],
        )
        .await;
        let tag = tag(&format!("r{round}"));
        let outcome = repository
            .put_manifest(
                &Reference::Digest(pushed.digest.clone()),
                None,
                pushed.manifest.clone(),
                &[tag.clone(), self::tag("latest")],
            )
            .await;
        match outcome {
            Ok(_) => {}
            // A layer uploaded just before, swept by a collection with no grace period before
            // the manifest came: refused, as a push whose layers are missing is.
            Err(ContentError::ManifestBlobUnknown { .. }) => continue,
            Err(error) => panic!("push: {error}"),
        }
        if round % 2 == 1 {
            repository
                .delete_manifest(&Reference::Digest(pushed.digest.clone()))
                .await
                .expect("delete");
        } else {
            acknowledged.push((repository.name().clone(), tag, pushed, vec![shared, own]));
        }
        let mirror = store.repository(name(&format!("mirror/c{client}")));
        let shared_digest = Digest::sha256(format!("shared layer of round {round}").as_bytes());
        mirror
            .mount_blob(repository.name(), &shared_digest)
            .await
            .expect("mount");
    }
    acknowledged
}
