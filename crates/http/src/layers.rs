//! Tower layers around [`RegistryService`](crate::RegistryService): request ids, the access log
//! and request metrics. [`ObservedService`] is the service with all three, what
//! `registry::Registry::service` hands out; an embedder who wants fewer stacks the ones it wants.
//!
//! The service tells the layers what it made of a request through the [`Handled`] response
//! extension: the route it matched and the user it authenticated.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{BoxError, ResponseBody};
use crate::connection::ClientConnection;

/// `X-Request-Id`: a request's id, kept from the client or made here.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The counter of requests answered, by `route`, `method` and `status`.
pub const REQUESTS: &str = "registry_http_requests_total";
/// The histogram of the time to each response's head, in seconds, by `route` and `method`.
pub const REQUEST_DURATION: &str = "registry_http_request_duration_seconds";
/// The counter of request body bytes received.
pub const RECEIVED_BYTES: &str = "registry_http_received_bytes_total";
/// The counter of response body bytes sent.
pub const SENT_BYTES: &str = "registry_http_sent_bytes_total";

/// What the service made of a request, as an extension of its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// The route matched: `base`, `catalog`, `tags`, `manifests`, `blobs`, `uploads`,
    /// `referrers`, or `unknown`.
    pub route: &'static str,
    /// The authenticated user, if any.
    pub user: Option<String>,
}

/// The registry's service with request ids, the access log and metrics.
pub type ObservedService<S> = RequestId<AccessLog<Metrics<S>>>;

/// Wraps `service` in every layer: request ids outermost, so the access log and the events see
/// the id; the access log and the metrics on or off as `access_log` and `metrics` say (off, a
/// layer passes requests through).
pub fn observed<S>(service: S, access_log: bool, metrics: bool) -> ObservedService<S> {
    RequestIdLayer.layer(
        AccessLogLayer {
            enabled: access_log,
        }
        .layer(MetricsLayer { enabled: metrics }.layer(service)),
    )
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

// ---- request ids -------------------------------------------------------------------------------

/// Gives every request an `X-Request-Id`: the client's when it sent a usable one (visible ASCII,
/// at most 200 bytes), a new UUID otherwise; the response carries it back.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> RequestId<S> {
        RequestId { inner }
    }
}

/// The service of [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for RequestId<S>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = Infallible;
    type Future = BoxFuture<Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let usable = request.headers().get(REQUEST_ID).filter(|id| {
            !id.is_empty() && id.len() <= 200 && id.as_bytes().iter().all(u8::is_ascii_graphic)
        });
        let id = match usable {
            Some(id) => id.clone(),
            None => {
                let id = HeaderValue::try_from(registry_events::random_id())
                    .unwrap_or(HeaderValue::from_static("unknown"));
                request.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let answered = self.inner.call(request);
        Box::pin(async move {
            let mut response = answered.await?;
            response.headers_mut().insert(REQUEST_ID, id);
            Ok(response)
        })
    }
}

// ---- the access log ----------------------------------------------------------------------------

/// Logs every request at `info` (target `registryd::access`) once its response head is ready:
/// client, method, path, status, time, request id and user, as registry:2's access log does.
#[derive(Clone, Copy, Debug)]
pub struct AccessLogLayer {
    /// Whether lines are written (`log.accesslog.disabled` turns it off).
    pub enabled: bool,
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            enabled: self.enabled,
        }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
    enabled: bool,
}

impl<S, B, R> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = Infallible;
    type Future = BoxFuture<Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !self.enabled {
            return Box::pin(self.inner.call(request));
        }
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let peer = request
            .extensions()
            .get::<ClientConnection>()
            .map(|connection| connection.remote.to_string())
            .unwrap_or_default();
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|id| id.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let answered = self.inner.call(request);
        Box::pin(async move {
            let response = answered.await?;
            let user = response
                .extensions()
                .get::<Handled>()
                .and_then(|handled| handled.user.as_deref())
                .unwrap_or("-");
            tracing::info!(
                target: "registryd::access",
                %peer,
                %method,
                path,
                status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                %request_id,
                %user,
                "request"
            );
            Ok(response)
        })
    }
}

// ---- metrics -----------------------------------------------------------------------------------

