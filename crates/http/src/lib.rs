//! The OCI distribution API (`/v2/`) as a hyper 1.x [`Service`](hyper::service::Service) and a
//! [`tower_service::Service`], over a [`ContentStore`].
//!
//! [`RegistryService`] routes each request ([`Route`]), turns it into calls on the content layer
//! and renders the result with the headers clients rely on (`Docker-Content-Digest`, `Location`,
//! `Range`, `Docker-Upload-UUID`, ...) or as the spec's JSON error ([`ApiError`]). It holds no
//! listener and no TLS: `registry` serves it, or an embedding application mounts it beside its
//! own routes.

mod access;
mod body;
mod body_guard;
mod connection;
mod error;
mod events;
mod handlers;
mod health;
pub mod layers;
mod query;
mod range;
mod route;
mod urls;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use registry_auth::AccessController;
use registry_content::{ContentError, ContentSource, ContentStore};
use registry_events::EventSink;

pub use access::required_access;
pub use body::{BoxError, ResponseBody};
pub use body_guard::{BodyCut, BodyGuard, GuardedBody};
pub use connection::ClientConnection;
pub use error::{ApiError, ErrorCode};
pub use health::Health;
pub use layers::REQUEST_ID;
pub use route::Route;
pub use urls::UrlBase;

/// The crate's private header parsers, for the coverage-guided fuzz targets in `fuzz/`. Built only
/// with `--cfg fuzzing` (which `cargo afl build` sets), so it is never part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use crate::range::{RangeRequest, parse_content_range, parse_range};

    /// The bytes `(start, end)` a `Range` header selects from a blob of `size` bytes, if any.
    pub fn range(header: &str, size: u64) -> Option<(u64, u64)> {
        match parse_range(Some(header), size) {
            RangeRequest::Partial(range) => Some((range.start(), range.end())),
            RangeRequest::Whole | RangeRequest::Unsatisfiable => None,
        }
    }

    /// The bytes `(start, end)` an upload chunk's `Content-Range` names, if it is valid.
    pub fn content_range(header: &str) -> Option<(u64, u64)> {
        parse_content_range(header).map(|range| (range.start(), range.end()))
    }
}

/// `Docker-Distribution-Api-Version`, sent on every response: clients check for it.
pub const API_VERSION_HEADER: HeaderName =
    HeaderName::from_static("docker-distribution-api-version");

/// The most `tag` query parameters one manifest push may carry. The distribution spec asks
/// registries that support tagging a push by digest to accept "at least 10 tags per request"
/// and allows `414 Request-URI Too Long` beyond their limit: a push with more is refused so
/// (code `TAG_INVALID`) before its body is read, and nothing is stored. Each tag costs two link
/// writes while the repository's lease is held, so the limit also bounds how long one push keeps
/// other pushes to the repository waiting.
pub const MAX_TAGS_PER_MANIFEST_PUSH: usize = 100;

/// How the service presents itself.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// A path prefix the API lives under (registry:2's `http.prefix`), such as `/registry`;
    /// empty for none. Routes and the URLs in `Location` and `Link` headers include it.
    pub prefix: String,
    /// Headers added to every response (registry:2's `http.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Who may do what; `None` lets every request through (registry:2 without `auth`).
    pub access: Option<AccessController>,
    /// The most repositories one catalog page lists, and the page size when the client gives no
    /// `n` (registry:2's `catalog.maxentries`); further pages are linked with `Link`.
    pub catalog_max_entries: usize,
    /// The most tags one tags-list page holds when the client asks for a page size `n`
    /// (`tags.maxtags`). Without `n` every tag is listed, as registry:2 2.8 clients expect.
    pub max_tags: usize,
    /// The most referrers one `/v2/<name>/referrers/<digest>` page lists, and its size when the
    /// client gives no `n` ([`DEFAULT_MAX_REFERRERS`]); further pages are linked with `Link`.
    pub max_referrers: usize,
    /// Where the events of requests that succeeded go (registry:2's `notifications`); `None`
    /// for none.
    pub events: Option<Arc<dyn EventSink>>,
    /// The health checks; while one fails, `GET /v2/` answers 503 `UNAVAILABLE`. `None` for no
    /// checks.
    pub health: Option<Arc<Health>>,
    /// Where manifests, blobs and tag lists are read from, and which repositories take writes: a
    /// pull-through cache in front of the content store. `None`: the content store itself.
    pub source: Option<Arc<dyn ContentSource>>,
    /// How `Location` URLs begin (registry:2's `http.host` and `http.relativeurls`).
    pub urls: UrlBase,
}

/// The default of [`HttpOptions::max_referrers`]: the largest page of referrers, 1,000, as for the
/// catalog and tags lists. Pages are also kept within the manifest size limit, so a page of
/// referrers carrying large annotations holds fewer.
pub const DEFAULT_MAX_REFERRERS: usize = 1000;

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            prefix: String::new(),
            headers: Vec::new(),
            access: None,
            catalog_max_entries: 1000,
            max_tags: 1000,
            max_referrers: DEFAULT_MAX_REFERRERS,
            events: None,
            health: None,
            source: None,
            urls: UrlBase::FromRequest,
        }
    }
}

/// The registry's HTTP API. Cheap to clone: clones share the content store.
#[derive(Clone, Debug)]
pub struct RegistryService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    content: ContentStore,
    source: Arc<dyn ContentSource>,
    urls: UrlBase,
    prefix: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    access: Option<AccessController>,
    catalog_max_entries: usize,
    max_tags: usize,
    max_referrers: usize,
    events: Option<Arc<dyn EventSink>>,
    health: Option<Arc<Health>>,
}

