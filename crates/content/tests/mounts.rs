//! Mounts without `from`: the blob comes from a repository the caller may read, found among a
//! bounded number of them.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use registry_content::{ContentOptions, ContentStore, MOUNT_SEARCH_LIMIT, Repository};
use registry_model::{Digest, Reference, RepositoryName, media_type};
use registry_storage::InMemoryDriver;

fn name(text: &str) -> RepositoryName {
    text.parse().expect("valid repository name")
}

async fn put_blob(repository: &Repository, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256(bytes);
    let body = stream::iter([Ok::<_, Infallible>(Bytes::copy_from_slice(bytes))]);
    repository.put_blob(&digest, body).await.expect("blob");
    digest
}

/// Makes `repository` one the catalog lists: an image of `layer` (and an empty config) in it.
async fn push_image(repository: &Repository, layer: &[u8]) {
    let config = put_blob(repository, media_type::EMPTY_JSON).await;
    let layer_digest = put_blob(repository, layer).await;
    let manifest = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":2}},"layers":[{{"mediaType":"{}","digest":"{layer_digest}","size":{}}}]}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        media_type::OCI_IMAGE_CONFIG,
        media_type::OCI_LAYER_TAR,
        layer.len(),
    ));
    repository
        .put_manifest(
            &Reference::Tag("v1".parse().expect("tag")),
            None,
            manifest,
            &[],
        )
        .await
        .expect("manifest");
}

#[tokio::test]
async fn the_blob_is_mounted_only_from_a_readable_repository() {
    let content = ContentStore::new(Arc::new(InMemoryDriver::new()), ContentOptions::default());
    let layer = b"shared layer".as_slice();
    push_image(&content.repository(name("private/app")), layer).await;
    let target = content.repository(name("team/app"));
    let digest = Digest::sha256(layer);

    let mounted = target
        .mount_blob_from_any(&digest, |name| name.as_str() != "private/app")
        .await
        .expect("search");
    assert!(
        mounted.is_none(),
        "mounted from a repository it may not read"
    );
    assert!(target.blob(&digest).await.is_err());

    let mounted = target
        .mount_blob_from_any(&digest, |_| true)
        .await
        .expect("search")
        .expect("mounted");
    assert_eq!(mounted.digest(), &digest);
    assert_eq!(target.blob(&digest).await.expect("linked").size(), 12);
}

#[tokio::test]
async fn the_search_looks_in_a_bounded_number_of_readable_repositories() {
    let content = ContentStore::new(Arc::new(InMemoryDriver::new()), ContentOptions::default());
    for n in 0..MOUNT_SEARCH_LIMIT {
        push_image(&content.repository(name(&format!("r{n:05}"))), b"common").await;
    }
    let layer = b"only in the last repository".as_slice();
    let last = format!("r{MOUNT_SEARCH_LIMIT:05}");
    push_image(&content.repository(name(&last)), layer).await;
    let digest = Digest::sha256(layer);
    let target = content.repository(name("target"));

    let everywhere = target
        .mount_blob_from_any(&digest, |_| true)
        .await
        .expect("search");
    assert!(
        everywhere.is_none(),
        "the repository after the first {MOUNT_SEARCH_LIMIT} was looked in"
    );
    let only_the_last = target
        .mount_blob_from_any(&digest, |name| name.as_str() == last)
        .await
        .expect("search");
    assert!(
        only_the_last.is_some(),
        "the limit counts only readable repositories"
    );
}
