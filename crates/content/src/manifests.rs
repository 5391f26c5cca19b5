//! Manifests and tags: stored byte for byte as blobs, linked into the repository by revision, and
//! named by tags.

use bytes::Bytes;
use futures_util::future::try_join_all;
use registry_model::{
    Descriptor, Digest, DigestAlgorithm, Manifest, Reference, ReferenceRole, Tag, media_type,
    parse_manifest,
};
use registry_storage::StorageError;

use crate::links::{delete_if_exists, exists, read_link, write_link};
use crate::{ContentError, Repository, layout};

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
    /// `mediaType`. Every blob and child manifest the manifest references must already be in this
    /// repository, except layers that are non-distributable or carry `urls` (their content lives
    /// elsewhere) and the `subject`, which may be pushed after its referrers. When `reference` is
    /// a digest, the bytes must hash to it (with its algorithm; sha256 otherwise).
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        extra_tags: &[Tag],
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
        try_join_all(
            manifest
                .references()
                .map(|(role, descriptor)| self.ensure_referenced(role, descriptor)),
        )
        .await?;

        let blob_path = layout::blob_data(&digest)?;
        if !exists(self.driver(), &blob_path).await? {
            self.driver().put_content(&blob_path, bytes.clone()).await?;
        }
        let cached = (manifest.media_type.to_owned(), bytes.clone());
        self.store
            .manifests
            .insert(digest.clone(), cached, bytes.len());
        let revision = layout::revision_link_dir(&self.name, &digest)?;
        write_link(self.driver(), &layout::link(&revision)?, &digest).await?;
        if let Some(subject) = &manifest.subject {
            self.add_referrer(&subject.digest, &digest, &manifest, bytes.len() as u64)
                .await?;
        }

        let mut tags: Vec<Tag> = Vec::with_capacity(extra_tags.len() + 1);
        if let Reference::Tag(tag) = reference {
            tags.push(tag.clone());
        }
        for tag in extra_tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        for tag in &tags {
            self.tag(tag, &digest).await?;
        }
        Ok(PushedManifest {
            digest,
            manifest,
            tags,
        })
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
        match reference {
            Reference::Tag(tag) => {
                let dir = layout::tag_dir(&self.name, tag)?;
                match self.driver().delete(&dir).await {
                    Ok(()) => Ok(()),
                    Err(StorageError::NotFound { .. }) => Err(manifest_unknown(reference)),
                    Err(error) => Err(error.into()),
                }
            }
            Reference::Digest(digest) => {
                let stored = self.manifest(reference).await?;
                if let Ok(manifest) = parse_manifest(&stored.bytes, None)
                    && let Some(subject) = &manifest.subject
                {
                    let entry = layout::referrer_descriptor(&self.name, &subject.digest, digest)?;
                    delete_if_exists(self.driver(), &entry).await?;
                }
                let revision = layout::revision_link_dir(&self.name, digest)?;
                delete_if_exists(self.driver(), &revision).await?;
                self.untag_everywhere(digest).await
            }
        }
    }

    /// Points `tag` at the manifest `digest`.
    async fn tag(&self, tag: &Tag, digest: &Digest) -> Result<(), ContentError> {
        write_link(
            self.driver(),
            &layout::tag_index_link(&self.name, tag, digest)?,
            digest,
        )
        .await?;
        write_link(
            self.driver(),
            &layout::tag_current_link(&self.name, tag)?,
            digest,
        )
        .await
    }

    /// Removes every tag currently pointing at `digest`.
    async fn untag_everywhere(&self, digest: &Digest) -> Result<(), ContentError> {
        let tags = match self.driver().list(&layout::tags_dir(&self.name)?).await {
            Ok(tags) => tags,
            Err(StorageError::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        for tag_dir in tags {
            let current = tag_dir.join("current")?.join("link")?;
            if read_link(self.driver(), &current).await?.as_ref() == Some(digest) {
                delete_if_exists(self.driver(), &tag_dir).await?;
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
