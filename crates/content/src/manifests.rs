//! Manifests and tags: stored byte for byte as blobs, linked into the repository by revision, and
//! named by tags.

use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{TryStreamExt, stream};
use registry_model::{
    Descriptor, Digest, DigestAlgorithm, Manifest, ManifestError, Reference, ReferenceRole, Tag,
    media_type, parse_manifest,
};
use registry_storage::StorageError;

use crate::catalog_index::catalog_changed;
use crate::lease::{Busy, Kind, Lease};
use crate::links::{delete_if_exists, digest_links, exists, read_link, write_link};
use crate::{ContentError, Repository, layout};

/// How many storage lookups one request runs at once when it has many to make: the references
/// of a pushed manifest, the records of a page of referrers, the repositories a mount without
/// `from` looks in. Enough to hide the latency of a remote store; few enough that one index of
/// 10,000 children cannot take tokio's blocking pool (the filesystem driver's stats run there)
/// from every other request.
pub(crate) const LOOKUPS_IN_FLIGHT: usize = 16;

/// A manifest as stored: the exact bytes the client pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredManifest {
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The manifest's media type, to answer with as `Content-Type`.
    pub media_type: String,
    /// The manifest, byte for byte as pushed.
    pub bytes: Bytes,
}

/// Where a manifest being stored came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// A client pushed it: everything it references must be here.
    Pushed,
    /// A pull-through cache fetched it from another registry.
    Fetched,
}

/// What [`Repository::put_manifest`] stored.
#[derive(Clone, Debug, PartialEq)]
pub struct PushedManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest as parsed.
    pub manifest: Manifest,
    /// The tags now pointing at it.
    pub tags: Vec<Tag>,
}

