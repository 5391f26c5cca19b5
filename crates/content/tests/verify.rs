//! The scrub (`ContentStore::verify`): each kind of damage is reported by its storage path, repair
//! removes exactly the bad links and never a blob, a clean store reports nothing, and whatever
//! changes under a running scan (as when registryd serves the same store) is not taken for damage.
//! Each case runs on the in-memory and the filesystem driver.

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;
use registry_content::{
    ContentOptions, ContentStore, Problem, ProblemKind, Repair, VerifyEvent, VerifyOptions,
    VerifyReport,
};
use registry_model::{Digest, DigestAlgorithm, Reference, media_type};
use registry_storage::{
    ByteStream, Durability, FileInfo, FileWriter, FilesystemDriver, InMemoryDriver, ObjectVersion,
    PutMode, StorageDriver, StorageError, StoragePath, WalkControl,
};

const REPO: &str = "/docker/registry/v2/repositories/team/app";

fn path(text: &str) -> StoragePath {
    StoragePath::parse(text).expect("valid storage path")
}

fn repo_path(relative: &str) -> StoragePath {
    path(&format!("{REPO}/{relative}"))
}

fn blob_dir(digest: &Digest) -> StoragePath {
    let hex = digest.hex();
    path(&format!(
        "/docker/registry/v2/blobs/{}/{}/{hex}",
        digest.algorithm(),
        &hex[..2]
    ))
}

fn blob_data(digest: &Digest) -> StoragePath {
    blob_dir(digest).join("data").expect("data path")
}

fn link_dir(kind: &str, digest: &Digest) -> StoragePath {
    repo_path(&format!("{kind}/{}/{}", digest.algorithm(), digest.hex()))
}

fn body(data: &[u8]) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    stream::iter(vec![Ok(Bytes::copy_from_slice(data))])
}

/// Each driver the cases run on, with the directory that must outlive the filesystem one.
fn drivers() -> Vec<(Arc<dyn StorageDriver>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let filesystem = FilesystemDriver::new(dir.path()).expect("filesystem driver");
    vec![
        (Arc::new(InMemoryDriver::new()), None),
        (Arc::new(filesystem), Some(dir)),
    ]
}

fn store(driver: Arc<dyn StorageDriver>) -> ContentStore {
    ContentStore::new(driver, ContentOptions::default())
}

/// What [`push_fixture`] stored in the repository `team/app`.
struct Fixture {
    layer: Digest,
    sha512_blob: Digest,
    image: Digest,
    referrer: Digest,
    /// Bytes in all blobs.
    bytes: u64,
}

/// An image tagged `v1` and `latest`, a blob pushed as sha512, and a signature referring to the
/// image: 6 blobs (config, layer, the sha512 blob, the empty config, the two manifests), 4 layer
/// links, 2 revisions, 2 tags with one history entry each, and 1 referrer record.
async fn push_fixture(content: &ContentStore) -> Fixture {
    let repository = content.repository("team/app".parse().expect("name"));
    let config = b"{\"architecture\":\"amd64\"}".as_slice();
    let layer = b"layer bytes".as_slice();
    let sha512_data = b"a blob pushed as sha512".as_slice();
    let config_digest = Digest::sha256(config);
    let layer_digest = Digest::sha256(layer);
    let sha512_blob = Digest::compute(DigestAlgorithm::Sha512, sha512_data);
    let empty = Digest::sha256(media_type::EMPTY_JSON);
    for (digest, data) in [
        (&config_digest, config),
        (&layer_digest, layer),
        (&sha512_blob, sha512_data),
        (&empty, media_type::EMPTY_JSON),
    ] {
        repository.put_blob(digest, body(data)).await.expect("blob");
    }
    let image = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{layer_digest}","size":{}}}]}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        media_type::OCI_IMAGE_CONFIG,
        config.len(),
        media_type::OCI_LAYER_TAR,
        layer.len(),
    ));
    let pushed = repository
        .put_manifest(
            &Reference::Tag("v1".parse().expect("tag")),
            None,
            image.clone(),
            &["latest".parse().expect("tag")],
        )
        .await
        .expect("image");
    let signature = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x-signature","config":{{"mediaType":"{}","digest":"{empty}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{}","size":{}}}}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        media_type::OCI_EMPTY,
        media_type::OCI_IMAGE_MANIFEST,
        pushed.digest,
        image.len(),
    ));
    let referrer = Digest::sha256(&signature);
    repository
        .put_manifest(
            &Reference::Digest(referrer.clone()),
            None,
            signature.clone(),
            &[],
        )
        .await
        .expect("signature");
    let bytes = [config, layer, sha512_data, media_type::EMPTY_JSON]
        .iter()
        .map(|data| data.len())
        .sum::<usize>()
        + image.len()
        + signature.len();
    Fixture {
        layer: layer_digest,
        sha512_blob,
        image: pushed.digest,
        referrer,
        bytes: bytes as u64,
    }
}

