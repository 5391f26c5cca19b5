//! The endpoint handlers: each turns a parsed [`Route`] and its request into calls on the content
//! layer and a response.

mod blobs;
mod listings;
mod manifests;
mod referrers;
mod uploads;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use registry_auth::Grant;
use registry_content::{ContentSource, ContentStore};
use registry_model::Digest;

use crate::body::{self, BoxError, ResponseBody};
use crate::events::Notice;
use crate::{ApiError, Route, method_not_allowed};

/// What every handler may use.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    /// How absolute URLs begin (`scheme://host`, or `http.host`); empty for relative ones.
    pub(crate) origin: &'a str,
    /// Where uploads, pushes, deletes and the other listings go.
    pub(crate) content: &'a ContentStore,
    /// Where manifests, blobs and tags are read from.
    pub(crate) source: &'a dyn ContentSource,
    /// The configured path prefix, without a trailing slash.
    pub(crate) prefix: &'a str,
    /// What the caller may do, for answers that depend on it (the catalog).
    pub(crate) grant: &'a Grant,
    /// The catalog's largest (and default) page.
    pub(crate) catalog_max_entries: usize,
    /// The tags list's largest page when a page size is asked for.
    pub(crate) max_tags: usize,
    /// The referrers list's largest (and default) page.
    pub(crate) max_referrers: usize,
    /// Where events go, with what they share; `None` when no one listens.
    pub(crate) notice: Option<&'a Notice>,
}

impl Context<'_> {
    /// The URL of `path` under the service's prefix, for `Location`: absolute unless
    /// `http.relativeurls`.
    fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.origin, self.prefix)
    }

    /// The absolute path of `path` under the service's prefix (registry:2's `Link` headers are
    /// relative).
    fn path(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }
}

/// `Docker-Content-Digest`.
pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");
/// `Docker-Upload-UUID`.
pub(crate) const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
/// `OCI-Subject`.
pub(crate) const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
/// `OCI-Tag`.
pub(crate) const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");
/// `OCI-Filters-Applied`.
pub(crate) const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

/// Routes the request to its handler.
pub(crate) async fn handle<B>(
    context: Context<'_>,
    route: Route,
    params: Vec<(String, String)>,
    request: Request<B>,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let method = &parts.method;
    let head = method == Method::HEAD;
    let headers = &parts.headers;
    match (route, method) {
        (Route::Base, &Method::GET | &Method::HEAD) => Ok(base(head)),
        (Route::Catalog, &Method::GET | &Method::HEAD) => {
            listings::catalog(context, &params, head).await
        }
        (Route::Tags(name), &Method::GET | &Method::HEAD) => {
            listings::tags(context, name, &params, head).await
        }
        (Route::Manifest(name, reference), &Method::GET | &Method::HEAD) => {
            manifests::get(context, name, reference, headers, head).await
        }
        (Route::Manifest(name, reference), &Method::PUT) => {
            manifests::put(context, name, reference, &params, headers, body).await
        }
        (Route::Manifest(name, reference), &Method::DELETE) => {
            manifests::delete(context, name, reference).await
        }
        (Route::Blob(name, digest), &Method::GET | &Method::HEAD) => {
            blobs::get(context, name, digest, headers, head).await
        }
        (Route::Blob(name, digest), &Method::DELETE) => blobs::delete(context, name, digest).await,
        (Route::UploadStart(name), &Method::POST) => {
            uploads::start(context, name, &params, body).await
        }
        (Route::Upload(name, id), &Method::GET) => uploads::status(context, name, id).await,
        (Route::Upload(name, id), &Method::PATCH) => {
            uploads::patch(context, name, id, headers, body).await
        }
        (Route::Upload(name, id), &Method::PUT) => {
            uploads::complete(context, name, id, &params, headers, body).await
        }
        (Route::Upload(name, id), &Method::DELETE) => uploads::cancel(context, name, id).await,
        (Route::Referrers(name, digest), &Method::GET | &Method::HEAD) => {
            referrers::list(context, name, digest, &params, head).await
        }
        (route, _) => Err(method_not_allowed(&route)),
    }
}

/// `GET /v2/`: 200 with an empty JSON object, telling clients this is a v2 registry.
fn base(head: bool) -> Response<ResponseBody> {
    let mut response = body::json_response(StatusCode::OK, b"{}".to_vec());
    if head {
        *response.body_mut() = body::empty_response(StatusCode::OK).into_body();
    }
    response
}

/// Sets `name` to `value`, which is made of characters valid in a header (digests, paths built
/// from validated names, numbers).
fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

/// Sets `Docker-Content-Digest` and `ETag` for content named by `digest`.
fn set_digest(headers: &mut HeaderMap, digest: &Digest) {
    set(headers, DOCKER_CONTENT_DIGEST, digest.as_str());
    set(headers, header::ETAG, &format!("\"{digest}\""));
}

/// Whether the request's `If-None-Match` names `digest`'s ETag, so a 304 can be answered.
fn not_modified(request_headers: &HeaderMap, digest: &Digest) -> bool {
    let etag = format!("\"{digest}\"");
    request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| {
            let candidate = candidate.trim();
            candidate == etag || candidate == "*"
        })
}