impl Repository {
    /// Validates and stores a manifest under `reference`, and tags it with `extra_tags` too.
    ///
    /// `content_type` is the client's `Content-Type`; it must agree with the manifest's own
    /// `mediaType`. Every URL a descriptor carries must be allowed by the options'
    /// [`UrlPolicy`](crate::UrlPolicy). Every blob and child manifest the manifest references
    /// must already be in this repository, except layers that are non-distributable or carry
    /// `urls` (their content lives elsewhere), children of an index that the options'
    /// [`IndexChildren`](crate::IndexChildren) do not require, and the `subject`, which may be
    /// pushed after its referrers. They are checked a few at a time, however many there are, and
    /// the first missing one ends the push. When `reference` is a digest, the bytes must hash to
    /// it (with its algorithm; sha256 otherwise).
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        extra_tags: &[Tag],
    ) -> Result<PushedManifest, ContentError> {
        self.store_manifest(reference, content_type, bytes, extra_tags, Origin::Pushed)
            .await
    }

    /// Stores a manifest fetched from another registry by a pull-through cache under
    /// `reference`: validated and stored as [`put_manifest`](Self::put_manifest) does, except
    /// that what it references need not be here (the cache fetches blobs as they are asked for)
    /// and the URL policy does not apply (the upstream registry accepted it).
    pub async fn cache_manifest(
        &self,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<PushedManifest, ContentError> {
        self.store_manifest(reference, content_type, bytes, &[], Origin::Fetched)
            .await
    }

    async fn store_manifest(
        &self,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        extra_tags: &[Tag],
        origin: Origin,
    ) -> Result<PushedManifest, ContentError> {
        let limit = self.store.options.manifest_size_limit;
        if bytes.len() > limit {
            return Err(ContentError::ManifestTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let manifest = parse_manifest(&bytes, content_type)?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::compute(expected.algorithm(), &bytes);
                if &actual != expected {
                    return Err(ContentError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::compute(DigestAlgorithm::Sha256, &bytes),
        };
        if origin == Origin::Pushed {
            self.ensure_urls_allowed(&manifest)?;
        }

        let blob_path = layout::blob_data(&digest)?;
        let stored_before = exists(self.driver(), &blob_path).await?;
        if !stored_before {
            self.driver().put_content(&blob_path, bytes.clone()).await?;
        }
        let cached = (manifest.media_type.to_owned(), bytes.clone());
        self.store
            .manifests
            .insert(digest.clone(), cached, bytes.len());

        let mut tags: Vec<Tag> = Vec::with_capacity(extra_tags.len() + 1);
        if let Reference::Tag(tag) = reference {
            tags.push(tag.clone());
        }
        for tag in extra_tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        let lease = self.lease_tags().await?;
        // Checked under the lease: garbage collection removes unused layer links and manifests
        // under it too, so what is found here stays until the manifest is linked.
        let linked = async {
            if origin == Origin::Pushed {
                stream::iter(manifest.references().map(Ok::<_, ContentError>))
                    .try_for_each_concurrent(LOOKUPS_IN_FLIGHT, |(role, descriptor)| {
                        self.ensure_referenced(role, descriptor)
                    })
                    .await?;
            }
            self.link_manifest(&digest, &manifest, bytes.len() as u64, &tags, &lease)
                .await
        }
        .await;
        lease.release().await?;
        if linked? {
            catalog_changed(self.driver()).await?;
        }
        // Stored before (pushed earlier, perhaps deleted since), its bytes may be collected
        // meanwhile: stored again then.
        if stored_before && !self.store.claim_blob(&digest).await? {
            self.driver().put_content(&blob_path, bytes).await?;
        }
        Ok(PushedManifest {
            digest,
            manifest,
            tags,
        })
    }

    /// Makes the stored manifest `digest` visible in the repository and points `tags` at it,
    /// under the repository's lease: the revision link, the manifest's entry among the referrers
    /// of its subject, then the tags.
    ///
    /// When a step fails before any tag was moved, a revision link and referrer entry this push
    /// made are removed again: the push leaves nothing behind. Once a tag names the manifest, the
    /// revision stays, so that no tag ever names a manifest the repository does not hold.
    ///
    /// `true` when this made the repository: it held no manifest before.
    async fn link_manifest(
        &self,
        digest: &Digest,
        manifest: &Manifest,
        size: u64,
        tags: &[Tag],
        lease: &Lease,
    ) -> Result<bool, ContentError> {
        let revision = layout::revision_link_dir(&self.name, digest)?;
        let existed = self.has_link(&revision, digest).await?;
        let new_repository = !existed && !self.holds_manifests().await?;
        lease.ensure_held()?;
        write_link(self.driver(), &layout::link(&revision)?, digest).await?;
        let referred = async {
            if let Some(subject) = &manifest.subject {
                lease.ensure_held()?;
                self.add_referrer(&subject.digest, digest, manifest, size)
                    .await?;
            }
            Ok::<_, ContentError>(())
        };
        if let Err(error) = referred.await {
            if !existed {
                self.unlink_new_manifest(digest, manifest).await;
            }
            return Err(error);
        }
        for (done, tag) in tags.iter().enumerate() {
            let tagged = match lease.ensure_held() {
                Ok(()) => self.tag(tag, digest).await,
                Err(lost) => Err(lost),
            };
            if let Err(error) = tagged {
                if done == 0 && !existed {
                    self.unlink_new_manifest(digest, manifest).await;
                }
                return Err(error);
            }
        }
        Ok(new_repository)
    }

    /// Whether the repository holds any manifest (has a `_manifests` folder), read under its
    /// lease by a push: one listing.
    async fn holds_manifests(&self) -> Result<bool, ContentError> {
        match self
            .driver()
            .list(&layout::manifests_dir(&self.name)?)
            .await
        {
            Ok(entries) => Ok(!entries.is_empty()),
            Err(StorageError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Best effort: removes the revision link and referrer entry of a manifest whose push failed
    /// before any tag named it. The push reports its own error; if this fails too, the manifest
    /// stays reachable by digest, as if pushed without a tag.
    async fn unlink_new_manifest(&self, digest: &Digest, manifest: &Manifest) {
        if let Some(subject) = &manifest.subject
            && let Ok(entry) = layout::referrer_descriptor(&self.name, &subject.digest, digest)
        {
            let _ = delete_if_exists(self.driver(), &entry).await;
        }
        if let Ok(revision) = layout::revision_link_dir(&self.name, digest) {
            let _ = delete_if_exists(self.driver(), &revision).await;
        }
    }

    /// Takes the lease on the repository's manifests and tags, waiting while other requests (in
    /// any process) change them. Every change of which manifests a repository holds and which
    /// manifest a tag names happens under it, so a delete and a push never interleave: a tag is
    /// never left naming a manifest deleted meanwhile, and a delete never removes a tag that a
    /// push moved meanwhile.
    pub(crate) async fn lease_tags(&self) -> Result<Lease, ContentError> {
        let term = self.store.options.lease_term;
        // Long enough for a lease left by a crashed process to expire.
        let patience = term + term / 2;
        let path = layout::repository_lease(&self.name)?;
        match Lease::acquire(&self.store.driver, &path, term, Kind::Kept, patience).await? {
            Ok(lease) => Ok(lease),
            Err(Busy { retry_after }) => Err(ContentError::RepositoryBusy {
                name: self.name.clone(),
                retry_after,
            }),
        }
    }

    /// The manifest named by `reference`.
    pub async fn manifest(&self, reference: &Reference) -> Result<StoredManifest, ContentError> {
        let digest = self.resolve(reference).await?;
        if let Some((media_type, bytes)) = self.store.manifests.get(&digest) {
            return Ok(StoredManifest {
                digest,
                media_type,
                bytes,
            });
        }
        let bytes = match self
            .driver()
            .get_content(&layout::blob_data(&digest)?)
            .await
        {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => return Err(manifest_unknown(reference)),
            Err(error) => return Err(error.into()),
        };
        let media_type = stored_media_type(&bytes);
        let cached = (media_type.clone(), bytes.clone());
        self.store
            .manifests
            .insert(digest.clone(), cached, bytes.len());
        Ok(StoredManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// The digest of the manifest `reference` names in this repository.
    pub async fn resolve(&self, reference: &Reference) -> Result<Digest, ContentError> {
        let digest = match reference {
            Reference::Digest(digest) => digest.clone(),
            Reference::Tag(tag) => {
                read_link(self.driver(), &layout::tag_current_link(&self.name, tag)?)
                    .await?
                    .ok_or_else(|| manifest_unknown(reference))?
            }
        };
        let revision = layout::revision_link_dir(&self.name, &digest)?;
        if self.has_link(&revision, &digest).await? {
            Ok(digest)
        } else {
            Err(manifest_unknown(reference))
        }
    }

    /// Deletes a tag, or a manifest by digest together with every tag pointing at it and its
    /// entry in the referrers of its subject. The manifest's bytes stay in the global store until
    /// garbage collection.
    pub async fn delete_manifest(&self, reference: &Reference) -> Result<(), ContentError> {
        self.ensure_delete_enabled()?;
        let lease = self.lease_tags().await?;
        let deleted = self.delete_manifest_leased(reference, &lease).await;
        lease.release().await?;
        deleted?;
        self.removed_from_catalog().await
    }

    /// Removes the manifest `digest` with every tag naming it, as a delete by digest does, but
    /// whether or not deletes are enabled: for a pull-through cache making room. Its blobs stay
    /// until garbage collection finds no manifest using them.
    pub async fn evict_manifest(&self, digest: &Digest) -> Result<(), ContentError> {
        let lease = self.lease_tags().await?;
        let reference = Reference::Digest(digest.clone());
        let deleted = self.delete_manifest_leased(&reference, &lease).await;
        lease.release().await?;
        deleted?;
        self.removed_from_catalog().await
    }

    /// Tells the catalogs of every process that this repository may be gone.
    async fn removed_from_catalog(&self) -> Result<(), ContentError> {
        Ok(catalog_changed(self.driver()).await?)
    }

    /// The manifests this repository holds (its revision links), with when each was linked.
    pub async fn manifest_links(&self) -> Result<Vec<(Digest, Option<SystemTime>)>, ContentError> {
        let name = &self.name;
        let links = digest_links(self.driver(), |algorithm| {
            layout::revision_links_dir(name, algorithm)
        })
        .await?;
        Ok(links
            .into_iter()
            .map(|link| (link.digest, link.written))
            .collect())
    }

    async fn delete_manifest_leased(
        &self,
        reference: &Reference,
        lease: &Lease,
    ) -> Result<(), ContentError> {
        match reference {
            Reference::Tag(tag) => self.delete_tag_leased(tag, lease).await,
            Reference::Digest(digest) => {
                let stored = self.manifest(reference).await?;
                if let Ok(manifest) = parse_manifest(&stored.bytes, None)
                    && let Some(subject) = &manifest.subject
                {
                    let entry = layout::referrer_descriptor(&self.name, &subject.digest, digest)?;
                    lease.ensure_held()?;
                    delete_if_exists(self.driver(), &entry).await?;
                }
                // Tags first: a crash halfway leaves the manifest with fewer tags, never a tag
                // naming a manifest that is gone.
                self.untag_everywhere(digest, lease).await?;
                let revision = layout::revision_link_dir(&self.name, digest)?;
                lease.ensure_held()?;
                delete_if_exists(self.driver(), &revision).await
            }
        }
    }

    /// Deletes `tag`, under the repository's lease.
    pub(crate) async fn delete_tag_leased(
        &self,
        tag: &Tag,
        lease: &Lease,
    ) -> Result<(), ContentError> {
        let dir = layout::tag_dir(&self.name, tag)?;
        lease.ensure_held()?;
        match self.driver().delete(&dir).await {
            Ok(()) => Ok(()),
            Err(StorageError::NotFound { .. }) => {
                Err(manifest_unknown(&Reference::Tag(tag.clone())))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Points `tag` at the manifest `digest`: first the link that makes the tag (listings show a
    /// tag once its directory exists), then the entry in the tag's history that registry:2 keeps.
    /// A failure in between leaves a working tag short of a history entry, never a listed tag
    /// that does not resolve.
    async fn tag(&self, tag: &Tag, digest: &Digest) -> Result<(), ContentError> {
        write_link(
            self.driver(),
            &layout::tag_current_link(&self.name, tag)?,
            digest,
        )
        .await?;
        write_link(
            self.driver(),
            &layout::tag_index_link(&self.name, tag, digest)?,
            digest,
        )
        .await
    }

    /// Removes every tag currently pointing at `digest`.
    async fn untag_everywhere(&self, digest: &Digest, lease: &Lease) -> Result<(), ContentError> {
        let tags = match self.driver().list(&layout::tags_dir(&self.name)?).await {
            Ok(tags) => tags,
            Err(StorageError::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        for tag_dir in tags {
            let current = tag_dir.join("current")?.join("link")?;
            if read_link(self.driver(), &current).await?.as_ref() == Some(digest) {
                lease.ensure_held()?;
                delete_if_exists(self.driver(), &tag_dir).await?;
            }
        }
        Ok(())
    }

    /// Checks every URL the manifest's descriptors carry against the registry's URL policy.
    fn ensure_urls_allowed(&self, manifest: &Manifest) -> Result<(), ContentError> {
        let policy = &self.store.options.manifest_validation.urls;
        for (_, descriptor) in manifest.references() {
            if let Some(url) = descriptor
                .urls
                .iter()
                .flatten()
                .find(|url| !policy.allows(url))
            {
                return Err(ContentError::ManifestInvalid(ManifestError::Invalid {
                    reason: format!(
                        "descriptor {} has the URL {url:?}, which this registry does not accept",
                        descriptor.digest
                    ),
                }));
            }
        }
        Ok(())
    }

    /// Checks that what `descriptor` names is present, as far as its `role` requires.
    async fn ensure_referenced(
        &self,
        role: ReferenceRole,
        descriptor: &Descriptor,
    ) -> Result<(), ContentError> {
        let present = match role {
            ReferenceRole::Subject => return Ok(()),
            ReferenceRole::Config | ReferenceRole::Layer => {
                let external = media_type::is_non_distributable(&descriptor.media_type)
                    || descriptor
                        .urls
                        .as_ref()
                        .is_some_and(|urls| !urls.is_empty());
                if external {
                    return Ok(());
                }
                match self.blob(&descriptor.digest).await {
                    Ok(_) => true,
                    Err(ContentError::BlobUnknown { .. }) => false,
                    Err(error) => return Err(error),
                }
            }
            ReferenceRole::Manifest => {
                let children = &self.store.options.manifest_validation.index_children;
                if !children.requires(descriptor) {
                    return Ok(());
                }
                let revision = layout::revision_link_dir(&self.name, &descriptor.digest)?;
                self.has_link(&revision, &descriptor.digest).await?
            }
        };
        if present {
            Ok(())
        } else {
            Err(ContentError::ManifestBlobUnknown {
                digest: descriptor.digest.clone(),
            })
        }
    }
}

fn manifest_unknown(reference: &Reference) -> ContentError {
    ContentError::ManifestUnknown {
        reference: reference.to_string(),
    }
}

/// The media type of stored manifest bytes. Manifests stored by registryd always parse; older
/// ones written by registry:2 (schema 1, say) are answered with the type they declare.
fn stored_media_type(bytes: &[u8]) -> String {
    if let Ok(manifest) = parse_manifest(bytes, None) {
        return manifest.media_type.to_owned();
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Declared {
        media_type: Option<String>,
        schema_version: Option<u64>,
    }
    match serde_json::from_slice::<Declared>(bytes) {
        Ok(Declared {
            media_type: Some(media_type),
            ..
        }) => media_type,
        Ok(Declared {
            schema_version: Some(1),
            ..
        }) => media_type::DOCKER_MANIFEST_V1_SIGNED.to_owned(),
        _ => media_type::OCI_IMAGE_MANIFEST.to_owned(),
    }
}
