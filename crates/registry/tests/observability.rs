//! Metrics, health and readiness: the debug server's metrics parse as Prometheus text and move
//! with requests, a failing storage driver flips `/debug/health` and `GET /v2/` to 503 and back,
//! and readiness follows the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use registry::storage::InMemoryDriver;
use registry::storage::faults::{Fault, FaultyDriver, Operation};
use registry::{Registry, StorageHealthCheck};
use tokio::sync::oneshot;

/// How long a test waits for a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// `registry` served on 127.0.0.1 with its debug server beside it.
struct Served {
    api: SocketAddr,
    debug: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Served {
    async fn start(registry: Registry) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let debug_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let api = listener.local_addr().expect("address");
        let debug = debug_listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let (stop_debug, debug_stopped) = oneshot::channel::<()>();
        let debugged = registry.clone();
        tokio::spawn(async move {
            debugged
                .serve_debug(debug_listener, async {
                    let _ = debug_stopped.await;
                })
                .await;
        });
        tokio::spawn(async move {
            let _ = registry
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
            let _ = stop_debug.send(());
        });
        Served {
            api,
            debug,
            stop: Some(stop),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn request(&self, method: Method, url: String, body: Bytes) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(body))
            .expect("request");
        let response = self.client.request(request).await.expect("response");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn api(&self, method: Method, path: &str, body: Bytes) -> (StatusCode, String) {
        self.request(method, format!("http://{}{path}", self.api), body)
            .await
    }

    async fn debug(&self, path: &str) -> (StatusCode, String) {
        self.request(
            Method::GET,
            format!("http://{}{path}", self.debug),
            Bytes::new(),
        )
        .await
    }

    /// Scrapes and parses the metrics.
    async fn scrape(&self) -> prometheus_parse::Scrape {
        let (status, text) = self.debug("/metrics").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
            .expect("the metrics parse as Prometheus text")
    }

    /// Waits until `check` holds of the debug server's answer at `path`.
    async fn wait_for(&self, path: &str, check: impl Fn(StatusCode, &str) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) = self.debug(path).await;
            if check(status, &body) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} still answers {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The value of the sample `metric` with every label of `labels`, 0 when absent.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .filter(|sample| {
            labels
                .iter()
                .all(|(name, value)| sample.labels.get(name) == Some(*value))
        })
        .map(|sample| match &sample.value {
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => *value,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.last().map_or(0.0, |bucket| bucket.count)
            }
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_with_requests() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .metrics_path(Some("/metrics".to_owned()))
        .build();
    let served = Served::start(registry).await;

    let (status, _) = served.api(Method::GET, "/v2/", Bytes::new()).await;
    assert_eq!(status, StatusCode::OK);
    let before = served.scrape().await;
    let base = [("route", "base"), ("method", "GET"), ("status", "200")];
    let missing = [("route", "manifests"), ("method", "GET"), ("status", "404")];
    let blob = b"a blob to count";
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(blob))
    );
    for _ in 0..3 {
        let (status, _) = served.api(Method::GET, "/v2/", Bytes::new()).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = served
        .api(Method::GET, "/v2/app/manifests/latest", Bytes::new())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = served
        .api(
            Method::POST,
            &format!("/v2/app/blobs/uploads/?digest={digest}"),
            Bytes::from_static(blob),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": blob.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": blob.len()}],
    })
    .to_string();
    let request = Request::put(format!("http://{}/v2/app/manifests/v1", served.api))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(Full::new(Bytes::from(manifest)))
        .expect("request");
    let response = served.client.request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::CREATED);
    for _ in 0..2 {
        let (status, _) = served
            .api(Method::GET, "/v2/app/manifests/v1", Bytes::new())
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let after = served.scrape().await;

    let requests = "registry_http_requests_total";
    assert_eq!(
        sample(&after, requests, &base) - sample(&before, requests, &base),
        3.0
    );
    assert_eq!(
        sample(&after, requests, &missing) - sample(&before, requests, &missing),
        1.0
    );
    let duration = "registry_http_request_duration_seconds_count";
    let base_timing = [("route", "base"), ("method", "GET")];
    assert!(
        sample(&after, duration, &base_timing) - sample(&before, duration, &base_timing) >= 3.0
    );
    let received = "registry_http_received_bytes_total";
    assert!(sample(&after, received, &[]) - sample(&before, received, &[]) >= blob.len() as f64);
    assert!(sample(&after, "registry_http_sent_bytes_total", &[]) > 0.0);
    let writes = [("driver", "inmemory"), ("operation", "writer")];
    assert!(
        sample(
            &after,
            "registry_storage_operation_duration_seconds_count",
            &writes
        ) > sample(
            &before,
            "registry_storage_operation_duration_seconds_count",
            &writes
        ),
        "storage operations are timed"
    );
    let started = "registry_uploads_started_total";
    assert!(sample(&after, started, &[]) - sample(&before, started, &[]) >= 1.0);
    let completed = [("outcome", "completed")];
    let ended = "registry_uploads_ended_total";
    assert!(sample(&after, ended, &completed) - sample(&before, ended, &completed) >= 1.0);
    let manifests = [("cache", "manifests")];
    let lookups = |scrape: &prometheus_parse::Scrape| {
        sample(scrape, "registry_cache_hits_total", &manifests)
            + sample(scrape, "registry_cache_misses_total", &manifests)
    };
    assert!(
        lookups(&after) - lookups(&before) >= 2.0,
        "cache lookups are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_storage_driver_flips_health_and_v2_then_recovers() {
    let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
    let registry = Registry::builder()
        .driver(driver.clone())
        .storage_health_check(Some(StorageHealthCheck {
            interval: Duration::from_millis(20),
            threshold: 2,
        }))
        .build();
    let served = Served::start(registry).await;
    served
        .wait_for("/debug/ready", |status, _| status == StatusCode::OK)
        .await;
    let (status, body) = served.debug("/debug/health").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "{}"));

    driver.inject(Fault::fail(Operation::Stat).repeatedly());
    served
        .wait_for("/debug/health", |status, _| {
            status == StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
    let (_, body) = served.debug("/debug/health").await;
    let report: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        report["storagedriver_inmemory"]
            .as_str()
            .is_some_and(|error| error.contains("injected fault")),
        "{report}"
    );
    let (status, body) = served.api(Method::GET, "/v2/", Bytes::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("UNAVAILABLE") && body.contains("storagedriver_inmemory"),
        "{body}"
    );
    let (status, _) = served.debug("/debug/ready").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready while unhealthy"
    );

    driver.clear();
    served
        .wait_for("/debug/health", |status, _| status == StatusCode::OK)
        .await;
    let (status, _) = served.api(Method::GET, "/v2/", Bytes::new()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_server() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let debugged = registry.clone();
    let debugging = tokio::spawn(async move {
        debugged
            .serve_debug(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let ready = Request::get(format!("http://{address}/debug/ready"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = client.request(ready).await.expect("response");
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not serving yet"
    );
    let _ = stop.send(());
    debugging.await.expect("debug server stops");
}
