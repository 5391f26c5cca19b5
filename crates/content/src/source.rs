//! [`ContentSource`]: what the HTTP API reads content through, so that a pull-through cache can
//! stand in front of the store.

use std::fmt;

use async_trait::async_trait;
use registry_model::{Digest, Reference, RepositoryName, Tag};

use crate::{Blob, ContentError, ContentStore, Listing, Page, StoredManifest};

/// Where the HTTP API reads manifests, blobs and tag lists from, and which repositories take
/// pushes and deletes. A [`ContentStore`] reads its own storage and takes writes everywhere; a
/// pull-through cache (`registry-proxy`) wraps one and reads what it lacks from another registry.
/// Every other request (uploads, manifest pushes, deletes, the catalog, referrers) goes to the
/// store, after [`ContentSource::ensure_writable`] for those that change it.
#[async_trait]
pub trait ContentSource: Send + Sync + fmt::Debug {
    /// The manifest `reference` names in repository `name`, as
    /// [`Repository::manifest`](crate::Repository::manifest) answers.
    async fn manifest(
        &self,
        name: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest, ContentError>;

    /// The blob `digest` of repository `name`, as [`Repository::blob`](crate::Repository::blob)
    /// answers.
    async fn blob(&self, name: &RepositoryName, digest: &Digest) -> Result<Blob, ContentError>;

    /// A page of the tags of repository `name`, as [`Repository::tags`](crate::Repository::tags)
    /// answers.
    async fn tags(&self, name: &RepositoryName, page: &Page) -> Result<Listing<Tag>, ContentError>;

    /// `Ok` when repository `name` takes pushes and deletes; [`ContentError::ReadThrough`] when
    /// it is read from another registry.
    fn ensure_writable(&self, name: &RepositoryName) -> Result<(), ContentError>;
}

#[async_trait]
impl ContentSource for ContentStore {
    async fn manifest(
        &self,
        name: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest, ContentError> {
        self.repository(name.clone()).manifest(reference).await
    }

    async fn blob(&self, name: &RepositoryName, digest: &Digest) -> Result<Blob, ContentError> {
        self.repository(name.clone()).blob(digest).await
    }

    async fn tags(&self, name: &RepositoryName, page: &Page) -> Result<Listing<Tag>, ContentError> {
        self.repository(name.clone()).tags(page).await
    }

    fn ensure_writable(&self, _name: &RepositoryName) -> Result<(), ContentError> {
        Ok(())
    }
}