/// Every object in the driver (a test may collect them all; the scrub never does).
async fn objects(driver: &dyn StorageDriver) -> BTreeSet<StoragePath> {
    let mut found = BTreeSet::new();
    let walked = driver
        .walk(&StoragePath::root(), &mut |entry: &FileInfo| {
            if !entry.is_dir {
                found.insert(entry.path.clone());
            }
            WalkControl::Continue
        })
        .await;
    match walked {
        Ok(()) | Err(StorageError::NotFound { .. }) => found,
        Err(error) => panic!("walk: {error}"),
    }
}

/// Runs the scrub and returns its totals and the problems it told, checking that the totals
/// count what was told.
async fn verify(content: &ContentStore, repair: bool) -> (VerifyReport, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut last_progress = None;
    let report = content
        .verify(&VerifyOptions { repair }, |event| match event {
            VerifyEvent::Problem(problem) => problems.push(problem.clone()),
            VerifyEvent::Progress(totals) => last_progress = Some(totals.clone()),
            _ => {}
        })
        .await
        .expect("verify runs");
    assert_eq!(report.problems, problems.len() as u64);
    assert_eq!(
        report.repaired,
        problems
            .iter()
            .filter(|problem| matches!(problem.repair, Repair::Removed(_)))
            .count() as u64
    );
    if let Some(progress) = last_progress {
        assert_eq!(progress, report, "the last progress is the final totals");
    }
    (report, problems)
}

#[tokio::test]
async fn clean_store_reports_nothing_and_repair_changes_nothing() {
    for (driver, _dir) in drivers() {
        let content = store(driver.clone());
        let fixture = push_fixture(&content).await;
        let before = objects(driver.as_ref()).await;

        let (report, problems) = verify(&content, false).await;
        assert_eq!(problems, vec![], "{}", driver.name());
        assert!(report.is_clean());
        assert_eq!(report.blobs_checked, 6, "{}", driver.name());
        assert_eq!(report.bytes_hashed, fixture.bytes);
        // 4 layer links, 2 revisions, 2 tags with one history entry each, 1 referrer record.
        assert_eq!(report.links_checked, 4 + 2 + 2 * 2 + 1);

        let (repaired, problems) = verify(&content, true).await;
        assert_eq!(problems, vec![]);
        assert_eq!(repaired, report);
        assert_eq!(objects(driver.as_ref()).await, before);
    }
}

#[tokio::test]
async fn empty_store_is_clean() {
    for (driver, _dir) in drivers() {
        let (report, problems) = verify(&store(driver), false).await;
        assert_eq!(problems, vec![]);
        assert_eq!(report, VerifyReport::default());
    }
}

