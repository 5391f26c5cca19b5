//! The pull-through cache end to end: a registryd configured with `proxy` in front of a local
//! upstream registryd (htpasswd, or token auth with its own token server) on 127.0.0.1 fetches
//! what it lacks, keeps it, serves it while the upstream is down or busy, and refuses pushes to
//! what it mirrors.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{Api, sha256};
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::{Service, service_fn};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use registry::Registry;
use registry::config::Config;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;
/// A path, and what opens the way to the second half of its body.
type Gate = (String, oneshot::Receiver<()>);

const USER: &str = "mirror";
/// How long a test waits for what must happen before it fails.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
const PASSWORD: &str = "s3cret-upstream";

// ---- the upstream -------------------------------------------------------------------------------

/// A registryd on 127.0.0.1 that the tests can count requests of, make fail, or stop.
struct Upstream {
    address: SocketAddr,
    /// `METHOD /path` of every request, in order.
    requests: Arc<Mutex<Vec<String>>>,
    /// When not 0, every request is answered with this status instead.
    failing: Arc<AtomicU16>,
    /// A path whose body is answered with other bytes of the same length.
    corrupt: Arc<Mutex<Option<String>>>,
    /// A path whose body is answered in two halves, the second once the receiver fires.
    gate: Arc<Mutex<Option<Gate>>>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    _root: TempDir,
}

