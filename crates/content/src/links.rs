//! Link files: a small object holding a digest, the way registry:2 points from a repository to
//! global content.

use std::time::SystemTime;

use bytes::Bytes;
use registry_model::{Digest, DigestAlgorithm};
use registry_storage::{StorageDriver, StorageError, StoragePath};

use crate::{ContentError, layout};

/// A link of a repository: what it names and when it was last written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Linked {
    pub(crate) digest: Digest,
    pub(crate) written: Option<SystemTime>,
}

/// The links in the directories `dir` gives for each algorithm (a repository's layer or
/// revision links), with when each was written.
pub(crate) async fn digest_links(
    driver: &dyn StorageDriver,
    dir: impl Fn(DigestAlgorithm) -> Result<StoragePath, StorageError>,
) -> Result<Vec<Linked>, ContentError> {
    let mut links = Vec::new();
    for algorithm in layout::ALGORITHMS {
        let entries = match driver.list(&dir(algorithm)?).await {
            Ok(entries) => entries,
            Err(StorageError::NotFound { .. }) => continue,
            Err(error) => return Err(error.into()),
        };
        for entry in entries {
            let Some(digest) = entry
                .file_name()
                .and_then(|hex| Digest::new(algorithm, hex).ok())
            else {
                continue;
            };
            let written = match driver.stat(&layout::link(&entry)?).await {
                Ok(info) => info.modified,
                // A link directory without its link file links nothing.
                Err(StorageError::NotFound { .. }) => continue,
                Err(error) => return Err(error.into()),
            };
            links.push(Linked { digest, written });
        }
    }
    Ok(links)
}

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
