//! Turning requests that succeeded into [`Event`]s for the configured [`EventSink`].
//!
//! [`Notice`] gathers what every event of a request shares (the request record, the actor, the
//! base of the URLs) before the handler runs; the handlers call it after success with what
//! happened, as registry:2 emits: manifest push, pull (GET and HEAD) and delete (by digest, or
//! by tag), blob push (upload completed), pull (GET), mount and delete.

use std::sync::Arc;

use http::{Method, Request, header};
use registry_auth::{Grant, Identity};
use registry_events::{Action, ActorRecord, Descriptor, Event, EventSink, RequestRecord, Target};
use registry_model::{Digest, Manifest, RepositoryName, Tag};

use crate::Route;
use crate::connection::ClientConnection;
use crate::layers::REQUEST_ID;
use crate::urls::{header_str, request_host};

/// The media type of a blob's events, as registry:2 sends it.
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// Whether a request to `route` with `method` can make an event when it succeeds: manifest
/// GET, HEAD, PUT and DELETE, blob GET and DELETE, an upload's start (a monolithic upload or a
/// mount) and its completing PUT.
pub(crate) fn may_emit(route: &Route, method: &Method) -> bool {
    match route {
        Route::Manifest(..) => true,
        Route::Blob(..) => matches!(*method, Method::GET | Method::DELETE),
        Route::UploadStart(_) => *method == Method::POST,
        Route::Upload(..) => *method == Method::PUT,
        Route::Base | Route::Catalog | Route::Tags(_) | Route::Referrers(..) => false,
    }
}

/// What the events of one request share.
pub(crate) struct Notice {
    sink: Arc<dyn EventSink>,
    request: RequestRecord,
    actor: ActorRecord,
    /// `scheme://host` and the prefix, without a trailing slash.
    base_url: String,
}

impl Notice {
    /// What the events of `request` share. `origin` is `scheme://host` as the registry's
    /// absolute URLs begin (`http.host`, or as the client addressed it).
    pub(crate) fn new<B>(
        sink: Arc<dyn EventSink>,
        request: &Request<B>,
        grant: &Grant,
        origin: &str,
        prefix: &str,
    ) -> Notice {
        let headers = request.headers();
        let connection = request.extensions().get::<ClientConnection>();
        let record = RequestRecord {
            id: header_str(headers, &REQUEST_ID)
                .map(str::to_owned)
                .unwrap_or_else(registry_events::random_id),
            addr: connection
                .map(|connection| connection.remote.to_string())
                .unwrap_or_default(),
            host: request_host(request).to_owned(),
            method: request.method().as_str().to_owned(),
            useragent: header_str(headers, &header::USER_AGENT)
                .unwrap_or_default()
                .to_owned(),
        };
        let actor = ActorRecord {
            name: match grant.identity() {
                Identity::User(name) => name.clone(),
                Identity::Anonymous => String::new(),
            },
        };
        Notice {
            sink,
            request: record,
            actor,
            base_url: concat(&[origin, prefix]),
        }
    }

    /// Whether events of `action` are wanted at all: pulls need not be made when every endpoint
    /// ignores them.
    pub(crate) fn wants(&self, action: Action) -> bool {
        self.sink.wants(action)
    }

    /// Whether manifest events list references, so the handler knows to parse a pulled
    /// manifest.
    pub(crate) fn include_references(&self) -> bool {
        self.sink.include_references()
    }

    /// A manifest pushed or pulled: one event for each of `tags`, or one without a tag.
    pub(crate) async fn manifest(
        &self,
        action: Action,
        manifest: ManifestEvent<'_>,
        tags: &[&Tag],
    ) {
        if !self.wants(action) {
            return;
        }
        let ManifestEvent {
            repository,
            digest,
            media_type,
            size,
            parsed,
        } = manifest;
        let target = Target {
            media_type: media_type.to_owned(),
            size,
            digest: digest.as_str().to_owned(),
            length: size,
            repository: repository.as_str().to_owned(),
            url: concat(&[
                &self.base_url,
                "/v2/",
                repository.as_str(),
                "/manifests/",
                digest.as_str(),
            ]),
            references: match parsed {
                Some(parsed) if self.include_references() => references(parsed),
                _ => Vec::new(),
            },
            ..Target::default()
        };
        let events = if tags.is_empty() {
            vec![self.event(action, target)]
        } else {
            tags.iter()
                .map(|tag| {
                    let mut target = target.clone();
                    target.tag = tag.to_string();
                    self.event(action, target)
                })
                .collect()
        };
        self.sink.record(events).await;
    }

    /// A blob pushed, pulled or mounted (`from`: the repository it was mounted from, when
    /// named).
    pub(crate) async fn blob(
        &self,
        action: Action,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        from: Option<&RepositoryName>,
    ) {
        if !self.wants(action) {
            return;
        }
        let target = Target {
            media_type: BLOB_MEDIA_TYPE.to_owned(),
            size,
            digest: digest.as_str().to_owned(),
            length: size,
            repository: repository.as_str().to_owned(),
            from_repository: from
                .map(|from| from.as_str().to_owned())
                .unwrap_or_default(),
            url: concat(&[
                &self.base_url,
                "/v2/",
                repository.as_str(),
                "/blobs/",
                digest.as_str(),
            ]),
            ..Target::default()
        };
        self.sink.record(vec![self.event(action, target)]).await;
    }

    /// A manifest or blob deleted by digest: the target holds only the digest and repository.
    pub(crate) async fn deleted(&self, repository: &RepositoryName, digest: &Digest) {
        if !self.wants(Action::Delete) {
            return;
        }
        let target = Target {
            digest: digest.to_string(),
            repository: repository.to_string(),
            ..Target::default()
        };
        self.sink
            .record(vec![self.event(Action::Delete, target)])
            .await;
    }

    /// A tag deleted: the target holds the repository and the tag.
    pub(crate) async fn tag_deleted(&self, repository: &RepositoryName, tag: &Tag) {
        if !self.wants(Action::Delete) {
            return;
        }
        let target = Target {
            repository: repository.to_string(),
            tag: tag.to_string(),
            ..Target::default()
        };
        self.sink
            .record(vec![self.event(Action::Delete, target)])
            .await;
    }

    fn event(&self, action: Action, target: Target) -> Event {
        Event::new(action, target, self.request.clone(), self.actor.clone())
    }
}

/// The manifest an event is about.
pub(crate) struct ManifestEvent<'a> {
    pub(crate) repository: &'a RepositoryName,
    pub(crate) digest: &'a Digest,
    pub(crate) media_type: &'a str,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// The manifest parsed, for its references; `None` when they are not wanted.
    pub(crate) parsed: Option<&'a Manifest>,
}

/// What a manifest references, as registry:2 lists it: the config and layers of an image, the
/// child manifests of an index.
fn references(manifest: &Manifest) -> Vec<Descriptor> {
    manifest
        .config
        .iter()
        .chain(&manifest.layers)
        .chain(&manifest.manifests)
        .map(|descriptor| Descriptor {
            media_type: descriptor.media_type.clone(),
            size: descriptor.size,
            digest: descriptor.digest.to_string(),
        })
        .collect()
}

/// `parts` joined, allocated once.
fn concat(parts: &[&str]) -> String {
    let mut joined = String::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        joined.push_str(part);
    }
    joined
}