impl Upstream {
    /// A registryd with `auth` (a YAML `auth:` section, or empty) over a fresh directory.
    async fn start(auth: &str) -> Upstream {
        let root = TempDir::new().expect("temporary directory");
        let yaml = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n{auth}",
            root.path().join("data").display()
        );
        let config = Config::from_yaml(&yaml, [])
            .expect("upstream config")
            .config;
        let api = Registry::from_config(&config).expect("upstream").api();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let address = listener.local_addr().expect("address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(AtomicU16::new(0));
        let corrupt = Arc::new(Mutex::new(None::<String>));
        let gate = Arc::new(Mutex::new(None));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (seen, fail, spoil, gated) = (
            requests.clone(),
            failing.clone(),
            corrupt.clone(),
            gate.clone(),
        );
        let served = tokio::spawn(async move {
            // Dropped with the loop: stopping closes every open connection too.
            let mut connections = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => return,
                };
                let (api, seen, fail, spoil, gated) = (
                    api.clone(),
                    seen.clone(),
                    fail.clone(),
                    spoil.clone(),
                    gated.clone(),
                );
                let service = service_fn(move |request: Request<Incoming>| {
                    let (api, fail, spoil, gated) =
                        (api.clone(), fail.clone(), spoil.clone(), gated.clone());
                    let line = format!("{} {}", request.method(), request.uri().path());
                    seen.lock().expect("requests").push(line);
                    async move {
                        let failing = fail.load(Ordering::SeqCst);
                        if failing != 0 {
                            let status = StatusCode::from_u16(failing).expect("status");
                            return Ok::<_, std::convert::Infallible>(answer(status, Bytes::new()));
                        }
                        let path = request.uri().path().to_owned();
                        let response = api.call(request).await.expect("infallible");
                        let spoiled = spoil.lock().expect("corrupt").as_deref() == Some(&path);
                        if spoiled {
                            let (parts, body) = response.into_parts();
                            let bytes = body.collect().await.expect("body").to_bytes();
                            let mut wrong = bytes.to_vec();
                            if let Some(first) = wrong.first_mut() {
                                *first ^= 0xff;
                            }
                            return Ok(Response::from_parts(parts, full(wrong.into())));
                        }
                        let gate = {
                            let mut gated = gated.lock().expect("gate");
                            match gated.take() {
                                Some((gated_path, gate)) if gated_path == path => Some(gate),
                                other => {
                                    *gated = other;
                                    None
                                }
                            }
                        };
                        if let Some(gate) = gate {
                            let (parts, body) = response.into_parts();
                            let mut first = body.collect().await.expect("body").to_bytes();
                            let second = first.split_off(first.len() / 2);
                            let halves = futures_util::stream::iter([Ok(Frame::data(first))])
                                .chain(futures_util::stream::once(async move {
                                    let _ = gate.await;
                                    Ok(Frame::data(second))
                                }));
                            return Ok(Response::from_parts(
                                parts,
                                StreamBody::new(halves).boxed_unsync(),
                            ));
                        }
                        Ok(response)
                    }
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            address,
            requests,
            failing,
            corrupt,
            gate,
            stop: Some(stop),
            served: Some(served),
            _root: root,
        }
    }

    /// An upstream that wants `USER` and `PASSWORD` (Basic, htpasswd).
    async fn with_htpasswd() -> (Upstream, TempDir) {
        let files = TempDir::new().expect("temporary directory");
        let htpasswd = files.path().join("htpasswd");
        let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
        std::fs::write(&htpasswd, format!("{USER}:{hash}\n")).expect("write htpasswd");
        let auth = format!(
            "auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
            htpasswd.display()
        );
        (Upstream::start(&auth).await, files)
    }

    /// An htpasswd upstream holding the image `repository:tag` made from `seed`.
    async fn holding(repository: &str, tag: &str, seed: &str) -> (Upstream, TempDir, Image) {
        let (upstream, files) = Upstream::with_htpasswd().await;
        let image = push(&upstream.pusher(), repository, tag, seed).await;
        (upstream, files, image)
    }

    /// A client that pushes to the upstream as `USER`.
    fn pusher(&self) -> Api {
        Api::with_basic(self.address, USER, PASSWORD)
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The requests whose `METHOD /path` starts with `prefix`.
    fn count(&self, prefix: &str) -> usize {
        let requests = self.requests.lock().expect("requests");
        requests
            .iter()
            .filter(|line| line.starts_with(prefix))
            .count()
    }

    fn fail_with(&self, status: u16) {
        self.failing.store(status, Ordering::SeqCst);
    }

    /// Answers `path` once in two halves: the second only after the returned sender fires.
    fn hold_second_half(&self, path: &str) -> oneshot::Sender<()> {
        let (open, gate) = oneshot::channel();
        *self.gate.lock().expect("gate") = Some((path.to_owned(), gate));
        open
    }

    fn corrupt(&self, path: &str) {
        *self.corrupt.lock().expect("corrupt") = Some(path.to_owned());
    }

    /// Stops listening and closes every connection: the upstream is down.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.expect("upstream stopped");
        }
    }
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn answer(status: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response
}

// ---- the mirror ---------------------------------------------------------------------------------

/// A registryd with `proxy` (a YAML `proxy:` section) over a fresh directory, served on
/// 127.0.0.1 until dropped.
struct Mirror {
    api: Api,
    registry: Registry,
    root: TempDir,
    _stop: oneshot::Sender<()>,
}

impl Mirror {
    async fn start(proxy: &str) -> Mirror {
        let root = TempDir::new().expect("temporary directory");
        let yaml = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n{proxy}",
            root.path().display()
        );
        let config = Config::from_yaml(&yaml, []).expect("mirror config").config;
        let registry = Registry::from_config(&config).expect("mirror");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mirror");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = registry.clone();
        tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .expect("mirror served");
        });
        Mirror {
            api: Api::new(address),
            registry,
            root,
            _stop: stop,
        }
    }

    /// A mirror of `upstream` for every repository, with the test's credentials.
    async fn of(upstream: &Upstream) -> Mirror {
        Mirror::start(&format!(
            "proxy:\n  remoteurl: {}\n  username: {USER}\n  password: {PASSWORD}\n",
            upstream.url()
        ))
        .await
    }

    async fn get(&self, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
        self.api
            .send(
                Method::GET,
                path,
                &[("accept", "application/vnd.oci.image.manifest.v1+json")],
                Bytes::new(),
            )
            .await
    }
}

/// The image `push_image` pushed: its manifest, config and layer digests.
struct Image {
    manifest_digest: String,
    manifest: Vec<u8>,
    config_digest: String,
    layer_digest: String,
}

