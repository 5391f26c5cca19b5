//! Blobs: global content-addressed data, visible in a repository through its links.

use std::fmt;
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use registry_model::{Digest, RepositoryName};
use registry_storage::{ByteStream, StorageDriver, StorageError, StoragePath};

use crate::links::{delete_if_exists, exists, read_link, write_link};
use crate::manifests::LOOKUPS_IN_FLIGHT;
use crate::{ContentError, ContentStore, Repository, cache, layout};

/// The most repositories a mount without `from` looks in for the blob
/// ([`Repository::mount_blob_from_any`]). Past them the client uploads the blob, which is always
/// correct; the limit keeps one request's work bounded however many repositories there are.
pub const MOUNT_SEARCH_LIMIT: usize = 1_000;

/// A blob the repository may read: its digest and size, and a way to stream it.
///
/// Obtained from [`Repository::blob`], which checks the repository links to it, so holding one
/// means access was granted; or from a [`ContentSource`](crate::ContentSource) that reads it from
/// elsewhere ([`Blob::read_elsewhere`]).
#[derive(Clone, Debug)]
pub struct Blob {
    digest: Digest,
    size: u64,
    reader: Reader,
}

/// Where a [`Blob`]'s bytes come from.
#[derive(Clone, Debug)]
enum Reader {
    /// The blob's data in the driver.
    Stored {
        driver: Arc<dyn StorageDriver>,
        path: StoragePath,
    },
    /// Somewhere else: an upstream registry a pull-through cache reads it from, say.
    Elsewhere(Arc<dyn BlobReader>),
}

/// Streams a blob that is not (or not yet) in this store's driver, for [`Blob::read_elsewhere`].
#[async_trait::async_trait]
pub trait BlobReader: Send + Sync + fmt::Debug {
    /// Streams the blob from `offset`, at most `length` bytes when given; the caller has checked
    /// the range against the blob's size. The stream ends with an error, never early, when the
    /// bytes cannot all be delivered or turn out not to match the digest.
    async fn open(&self, offset: u64, length: Option<u64>) -> Result<ByteStream, ContentError>;
}