impl RegistryService {
    /// A service answering from `content`.
    pub fn new(content: ContentStore, options: HttpOptions) -> RegistryService {
        let prefix = options.prefix.trim_end_matches('/').to_owned();
        RegistryService {
            inner: Arc::new(Inner {
                source: options.source.unwrap_or_else(|| Arc::new(content.clone())),
                urls: match options.urls {
                    UrlBase::Fixed(url) => UrlBase::Fixed(url.trim_end_matches('/').to_owned()),
                    other => other,
                },
                content,
                prefix,
                headers: options.headers,
                access: options.access,
                catalog_max_entries: options.catalog_max_entries.max(1),
                max_tags: options.max_tags.max(1),
                max_referrers: options.max_referrers.max(1),
                events: options.events,
                health: options.health,
            }),
        }
    }

    /// The content store requests are answered from.
    pub fn content(&self) -> &ContentStore {
        &self.inner.content
    }

    /// Answers one request. Never fails: every error becomes an error response.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let head = request.method() == Method::HEAD;
        let mut handled = layers::Handled {
            route: "unknown",
            user: None,
        };
        let mut response = match self.dispatch(request, &mut handled).await {
            Ok(response) => response,
            Err(error) => error.into_response(head),
        };
        response.extensions_mut().insert(handled);
        let headers = response.headers_mut();
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
        for (name, value) in &self.inner.headers {
            headers.append(name.clone(), value.clone());
        }
        response
    }

    /// Answers `request`, noting in `handled` the route and the user as soon as they are known.
    async fn dispatch<B>(
        &self,
        request: Request<B>,
        handled: &mut layers::Handled,
    ) -> Result<Response<ResponseBody>, ApiError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let path = request
            .uri()
            .path()
            .strip_prefix(self.inner.prefix.as_str())
            .ok_or_else(ApiError::not_found)?;
        let route = Route::parse(path)?.ok_or_else(ApiError::not_found)?;
        handled.route = route.label();
        if route == Route::Base
            && let Some(health) = &self.inner.health
            && !health.is_healthy()
        {
            let failing: Vec<String> = health.failing().into_keys().collect();
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                format!(
                    "service unavailable: health checks failing: {}",
                    failing.join(", ")
                ),
            ));
        }
        if !route.allowed_methods().contains(request.method()) {
            return Err(method_not_allowed(&route));
        }
        let params = query::parse(request.uri().query());
        let accesses = required_access(&route, request.method(), &params);
        // Decided before anything is read from the body or from storage.
        let grant = access::authorize(
            self.inner.access.as_ref(),
            request.headers().get(header::AUTHORIZATION),
            &accesses,
        )
        .await?;
        if let registry_auth::Identity::User(user) = grant.identity() {
            handled.user = Some(user.clone());
        }
        if self.inner.content.is_read_only() && access::changes_content(&accesses) {
            return Err(ContentError::ReadOnly.into());
        }
        for name in access::changed_repositories(&accesses) {
            self.inner.source.ensure_writable(name)?;
        }
        // Gathered only for the requests that can make events: the rest (the base check,
        // listings, upload chunks, blob HEADs) skip the strings a notice copies.
        // Only the requests that answer with a Location need it.
        let located = matches!(route, Route::UploadStart(_) | Route::Upload(..))
            || matches!(
                *request.method(),
                Method::POST | Method::PUT | Method::PATCH
            );
        let origin = match &self.inner.urls {
            UrlBase::Relative => String::new(),
            UrlBase::Fixed(url) => url.clone(),
            UrlBase::FromRequest if located => urls::request_origin(&request),
            UrlBase::FromRequest => String::new(),
        };
        let notice = self
            .inner
            .events
            .as_ref()
            .filter(|_| events::may_emit(&route, request.method()))
            .map(|sink| {
                // Event URLs are absolute whatever Location URLs are.
                let event_origin = if origin.is_empty() {
                    urls::request_origin(&request)
                } else {
                    origin.clone()
                };
                events::Notice::new(
                    Arc::clone(sink),
                    &request,
                    &grant,
                    &event_origin,
                    &self.inner.prefix,
                )
            });
        let context = handlers::Context {
            origin: &origin,
            content: &self.inner.content,
            source: self.inner.source.as_ref(),
            notice: notice.as_ref(),
            prefix: &self.inner.prefix,
            grant: &grant,
            catalog_max_entries: self.inner.catalog_max_entries,
            max_tags: self.inner.max_tags,
            max_referrers: self.inner.max_referrers,
        };
        handlers::handle(context, route, params, request).await
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

impl<B> hyper::service::Service<Request<B>> for RegistryService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.handle(request).await) })
    }
}

impl<B> tower_service::Service<Request<B>> for RegistryService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        hyper::service::Service::call(self, request)
    }
}

/// A 405 for a method the route does not answer, with the `Allow` header.
fn method_not_allowed(route: &Route) -> ApiError {
    let allowed: Vec<&str> = route.allowed_methods().iter().map(Method::as_str).collect();
    let allow = HeaderValue::try_from(allowed.join(", ")).unwrap_or(HeaderValue::from_static(""));
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Unsupported,
        "the method is not supported on this endpoint",
    )
    .with_header(header::ALLOW, allow)
}