async fn push(api: &Api, repository: &str, tag: &str, seed: &str) -> Image {
    let (manifest_digest, manifest, layer_digest) = api.push_image(repository, tag, seed).await;
    let parsed: Value = serde_json::from_slice(&manifest).expect("manifest");
    let config_digest = parsed["config"]["digest"]
        .as_str()
        .expect("config digest")
        .to_owned();
    Image {
        manifest_digest,
        manifest,
        config_digest,
        layer_digest,
    }
}

/// Pulls `repository:tag` through `mirror` as a client does: the manifest, then each blob;
/// asserts every byte is the image's.
async fn pull(mirror: &Mirror, repository: &str, tag: &str, image: &Image) {
    let (status, headers, body) = mirror
        .get(&format!("/v2/{repository}/manifests/{tag}"))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "manifest {repository}:{tag}: {body:?}"
    );
    assert_eq!(body.as_ref(), image.manifest.as_slice());
    assert_eq!(
        headers["docker-content-digest"].to_str().expect("digest"),
        image.manifest_digest
    );
    for digest in [&image.config_digest, &image.layer_digest] {
        let (status, _, body) = mirror
            .get(&format!("/v2/{repository}/blobs/{digest}"))
            .await;
        assert_eq!(status, StatusCode::OK, "blob {digest}: {body:?}");
        assert_eq!(&sha256(&body), digest);
    }
}

// ---- the tests ----------------------------------------------------------------------------------

