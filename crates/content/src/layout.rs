//! Where everything lives in storage: registry:2's on-disk layout, so that an existing registry:2
//! data directory is served as it is and registry:2 can read what registryd writes.
//!
//! ```text
//! /docker/registry/v2/blobs/<alg>/<first two hex>/<hex>/data
//! /docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//! /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_uploads/<id>/{data,startedat}
//! ```
//!
//! registryd's additions live where registry:2 does not look:
//!
//! ```text
//! /docker/registry/v2/repositories/<name>/_uploads/<id>/hashstates/registryd-<alg>/<offset>
//! /docker/registry/v2/repositories/<name>/_uploads/<id>/registryd-lease
//! /docker/registry/v2/repositories/<name>/_registryd/lease
//! /docker/registry/v2/repositories/<name>/_referrers/<alg>/<subject hex>/<alg>/<hex>/descriptor
//! /docker/registry/v2/repositories/<name>/_registryd/sweeping
//! /docker/registry/v2/blobs/<alg>/<first two hex>/<hex>/registryd-gc
//! /docker/registry/v2/registryd/gc/lease
//! /docker/registry/v2/registryd/catalog/generation
//! ```
//!
//! Every path is built from validated model types, so nothing from a request can name a location
//! outside these trees.

use registry_model::{Digest, DigestAlgorithm, RepositoryName, Tag};
use registry_storage::{StorageError, StoragePath};

use crate::UploadId;

const ROOT: &str = "/docker/registry/v2";

fn path(relative: &str) -> Result<StoragePath, StorageError> {
    StoragePath::parse(&format!("{ROOT}/{relative}"))
}

/// `/docker/registry/v2/repositories`: the directory holding every repository.
pub(crate) fn repositories_root() -> Result<StoragePath, StorageError> {
    path("repositories")
}

/// The global, content-addressed data of a blob.
pub(crate) fn blob_data(digest: &Digest) -> Result<StoragePath, StorageError> {
    let hex = digest.hex();
    path(&format!(
        "blobs/{}/{}/{hex}/data",
        digest.algorithm(),
        &hex[..2]
    ))
}

fn repository(name: &RepositoryName, relative: &str) -> Result<StoragePath, StorageError> {
    path(&format!("repositories/{name}/{relative}"))
}

/// The directory of a repository's manifests; its existence makes a directory a repository.
pub(crate) fn manifests_dir(name: &RepositoryName) -> Result<StoragePath, StorageError> {
    repository(name, "_manifests")
}

/// The directory of a layer link: its presence grants the repository access to the blob.
pub(crate) fn layer_link_dir(
    name: &RepositoryName,
    digest: &Digest,
) -> Result<StoragePath, StorageError> {
    repository(
        name,
        &format!("_layers/{}/{}", digest.algorithm(), digest.hex()),
    )
}

/// The directory of a manifest revision link: the manifest exists in the repository.
pub(crate) fn revision_link_dir(
    name: &RepositoryName,
    digest: &Digest,
) -> Result<StoragePath, StorageError> {
    repository(
        name,
        &format!(
            "_manifests/revisions/{}/{}",
            digest.algorithm(),
            digest.hex()
        ),
    )
}

/// The file inside a link directory that holds the digest.
pub(crate) fn link(dir: &StoragePath) -> Result<StoragePath, StorageError> {
    dir.join("link")
}

/// The directory of all tags of a repository.
pub(crate) fn tags_dir(name: &RepositoryName) -> Result<StoragePath, StorageError> {
    repository(name, "_manifests/tags")
}

/// The directory of one tag.
pub(crate) fn tag_dir(name: &RepositoryName, tag: &Tag) -> Result<StoragePath, StorageError> {
    repository(name, &format!("_manifests/tags/{tag}"))
}

/// The link naming the manifest a tag points at now.
pub(crate) fn tag_current_link(
    name: &RepositoryName,
    tag: &Tag,
) -> Result<StoragePath, StorageError> {
    repository(name, &format!("_manifests/tags/{tag}/current/link"))
}

/// The link recording that a tag has pointed at a manifest (registry:2 keeps this history).
pub(crate) fn tag_index_link(
    name: &RepositoryName,
    tag: &Tag,
    digest: &Digest,
) -> Result<StoragePath, StorageError> {
    repository(
        name,
        &format!(
            "_manifests/tags/{tag}/index/{}/{}/link",
            digest.algorithm(),
            digest.hex()
        ),
    )
}

/// The directory of one upload session.
pub(crate) fn upload_dir(
    name: &RepositoryName,
    id: &UploadId,
) -> Result<StoragePath, StorageError> {
    repository(name, &format!("_uploads/{id}"))
}

/// The data an upload session has received so far.
pub(crate) fn upload_data(
    name: &RepositoryName,
    id: &UploadId,
) -> Result<StoragePath, StorageError> {
    repository(name, &format!("_uploads/{id}/data"))
}

/// When the upload session started (RFC 3339, as registry:2 writes it); its presence means the
/// session exists.
pub(crate) fn upload_started_at(
    name: &RepositoryName,
    id: &UploadId,
) -> Result<StoragePath, StorageError> {
    repository(name, &format!("_uploads/{id}/startedat"))
}

/// The name of an upload session's lease in the session's directory.
pub(crate) const UPLOAD_LEASE: &str = "registryd-lease";

