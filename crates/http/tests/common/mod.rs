//! The harness of the HTTP-level tests: the real [`RegistryService`] served on a real TCP socket on
//! 127.0.0.1, a real HTTP client (hyper-util's legacy client) and a raw-socket client for requests
//! no well-behaved client would send.
//!
//! Every reply is checked for `Docker-Distribution-Api-Version: registry/2.0`, which the spec's
//! clients look for on every response, errors included.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use registry_content::{ContentOptions, ContentStore};
use registry_http::{HttpOptions, RegistryService};
use registry_storage::{FilesystemDriver, InMemoryDriver, StorageDriver};
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RequestBody = BoxBody<Bytes, BoxError>;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The tag grammar, as error messages about a bad tag quote it.
pub(crate) const TAG_GRAMMAR: &str = "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}";

/// `sha256:<hex>` of `data`, computed independently of the code under test.
pub(crate) fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// `sha512:<hex>` of `data`.
pub(crate) fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// `len` bytes of deterministic, non-repeating-looking content, different for each `seed`.
pub(crate) fn content(seed: u8, len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_u32 ^ u32::from(seed).wrapping_mul(0x0100_0193);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// A running registry: the service on a listener bound to 127.0.0.1:0, with a client for it.
/// Dropping it stops accepting and closes its connections.
pub(crate) struct Registry {
    addr: SocketAddr,
    client: Client<HttpConnector, RequestBody>,
    server: JoinHandle<()>,
    /// How many requests the service has answered, and a signal each time one more is.
    answered: Arc<(AtomicUsize, Notify)>,
    root: Option<PathBuf>,
    _temp: Option<Arc<tempfile::TempDir>>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Content options with deletes on.
pub(crate) fn deletes_enabled() -> ContentOptions {
    ContentOptions {
        delete_enabled: true,
        ..ContentOptions::default()
    }
}

impl Registry {
    /// A registry on the filesystem driver in a fresh temporary directory, deletes disabled.
    pub(crate) async fn filesystem() -> Registry {
        Registry::filesystem_with(ContentOptions::default()).await
    }

    /// A registry on the filesystem driver in a fresh temporary directory.
    pub(crate) async fn filesystem_with(options: ContentOptions) -> Registry {
        let temp = Arc::new(tempfile::tempdir().expect("create temp dir"));
        let mut registry = Registry::filesystem_at(temp.path(), options).await;
        registry._temp = Some(temp);
        registry
    }

    /// A registry on the filesystem driver rooted at `root`, which the caller owns.
    pub(crate) async fn filesystem_at(root: &Path, options: ContentOptions) -> Registry {
        let driver = FilesystemDriver::new(root).expect("filesystem driver");
        let mut registry = Registry::serve(Arc::new(driver), options).await;
        registry.root = Some(root.to_owned());
        registry
    }

    /// A registry on the in-memory driver, deletes disabled.
    pub(crate) async fn in_memory() -> Registry {
        Registry::in_memory_with(ContentOptions::default()).await
    }

    /// A registry on the in-memory driver.
    pub(crate) async fn in_memory_with(options: ContentOptions) -> Registry {
        Registry::serve(Arc::new(InMemoryDriver::new()), options).await
    }

    /// A registry on the in-memory driver presenting itself as `http` says.
    pub(crate) async fn in_memory_with_http(http: HttpOptions) -> Registry {
        let content = ContentStore::new(Arc::new(InMemoryDriver::new()), ContentOptions::default());
        Registry::serve_service(RegistryService::new(content, http)).await
    }

    /// A registry on the filesystem driver in a fresh temporary directory, deletes enabled,
    /// presenting itself as `http` says.
    pub(crate) async fn filesystem_with_http(http: HttpOptions) -> Registry {
        let temp = Arc::new(tempfile::tempdir().expect("create temp dir"));
        let driver = FilesystemDriver::new(temp.path()).expect("filesystem driver");
        let content = ContentStore::new(Arc::new(driver), deletes_enabled());
        let mut registry = Registry::serve_service(RegistryService::new(content, http)).await;
        registry.root = Some(temp.path().to_owned());
        registry._temp = Some(temp);
        registry
    }

    /// A registry over `driver` (a fault-injecting wrapper, say).
    pub(crate) async fn serve(driver: Arc<dyn StorageDriver>, options: ContentOptions) -> Registry {
        let content = ContentStore::new(driver, options);
        Registry::serve_service(RegistryService::new(content, HttpOptions::default())).await
    }

    async fn serve_service(service: RegistryService) -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let answered = Arc::new((AtomicUsize::new(0), Notify::new()));
        let counting = Arc::clone(&answered);
        let server = tokio::spawn(async move {
            // Owned by the accept loop, so aborting the loop closes every connection too.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                let counting = Arc::clone(&counting);
                connections.spawn(async move {
                    let counted = hyper::service::service_fn(move |request| {
                        let (service, counting) = (service.clone(), Arc::clone(&counting));
                        async move {
                            let response = service.handle(request).await;
                            counting.0.fetch_add(1, Ordering::SeqCst);
                            counting.1.notify_waiters();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    // A client that goes away mid-request is an expected error here.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), counted)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        let client = Client::builder(TokioExecutor::new()).build_http();
        Registry {
            addr,
            client,
            server,
            answered,
            root: None,
            _temp: None,
        }
    }

    /// How many requests the service has answered so far (its handler has returned, whether or
    /// not the response reached the client).
    pub(crate) fn answered(&self) -> usize {
        self.answered.0.load(Ordering::SeqCst)
    }

    /// Waits until the service has answered `count` requests in all: a test that cut a request
    /// off waits for its handler to finish this way.
    pub(crate) async fn wait_until_answered(&self, count: usize) {
        loop {
            let answered = self.answered.1.notified();
            if self.answered() >= count {
                return;
            }
            answered.await;
        }
    }

    /// The address the registry listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The absolute URL of `path` on this registry, as `Location` headers give it.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The filesystem root, for a registry on the filesystem driver.
    pub(crate) fn root(&self) -> &Path {
        self.root.as_deref().expect("a filesystem registry")
    }

    /// Sends a request with a whole body.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let body = Full::new(body.into())
            .map_err(|never| match never {})
            .boxed();
        self.send_body(method, path, headers, body).await
    }

    /// Sends a request whose body is streamed in `chunks` (chunked transfer encoding: the
    /// server does not know the length in advance).
    pub(crate) async fn send_streamed(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        chunks: Vec<Vec<u8>>,
    ) -> Reply {
        let frames = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok::<_, BoxError>(Frame::data(Bytes::from(chunk)))),
        );
        self.send_body(method, path, headers, StreamBody::new(frames).boxed())
            .await
    }

    async fn send_body(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: RequestBody,
    ) -> Reply {
        // A Location the registry answered with may be absolute already.
        let uri = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("http://{}{path}", self.addr)
        };
        let mut request = Request::builder().method(method.clone()).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).expect("valid request");
        let response = self
            .client
            .request(request)
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error:?}"));
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: reading the body: {error:?}"))
            .to_bytes();
        Reply::checked(
            format!("{method} {path}"),
            parts.status,
            parts.headers,
            body,
        )
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub(crate) async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers, Bytes::new()).await
    }

    pub(crate) async fn head(&self, path: &str) -> Reply {
        self.send(Method::HEAD, path, &[], Bytes::new()).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, &[], Bytes::new()).await
    }

    /// Sends `request` (a whole HTTP/1.1 request, head and body) as bytes on a fresh TCP
    /// connection, for targets an HTTP client library would normalise or refuse.
    pub(crate) async fn raw(&self, request: &[u8]) -> Reply {
        let what = String::from_utf8_lossy(request.split(|&b| b == b'\r').next().unwrap_or(b""))
            .into_owned();
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(request).await.expect("write request");
        let mut received = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
            .await
            .unwrap_or_else(|_| panic!("{what}: no complete answer"))
            .expect("read response");
        parse_raw_response(&what, &received)
    }

    /// `method target` with no body, sent raw (see [`Registry::raw`]).
    pub(crate) async fn raw_request(&self, method: &str, target: &str) -> Reply {
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        self.raw(request.as_bytes()).await
    }

    /// `method target` with `body` and a `Content-Type`, sent raw.
    pub(crate) async fn raw_request_with_body(
        &self,
        method: &str,
        target: &str,
        content_type: &str,
        body: &[u8],
    ) -> Reply {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.raw(&request).await
    }

    // --- Pushing content -------------------------------------------------------------------

    /// Pushes `data` to `repo` in one `POST ?digest=`; returns its sha256 digest.
    pub(crate) async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let reply = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                &[("content-type", "application/octet-stream")],
                data.to_vec(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "push blob: {reply:?}");
        digest
    }

    /// Starts an upload session in `repo` and returns its `Location`.
    pub(crate) async fn start_upload(&self, repo: &str) -> String {
        let reply = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "start upload: {reply:?}"
        );
        reply.header("location").to_owned()
    }

    /// Sends the chunk that starts at `start` to the upload at `location`.
    pub(crate) async fn patch_chunk(&self, location: &str, start: usize, chunk: &[u8]) -> Reply {
        let range = format!("{start}-{}", start + chunk.len() - 1);
        self.send(
            Method::PATCH,
            location,
            &[
                ("content-type", "application/octet-stream"),
                ("content-range", &range),
            ],
            chunk.to_vec(),
        )
        .await
    }

    /// Completes the upload at `location` with `digest` and a final `body` (possibly empty).
    pub(crate) async fn complete_upload(&self, location: &str, digest: &str, body: &[u8]) -> Reply {
        self.send(
            Method::PUT,
            &with_query(location, &format!("digest={digest}")),
            &[("content-type", "application/octet-stream")],
            body.to_vec(),
        )
        .await
    }

    /// Pushes `bytes` as a manifest of `media_type` to `/v2/<repo>/manifests/<reference>`.
    pub(crate) async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Reply {
        self.send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", media_type)],
            bytes.to_vec(),
        )
        .await
    }

    /// Like [`Registry::put_manifest`], asserting a 201; returns the manifest's digest.
    pub(crate) async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let reply = self.put_manifest(repo, reference, media_type, bytes).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "push manifest: {reply:?}"
        );
        reply.header("docker-content-digest").to_owned()
    }

    /// Pushes a small image (a config and one layer, both new blobs made from `seed`) tagged
    /// `tag` to `repo`; returns the manifest's bytes and digest.
    pub(crate) async fn push_image(&self, repo: &str, tag: &str, seed: u8) -> (Vec<u8>, String) {
        let config = self.push_blob(repo, &config_blob(seed)).await;
        let layer_data = content(seed, 300);
        let layer = self.push_blob(repo, &layer_data).await;
        let manifest = oci_manifest(
            (OCI_CONFIG, &config, config_blob(seed).len()),
            &[(OCI_LAYER, &layer, layer_data.len())],
        );
        let digest = self.push_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        (manifest, digest)
    }
}