/// Counts requests, their time to a response head and the bytes in and out, through the
/// [`metrics`] facade (see the constants of this module). The metrics are registered with the
/// recorder installed when the first layer is made (and each label set when first seen):
/// install a recorder before.
#[derive(Clone, Copy, Debug)]
pub struct MetricsLayer {
    /// Whether requests are recorded; when not, the layer only passes them through.
    pub enabled: bool,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics {
            inner,
            handles: self.enabled.then(Handles::get),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct Metrics<S> {
    inner: S,
    /// `None` when the layer is disabled.
    handles: Option<&'static Handles>,
}

/// The routes [`Handled::route`] names.
const ROUTES: [&str; 8] = [
    "base",
    "catalog",
    "tags",
    "manifests",
    "blobs",
    "uploads",
    "referrers",
    "unknown",
];

/// The statuses the API answers with, each with its label.
const STATUSES: [(u16, &str); 19] = [
    (200, "200"),
    (201, "201"),
    (202, "202"),
    (204, "204"),
    (206, "206"),
    (304, "304"),
    (307, "307"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (408, "408"),
    (413, "413"),
    (414, "414"),
    (416, "416"),
    (429, "429"),
    (500, "500"),
    (503, "503"),
];

/// The metrics' handles, for the whole process (a metric's handle is the same for every layer
/// over one recorder). Each is registered the first time it is used: looking a metric up by
/// name and labels costs far more than recording to it, and a handle read from a
/// [`OnceLock`] costs no write to memory that other threads share.
#[derive(Debug)]
struct Handles {
    received: metrics::Counter,
    sent: metrics::Counter,
    /// One for each route and method, in the order of [`ROUTES`] and [`METHODS`].
    slots: Vec<Slot>,
}

/// The handles of one route and method.
#[derive(Debug, Default)]
struct Slot {
    duration: OnceLock<metrics::Histogram>,
    /// The request counters, by status in the order of [`STATUSES`].
    requests: [OnceLock<metrics::Counter>; STATUSES.len()],
}

impl Handles {
    fn get() -> &'static Handles {
        static HANDLES: OnceLock<Handles> = OnceLock::new();
        HANDLES.get_or_init(|| Handles {
            received: metrics::counter!(RECEIVED_BYTES),
            sent: metrics::counter!(SENT_BYTES),
            slots: (0..ROUTES.len() * METHODS.len())
                .map(|_| Slot::default())
                .collect(),
        })
    }

    /// Records one answered request.
    fn answered(
        &self,
        route: &'static str,
        method: &'static str,
        status: StatusCode,
        seconds: f64,
    ) {
        let duration =
            || metrics::histogram!(REQUEST_DURATION, "route" => route, "method" => method);
        let requests = |status: metrics::SharedString| metrics::counter!(REQUESTS, "route" => route, "method" => method, "status" => status);
        // A route, method or status the API does not answer with is looked up each time.
        let slot = ROUTES
            .iter()
            .position(|known| *known == route)
            .zip(METHODS.iter().position(|known| *known == method))
            .and_then(|(route, method)| self.slots.get(route * METHODS.len() + method));
        match slot {
            Some(slot) => slot.duration.get_or_init(duration).record(seconds),
            None => duration().record(seconds),
        }
        let known = STATUSES
            .iter()
            .zip(slot.map(|slot| &slot.requests).into_iter().flatten())
            .find(|((code, _), _)| *code == status.as_u16());
        match known {
            Some(((_, label), counter)) => counter
                .get_or_init(|| requests(metrics::SharedString::const_str(label)))
                .increment(1),
            None => requests(status.as_str().to_owned().into()).increment(1),
        }
    }
}

impl<S, B> Service<Request<B>> for Metrics<S>
where
    S: Service<Request<Counted<B>>, Response = Response<ResponseBody>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<Response<ResponseBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(handles) = self.handles else {
            let request = request.map(|body| Counted {
                inner: body,
                counter: None,
            });
            return Box::pin(self.inner.call(request));
        };
        let started = Instant::now();
        let method = method_label(request.method());
        let request = request.map(|body| Counted {
            inner: body,
            counter: Some(&handles.received),
        });
        let answered = self.inner.call(request);
        Box::pin(async move {
            let response = answered.await?;
            let route = response
                .extensions()
                .get::<Handled>()
                .map_or("unknown", |handled| handled.route);
            handles.answered(
                route,
                method,
                response.status(),
                started.elapsed().as_secs_f64(),
            );
            Ok(response.map(|body| {
                http_body_util::BodyExt::boxed_unsync(Counted {
                    inner: body,
                    counter: Some(&handles.sent),
                })
            }))
        })
    }
}

/// A body whose data bytes are added to a counter as they pass.
#[derive(Debug)]
pub struct Counted<B> {
    inner: B,
    /// `None` when bytes are not counted.
    counter: Option<&'static metrics::Counter>,
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Some(counter) = self.counter
        {
            counter.increment(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The methods as labels, `other` for those the API does not answer.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "other",
];

/// The method as a label (one of [`METHODS`]).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
