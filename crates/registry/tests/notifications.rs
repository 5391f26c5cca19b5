//! Notifications end to end: a registry configured with `notifications.endpoints` sends the events
//! of pushes, pulls, mounts and deletes to a webhook on 127.0.0.1, as registry:2 sends them, and
//! keeps them in its outbox while the webhook is down, across a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use registry::Registry;
use registry::config::Config;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::{Mutex, mpsc, oneshot};

/// How long a test waits for events before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

mod common;

use common::Api;

// ---- the webhook ------------------------------------------------------------------------------

/// One delivery the webhook received.
#[derive(Debug)]
struct Delivery {
    headers: HeaderMap,
    /// The body as received.
    raw: Bytes,
    body: Value,
}

/// A webhook on 127.0.0.1 that records every delivery and answers 200.
struct Webhook {
    address: SocketAddr,
    deliveries: Mutex<mpsc::UnboundedReceiver<Delivery>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Webhook {
    async fn start() -> Webhook {
        Webhook::start_on("127.0.0.1:0".parse().expect("address")).await
    }

    /// On `address`: a webhook that was down comes back where it was.
    async fn start_on(address: SocketAddr) -> Webhook {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("bind webhook");
        let address = listener.local_addr().expect("address");
        let (sender, deliveries) = mpsc::unbounded_channel();
        let (stop, mut stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => return,
                };
                let sender = sender.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let sender = sender.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let bytes = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                            let _ = sender.send(Delivery {
                                headers: parts.headers,
                                raw: bytes,
                                body,
                            });
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Webhook {
            address,
            deliveries: Mutex::new(deliveries),
            stop: Some(stop),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/events", self.address)
    }

    /// Deliveries until `enough` holds for the events received so far; fails after
    /// [`PATIENCE`].
    async fn receive_until(
        &self,
        mut enough: impl FnMut(&[Value]) -> bool,
    ) -> (Vec<Delivery>, Vec<Value>) {
        let deadline = Instant::now() + PATIENCE;
        let mut deliveries = Vec::new();
        let mut events = Vec::new();
        let mut receiver = self.deliveries.lock().await;
        while !enough(&events) {
            let left = deadline.saturating_duration_since(Instant::now());
            let delivery = tokio::time::timeout(left, receiver.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("events still missing after {PATIENCE:?}: got {events:#?}")
                })
                .expect("webhook running");
            // A registry:2 envelope holds its events under `events`, a CloudEvents batch is an
            // array of them, and a structured CloudEvent is one.
            let received = match &delivery.body {
                Value::Array(batch) => batch.clone(),
                event if event.get("specversion").is_some() => vec![event.clone()],
                envelope => envelope["events"].as_array().cloned().unwrap_or_default(),
            };
            events.extend(received);
            deliveries.push(delivery);
        }
        (deliveries, events)
    }

    /// Stops accepting; the port is free again.
    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

// ---- the registry -----------------------------------------------------------------------------

/// A registry over `root` sending to `url`, served on 127.0.0.1 until the returned sender fires.
async fn serve(
    root: &Path,
    url: &str,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    serve_with(root, url, "").await
}

/// [`serve`], with `more_endpoints` (YAML list items indented by four spaces) after the `ci` one.
async fn serve_with(
    root: &Path,
    url: &str,
    more_endpoints: &str,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let yaml = format!(
        "version: 0.1
storage:
  filesystem:
    rootdirectory: {}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
notifications:
  events:
    includereferences: true
  endpoints:
    - name: ci
      url: {url}
      headers:
        Authorization: [Bearer t0ken]
      timeout: 2s
      threshold: 2
      backoff: 20ms
{more_endpoints}",
        root.display()
    );
    let config = Config::from_yaml(&yaml, []).expect("config").config;
    let registry = Registry::from_config(&config).expect("registry");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        registry
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("served");
    });
    (address, stop, task)
}

/// The events matching `action`, `repository` and `digest` (and `tag` when given).
fn matching<'a>(
    events: &'a [Value],
    action: &str,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| {
            event["action"] == action
                && event["target"]["repository"] == repository
                && (digest.is_empty() || event["target"]["digest"] == digest)
                && tag.is_none_or(|tag| event["target"]["tag"] == tag)
        })
        .collect()
}

