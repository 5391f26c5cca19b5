//! The referrers of a manifest: the manifests whose `subject` names it.
//!
//! Each referrer's descriptor is recorded under `_referrers/` (a folder registry:2 ignores) when
//! the referrer is pushed, so listing them never scans the repository. The record is derived from
//! the referrer's immutable bytes; whether the referrer still exists is checked on every listing,
//! so a manifest deleted by another tool never shows up.

use bytes::Bytes;
use registry_model::{Descriptor, Digest, Manifest};
use registry_storage::{StorageError, StoragePath};

use crate::{ContentError, Repository, layout};

impl Repository {
    /// The descriptors of the manifests in this repository whose subject is `subject`, sorted by
    /// digest; only those whose artifact type is `artifact_type` when given. A subject nobody
    /// refers to (or that does not exist) has no referrers.
    pub async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, ContentError> {
        let dir = layout::referrers_dir(&self.name, subject)?;
        let mut descriptors = Vec::new();
        for algorithm_dir in list_or_empty(self, &dir).await? {
            for entry in list_or_empty(self, &algorithm_dir).await? {
                let Some(descriptor) = self.referrer_record(&entry.join("descriptor")?).await?
                else {
                    continue;
                };
                if artifact_type.is_some() && descriptor.artifact_type.as_deref() != artifact_type {
                    continue;
                }
                let revision = layout::revision_link_dir(&self.name, &descriptor.digest)?;
                if self.has_link(&revision, &descriptor.digest).await? {
                    descriptors.push(descriptor);
                }
            }
        }
        descriptors.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(descriptors)
    }

    /// The descriptor recorded at `path` (a referrer's `descriptor` file), or `None` when there is
    /// none.
    pub(crate) async fn referrer_record(
        &self,
        path: &StoragePath,
    ) -> Result<Option<Descriptor>, ContentError> {
        let bytes = match self.driver().get_content(path).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| ContentError::Corrupt {
                path: path.to_string(),
                reason: error.to_string(),
            })
    }

    /// Records the manifest `digest` (parsed as `manifest`, `size` bytes) as a referrer of `subject`.
    pub(crate) async fn add_referrer(
        &self,
        subject: &Digest,
        digest: &Digest,
        manifest: &Manifest,
        size: u64,
    ) -> Result<(), ContentError> {
        let descriptor = Descriptor {
            media_type: manifest.media_type.to_owned(),
            digest: digest.clone(),
            size,
            urls: None,
            annotations: manifest.annotations.clone(),
            data: None,
            artifact_type: manifest.effective_artifact_type().map(str::to_owned),
            platform: None,
        };
        let json = serde_json::to_vec(&descriptor).map_err(|error| ContentError::Corrupt {
            path: digest.to_string(),
            reason: error.to_string(),
        })?;
        self.driver()
            .put_content(
                &layout::referrer_descriptor(&self.name, subject, digest)?,
                Bytes::from(json),
            )
            .await?;
        Ok(())
    }
}

async fn list_or_empty(
    repository: &Repository,
    dir: &StoragePath,
) -> Result<Vec<StoragePath>, ContentError> {
    match repository.driver().list(dir).await {
        Ok(children) => Ok(children),
        Err(StorageError::NotFound { .. }) => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}