#[tokio::test]
async fn corrupt_blobs_are_reported_by_path_and_never_removed() {
    for (driver, _dir) in drivers() {
        let content = store(driver.clone());
        let fixture = push_fixture(&content).await;
        let rotten = Bytes::from_static(b"layer bytez");
        driver
            .put_content(&blob_data(&fixture.layer), rotten.clone())
            .await
            .expect("corrupt the layer");
        driver
            .put_content(&blob_data(&fixture.sha512_blob), Bytes::from_static(b""))
            .await
            .expect("truncate the sha512 blob");
        let before = objects(driver.as_ref()).await;

        for repair in [false, true] {
            let (report, problems) = verify(&content, repair).await;
            let mut expected = vec![
                Problem {
                    path: blob_data(&fixture.layer),
                    kind: ProblemKind::CorruptBlob {
                        actual: Digest::sha256(&rotten),
                    },
                    repair: Repair::None,
                },
                Problem {
                    path: blob_data(&fixture.sha512_blob),
                    kind: ProblemKind::CorruptBlob {
                        actual: Digest::compute(DigestAlgorithm::Sha512, b""),
                    },
                    repair: Repair::None,
                },
            ];
            expected.sort_by(|a, b| a.path.cmp(&b.path));
            assert_eq!(problems, expected, "{} repair={repair}", driver.name());
            assert_eq!(report.blobs_checked, 6);
            assert_eq!(objects(driver.as_ref()).await, before, "nothing removed");
        }
    }
}

#[tokio::test]
async fn bad_and_dangling_links_are_reported_and_repair_removes_exactly_them() {
    for (driver, _dir) in drivers() {
        let content = store(driver.clone());
        let fixture = push_fixture(&content).await;
        // A layer link whose blob is gone.
        driver
            .delete(&blob_dir(&fixture.layer))
            .await
            .expect("delete the layer's data");
        // A layer link naming another digest than its path.
        let wrong = link_dir("_layers", &fixture.sha512_blob)
            .join("link")
            .expect("link");
        driver
            .put_content(&wrong, Bytes::from(fixture.image.to_string()))
            .await
            .expect("overwrite");
        // A tag whose current link holds no digest.
        let garbled = repo_path("_manifests/tags/v1/current/link");
        driver
            .put_content(&garbled, Bytes::from_static(b"sha256:nope"))
            .await
            .expect("garble");
        // A tag naming a manifest that was never pushed, with its history entry: the history is
        // not a problem (the registry keeps it after deletes), the current link is.
        let never = Digest::sha256(b"never pushed");
        let ghost = repo_path("_manifests/tags/ghost/current/link");
        driver
            .put_content(&ghost, Bytes::from(never.to_string()))
            .await
            .expect("ghost tag");
        driver
            .put_content(
                &repo_path(&format!(
                    "_manifests/tags/ghost/index/sha256/{}/link",
                    never.hex()
                )),
                Bytes::from(never.to_string()),
            )
            .await
            .expect("ghost history");
        // A referrer record whose referrer manifest is gone.
        driver
            .delete(&link_dir("_manifests/revisions", &fixture.referrer))
            .await
            .expect("delete the referrer's revision");
        let record = repo_path(&format!(
            "_referrers/sha256/{}/sha256/{}/descriptor",
            fixture.image.hex(),
            fixture.referrer.hex()
        ));
        let before = objects(driver.as_ref()).await;

        let expected = |repair: bool| {
            let removed = |dir: StoragePath| {
                if repair {
                    Repair::Removed(dir)
                } else {
                    Repair::None
                }
            };
            vec![
                Problem {
                    path: link_dir("_layers", &fixture.layer)
                        .join("link")
                        .expect("link"),
                    kind: ProblemKind::MissingBlob {
                        digest: fixture.layer.clone(),
                    },
                    repair: removed(link_dir("_layers", &fixture.layer)),
                },
                Problem {
                    path: wrong.clone(),
                    kind: ProblemKind::WrongDigest {
                        found: fixture.image.clone(),
                    },
                    repair: removed(link_dir("_layers", &fixture.sha512_blob)),
                },
                Problem {
                    path: ghost.clone(),
                    kind: ProblemKind::MissingManifest {
                        digest: never.clone(),
                    },
                    repair: removed(repo_path("_manifests/tags/ghost")),
                },
                Problem {
                    path: garbled.clone(),
                    kind: ProblemKind::Unparsable {
                        reason: "sha256:nope"
                            .parse::<Digest>()
                            .expect_err("not a digest")
                            .to_string(),
                    },
                    repair: removed(repo_path("_manifests/tags/v1")),
                },
                Problem {
                    path: record.clone(),
                    kind: ProblemKind::MissingManifest {
                        digest: fixture.referrer.clone(),
                    },
                    repair: removed(record.parent().expect("record directory")),
                },
            ]
        };

        let (_, problems) = verify(&content, false).await;
        assert_eq!(problems, expected(false), "{}", driver.name());
        assert_eq!(
            objects(driver.as_ref()).await,
            before,
            "reporting removes nothing"
        );

        let (report, problems) = verify(&content, true).await;
        assert_eq!(problems, expected(true), "{}", driver.name());
        assert_eq!(report.repaired, 5);
        let removed: BTreeSet<StoragePath> = before
            .difference(&objects(driver.as_ref()).await)
            .cloned()
            .collect();
        let v1_history = repo_path(&format!(
            "_manifests/tags/v1/index/sha256/{}/link",
            fixture.image.hex()
        ));
        let expected_removed: BTreeSet<StoragePath> = [
            link_dir("_layers", &fixture.layer)
                .join("link")
                .expect("link"),
            wrong.clone(),
            garbled.clone(),
            v1_history,
            ghost.clone(),
            repo_path(&format!(
                "_manifests/tags/ghost/index/sha256/{}/link",
                never.hex()
            )),
            record.clone(),
        ]
        .into_iter()
        .collect();
        assert_eq!(removed, expected_removed, "{}", driver.name());
        assert!(
            removed
                .iter()
                .all(|path| !path.as_str().contains("/blobs/")),
            "no blob is removed"
        );

        let (_, problems) = verify(&content, false).await;
        assert_eq!(problems, vec![], "repaired store is clean");
        let repository = content.repository("team/app".parse().expect("name"));
        repository
            .manifest(&Reference::Tag("latest".parse().expect("tag")))
            .await
            .expect("the good tag still resolves");
    }
}

