//! Blobs: global content-addressed data, visible in a repository through its links.

use std::sync::Arc;

use registry_model::{Digest, RepositoryName};
use registry_storage::{ByteStream, StorageDriver, StorageError, StoragePath};

use crate::links::{delete_if_exists, read_link, write_link};
use crate::{ContentError, Repository, layout};

/// A blob the repository may read: its digest and size, and a way to stream it.
///
/// Obtained from [`Repository::blob`], which checks the repository links to it, so holding one
/// means access was granted.
#[derive(Clone, Debug)]
pub struct Blob {
    driver: Arc<dyn StorageDriver>,
    digest: Digest,
    size: u64,
    path: StoragePath,
}

impl Blob {
    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Streams the blob from `offset`, at most `length` bytes when given. The caller checks the
    /// range against [`Blob::size`]; an offset past the end is a storage `InvalidOffset` error.
    /// A blob deleted since it was looked up (garbage collection, say) is
    /// [`ContentError::BlobUnknown`].
    pub async fn open(&self, offset: u64, length: Option<u64>) -> Result<ByteStream, ContentError> {
        match self.driver.reader(&self.path, offset, length).await {
            Ok(stream) => Ok(stream),
            Err(StorageError::NotFound { .. }) => Err(ContentError::BlobUnknown {
                digest: self.digest.clone(),
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// A URL the client may fetch the blob from directly, when the driver offers one.
    pub async fn redirect_url(&self) -> Result<Option<String>, ContentError> {
        Ok(self.driver.redirect_url(&self.path).await?)
    }
}

impl Repository {
    /// The blob `digest`, if this repository has it: uploaded or mounted into it (a layer link),
    /// or a manifest stored in it (a revision link), as registry:2 answers blob requests.
    pub async fn blob(&self, digest: &Digest) -> Result<Blob, ContentError> {
        let linked = self
            .has_link(&layout::layer_link_dir(&self.name, digest)?, digest)
            .await?
            || self
                .has_link(&layout::revision_link_dir(&self.name, digest)?, digest)
                .await?;
        if !linked {
            return Err(ContentError::BlobUnknown {
                digest: digest.clone(),
            });
        }
        self.stored_blob(digest)
            .await?
            .ok_or_else(|| ContentError::BlobUnknown {
                digest: digest.clone(),
            })
    }

    /// Makes the blob `digest` of repository `from` available in this repository without copying
    /// it (a cross-repository mount). `None` when `from` does not have the blob, in which case the
    /// client has to upload it.
    pub async fn mount_blob(
        &self,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Blob>, ContentError> {
        let source = self.store.repository(from.clone());
        match source.blob(digest).await {
            Ok(blob) => {
                self.link_blob(digest).await?;
                Ok(Some(blob))
            }
            Err(ContentError::BlobUnknown { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Removes the blob from this repository (its layer link). The data stays in the global store
    /// for other repositories until garbage collection.
    pub async fn delete_blob(&self, digest: &Digest) -> Result<(), ContentError> {
        self.ensure_delete_enabled()?;
        let dir = layout::layer_link_dir(&self.name, digest)?;
        if !self.has_link(&dir, digest).await? {
            return Err(ContentError::BlobUnknown {
                digest: digest.clone(),
            });
        }
        delete_if_exists(self.driver(), &dir).await
    }

    /// The blob in the global store, whichever repository it belongs to.
    pub(crate) async fn stored_blob(&self, digest: &Digest) -> Result<Option<Blob>, ContentError> {
        let path = layout::blob_data(digest)?;
        match self.driver().stat(&path).await {
            Ok(info) if !info.is_dir => Ok(Some(Blob {
                driver: self.store.driver.clone(),
                digest: digest.clone(),
                size: info.size,
                path,
            })),
            Ok(_) | Err(StorageError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Gives this repository access to the stored blob `digest`.
    pub(crate) async fn link_blob(&self, digest: &Digest) -> Result<(), ContentError> {
        let dir = layout::layer_link_dir(&self.name, digest)?;
        write_link(self.driver(), &layout::link(&dir)?, digest).await
    }

    /// Whether the link directory `dir` holds a link naming `digest`.
    pub(crate) async fn has_link(
        &self,
        dir: &StoragePath,
        digest: &Digest,
    ) -> Result<bool, ContentError> {
        Ok(read_link(self.driver(), &layout::link(dir)?)
            .await?
            .as_ref()
            == Some(digest))
    }
}
