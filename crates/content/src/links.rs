//! Link files: a small object holding a digest, the way registry:2 points from a repository to
//! global content.

use bytes::Bytes;
use registry_model::Digest;
use registry_storage::{StorageDriver, StorageError, StoragePath};

use crate::ContentError;

/// The digest in the link at `path`, or `None` when there is no link.
pub(crate) async fn read_link(
    driver: &dyn StorageDriver,
    path: &StoragePath,
) -> Result<Option<Digest>, ContentError> {
    let content = match driver.get_content(path).await {
        Ok(content) => content,
        Err(StorageError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let text = std::str::from_utf8(&content).map_err(|_| corrupt(path, "link is not UTF-8"))?;
    text.trim()
        .parse()
        .map(Some)
        .map_err(|error: registry_model::DigestError| corrupt(path, &error.to_string()))
}

/// Writes a link at `path` naming `digest`.
pub(crate) async fn write_link(
    driver: &dyn StorageDriver,
    path: &StoragePath,
    digest: &Digest,
) -> Result<(), ContentError> {
    driver
        .put_content(path, Bytes::copy_from_slice(digest.as_str().as_bytes()))
        .await?;
    Ok(())
}

/// Whether `path` exists, as object or directory.
pub(crate) async fn exists(
    driver: &dyn StorageDriver,
    path: &StoragePath,
) -> Result<bool, ContentError> {
    match driver.stat(path).await {
        Ok(_) => Ok(true),
        Err(StorageError::NotFound { .. }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Deletes `path`, treating "already gone" as success.
pub(crate) async fn delete_if_exists(
    driver: &dyn StorageDriver,
    path: &StoragePath,
) -> Result<(), ContentError> {
    match driver.delete(path).await {
        Ok(()) | Err(StorageError::NotFound { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn corrupt(path: &StoragePath, reason: &str) -> ContentError {
    ContentError::Corrupt {
        path: path.to_string(),
        reason: reason.to_owned(),
    }
}
