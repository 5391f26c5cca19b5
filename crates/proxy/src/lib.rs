//! A pull-through cache: a [`Mirror`] answers reads from the content store and fetches what it
//! lacks from upstream registries (Docker Hub, ghcr.io, quay.io, any distribution registry),
//! keeping it for the next pull, as registry:2's `proxy` section does, for several upstreams at
//! once.
//!
//! A [`Mirror`] is a [`ContentSource`]: `registry-http` reads manifests, blobs and tags through it
//! and asks it which repositories take pushes. What it promises:
//! - Manifests by digest and blobs are immutable: fetched once, then served from the store.
//! - A tag is checked with the upstream on every pull (a `HEAD`, which Docker Hub does not count
//!   against its pull limit); pulls that arrive while a check is under way share its answer, so
//!   concurrent pulls of a tag make one upstream request; when the
//!   upstream cannot be reached or answers 429 or 5xx, the cached answer is served and the
//!   failure logged (stale-if-error).
//! - A blob is stored as it streams to the client that asked first, and linked in the repository
//!   only after its digest verifies; concurrent pulls of one blob make one upstream request. The
//!   first client's last chunk is held back until the digest verifies, so no client receives a
//!   blob that failed verification in full.
//! - Repositories mirrored from an upstream take no pushes or deletes
//!   ([`ContentError::ReadThrough`], 405 `UNSUPPORTED`); the others are an ordinary registry.

mod blobs;
mod challenge;
mod eviction;
mod flights;
mod upstream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::{Method, StatusCode, header};
use registry_content::{
    Blob, ContentError, ContentSource, ContentStore, Listing, Page, StoredManifest,
};
use registry_model::{Digest, Reference, RepositoryName, Tag};

pub use crate::eviction::{CacheBound, RoomReport, keep_within};

use crate::blobs::{Fetches, Origin};
use crate::eviction::Usage;
use crate::flights::Flights;
use crate::upstream::{UpstreamClient, read_limited, read_small};

/// The manifest media types asked of an upstream, newest first.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// The most pages of an upstream tag list followed.
const MAX_TAG_PAGES: usize = 100;

/// One registry to read through to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Its base URL: `https://registry-1.docker.io`.
    pub url: String,
    /// The user to authenticate as (Basic, or to its token realm).
    pub username: Option<String>,
    /// That user's password.
    pub password: Option<String>,
    /// The repositories mirrored from it: those named `<prefix>/...`, which are
    /// `...` upstream; every repository when empty.
    pub prefix: String,
}

/// The upstream configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[error("upstream {url}: {reason}")]
pub struct UpstreamError {
    /// The upstream's URL as given.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

/// Upstream registries, checked and ready to be asked: what a [`Mirror`] reads through to.
#[derive(Clone, Debug)]
pub struct Upstreams {
    /// Longest prefix first, so the most specific one wins.
    routes: Vec<Route>,
}

impl Upstreams {
    /// Checks `upstreams` (their URLs) and sets up their clients.
    pub fn new(upstreams: &[Upstream]) -> Result<Upstreams, UpstreamError> {
        let mut routes = Vec::with_capacity(upstreams.len());
        for upstream in upstreams {
            let client = UpstreamClient::new(
                &upstream.url,
                upstream.username.as_deref(),
                upstream.password.as_deref(),
            )
            .map_err(|reason| UpstreamError {
                url: upstream.url.clone(),
                reason,
            })?;
            let prefix = upstream.prefix.trim_matches('/').to_owned();
            if routes.iter().any(|route: &Route| route.prefix == prefix) {
                return Err(UpstreamError {
                    url: upstream.url.clone(),
                    reason: format!("another upstream mirrors the prefix {prefix:?} already"),
                });
            }
            routes.push(Route {
                prefix,
                upstream: Arc::new(client),
            });
        }
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        Ok(Upstreams { routes })
    }
}

/// A pull-through cache in front of a [`ContentStore`]. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Mirror {
    store: ContentStore,
    upstreams: Upstreams,
    fetches: Arc<Fetches>,
    /// One upstream request at a time per (repository, tag or digest).
    manifests: Flights<(RepositoryName, String), Result<(), Failure>>,
    usage: Arc<Usage>,
}

#[derive(Clone, Debug)]
struct Route {
    prefix: String,
    upstream: Arc<UpstreamClient>,
}

/// Where a repository is read from.
struct Mirrored<'a> {
    upstream: &'a Arc<UpstreamClient>,
    /// Its name upstream.
    remote: &'a str,
}