// ---- the tests --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_mount_and_delete_reach_the_webhook_as_registry2_sends_them() {
    let webhook = Webhook::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    let (address, stop, served) = serve(root.path(), &webhook.url()).await;
    let api = Api::new(address);

    let (manifest_digest, manifest, layer_digest) = api.push_image("app/web", "v1", "one").await;
    let (status, _, _) = api
        .send(
            Method::GET,
            "/v2/app/web/manifests/v1",
            &[("x-request-id", "pull-request-1")],
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api
        .send(
            Method::GET,
            &format!("/v2/app/web/blobs/{layer_digest}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api
        .send(
            Method::POST,
            &format!("/v2/app/copy/blobs/uploads/?mount={layer_digest}&from=app/web"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "mount");
    let (status, _, _) = api
        .send(
            Method::DELETE,
            "/v2/app/web/manifests/v1",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "tag delete");
    let (status, _, _) = api
        .send(
            Method::DELETE,
            &format!("/v2/app/web/manifests/{manifest_digest}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "manifest delete");
    let (status, _, _) = api
        .send(
            Method::DELETE,
            &format!("/v2/app/copy/blobs/{layer_digest}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "blob delete");

    // 2 blob pushes, the manifest push, its pull, the blob pull, the mount, 3 deletes.
    let (deliveries, events) = webhook.receive_until(|events| events.len() >= 9).await;
    assert_eq!(events.len(), 9, "{events:#?}");
    for delivery in &deliveries {
        assert_eq!(
            delivery.headers["content-type"],
            "application/vnd.docker.distribution.events.v1+json"
        );
        assert_eq!(delivery.headers["authorization"], "Bearer t0ken");
    }
    let ids: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|event| event["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 9, "every event has its own id");

    let base = format!("http://{address}");
    let pushed = matching(&events, "push", "app/web", &manifest_digest, Some("v1"));
    assert_eq!(pushed.len(), 1, "{events:#?}");
    let pushed = pushed[0];
    let target = &pushed["target"];
    assert_eq!(
        target["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(target["size"], manifest.len());
    assert_eq!(target["length"], manifest.len());
    assert_eq!(
        target["url"],
        format!("{base}/v2/app/web/manifests/{manifest_digest}")
    );
    assert_eq!(
        target["references"].as_array().map(Vec::len),
        Some(2),
        "config and layer"
    );
    assert_eq!(target["references"][1]["digest"], layer_digest.as_str());
    let request = &pushed["request"];
    assert_eq!(request["method"], "PUT");
    assert_eq!(request["useragent"], "registry-test/1.0");
    assert_eq!(request["host"], address.to_string());
    assert!(
        request["addr"]
            .as_str()
            .is_some_and(|addr| addr.starts_with("127.0.0.1:")),
        "{request}"
    );
    assert_eq!(
        request["id"].as_str().map(str::len),
        Some(36),
        "an id is made"
    );
    assert_eq!(pushed["actor"], serde_json::json!({}), "anonymous");
    assert!(
        pushed["source"]["addr"]
            .as_str()
            .is_some_and(|addr| addr.ends_with(":5000"))
    );
    assert_eq!(
        pushed["source"]["instanceID"].as_str().map(str::len),
        Some(36)
    );
    assert!(
        pushed["timestamp"]
            .as_str()
            .is_some_and(|time| time.ends_with('Z'))
    );

    let pulled = matching(&events, "pull", "app/web", &manifest_digest, Some("v1"));
    assert_eq!(pulled.len(), 1, "{events:#?}");
    assert_eq!(
        pulled[0]["request"]["id"], "pull-request-1",
        "the client's id is kept"
    );
    assert_eq!(pulled[0]["request"]["method"], "GET");

    let blob_pulls = matching(&events, "pull", "app/web", &layer_digest, None);
    assert_eq!(blob_pulls.len(), 1);
    assert_eq!(
        blob_pulls[0]["target"]["mediaType"],
        "application/octet-stream"
    );
    assert_eq!(
        blob_pulls[0]["target"]["url"],
        format!("{base}/v2/app/web/blobs/{layer_digest}")
    );
    assert_eq!(
        matching(&events, "push", "app/web", &layer_digest, None).len(),
        1
    );

    let mounts = matching(&events, "mount", "app/copy", &layer_digest, None);
    assert_eq!(mounts.len(), 1, "{events:#?}");
    assert_eq!(mounts[0]["target"]["fromRepository"], "app/web");

    let tag_deletes = matching(&events, "delete", "app/web", "", Some("v1"));
    assert_eq!(tag_deletes.len(), 1, "{events:#?}");
    assert_eq!(
        tag_deletes[0]["target"],
        serde_json::json!({"repository": "app/web", "tag": "v1"})
    );
    let deletes = matching(&events, "delete", "app/web", &manifest_digest, None);
    assert_eq!(
        deletes
            .iter()
            .map(|event| &event["target"])
            .collect::<Vec<_>>(),
        [&serde_json::json!({"digest": manifest_digest, "repository": "app/web"})]
    );
    assert_eq!(
        matching(&events, "delete", "app/copy", &layer_digest, None).len(),
        1
    );

    let _ = stop.send(());
    served.await.expect("server task");
    webhook.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_in_the_outbox_while_the_webhook_is_down_and_across_a_restart() {
    // A port nothing listens on yet: the webhook is down.
    let down = Webhook::start().await;
    let webhook_address = down.address;
    let url = down.url();
    down.stop();
    let root = tempfile::tempdir().expect("tempdir");

    let (address, stop, served) = serve(root.path(), &url).await;
    let api = Api::new(address);
    let mut pushed = Vec::new();
    for index in 0..3 {
        let tag = format!("v{index}");
        let (digest, _, _) = api
            .push_image("app/batch", &tag, &format!("first {index}"))
            .await;
        pushed.push((digest, tag));
    }
    let _ = stop.send(());
    served.await.expect("server task");

    // Restarted: more pushes while the webhook is still down, then it comes back.
    let (address, stop, served) = serve(root.path(), &url).await;
    let api = Api::new(address);
    for index in 3..5 {
        let tag = format!("v{index}");
        let (digest, _, _) = api
            .push_image("app/batch", &tag, &format!("second {index}"))
            .await;
        pushed.push((digest, tag));
    }
    let webhook = Webhook::start_on(webhook_address).await;
    let all_arrived = |events: &[Value]| {
        pushed.iter().all(|(digest, tag)| {
            !matching(events, "push", "app/batch", digest, Some(tag)).is_empty()
        })
    };
    let (_, events) = webhook.receive_until(all_arrived).await;

    // Duplicates may come (at least once), but only with the same id.
    let mut ids_by_event: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for event in &events {
        let key = format!(
            "{} {} {} {}",
            event["action"],
            event["target"]["digest"],
            event["target"]["tag"],
            event["target"]["repository"]
        );
        ids_by_event
            .entry(key)
            .or_default()
            .insert(event["id"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        ids_by_event.values().all(|ids| ids.len() == 1),
        "one id per event: {ids_by_event:#?}"
    );
    // 5 manifests and 10 blobs pushed.
    assert_eq!(ids_by_event.len(), 15, "{ids_by_event:#?}");

    // Delivered batches are removed from the outbox (just after the webhook answered).
    let outbox = root.path().join("docker/registry/v2/registryd/events/ci");
    let deadline = Instant::now() + PATIENCE;
    let batches = || {
        std::fs::read_dir(&outbox)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| entry.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    };
    while batches() > 0 {
        assert!(
            Instant::now() < deadline,
            "batches left in {}",
            outbox.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    served.await.expect("server task");
    webhook.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_deliveries_come_one_by_one_or_in_signed_batches() {
    let plain = Webhook::start().await;
    let signed = Webhook::start().await;
    let single = Webhook::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    let more = format!(
        "    - name: cloud\n      url: {}\n      format: cloudevents-batch\n      signingsecret: s3cret\n      ignore:\n        actions: [pull]\n    - name: single\n      url: {}\n      format: cloudevents\n",
        signed.url(),
        single.url()
    );
    let (address, stop, served) = serve_with(root.path(), &plain.url(), &more).await;
    let api = Api::new(address);
    let (digest, _, _) = api.push_image("app/cloud", "v1", "cloud").await;

    let (deliveries, events) = signed
        .receive_until(|events| {
            events
                .iter()
                .any(|event| event["type"] == "io.registryd.manifest.pushed")
        })
        .await;
    for delivery in &deliveries {
        assert_eq!(
            delivery.headers["content-type"],
            "application/cloudevents-batch+json"
        );
        // The receiver's check: the HMAC-SHA256 of the bytes received, under the shared secret.
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(b"s3cret").expect("key");
        mac.update(&delivery.raw);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            delivery.headers["x-registry-signature-256"],
            expected.as_str()
        );
    }
    let pushed: Vec<&Value> = events
        .iter()
        .filter(|event| event["type"] == "io.registryd.manifest.pushed")
        .collect();
    assert_eq!(pushed.len(), 1, "{events:#?}");
    assert_eq!(pushed[0]["specversion"], "1.0");
    assert_eq!(pushed[0]["subject"], "app/cloud:v1");
    assert_eq!(pushed[0]["data"]["target"]["digest"], digest.as_str());
    assert!(
        pushed[0]["source"]
            .as_str()
            .is_some_and(|source| source.starts_with("//")),
        "{}",
        pushed[0]
    );

    // Structured mode: one event a request, as one JSON object.
    let (deliveries, events) = single
        .receive_until(|events| {
            events
                .iter()
                .any(|event| event["type"] == "io.registryd.manifest.pushed")
        })
        .await;
    assert_eq!(deliveries.len(), events.len(), "one event a request");
    for delivery in &deliveries {
        assert_eq!(
            delivery.headers["content-type"],
            "application/cloudevents+json"
        );
        assert!(delivery.body.is_object(), "{}", delivery.body);
        assert!(delivery.headers.get("x-registry-signature-256").is_none());
    }

    let _ = stop.send(());
    served.await.expect("server task");
    plain.stop();
    signed.stop();
    single.stop();
}