#[tokio::test]
async fn entries_the_registry_cannot_address_are_reported_and_kept() {
    for (driver, _dir) in drivers() {
        let content = store(driver.clone());
        push_fixture(&content).await;
        let stray_blob = path("/docker/registry/v2/blobs/sha256/ab/not-a-digest/data");
        let misplaced_digest = Digest::sha256(b"misplaced");
        let misplaced = path(&format!(
            "/docker/registry/v2/blobs/sha256/00/{}/data",
            misplaced_digest.hex()
        ));
        let stray_link = repo_path("_layers/sha256/ABCDEF/link");
        let bad_repository = path("/docker/registry/v2/repositories/Team/_layers/sha256/x/link");
        for (object, content) in [
            (&stray_blob, b"x".as_slice()),
            (&misplaced, b"misplaced".as_slice()),
            (&stray_link, b"x".as_slice()),
            (&bad_repository, b"x".as_slice()),
        ] {
            driver
                .put_content(object, Bytes::copy_from_slice(content))
                .await
                .expect("stray object");
        }
        let before = objects(driver.as_ref()).await;

        let (_, problems) = verify(&content, true).await;
        let found: Vec<(&str, &ProblemKind, &Repair)> = problems
            .iter()
            .map(|problem| (problem.path.as_str(), &problem.kind, &problem.repair))
            .collect();
        let unexpected = |reason| ProblemKind::UnexpectedEntry { reason };
        let not_a_digest = unexpected("not named by a digest");
        let wrong_prefix = unexpected("blob under the wrong prefix directory");
        let bad_name = unexpected("not a valid repository name");
        let misplaced_dir = misplaced.parent().expect("dir");
        assert_eq!(
            found,
            vec![
                (misplaced_dir.as_str(), &wrong_prefix, &Repair::None),
                (
                    "/docker/registry/v2/blobs/sha256/ab/not-a-digest",
                    &not_a_digest,
                    &Repair::None
                ),
                (
                    "/docker/registry/v2/repositories/Team",
                    &bad_name,
                    &Repair::None
                ),
                (
                    stray_link.parent().expect("dir").as_str(),
                    &not_a_digest,
                    &Repair::None
                ),
            ],
            "{}",
            driver.name()
        );
        assert_eq!(objects(driver.as_ref()).await, before);
    }
}