impl Mirror {
    /// A mirror of `upstreams` in front of `store`. Repositories under no upstream's prefix are
    /// served by the store alone.
    pub fn new(store: ContentStore, upstreams: Upstreams) -> Mirror {
        Mirror {
            store,
            upstreams,
            fetches: Arc::default(),
            manifests: Flights::default(),
            usage: Arc::default(),
        }
    }

    /// The upstream repository `name` is read from, if it is mirrored.
    fn mirrored<'a>(&'a self, name: &'a RepositoryName) -> Option<Mirrored<'a>> {
        let name = name.as_str();
        self.upstreams.routes.iter().find_map(|route| {
            let remote = if route.prefix.is_empty() {
                Some(name)
            } else {
                name.strip_prefix(route.prefix.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
            };
            remote.map(|remote| Mirrored {
                upstream: &route.upstream,
                remote,
            })
        })
    }

    /// The manifest `tag` names: checked with the upstream, one check at a time; the cached one
    /// when the upstream fails.
    async fn tagged(
        &self,
        name: &RepositoryName,
        tag: &Tag,
        mirrored: &Mirrored<'_>,
    ) -> Result<StoredManifest, ContentError> {
        let arrived = Instant::now();
        let mut boarded = self.manifests.board((name.clone(), tag.to_string())).await;
        let repository = self.store.repository(name.clone());
        let reference = Reference::Tag(tag.clone());
        let cached = repository.resolve(&reference).await.ok();
        // A check that ended after this request arrived answers it too: concurrent pulls of a
        // tag share one check.
        if let Some((ended, outcome)) = boarded.last()
            && *ended >= arrived
        {
            return match (outcome, cached) {
                (_, Some(digest)) => repository.manifest(&Reference::Digest(digest)).await,
                (Err(failure), None) => Err(failure
                    .clone()
                    .into_error(mirrored.upstream, || manifest_unknown(&reference))),
                (Ok(()), None) => Err(manifest_unknown(&reference)),
            };
        }
        let checked = self.check_tag(name, tag, cached.as_ref(), mirrored).await;
        boarded.landed(checked.as_ref().map(|_| ()).map_err(Failure::of));
        match (checked, cached) {
            (Ok(manifest), _) => Ok(manifest),
            (Err(error), Some(digest)) if error.is_upstream_failure() => {
                tracing::warn!(
                    upstream = mirrored.upstream.url(),
                    repository = %name,
                    %tag,
                    %error,
                    "serving the cached manifest of the tag: the upstream could not be asked"
                );
                repository.manifest(&Reference::Digest(digest)).await
            }
            (Err(error), _) => Err(error),
        }
    }

    /// Asks the upstream which manifest `tag` names: a `HEAD`, enough when it names the `cached`
    /// one; otherwise fetches and stores it.
    async fn check_tag(
        &self,
        name: &RepositoryName,
        tag: &Tag,
        cached: Option<&Digest>,
        mirrored: &Mirrored<'_>,
    ) -> Result<StoredManifest, ContentError> {
        let reference = Reference::Tag(tag.clone());
        if let Some(cached) = cached {
            let answer = mirrored
                .upstream
                .send(
                    Method::HEAD,
                    &manifest_path(mirrored.remote, &reference),
                    &pull_scope(mirrored.remote),
                    Some(MANIFEST_ACCEPT),
                )
                .await?;
            match answer.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Err(manifest_unknown(&reference)),
                status => return Err(mirrored.upstream.refusal(status, answer.headers())),
            }
            let same = answer
                .headers()
                .get("docker-content-digest")
                .and_then(|value| value.to_str().ok())
                .is_some_and(|digest| digest == cached.as_str());
            if same {
                let repository = self.store.repository(name.clone());
                match repository
                    .manifest(&Reference::Digest(cached.clone()))
                    .await
                {
                    // Evicted since, with its bytes collected: fetched again below.
                    Err(ContentError::ManifestUnknown { .. }) => {}
                    found => return found,
                }
            }
        }
        self.fetch_manifest(name, &reference, mirrored).await
    }