/// `location` with `query` appended, whether or not it already has a query string.
pub(crate) fn with_query(location: &str, query: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}{query}")
}

/// A small image config, different for each `seed`.
pub(crate) fn config_blob(seed: u8) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Env": [format!("SEED={seed}")]},
    }))
    .expect("json")
}

/// A descriptor object.
pub(crate) fn descriptor(media_type: &str, digest: &str, size: usize) -> Value {
    json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// An OCI image manifest over `config` and `layers`, each `(media type, digest, size)`.
pub(crate) fn oci_manifest(config: (&str, &str, usize), layers: &[(&str, &str, usize)]) -> Vec<u8> {
    manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config.0, config.1, config.2),
        "layers": layers
            .iter()
            .map(|(media_type, digest, size)| descriptor(media_type, digest, *size))
            .collect::<Vec<_>>(),
    }))
}

/// An OCI image index over the manifests `(media type, digest, size)`.
pub(crate) fn oci_index(manifests: &[(&str, &str, usize)]) -> Vec<u8> {
    manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests
            .iter()
            .map(|(media_type, digest, size)| {
                let mut d = descriptor(media_type, digest, *size);
                d["platform"] = json!({"architecture": "amd64", "os": "linux"});
                d
            })
            .collect::<Vec<_>>(),
    }))
}

