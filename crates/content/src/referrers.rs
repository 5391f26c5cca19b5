//! The referrers of a manifest: the manifests whose `subject` names it.
//!
//! Each referrer's descriptor is recorded under `_referrers/` (a folder registry:2 ignores) when
//! the referrer is pushed, so listing them never scans the repository. The record is derived from
//! the referrer's immutable bytes; whether the referrer still exists is checked on every listing,
//! so a manifest deleted by another tool never shows up.

use std::collections::BinaryHeap;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use registry_model::{Descriptor, Digest, Manifest};
use registry_storage::{StorageError, StoragePath};

use crate::manifests::LOOKUPS_IN_FLIGHT;
use crate::{ContentError, Page, Repository, layout};

/// The most referrer records one page of referrers reads, whatever its size and filter: with an
/// `artifactType` that few referrers have, a page may end short (even empty) with
/// [`ReferrersPage::resume_after`] set, so that no request reads the records of every referrer of
/// a subject with a great many.
pub const MAX_REFERRER_RECORDS_PER_PAGE: usize = 2_000;

/// The bytes of an empty image index around the descriptors, rounded up: what a page costs
/// beside its descriptors.
const INDEX_ENVELOPE_BYTES: usize = 128;

/// One page of the referrers of a subject: see [`Repository::referrers`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReferrersPage {
    /// The referrers' descriptors, sorted by digest.
    pub descriptors: Vec<Descriptor>,
    /// Where the next page starts (its [`Page::last`]) when this page stopped before looking at
    /// every referrer; `None` when there are no more. The next page may turn out empty: the
    /// referrers after this point may all be filtered out or deleted.
    pub resume_after: Option<Digest>,
}

impl Repository {
    /// A page of the descriptors of the manifests in this repository whose subject is `subject`,
    /// sorted by digest: only those whose artifact type is `artifact_type` when given, at most
    /// `page.n` of them, after `page.last`. A subject nobody refers to (or that does not exist)
    /// has no referrers.
    ///
    /// The work is bounded whatever the number of referrers: the page reads at most
    /// [`MAX_REFERRER_RECORDS_PER_PAGE`] records, and its descriptors together stay within the
    /// largest manifest the registry accepts (an index of referrers is read by clients like any
    /// index), except that a page always holds at least one descriptor when one is left.
    /// Listing the referrers' names is the one cost that grows with their number.
    pub async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
        page: &Page,
    ) -> Result<ReferrersPage, ContentError> {
        let wanted = page.n.unwrap_or(usize::MAX);
        let mut found = ReferrersPage::default();
        if wanted == 0 {
            return Ok(found);
        }
        let (candidates, remaining) = self
            .referrer_digests(subject, page.last.as_deref(), MAX_REFERRER_RECORDS_PER_PAGE)
            .await?;
        let budget = self.store.options.manifest_size_limit;
        let mut used = INDEX_ENVELOPE_BYTES;
        let mut looked_at = 0;
        // Each read owns what it needs: futures borrowing from this one would make the
        // stream's type higher-ranked over their lifetimes, which the HTTP service's `Send`
        // bound cannot be proven for.
        let reads = candidates.iter().cloned().map(|referrer| {
            let repository = self.clone();
            let subject = subject.clone();
            let artifact_type = artifact_type.map(str::to_owned);
            async move {
                repository
                    .live_referrer(&subject, &referrer, artifact_type.as_deref())
                    .await
            }
        });
        let mut records = stream::iter(reads).buffered(LOOKUPS_IN_FLIGHT);
        while let Some(record) = records.next().await {
            if let Some((descriptor, size)) = record? {
                // The comma between descriptors counts too.
                if !found.descriptors.is_empty() && used + size + 1 > budget {
                    break;
                }
                used += size + 1;
                found.descriptors.push(descriptor);
            }
            looked_at += 1;
            if found.descriptors.len() == wanted {
                break;
            }
        }
        if looked_at < remaining {
            found.resume_after = looked_at
                .checked_sub(1)
                .map(|last| candidates[last].clone());
        }
        Ok(found)
    }

    /// The digests of the referrers of `subject` that sort after `after`: the first `limit` of
    /// them, sorted, and how many there are in all.
    async fn referrer_digests(
        &self,
        subject: &Digest,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Digest>, usize), ContentError> {
        // The `limit` smallest, kept in a heap whose top is the largest of them: the page
        // never holds more digests than it may read, however many referrers there are.
        let mut smallest = BinaryHeap::with_capacity(limit.min(1024) + 1);
        let mut remaining = 0;
        for algorithm in layout::ALGORITHMS {
            let dir = layout::referrer_entries_dir(&self.name, subject, algorithm)?;
            for entry in list_or_empty(self, &dir).await? {
                let Some(digest) = entry
                    .file_name()
                    .and_then(|hex| Digest::new(algorithm, hex).ok())
                else {
                    continue;
                };
                if after.is_some_and(|after| digest.as_str() <= after) {
                    continue;
                }
                remaining += 1;
                smallest.push(digest);
                if smallest.len() > limit {
                    smallest.pop();
                }
            }
        }
        Ok((smallest.into_sorted_vec(), remaining))
    }

    /// The descriptor recorded for `referrer` among the referrers of `subject` and its size as
    /// stored, when the referrer is still in the repository and has `artifact_type` (if given).
    async fn live_referrer(
        &self,
        subject: &Digest,
        referrer: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<(Descriptor, usize)>, ContentError> {
        let path = layout::referrer_descriptor(&self.name, subject, referrer)?;
        let Some((descriptor, size)) = self.read_referrer_record(&path).await? else {
            return Ok(None);
        };
        if artifact_type.is_some() && descriptor.artifact_type.as_deref() != artifact_type {
            return Ok(None);
        }
        let revision = layout::revision_link_dir(&self.name, &descriptor.digest)?;
        if self.has_link(&revision, &descriptor.digest).await? {
            Ok(Some((descriptor, size)))
        } else {
            Ok(None)
        }
    }

    /// The descriptor recorded at `path` (a referrer's `descriptor` file), or `None` when there is
    /// none.
    pub(crate) async fn referrer_record(
        &self,
        path: &StoragePath,
    ) -> Result<Option<Descriptor>, ContentError> {
        Ok(self
            .read_referrer_record(path)
            .await?
            .map(|(descriptor, _)| descriptor))
    }

    /// The descriptor recorded at `path` and the size of its record: the record is the
    /// descriptor's JSON, so this is about what it adds to a referrers response.
    async fn read_referrer_record(
        &self,
        path: &StoragePath,
    ) -> Result<Option<(Descriptor, usize)>, ContentError> {
        let bytes = match self.driver().get_content(path).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        serde_json::from_slice(&bytes)
            .map(|descriptor| Some((descriptor, bytes.len())))
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