    /// The manifest `digest`: from the store, or fetched once however many ask at a time.
    async fn by_digest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        mirrored: &Mirrored<'_>,
    ) -> Result<StoredManifest, ContentError> {
        let repository = self.store.repository(name.clone());
        let reference = Reference::Digest(digest.clone());
        match repository.manifest(&reference).await {
            Err(ContentError::ManifestUnknown { .. }) => {}
            found => return found,
        }
        let arrived = Instant::now();
        let mut boarded = self
            .manifests
            .board((name.clone(), digest.to_string()))
            .await;
        match repository.manifest(&reference).await {
            Err(ContentError::ManifestUnknown { .. }) => {}
            found => return found,
        }
        if let Some((ended, Err(failure))) = boarded.last()
            && *ended >= arrived
        {
            return Err(failure
                .clone()
                .into_error(mirrored.upstream, || manifest_unknown(&reference)));
        }
        let fetched = self.fetch_manifest(name, &reference, mirrored).await;
        boarded.landed(fetched.as_ref().map(|_| ()).map_err(Failure::of));
        fetched
    }

    /// Fetches the manifest `reference` names upstream and stores it (with the tag, for a tag).
    async fn fetch_manifest(
        &self,
        name: &RepositoryName,
        reference: &Reference,
        mirrored: &Mirrored<'_>,
    ) -> Result<StoredManifest, ContentError> {
        let answer = mirrored
            .upstream
            .send(
                Method::GET,
                &manifest_path(mirrored.remote, reference),
                &pull_scope(mirrored.remote),
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        match answer.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(manifest_unknown(reference)),
            status => return Err(mirrored.upstream.refusal(status, answer.headers())),
        }
        let content_type = answer
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or(value).trim().to_owned());
        let announced = answer
            .headers()
            .get("docker-content-digest")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<Digest>().ok());
        let limit = self.store.options().manifest_size_limit;
        let bytes = read_limited(answer.into_body(), limit)
            .await
            .ok_or_else(|| {
                mirrored.upstream.failed(format!(
                    "the manifest {reference} was cut short or is larger than {limit} bytes"
                ))
            })?;
        // A tag's manifest is stored under the digest the upstream announced (sha512 too), and
        // must hash to it.
        let stored_as = match (reference, announced) {
            (Reference::Tag(_), Some(announced)) => {
                let actual = Digest::compute(announced.algorithm(), &bytes);
                if actual != announced {
                    return Err(mirrored.upstream.failed(format!(
                        "the manifest of {reference} hashes to {actual}, not the {announced} it announced"
                    )));
                }
                reference.clone()
            }
            _ => reference.clone(),
        };
        let repository = self.store.repository(name.clone());
        let pushed = repository
            .cache_manifest(&stored_as, content_type.as_deref(), bytes)
            .await
            .map_err(|error| match error {
                ContentError::DigestMismatch { expected, actual } => mirrored.upstream.failed(
                    format!("the manifest {expected} it sent hashes to {actual}"),
                ),
                other => other,
            })?;
        repository.manifest(&Reference::Digest(pushed.digest)).await
    }

    /// Every tag of repository `name` upstream, following its pages.
    async fn upstream_tags(
        &self,
        name: &RepositoryName,
        mirrored: &Mirrored<'_>,
    ) -> Result<Vec<Tag>, ContentError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let mut path = format!("/v2/{}/tags/list", mirrored.remote);
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let answer = mirrored
                .upstream
                .send(
                    Method::GET,
                    &path,
                    &pull_scope(mirrored.remote),
                    Some("application/json"),
                )
                .await?;
            let status = answer.status();
            if status == StatusCode::NOT_FOUND {
                return Err(ContentError::NameUnknown { name: name.clone() });
            }
            if status != StatusCode::OK {
                return Err(mirrored.upstream.refusal(status, answer.headers()));
            }
            let next = answer
                .headers()
                .get(header::LINK)
                .and_then(|value| value.to_str().ok())
                .and_then(next_link);
            let body = read_small(answer.into_body()).await.ok_or_else(|| {
                mirrored
                    .upstream
                    .failed("the tag list was cut short".into())
            })?;
            let list: TagList = serde_json::from_slice(&body).map_err(|error| {
                mirrored
                    .upstream
                    .failed(format!("the tag list is not JSON: {error}"))
            })?;
            tags.extend(
                list.tags
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|tag| tag.parse::<Tag>().ok()),
            );
            match next {
                Some(next) => path = next,
                None => return Ok(tags),
            }
        }
        Ok(tags)
    }
}