impl Blob {
    /// A blob of `size` bytes named `digest` whose bytes `reader` streams.
    pub fn read_elsewhere(digest: Digest, size: u64, reader: Arc<dyn BlobReader>) -> Blob {
        Blob {
            digest,
            size,
            reader: Reader::Elsewhere(reader),
        }
    }

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
        let (driver, path) = match &self.reader {
            Reader::Stored { driver, path } => (driver, path),
            Reader::Elsewhere(reader) => return reader.open(offset, length).await,
        };
        match driver.reader(path, offset, length).await {
            Ok(stream) => Ok(stream),
            Err(StorageError::NotFound { .. }) => Err(ContentError::BlobUnknown {
                digest: self.digest.clone(),
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// A URL the client may fetch the blob from directly, when the driver offers one.
    pub async fn redirect_url(&self) -> Result<Option<String>, ContentError> {
        match &self.reader {
            Reader::Stored { driver, path } => Ok(driver.redirect_url(path).await?),
            Reader::Elsewhere(_) => Ok(None),
        }
    }
}

impl ContentStore {
    /// The size of the blob `digest`'s data, `None` when it is not stored.
    pub async fn stored_size(&self, digest: &Digest) -> Result<Option<u64>, ContentError> {
        match self.driver.stat(&layout::blob_data(digest)?).await {
            Ok(info) if !info.is_dir => Ok(Some(info.size)),
            Ok(_) | Err(StorageError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

impl Repository {
    /// The blob `digest`, if this repository has it: uploaded or mounted into it (a layer link),
    /// or a manifest stored in it (a revision link), as registry:2 answers blob requests.
    ///
    /// The link is read on every call; the data's size comes from memory once known, so an answer
    /// costs one storage request (a linked blob's data stays until no repository links it).
    pub async fn blob(&self, digest: &Digest) -> Result<Blob, ContentError> {
        if !self.links_blob(digest).await? {
            return Err(ContentError::BlobUnknown {
                digest: digest.clone(),
            });
        }
        let path = layout::blob_data(digest)?;
        if let Some(size) = self.store.blob_sizes.get(digest) {
            return Ok(Blob {
                digest: digest.clone(),
                size,
                reader: Reader::Stored {
                    driver: self.store.driver.clone(),
                    path,
                },
            });
        }
        let blob = self
            .stored_blob(digest)
            .await?
            .ok_or_else(|| ContentError::BlobUnknown {
                digest: digest.clone(),
            })?;
        self.store
            .blob_sizes
            .insert(digest.clone(), blob.size, cache::BLOB_SIZE_ENTRY);
        Ok(blob)
    }

    /// The blob `digest` of `size` bytes that this request has just stored and linked into the
    /// repository: answered without reading back the link or the data's size.
    pub(crate) fn just_stored(&self, digest: &Digest, size: u64) -> Result<Blob, ContentError> {
        self.store
            .blob_sizes
            .insert(digest.clone(), size, cache::BLOB_SIZE_ENTRY);
        Ok(Blob {
            digest: digest.clone(),
            size,
            reader: Reader::Stored {
                driver: self.store.driver.clone(),
                path: layout::blob_data(digest)?,
            },
        })
    }

    /// Links the blob `digest` into this repository if its data is stored (by any repository),
    /// without copying it: for a pull-through cache whose upstream confirmed that this
    /// repository has the blob. `None` when the data is not stored.
    pub async fn link_stored_blob(&self, digest: &Digest) -> Result<Option<Blob>, ContentError> {
        match self.stored_blob(digest).await? {
            Some(blob) if self.link_blob_or_unlink(digest).await? => Ok(Some(blob)),
            _ => Ok(None),
        }
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
            Ok(blob) if self.link_blob_or_unlink(digest).await? => Ok(Some(blob)),
            Ok(_) => Ok(None),
            Err(ContentError::BlobUnknown { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Makes the blob `digest` available in this repository from whichever repository of the
    /// registry holds it, among those for which `readable` holds: a mount without `from`, which
    /// the distribution spec allows ("The registry MAY treat the `from` parameter as optional,
    /// and it MAY cross-mount the blob if it can be found"). `None` when no such repository has
    /// it, in which case the client has to upload it; `readable` is how a blob never reaches a
    /// caller through a repository it may not read.
    ///
    /// This repository is looked at first, then the repositories of the catalog (those holding
    /// manifests) in name order, a few at a time: at most [`MOUNT_SEARCH_LIMIT`] readable ones,
    /// and none at all when the blob is not stored.
    pub async fn mount_blob_from_any(
        &self,
        digest: &Digest,
        readable: impl Fn(&RepositoryName) -> bool,
    ) -> Result<Option<Blob>, ContentError> {
        let Some(stored) = self.stored_blob(digest).await? else {
            return Ok(None);
        };
        if readable(&self.name) && self.links_blob(digest).await? {
            return Ok(Some(stored));
        }
        let names = self.store.catalog_index.repositories(self.driver()).await?;
        let sources: Vec<Repository> = names
            .iter()
            .filter(|name| **name != self.name && readable(name))
            .take(MOUNT_SEARCH_LIMIT)
            .map(|name| self.store.repository(name.clone()))
            .collect();
        // Each look owns what it needs: a stream borrowing across awaits would make the HTTP
        // service's future unprovably `Send`.
        let looks = sources.into_iter().map(|source| {
            let digest = digest.clone();
            async move { source.links_blob(&digest).await }
        });
        let mut looks = stream::iter(looks).buffer_unordered(LOOKUPS_IN_FLIGHT);
        while let Some(found) = looks.next().await {
            if found? {
                let linked = self.link_blob_or_unlink(digest).await?;
                return Ok(linked.then_some(stored));
            }
        }
        Ok(None)
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
                digest: digest.clone(),
                size: info.size,
                reader: Reader::Stored {
                    driver: self.store.driver.clone(),
                    path,
                },
            })),
            Ok(_) | Err(StorageError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether this repository links to the blob `digest`: uploaded or mounted into it (a layer
    /// link), or a manifest stored in it (a revision link).
    async fn links_blob(&self, digest: &Digest) -> Result<bool, ContentError> {
        Ok(self
            .has_link(&layout::layer_link_dir(&self.name, digest)?, digest)
            .await?
            || self
                .has_link(&layout::revision_link_dir(&self.name, digest)?, digest)
                .await?)
    }

    /// Gives this repository access to the stored blob `digest` (a layer link, written again if
    /// it exists, which makes it new for garbage collection's grace period), and makes sure a
    /// garbage collection running meanwhile keeps both the link and the blob's data.
    ///
    /// `false` when the data is gone: a collection deleted it because no repository linked it
    /// when it looked. The link is then there but dangling; the caller stores the data again or
    /// takes the link back ([`Repository::link_blob_or_unlink`]).
    pub(crate) async fn link_blob(&self, digest: &Digest) -> Result<bool, ContentError> {
        let link = layout::link(&layout::layer_link_dir(&self.name, digest)?)?;
        loop {
            write_link(self.driver(), &link, digest).await?;
            // A sweep of the repository's layer links may have listed the link before it was
            // written again; once the sweep is over, the link is either still there or written
            // again.
            self.store.wait_for_sweep(&self.name).await?;
            if exists(self.driver(), &link).await? {
                break;
            }
        }
        self.store.claim_blob(digest).await
    }

    /// [`Repository::link_blob`], taking the link back when the blob's data is gone.
    pub(crate) async fn link_blob_or_unlink(&self, digest: &Digest) -> Result<bool, ContentError> {
        if self.link_blob(digest).await? {
            return Ok(true);
        }
        delete_if_exists(self.driver(), &layout::layer_link_dir(&self.name, digest)?).await?;
        Ok(false)
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