/// The lease of an upload session: held by the one request using it (see `lease`).
pub(crate) fn upload_lease(
    name: &RepositoryName,
    id: &UploadId,
) -> Result<StoragePath, StorageError> {
    upload_dir(name, id)?.join(UPLOAD_LEASE)
}

/// The lease on the manifests and tags of a repository, held while they change.
pub(crate) fn repository_lease(name: &RepositoryName) -> Result<StoragePath, StorageError> {
    repository(name, "_registryd/lease")
}

/// Present while garbage collection removes layer links of the repository (see `gc`).
pub(crate) fn repository_sweep_marker(name: &RepositoryName) -> Result<StoragePath, StorageError> {
    repository(name, "_registryd/sweeping")
}

/// The marker garbage collection puts beside a blob's data before deleting it (see `gc`).
pub(crate) fn blob_gc_marker(digest: &Digest) -> Result<StoragePath, StorageError> {
    let hex = digest.hex();
    path(&format!(
        "blobs/{}/{}/{hex}/registryd-gc",
        digest.algorithm(),
        &hex[..2]
    ))
}

/// The lease held by the one garbage collection running over the store.
pub(crate) fn gc_lease() -> Result<StoragePath, StorageError> {
    path("registryd/gc/lease")
}

/// The object every process rewrites when the set of repositories may have changed, so that a
/// catalog kept in memory is known to be current while its version stays the same.
pub(crate) fn catalog_generation() -> Result<StoragePath, StorageError> {
    path("registryd/catalog/generation")
}

/// The saved state of the upload's running hash after `offset` bytes.
pub(crate) fn upload_hash_state(
    name: &RepositoryName,
    id: &UploadId,
    algorithm: DigestAlgorithm,
    offset: u64,
) -> Result<StoragePath, StorageError> {
    upload_hash_states(name, id, algorithm)?.join(&offset.to_string())
}

/// The directory of the saved states of the upload's running hash with `algorithm`, one file
/// per offset.
pub(crate) fn upload_hash_states(
    name: &RepositoryName,
    id: &UploadId,
    algorithm: DigestAlgorithm,
) -> Result<StoragePath, StorageError> {
    upload_hash_states_root(name, id)?.join(&format!("registryd-{algorithm}"))
}

/// The directory of every saved state of the upload's running hash.
pub(crate) fn upload_hash_states_root(
    name: &RepositoryName,
    id: &UploadId,
) -> Result<StoragePath, StorageError> {
    upload_dir(name, id)?.join("hashstates")
}

/// The directory of the referrers of `subject`.
pub(crate) fn referrers_dir(
    name: &RepositoryName,
    subject: &Digest,
) -> Result<StoragePath, StorageError> {
    repository(
        name,
        &format!("_referrers/{}/{}", subject.algorithm(), subject.hex()),
    )
}

/// The descriptor of `referrer` in the referrers of `subject`.
pub(crate) fn referrer_descriptor(
    name: &RepositoryName,
    subject: &Digest,
    referrer: &Digest,
) -> Result<StoragePath, StorageError> {
    repository(
        name,
        &format!(
            "_referrers/{}/{}/{}/{}/descriptor",
            subject.algorithm(),
            subject.hex(),
            referrer.algorithm(),
            referrer.hex()
        ),
    )
}

/// The algorithms blobs and links are stored under, for walking the directories that have one
/// folder per algorithm. Directories of other algorithms are not looked into: the registry never
/// reads them.
pub(crate) const ALGORITHMS: [DigestAlgorithm; 2] =
    [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512];

// The directories the scrub (`verify`) lists to find every blob and link, one per algorithm.

/// The directory of all blobs of `algorithm`; below it, one directory per first two hex characters.
pub(crate) fn blobs_dir(algorithm: DigestAlgorithm) -> Result<StoragePath, StorageError> {
    path(&format!("blobs/{algorithm}"))
}

/// The directory of a repository's layer links of `algorithm`.
pub(crate) fn layer_links_dir(
    name: &RepositoryName,
    algorithm: DigestAlgorithm,
) -> Result<StoragePath, StorageError> {
    repository(name, &format!("_layers/{algorithm}"))
}

/// The directory of a repository's manifest revision links of `algorithm`.
pub(crate) fn revision_links_dir(
    name: &RepositoryName,
    algorithm: DigestAlgorithm,
) -> Result<StoragePath, StorageError> {
    repository(name, &format!("_manifests/revisions/{algorithm}"))
}

/// The directory of a tag's history entries of `algorithm`.
pub(crate) fn tag_index_dir(
    name: &RepositoryName,
    tag: &Tag,
    algorithm: DigestAlgorithm,
) -> Result<StoragePath, StorageError> {
    repository(name, &format!("_manifests/tags/{tag}/index/{algorithm}"))
}

/// The directory of the referrer records of every subject of `algorithm`.
pub(crate) fn referrer_subjects_dir(
    name: &RepositoryName,
    algorithm: DigestAlgorithm,
) -> Result<StoragePath, StorageError> {
    repository(name, &format!("_referrers/{algorithm}"))
}

/// The directory of the records of `subject`'s referrers whose digests use `algorithm`.
pub(crate) fn referrer_entries_dir(
    name: &RepositoryName,
    subject: &Digest,
    algorithm: DigestAlgorithm,
) -> Result<StoragePath, StorageError> {
    referrers_dir(name, subject)?.join(algorithm.as_str())
}