/// A link whose blob is missing at the first look and back at the second (a concurrent push
/// finishing) is neither reported nor removed.
#[tokio::test]
async fn link_good_again_at_the_second_look_is_neither_reported_nor_removed() {
    let inner = Arc::new(InMemoryDriver::new());
    let fixture = push_fixture(&store(inner.clone())).await;
    let driver = Arc::new(Interfering::over(inner.clone()));
    driver.missing_once(blob_data(&fixture.layer));
    let content = store(driver.clone());
    // Listed through the inner driver: a walk of the outer one would use up the missing stat.
    let before = objects(inner.as_ref()).await;

    let (report, problems) = verify(&content, true).await;
    assert_eq!(problems, vec![]);
    assert_eq!(report.repaired, 0);
    assert_eq!(objects(inner.as_ref()).await, before);
}

/// Entries listed but gone when read (deleted by a concurrent request) are skipped, not reported.
#[tokio::test]
async fn entries_deleted_during_the_scan_are_skipped() {
    let inner = Arc::new(InMemoryDriver::new());
    let content = store(inner.clone());
    let fixture = push_fixture(&content).await;
    let clean = verify(&content, false).await.0;
    let driver = Arc::new(Interfering::over(inner));
    let gone_blob = Digest::sha256(b"deleted meanwhile");
    let gone_layer = Digest::sha256(b"unlinked meanwhile");
    let gone_tag = "deleted-meanwhile";
    driver.phantom(blob_dir(&gone_blob));
    driver.phantom(link_dir("_layers", &gone_layer));
    driver.phantom(repo_path(&format!("_manifests/tags/{gone_tag}")));
    driver.phantom(repo_path(&format!(
        "_referrers/sha256/{}/sha256/{}",
        fixture.image.hex(),
        gone_layer.hex()
    )));

    let (report, problems) = verify(&store(driver), true).await;
    assert_eq!(problems, vec![]);
    assert_eq!(report, clean);
}

/// Scans with repair running while images are pushed into the same store, as when registryd
/// serves it: nothing halfway through a push is taken for damage, and nothing is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_during_pushes_find_nothing_wrong() {
    const IMAGES: usize = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let content = store(Arc::new(FilesystemDriver::new(dir.path()).expect("driver")));
    let pushing = content.clone();
    let pusher = tokio::spawn(async move {
        let repository = pushing.repository("team/app".parse().expect("name"));
        for index in 0..IMAGES {
            let layer = format!("layer {index}");
            let digest = Digest::sha256(layer.as_bytes());
            repository
                .put_blob(&digest, body(layer.as_bytes()))
                .await
                .expect("layer");
            let manifest = Bytes::from(format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{digest}","size":{}}},"layers":[]}}"#,
                media_type::OCI_IMAGE_MANIFEST,
                media_type::OCI_IMAGE_CONFIG,
                layer.len(),
            ));
            repository
                .put_manifest(
                    &Reference::Tag(format!("v{index}").parse().expect("tag")),
                    None,
                    manifest,
                    &["latest".parse().expect("tag")],
                )
                .await
                .expect("manifest");
        }
    });
    let mut scans = 0;
    loop {
        let finished = pusher.is_finished();
        let (_, problems) = verify(&content, true).await;
        assert_eq!(problems, vec![], "scan {scans}");
        scans += 1;
        if finished {
            break;
        }
    }
    pusher.await.expect("pushes");
    let (report, _) = verify(&content, false).await;
    assert_eq!(report.blobs_checked, 2 * IMAGES as u64);
    // Per image: a layer link, a revision, its tag with one history entry; and `latest` with one
    // history entry per image.
    assert_eq!(report.links_checked, 4 * IMAGES as u64 + 1 + IMAGES as u64);
    assert!(scans > 0);
}