#[async_trait]
impl ContentSource for Mirror {
    async fn manifest(
        &self,
        name: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest, ContentError> {
        let Some(mirrored) = self.mirrored(name) else {
            return self.store.manifest(name, reference).await;
        };
        let manifest = match reference {
            Reference::Tag(tag) => self.tagged(name, tag, &mirrored).await,
            Reference::Digest(digest) => self.by_digest(name, digest, &mirrored).await,
        }?;
        self.usage.pulled(name, &manifest.digest);
        Ok(manifest)
    }

    async fn blob(&self, name: &RepositoryName, digest: &Digest) -> Result<Blob, ContentError> {
        let Some(mirrored) = self.mirrored(name) else {
            return self.store.blob(name, digest).await;
        };
        match self.store.blob(name, digest).await {
            Err(ContentError::BlobUnknown { .. }) => {}
            found => return found,
        }
        let origin = Origin {
            upstream: Arc::clone(mirrored.upstream),
            store: self.store.clone(),
            name: name.clone(),
            remote: mirrored.remote.to_owned(),
            usage: Arc::clone(&self.usage),
        };
        let (size, reader) = self.fetches.blob(origin, digest).await?;
        Ok(Blob::read_elsewhere(digest.clone(), size, reader))
    }

    async fn tags(&self, name: &RepositoryName, page: &Page) -> Result<Listing<Tag>, ContentError> {
        let Some(mirrored) = self.mirrored(name) else {
            return self.store.tags(name, page).await;
        };
        match self.upstream_tags(name, &mirrored).await {
            Ok(mut tags) => {
                tags.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                tags.dedup();
                Ok(page.select(tags.into(), |_| true))
            }
            Err(error) if error.is_upstream_failure() => {
                tracing::warn!(
                    upstream = mirrored.upstream.url(),
                    repository = %name,
                    %error,
                    "serving the cached tags: the upstream could not be asked"
                );
                self.store.tags(name, page).await
            }
            Err(error) => Err(error),
        }
    }

    fn ensure_writable(&self, name: &RepositoryName) -> Result<(), ContentError> {
        match self.mirrored(name) {
            Some(mirrored) => Err(ContentError::ReadThrough {
                name: name.clone(),
                upstream: mirrored.upstream.url().to_owned(),
            }),
            None => Ok(()),
        }
    }
}

/// Why an upstream request failed, kept to tell those who waited for it.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    /// The upstream does not have it.
    Unknown,
    /// The upstream asked to slow down.
    Busy(Option<Duration>),
    /// Anything else, in words.
    Failed(String),
}

impl Failure {
    fn of(error: &ContentError) -> Failure {
        match error {
            ContentError::BlobUnknown { .. }
            | ContentError::ManifestUnknown { .. }
            | ContentError::NameUnknown { .. } => Failure::Unknown,
            ContentError::UpstreamBusy { retry_after, .. } => Failure::Busy(*retry_after),
            ContentError::UpstreamFailed { reason, .. } => Failure::Failed(reason.clone()),
            other => Failure::Failed(other.to_string()),
        }
    }

    /// The error to answer with; `unknown` makes the "not there" one.
    pub(crate) fn into_error(
        self,
        upstream: &UpstreamClient,
        unknown: impl FnOnce() -> ContentError,
    ) -> ContentError {
        match self {
            Failure::Unknown => unknown(),
            Failure::Busy(retry_after) => ContentError::UpstreamBusy {
                upstream: upstream.url().to_owned(),
                retry_after,
            },
            Failure::Failed(reason) => upstream.failed(reason),
        }
    }
}

/// Whether the upstream could not be asked (down, slow, 429, 5xx), as opposed to answering that
/// something does not exist.
trait UpstreamFailure {
    fn is_upstream_failure(&self) -> bool;
}

impl UpstreamFailure for ContentError {
    fn is_upstream_failure(&self) -> bool {
        matches!(
            self,
            ContentError::UpstreamBusy { .. } | ContentError::UpstreamFailed { .. }
        )
    }
}

fn manifest_path(remote: &str, reference: &Reference) -> String {
    format!("/v2/{remote}/manifests/{reference}")
}

fn pull_scope(remote: &str) -> String {
    format!("repository:{remote}:pull")
}

fn manifest_unknown(reference: &Reference) -> ContentError {
    ContentError::ManifestUnknown {
        reference: reference.to_string(),
    }
}

/// The path and query of a `Link: <...>; rel="next"` header.
fn next_link(value: &str) -> Option<String> {
    let start = value.find('<')? + 1;
    let end = start + value[start..].find('>')?;
    let target = &value[start..end];
    if !value[end..].contains("next") {
        return None;
    }
    let path = match target.find("://") {
        Some(at) => {
            let after = at + 3;
            &target[after + target[after..].find('/')?..]
        }
        None => target,
    };
    path.starts_with("/v2/").then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_keep_the_path_and_query() {
        assert_eq!(
            next_link(r#"</v2/library/busybox/tags/list?last=1.36&n=100>; rel="next""#),
            Some("/v2/library/busybox/tags/list?last=1.36&n=100".into())
        );
        assert_eq!(
            next_link(r#"<https://r.example/v2/a/tags/list?last=x>; rel="next""#),
            Some("/v2/a/tags/list?last=x".into())
        );
        assert_eq!(next_link("garbage"), None);
    }
}
