//! The debug server (`http.debug`): Prometheus metrics, health and readiness on an address of
//! their own, kept off the registry's port as registry:2 keeps them.
//!
//! | path | answer |
//! |---|---|
//! | `http.debug.prometheus.path` (`/metrics`) | the metrics in Prometheus' text format, when `prometheus.enabled` |
//! | `/debug/health` | 200 `{}` while every health check passes; 503 with `{"<check>": "<error>"}` otherwise |
//! | `/debug/ready` | 200 while the registry serves and is healthy; 503 before, while shutting down, and while a check fails (a Kubernetes readiness probe) |

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use registry_http::Health;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The path of the health report.
pub const HEALTH_PATH: &str = "/debug/health";
/// The path of the readiness probe.
pub const READY_PATH: &str = "/debug/ready";

/// Latency histogram buckets, in seconds: from a cached manifest (well under a millisecond) to a
/// slow blob upload.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// How often the exporter's histograms are compacted.
const UPKEEP: Duration = Duration::from_secs(5);

/// The handle of the process's Prometheus recorder, installed the first time one is asked for.
static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The Prometheus recorder's handle, installing the recorder as the process's `metrics` recorder
/// the first time. `None` when another recorder was installed first (an embedder's): that one
/// gets registryd's metrics instead.
pub(crate) fn prometheus() -> Option<PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = match PrometheusBuilder::new().set_buckets(BUCKETS) {
                Ok(builder) => builder.build_recorder(),
                Err(error) => {
                    tracing::warn!(%error, "the metrics' histogram buckets were refused");
                    PrometheusBuilder::new().build_recorder()
                }
            };
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(handle),
                Err(_) => {
                    tracing::warn!(
                        "another metrics recorder is installed: it gets registryd's metrics, and the debug server serves none"
                    );
                    None
                }
            }
        })
        .clone()
}

/// Serves the debug endpoints on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Option<(String, PrometheusHandle)>,
    health: Arc<Health>,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let stop = CancellationToken::new();
    let _stop_upkeep = stop.clone().drop_guard();
    let mut shutdown = std::pin::pin!(shutdown);
    let metrics = Arc::new(metrics);
    if let Some((_, handle)) = metrics.as_ref() {
        let handle = handle.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(UPKEEP) => handle.run_upkeep(),
                    () = stop.cancelled() => return,
                }
            }
        });
    }
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "debug server: accepting a connection failed");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let metrics = Arc::clone(&metrics);
        let health = Arc::clone(&health);
        let ready = Arc::clone(&ready);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let answer = answer(&request, &metrics, &health, &ready);
                async move { Ok::<_, Infallible>(answer) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer<B>(
    request: &Request<B>,
    metrics: &Option<(String, PrometheusHandle)>,
    health: &Health,
    ready: &AtomicBool,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD\n".to_owned(),
        );
    }
    let path = request.uri().path();
    match metrics {
        Some((metrics_path, handle)) if path == metrics_path => {
            let mut response = text(StatusCode::OK, handle.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return response;
        }
        _ => {}
    }
    match path {
        HEALTH_PATH => {
            let failing = health.failing();
            let status = if failing.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::to_string(&failing).unwrap_or_else(|_| "{}".to_owned());
            let mut response = text(status, body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            response
        }
        READY_PATH => {
            if !ready.load(Ordering::Relaxed) {
                text(StatusCode::SERVICE_UNAVAILABLE, "not serving\n".to_owned())
            } else if !health.is_healthy() {
                text(StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n".to_owned())
            } else {
                text(StatusCode::OK, "ready\n".to_owned())
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
