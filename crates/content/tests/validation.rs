//! What a manifest push checks before it stores anything: that its references are present,
//! checked a few at a time however many there are; the URLs its descriptors carry; and, for an
//! index, which children must be there.

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use registry_content::{
    ContentError, ContentOptions, ContentStore, IndexChildren, ManifestValidation, OsArchitecture,
    Repository, UrlPolicy,
};
use registry_model::{Digest, Reference, media_type};
use registry_storage::{InMemoryDriver, StorageDriver};
use support::InFlightDriver;

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

/// An image manifest whose one layer is not pushed but named by `urls`.
fn manifest_with_layer_urls(config: &Digest, urls: &[&str]) -> Bytes {
    let urls: Vec<String> = urls.iter().map(|url| format!("{url:?}")).collect();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{{"mediaType":"{}","digest":"{}","size":9,"urls":[{}]}}]}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        descriptor_json(media_type::OCI_IMAGE_CONFIG, config, 2),
        media_type::OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP,
        Digest::sha256(b"elsewhere"),
        urls.join(",")
    ))
}

fn with_validation(validation: ManifestValidation) -> ContentOptions {
    ContentOptions {
        manifest_validation: validation,
        ..ContentOptions::default()
    }
}

#[tokio::test]
async fn by_default_a_manifest_with_urls_is_refused_and_nothing_is_stored() {
    let repository = repository(Arc::new(InMemoryDriver::new()), ContentOptions::default());
    let config = put_blob(&repository, b"{}").await;
    let manifest = manifest_with_layer_urls(&config, &["https://example.com/layer.tar.gz"]);
    let digest = Digest::sha256(&manifest);
    let error = push(&repository, manifest).await.expect_err("urls refused");
    assert!(
        matches!(error, ContentError::ManifestInvalid(_)),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("https://example.com/layer.tar.gz")
    );
    for reference in [
        Reference::Digest(digest),
        Reference::Tag("latest".parse().expect("tag")),
    ] {
        assert!(
            matches!(
                repository.manifest(&reference).await,
                Err(ContentError::ManifestUnknown { .. })
            ),
            "{reference} was stored"
        );
    }
}

#[tokio::test]
async fn urls_are_accepted_when_allowed_and_not_denied() {
    let policy = UrlPolicy::new(
        &[r"^https?://([^/]+\.)*example\.com/"],
        &[r"^https?://www\.example\.com/"],
    )
    .expect("patterns");
    let repository = repository(
        Arc::new(InMemoryDriver::new()),
        with_validation(ManifestValidation {
            urls: policy,
            ..ManifestValidation::default()
        }),
    );
    let config = put_blob(&repository, b"{}").await;
    push(
        &repository,
        manifest_with_layer_urls(
            &config,
            &[
                "https://cdn.example.com/a.tar.gz",
                "http://example.com/a.tar.gz",
            ],
        ),
    )
    .await
    .expect("allowed urls");
    for refused in [
        "https://www.example.com/a.tar.gz",
        "https://example.org/a.tar.gz",
        "ftp://cdn.example.com/a.tar.gz",
    ] {
        let manifest =
            manifest_with_layer_urls(&config, &["https://cdn.example.com/a.tar.gz", refused]);
        let error = push(&repository, manifest).await.expect_err(refused);
        assert!(error.to_string().contains(refused), "{error}");
    }
}

#[tokio::test]
async fn with_validation_disabled_any_http_url_is_accepted() {
    let repository = repository(
        Arc::new(InMemoryDriver::new()),
        with_validation(ManifestValidation::disabled()),
    );
    let config = put_blob(&repository, b"{}").await;
    push(
        &repository,
        manifest_with_layer_urls(&config, &["https://anywhere.example/a.tar.gz"]),
    )
    .await
    .expect("any url");
}

/// Pushes an image manifest for `(os, architecture)` by digest; returns its digest and size.
async fn push_platform_image(
    repository: &Repository,
    config: &Digest,
    seed: u8,
) -> (Digest, usize) {
    let layer = put_blob(repository, &[seed; 4]).await;
    let manifest = image_manifest(config, &[layer], 4);
    let digest = Digest::sha256(&manifest);
    let size = manifest.len();
    repository
        .put_manifest(&Reference::Digest(digest.clone()), None, manifest, &[])
        .await
        .expect("push image");
    (digest, size)
}

/// An index over `children`: `(digest, size, os, architecture)`.
fn index(children: &[(&Digest, usize, &str, &str)]) -> Bytes {
    let children: Vec<String> = children
        .iter()
        .map(|(digest, size, os, architecture)| {
            format!(
                r#"{{"mediaType":"{}","digest":"{digest}","size":{size},"platform":{{"os":"{os}","architecture":"{architecture}"}}}}"#,
                media_type::OCI_IMAGE_MANIFEST
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
        media_type::OCI_IMAGE_INDEX,
        children.join(",")
    ))
}

#[tokio::test]
async fn an_index_of_unpushed_children_is_accepted_and_served_when_none_are_required() {
    let repository = repository(
        Arc::new(InMemoryDriver::new()),
        with_validation(ManifestValidation {
            index_children: IndexChildren::NoneRequired,
            ..ManifestValidation::default()
        }),
    );
    let config = put_blob(&repository, b"{}").await;
    let (amd64, amd64_size) = push_platform_image(&repository, &config, 1).await;
    let arm64 = Digest::sha256(b"arm64 image, never pushed");
    let bytes = index(&[
        (&amd64, amd64_size, "linux", "amd64"),
        (&arm64, 400, "linux", "arm64"),
    ]);
    let digest = push(&repository, bytes.clone())
        .await
        .expect("sparse index");
    let stored = repository
        .manifest(&Reference::Tag("latest".parse().expect("tag")))
        .await
        .expect("served");
    assert_eq!(stored.digest, digest);
    assert_eq!(stored.bytes, bytes);
}

#[tokio::test]
async fn a_platform_list_requires_only_the_children_it_names() {
    let linux_amd64 = OsArchitecture {
        os: "linux".to_owned(),
        architecture: "amd64".to_owned(),
    };
    let repository = repository(
        Arc::new(InMemoryDriver::new()),
        with_validation(ManifestValidation {
            index_children: IndexChildren::PlatformsRequired(vec![linux_amd64]),
            ..ManifestValidation::default()
        }),
    );
    let config = put_blob(&repository, b"{}").await;
    let (amd64, amd64_size) = push_platform_image(&repository, &config, 1).await;
    let missing = Digest::sha256(b"never pushed");

    push(
        &repository,
        index(&[
            (&amd64, amd64_size, "linux", "amd64"),
            (&missing, 400, "linux", "arm64"),
            (&missing, 400, "windows", "amd64"),
        ]),
    )
    .await
    .expect("only linux/amd64 is required, and it is there");

    let error = push(
        &repository,
        index(&[
            (&missing, 400, "linux", "amd64"),
            (&amd64, amd64_size, "linux", "arm64"),
        ]),
    )
    .await
    .expect_err("linux/amd64 is missing");
    assert!(
        matches!(&error, ContentError::ManifestBlobUnknown { digest } if digest == &missing),
        "{error:?}"
    );
}