/// A manifest as a client might write it: pretty-printed, so the bytes differ from any
/// re-serialization and byte-for-byte storage is visible.
pub(crate) fn manifest_json(value: Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(&value).expect("json");
    bytes.push(b'\n');
    bytes
}

/// A response, read in full.
pub(crate) struct Reply {
    pub(crate) what: String,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {:?} {}",
            self.what,
            self.status,
            self.headers,
            String::from_utf8_lossy(&self.body[..self.body.len().min(2000)])
        )
    }
}

impl Reply {
    /// The path (and query) of the `Location` header: registryd answers with absolute URLs, as
    /// registry:2 does.
    pub(crate) fn location_path(&self) -> &str {
        let location = self.header("location");
        match location.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
            None => location,
        }
    }

    fn checked(what: String, status: StatusCode, headers: HeaderMap, body: Bytes) -> Reply {
        let reply = Reply {
            what,
            status,
            headers,
            body,
        };
        assert_eq!(
            reply.header_opt("docker-distribution-api-version"),
            Some("registry/2.0"),
            "every response carries the API version header: {reply:?}"
        );
        reply
    }

    /// The value of header `name`; panics when it is absent.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.header_opt(name)
            .unwrap_or_else(|| panic!("no {name} header: {self:?}"))
    }

    /// The value of header `name`, if present.
    pub(crate) fn header_opt(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("header value is text"))
    }

    /// Every value of header `name`.
    pub(crate) fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value: &HeaderValue| value.to_str().expect("header value is text"))
            .collect()
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {self:?}"))
    }

    /// Asserts this is an error response: `status`, a JSON body in the spec's envelope whose
    /// first error has `code`. Returns the error's message.
    pub(crate) fn assert_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header_opt("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let json = self.json();
        let errors = json["errors"].as_array().expect("an errors array");
        assert!(!errors.is_empty(), "{self:?}");
        assert_eq!(errors[0]["code"], code, "{self:?}");
        errors[0]["message"].as_str().expect("a message").to_owned()
    }

    /// Asserts the status and that there is no body.
    pub(crate) fn assert_empty(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(self.body.is_empty(), "expected no body: {self:?}");
    }
}

