//! What can go wrong in the content layer, in its own words.

use std::time::Duration;

use registry_model::{Digest, ManifestError, RepositoryName};
use registry_storage::StorageError;

use crate::UploadId;

/// A failure of a content operation. `registry-http` maps each variant to the OCI error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// The blob is not in the repository.
    #[error("blob {digest} is unknown to the repository")]
    BlobUnknown {
        /// The digest asked for.
        digest: Digest,
    },
    /// There is no upload session with this id in the repository.
    #[error("upload {id} is unknown")]
    UploadUnknown {
        /// The id asked for.
        id: String,
    },
    /// Garbage collection deleted the upload's data as it completed (possible only with no grace
    /// period): nothing was stored and the session is gone; the client must upload again.
    #[error("upload {id} was lost to a garbage collection as it completed: upload the blob again")]
    UploadLost {
        /// The session's id.
        id: String,
    },
    /// Another request is using the upload session (one request at a time may).
    #[error("upload {id} is in use by another request")]
    UploadInUse {
        /// The session's id.
        id: String,
        /// When the other request's hold on it ends at the latest, unless renewed.
        retry_after: Duration,
    },
    /// Another garbage collection is running over the store.
    #[error("another garbage collection is running over this store")]
    CollectionRunning,
    /// The store is in read-only mode: nothing may change it.
    #[error("the registry is in read-only mode (storage.maintenance.readonly.enabled)")]
    ReadOnly,
    /// Other requests kept the manifests and tags of the repository busy for longer than a
    /// request waits.
    #[error("repository {name} is busy with other changes")]
    RepositoryBusy {
        /// The repository.
        name: RepositoryName,
        /// When to try again.
        retry_after: Duration,
    },
    /// A lease this request held ran out before its work was done (storage stalled for longer
    /// than the lease's term); the work was stopped before it could collide with the next holder.
    #[error("the lease at {path} ran out before the work under it was done")]
    LeaseLost {
        /// The lease object.
        path: String,
    },
    /// A chunk did not start where the upload ends (chunks must arrive in order).
    #[error("chunk starts at byte {start} but the upload holds {size} bytes")]
    UploadOutOfOrder {
        /// Where the chunk claimed to start.
        start: u64,
        /// How many bytes the upload holds.
        size: u64,
    },
    /// The uploaded content does not hash to the digest the client named.
    #[error("uploaded content has digest {actual}, not {expected}")]
    DigestMismatch {
        /// The digest the client named.
        expected: Digest,
        /// The digest of what was received.
        actual: Digest,
    },
    /// The manifest is not valid.
    #[error("invalid manifest: {0}")]
    ManifestInvalid(#[from] ManifestError),
    /// The manifest is larger than the registry accepts.
    #[error("manifest of {size} bytes exceeds the limit of {limit} bytes")]
    ManifestTooLarge {
        /// The manifest's size.
        size: usize,
        /// The largest accepted size.
        limit: usize,
    },
    /// The manifest references a blob or child manifest the repository does not have.
    #[error("manifest references {digest}, which is not in the repository")]
    ManifestBlobUnknown {
        /// The missing blob or manifest.
        digest: Digest,
    },
    /// No manifest by that tag or digest in the repository.
    #[error("manifest {reference} is unknown to the repository")]
    ManifestUnknown {
        /// The tag or digest asked for.
        reference: String,
    },
    /// The repository does not exist.
    #[error("repository {name} is unknown")]
    NameUnknown {
        /// The repository asked for.
        name: RepositoryName,
    },
    /// Deleting is disabled (`storage.delete.enabled` is false).
    #[error("deletes are disabled on this registry")]
    DeleteDisabled,
    /// The request body failed while it was being received (the client went away).
    #[error("the content stream failed: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Something in storage is not what the registry wrote (an unreadable link, say).
    #[error("corrupt registry data at {path}: {reason}")]
    Corrupt {
        /// Where the bad data is.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository is read through from another registry (a pull-through cache): it takes no
    /// pushes or deletes.
    #[error(
        "repository {name} is a pull-through cache of {upstream}: it takes no pushes or deletes"
    )]
    ReadThrough {
        /// The repository.
        name: RepositoryName,
        /// The registry it is read from.
        upstream: String,
    },
    /// The registry content is read from asked this one to slow down (429).
    #[error("the upstream registry {upstream} asks to slow down")]
    UpstreamBusy {
        /// The upstream registry.
        upstream: String,
        /// When it said to try again, when it said so.
        retry_after: Option<Duration>,
    },
    /// The registry content is read from could not be reached or failed, and nothing cached
    /// stands in for the answer.
    #[error("the upstream registry {upstream} failed: {reason}")]
    UpstreamFailed {
        /// The upstream registry.
        upstream: String,
        /// What went wrong.
        reason: String,
    },
    /// The storage driver failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ContentError {
    pub(crate) fn upload_unknown(id: &UploadId) -> ContentError {
        ContentError::UploadUnknown { id: id.to_string() }
    }
}