#[tokio::test]
async fn thousands_of_links_are_verified() {
    const BLOBS: usize = 500;
    const REPOSITORIES: usize = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("docker/registry/v2");
    // Written with std::fs: the driver's put_content syncs every file, which only slows the setup.
    let mut digests = Vec::new();
    for index in 0..BLOBS {
        let data = format!("blob number {index}");
        let digest = Digest::sha256(data.as_bytes());
        let hex = digest.hex();
        let blob = root.join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
        std::fs::create_dir_all(&blob).expect("blob dir");
        std::fs::write(blob.join("data"), data).expect("blob data");
        digests.push(digest);
    }
    for repository in 0..REPOSITORIES {
        for digest in &digests {
            let link = root.join(format!(
                "repositories/ns{}/repo{repository}/_layers/sha256/{}",
                repository % 3,
                digest.hex()
            ));
            std::fs::create_dir_all(&link).expect("link dir");
            std::fs::write(link.join("link"), digest.as_str()).expect("link");
        }
    }
    let broken = root.join(format!(
        "repositories/ns1/repo4/_layers/sha256/{}/link",
        digests[7].hex()
    ));
    std::fs::write(&broken, "garbage").expect("break one link");
    let driver = Arc::new(FilesystemDriver::new(dir.path()).expect("driver"));

    let (report, problems) = verify(&store(driver), false).await;
    assert_eq!(report.blobs_checked, BLOBS as u64);
    assert_eq!(report.links_checked, (BLOBS * REPOSITORIES) as u64);
    let paths: Vec<&str> = problems
        .iter()
        .map(|problem| problem.path.as_str())
        .collect();
    assert_eq!(
        paths,
        vec![format!(
            "/docker/registry/v2/repositories/ns1/repo4/_layers/sha256/{}/link",
            digests[7].hex()
        )]
    );
}

/// A driver over an in-memory one that makes the scan see what a concurrent request would leave:
/// a path missing at its first stat only, and directory entries listed that are gone when read.
#[derive(Debug)]
struct Interfering {
    inner: Arc<InMemoryDriver>,
    missing_once: Mutex<HashSet<StoragePath>>,
    phantoms: Mutex<Vec<StoragePath>>,
}

impl Interfering {
    fn over(inner: Arc<InMemoryDriver>) -> Interfering {
        Interfering {
            inner,
            missing_once: Mutex::new(HashSet::new()),
            phantoms: Mutex::new(Vec::new()),
        }
    }

    fn missing_once(&self, path: StoragePath) {
        self.missing_once.lock().expect("lock").insert(path);
    }

    /// Lists `path` in its parent, although nothing is there.
    fn phantom(&self, path: StoragePath) {
        self.phantoms.lock().expect("lock").push(path);
    }
}

#[async_trait]
impl StorageDriver for Interfering {
    fn name(&self) -> &'static str {
        "interfering"
    }
    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError> {
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
        if self.missing_once.lock().expect("lock").remove(path) {
            return Err(StorageError::NotFound { path: path.clone() });
        }
        self.inner.stat(path).await
    }
    async fn list(&self, path: &StoragePath) -> Result<Vec<StoragePath>, StorageError> {
        let mut entries = self.inner.list(path).await?;
        for phantom in self.phantoms.lock().expect("lock").iter() {
            if phantom.parent().as_ref() == Some(path) {
                entries.push(phantom.clone());
            }
        }
        entries.sort();
        Ok(entries)
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
}