/// Parses a whole HTTP/1.1 response received on a raw connection.
fn parse_raw_response(what: &str, received: &[u8]) -> Reply {
    let split = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{what}: no response head in {received:?}"));
    let head = std::str::from_utf8(&received[..split]).expect("response head is text");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{what}: bad status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("a header line");
        headers.append(
            header::HeaderName::try_from(name.trim()).expect("header name"),
            HeaderValue::try_from(value.trim()).expect("header value"),
        );
    }
    let rest = &received[split + 4..];
    let body = match headers.get(header::CONTENT_LENGTH) {
        Some(length) => {
            let length: usize = length
                .to_str()
                .ok()
                .and_then(|l| l.parse().ok())
                .expect("numeric Content-Length");
            Bytes::copy_from_slice(&rest[..length.min(rest.len())])
        }
        None => Bytes::copy_from_slice(rest),
    };
    let status = StatusCode::from_u16(status).expect("status code");
    // hyper answers requests it cannot parse at all itself, without the service's headers.
    if status == StatusCode::BAD_REQUEST && headers.get("docker-distribution-api-version").is_none()
    {
        return Reply {
            what: what.to_owned(),
            status,
            headers,
            body,
        };
    }
    Reply::checked(what.to_owned(), status, headers, body)
}

/// Every file below `dir`, as paths relative to it.
pub(crate) fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir") {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(dir).expect("below dir").to_owned());
            }
        }
    }
    files.sort();
    files
}
