//! What a manifest push checks before it stores anything: that its references are present,
//! checked a few at a time however many there are.

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use registry_content::{ContentError, ContentOptions, ContentStore, Repository};
use registry_model::{Digest, Reference, media_type};
use registry_storage::StorageDriver;
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