#[tokio::test]
async fn an_image_is_fetched_from_an_htpasswd_upstream_once_then_served_while_it_is_down() {
    let (mut upstream, _files) = Upstream::with_htpasswd().await;
    let image = push(&upstream.pusher(), "library/busybox", "latest", "busybox").await;
    let mirror = Mirror::of(&upstream).await;

    pull(&mirror, "library/busybox", "latest", &image).await;
    pull(&mirror, "library/busybox", "latest", &image).await;
    // Blobs and the manifest by digest were fetched once; the tag is checked on every pull.
    for digest in [&image.config_digest, &image.layer_digest] {
        assert_eq!(
            upstream.count(&format!("GET /v2/library/busybox/blobs/{digest}")),
            1,
            "{digest} fetched once: {:?}",
            upstream.requests
        );
    }
    assert_eq!(
        upstream.count("GET /v2/library/busybox/manifests/latest"),
        1
    );
    assert_eq!(
        upstream.count("HEAD /v2/library/busybox/manifests/latest"),
        1
    );

    upstream.stop().await;
    pull(&mirror, "library/busybox", "latest", &image).await;
    let (status, _, body) = mirror
        .get(&format!(
            "/v2/library/busybox/manifests/{}",
            image.manifest_digest
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_ref(), image.manifest.as_slice());
    // What was never fetched is an upstream failure, not a 404.
    let (status, _, body) = mirror.get("/v2/library/busybox/manifests/other").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body:?}");
    let error: Value = serde_json::from_slice(&body).expect("error JSON");
    assert_eq!(error["errors"][0]["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn a_busy_or_failing_upstream_leaves_cached_tags_served_and_says_so_for_the_rest() {
    let (upstream, _files, image) = Upstream::holding("team/app", "v1", "app").await;
    let mirror = Mirror::of(&upstream).await;
    pull(&mirror, "team/app", "v1", &image).await;

    for status in [429, 503] {
        upstream.fail_with(status);
        pull(&mirror, "team/app", "v1", &image).await;
    }
    upstream.fail_with(429);
    let (status, _, body) = mirror.get("/v2/team/app/manifests/v2").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body:?}");
    let error: Value = serde_json::from_slice(&body).expect("error JSON");
    assert_eq!(error["errors"][0]["code"], "TOOMANYREQUESTS");
}

#[tokio::test]
async fn a_tag_moved_upstream_is_followed_and_unknown_content_is_404() {
    let (upstream, _files) = Upstream::with_htpasswd().await;
    let pusher = upstream.pusher();
    let first = push(&pusher, "team/app", "stable", "first").await;
    let mirror = Mirror::of(&upstream).await;
    pull(&mirror, "team/app", "stable", &first).await;

    let second = push(&pusher, "team/app", "stable", "second").await;
    pull(&mirror, "team/app", "stable", &second).await;

    let (status, _, body) = mirror.get("/v2/team/app/manifests/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error: Value = serde_json::from_slice(&body).expect("error JSON");
    assert_eq!(error["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let absent = sha256(b"never pushed");
    let (status, _, _) = mirror.get(&format!("/v2/team/app/blobs/{absent}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, body) = mirror.get("/v2/team/app/tags/list").await;
    assert_eq!(status, StatusCode::OK);
    let tags: Value = serde_json::from_slice(&body).expect("tags JSON");
    assert_eq!(tags["tags"], json!(["stable"]));
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_is_never_kept_or_delivered_whole() {
    let (upstream, _files, image) = Upstream::holding("team/app", "v1", "app").await;
    let mirror = Mirror::of(&upstream).await;
    let path = format!("/v2/team/app/blobs/{}", image.layer_digest);
    upstream.corrupt(&path);

    // The client gets an error (a cut connection), never the wrong bytes in full.
    let answer = mirror
        .api
        .try_send(Method::GET, &path, &[], Bytes::new())
        .await;
    assert!(
        !matches!(&answer, Ok((status, _, _)) if status.is_success()),
        "the corrupt blob was delivered: {answer:?}"
    );
    // Nothing was linked: once the upstream is fixed, the right bytes arrive.
    *upstream.corrupt.lock().expect("corrupt") = None;
    pull(&mirror, "team/app", "v1", &image).await;
}

#[tokio::test]
async fn a_blob_streams_to_its_first_client_before_the_upstream_has_sent_all_of_it() {
    let (upstream, _files) = Upstream::with_htpasswd().await;
    let pusher = upstream.pusher();
    let blob: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = pusher.push_blob("team/big", &blob).await;
    let mirror = Mirror::of(&upstream).await;
    let path = format!("/v2/team/big/blobs/{digest}");
    let open = upstream.hold_second_half(&path);

    // Half the blob is all the upstream sends until the gate opens: most of it must reach the
    // client before then (a mirror that waited for the whole blob would never answer).
    let (mut body, mut received) = tokio::time::timeout(PATIENCE, async {
        let response = mirror.api.open(&path).await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut received = Vec::new();
        while received.len() < blob.len() / 4 {
            let frame = body.frame().await.expect("a frame").expect("data");
            if let Ok(data) = frame.into_data() {
                received.extend_from_slice(&data);
            }
        }
        (body, received)
    })
    .await
    .expect("the first half streamed before the upstream sent the rest");
    let _ = open.send(());
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("data").into_data() {
            received.extend_from_slice(&data);
        }
    }
    assert_eq!(sha256(&received), digest);
    // And it was kept: the next pull does not ask the upstream.
    let (status, _, again) = mirror.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&again), digest);
    assert_eq!(upstream.count(&format!("GET {path}")), 1);
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_make_one_upstream_request_per_blob_and_manifest() {
    let (upstream, _files, image) = Upstream::holding("library/busybox", "latest", "busybox").await;
    let mirror = Arc::new(Mirror::of(&upstream).await);
    let before = upstream.requests.lock().expect("requests").len();
    let mut pulls = JoinSet::new();
    for _ in 0..32 {
        let mirror = Arc::clone(&mirror);
        let image = Image {
            manifest_digest: image.manifest_digest.clone(),
            manifest: image.manifest.clone(),
            config_digest: image.config_digest.clone(),
            layer_digest: image.layer_digest.clone(),
        };
        pulls.spawn(async move { pull(&mirror, "library/busybox", "latest", &image).await });
    }
    while let Some(pulled) = pulls.join_next().await {
        pulled.expect("pull");
    }
    let requests = upstream.requests.lock().expect("requests")[before..].to_vec();
    // The tag is fetched once and each blob once: nothing else.
    assert_eq!(requests.len(), 3, "{requests:?}");
}

#[tokio::test]
async fn a_blob_cached_for_one_repository_is_linked_into_another_after_a_head_upstream() {
    let (upstream, _files) = Upstream::with_htpasswd().await;
    let pusher = upstream.pusher();
    // The same seed: the same config and layer in two repositories.
    let first = push(&pusher, "team/one", "v1", "shared").await;
    let second = push(&pusher, "team/two", "v1", "shared").await;
    let mirror = Mirror::of(&upstream).await;
    pull(&mirror, "team/one", "v1", &first).await;
    pull(&mirror, "team/two", "v1", &second).await;
    for digest in [&second.config_digest, &second.layer_digest] {
        assert_eq!(
            upstream.count(&format!("GET /v2/team/two/blobs/{digest}")),
            0
        );
        assert_eq!(
            upstream.count(&format!("HEAD /v2/team/two/blobs/{digest}")),
            1
        );
    }
    // A repository the upstream does not have the blob in does not get it from the cache.
    let (status, _, _) = mirror
        .get(&format!("/v2/team/three/blobs/{}", first.layer_digest))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mirrored_prefixes_refuse_pushes_and_the_rest_is_an_ordinary_registry() {
    let (upstream, _files, image) = Upstream::holding("library/busybox", "1.36", "busybox").await;
    let mirror = Mirror::start(&format!(
        "proxy:\n  upstreams:\n    - prefix: docker.io\n      remoteurl: {}\n      username: {USER}\n      password: {PASSWORD}\n",
        upstream.url()
    ))
    .await;
    pull(&mirror, "docker.io/library/busybox", "1.36", &image).await;

    let (status, _, body) = mirror
        .api
        .send(
            Method::POST,
            "/v2/docker.io/library/busybox/blobs/uploads/",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body:?}");
    let error: Value = serde_json::from_slice(&body).expect("error JSON");
    assert_eq!(error["errors"][0]["code"], "UNSUPPORTED");

    let local = push(&mirror.api, "team/app", "v1", "local").await;
    pull(&mirror, "team/app", "v1", &local).await;
    assert_eq!(
        upstream.count("GET /v2/team/"),
        0,
        "local repositories stay local"
    );
}

/// Whether the mirror's storage holds the data of blob `digest`.
fn stored(mirror: &Mirror, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    mirror
        .root
        .path()
        .join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
        .exists()
}

#[tokio::test]
async fn past_its_size_bound_the_mirror_evicts_the_least_recently_pulled_image() {
    let (upstream, _files) = Upstream::with_htpasswd().await;
    let pusher = upstream.pusher();
    let mut images = Vec::new();
    for name in ["alpha", "bravo", "charlie"] {
        images.push(push(&pusher, &format!("team/{name}"), "v1", name).await);
    }
    let mirror = Mirror::of(&upstream).await;
    let mut sizes = Vec::new();
    for (name, image) in ["alpha", "bravo", "charlie"].iter().zip(&images) {
        pull(&mirror, &format!("team/{name}"), "v1", image).await;
        let mut size = image.manifest.len() as u64;
        for digest in [&image.config_digest, &image.layer_digest] {
            let (_, _, body) = mirror.get(&format!("/v2/team/{name}/blobs/{digest}")).await;
            size += body.len() as u64;
        }
        sizes.push(size);
    }
    // alpha is pulled again: bravo is now the least recently pulled.
    pull(&mirror, "team/alpha", "v1", &images[0]).await;

    let total: u64 = sizes.iter().sum();
    let bound = registry::proxy::CacheBound {
        // Over the bound by less than an image; nine tenths of it leaves room for two.
        max_bytes: total - sizes[1] / 2,
        interval: std::time::Duration::from_secs(60),
        collection: registry::content::GcOptions {
            grace_period: std::time::Duration::ZERO,
            ..registry::content::GcOptions::default()
        },
    };
    assert!((total - sizes[1]) <= bound.max_bytes / 10 * 9, "{sizes:?}");
    let report = mirror
        .registry
        .mirror()
        .expect("a mirror")
        .make_room(&bound)
        .await
        .expect("room made");
    assert_eq!(report.bytes_before, total);
    assert_eq!(report.manifests_evicted, 1, "{report:?}");
    for (index, image) in images.iter().enumerate() {
        for digest in [
            &image.manifest_digest,
            &image.config_digest,
            &image.layer_digest,
        ] {
            assert_eq!(
                stored(&mirror, digest),
                index != 1,
                "image {index}: {digest}"
            );
        }
    }
    // Under the bound now: nothing more is evicted.
    let again = mirror
        .registry
        .mirror()
        .expect("a mirror")
        .make_room(&bound)
        .await
        .expect("room made");
    assert_eq!(again.manifests_evicted, 0);

    // An evicted image is fetched again when pulled.
    pull(&mirror, "team/bravo", "v1", &images[1]).await;
    assert_eq!(
        upstream.count(&format!(
            "GET /v2/team/bravo/blobs/{}",
            images[1].layer_digest
        )),
        2
    );
}

// ---- token auth ---------------------------------------------------------------------------------

/// A Docker token server on 127.0.0.1 that issues tokens to `USER` for any repository scope,
/// signed with a key a registryd trusts through a JWKS file.
struct TokenServer {
    address: SocketAddr,
    encoding: EncodingKey,
    /// The scopes of every token issued.
    issued: Arc<Mutex<Vec<String>>>,
    jwks: String,
}

impl TokenServer {
    async fn start() -> TokenServer {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).expect("key");
        let key_for_tests = encoding.clone();
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("jwk");
        jwk.common.key_id = Some("test-key".into());
        let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("jwks");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind token server");
        let address = listener.local_addr().expect("address");
        let issued = Arc::new(Mutex::new(Vec::new()));
        let log = issued.clone();
        let expected = format!(
            "Basic {}",
            base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (encoding, log, expected) = (encoding.clone(), log.clone(), expected.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let authorized = request
                        .headers()
                        .get("authorization")
                        .is_some_and(|value| value.as_bytes() == expected.as_bytes());
                    let scope = request
                        .uri()
                        .query()
                        .unwrap_or_default()
                        .split('&')
                        .find_map(|pair| pair.strip_prefix("scope="))
                        .map(percent_decode)
                        .unwrap_or_default();
                    let response = if authorized {
                        log.lock().expect("issued").push(scope.clone());
                        let token = sign(&encoding, &scope);
                        let body = json!({"token": token, "expires_in": 300}).to_string();
                        answer(StatusCode::OK, body.into())
                    } else {
                        answer(StatusCode::UNAUTHORIZED, Bytes::new())
                    };
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TokenServer {
            address,
            encoding: key_for_tests,
            issued,
            jwks,
        }
    }

    /// A token for `scope`, as the server issues them.
    fn token(&self, scope: &str) -> String {
        sign(&self.encoding, scope)
    }
}

/// A token granting pull and push on the repository of `scope` (`repository:NAME:...`).
fn sign(encoding: &EncodingKey, scope: &str) -> String {
    let name = scope.split(':').nth(1).unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = json!({
        "iss": "test-issuer",
        "sub": USER,
        "aud": "test-registry",
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now - 10,
        "jti": format!("{now}-{name}"),
        "access": [{"type": "repository", "name": name, "actions": ["pull", "push"]}],
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("test-key".into());
    jsonwebtoken::encode(&header, &claims, encoding).expect("token")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = text.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).expect("UTF-8")
}

#[tokio::test]
async fn the_docker_token_flow_of_the_upstream_is_followed_and_its_tokens_reused() {
    let tokens = TokenServer::start().await;
    let files = TempDir::new().expect("temporary directory");
    let jwks = files.path().join("jwks.json");
    std::fs::write(&jwks, &tokens.jwks).expect("write jwks");
    let upstream = Upstream::start(&format!(
        "auth:\n  token:\n    realm: http://{}/token\n    service: test-registry\n    issuer: test-issuer\n    jwks: {}\n",
        tokens.address,
        jwks.display()
    ))
    .await;
    let pusher = Api::with_authorization(
        upstream.address,
        &format!(
            "Bearer {}",
            tokens.token("repository:library/alpine:pull,push")
        ),
    );
    let image = push(&pusher, "library/alpine", "3", "alpine").await;
    let mirror = Mirror::of(&upstream).await;
    pull(&mirror, "library/alpine", "3", &image).await;
    pull(&mirror, "library/alpine", "3", &image).await;
    let issued = tokens.issued.lock().expect("issued").clone();
    assert_eq!(
        issued,
        vec!["repository:library/alpine:pull".to_owned()],
        "one token, asked with the mirror's credentials, reused for every request"
    );
}
