//! The client side of the OCI blob protocol, streaming in both directions:
//! `POST /v2/<name>/blobs/uploads/` (202 + `Location`), then either `PATCH` chunks with
//! `Content-Range` and a closing `PUT ?digest=`, or one streamed `PUT ?digest=`; and
//! `GET /v2/<name>/blobs/<digest>` hashed as it arrives; small blobs and manifests from memory;
//! optionally with an `Authorization` header (Basic credentials) on every request.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Either, Full};
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::blob::{BlobBody, BlobSource, MemoryBlob, SharedBlob};

type RequestBody = Either<Full<Bytes>, BlobBody>;

fn empty() -> RequestBody {
    Either::Left(Full::new(Bytes::new()))
}

/// How long one step (a transfer of a whole blob) took.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    /// Bytes moved.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Transfer {
    /// Throughput in MB/s (10^6 bytes per second).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A registry client for blob transfers against one base URL (`http://127.0.0.1:PORT`).
#[derive(Clone, Debug)]
pub struct RegistryClient {
    base: String,
    http: Client<HttpConnector, RequestBody>,
    authorization: Option<HeaderValue>,
}

impl RegistryClient {
    /// A client for the registry at `base` (`http://host:port`, no trailing slash).
    pub fn new(base: &str) -> Self {
        RegistryClient {
            base: base.trim_end_matches('/').to_string(),
            http: Client::builder(TokioExecutor::new()).build_http(),
            authorization: None,
        }
    }

    /// The same client, sending `Authorization: Basic ...` for `user` and `password` with every
    /// request.
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Self {
        self.authorization = Some(basic_authorization(user, password));
        self
    }

    /// `GET /v2/`: the status the registry answers with (200, or 401 when it wants
    /// credentials this client does not have).
    pub async fn ping(&self) -> Result<StatusCode, Error> {
        let url = format!("{}/v2/", self.base);
        let response = self.send(Method::GET, &url, &[], empty()).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }

    /// `HEAD /v2/<name>/manifests/<reference>` accepting `accept`: the `Docker-Content-Digest`
    /// the registry answers with; fails unless the status is 200.
    pub async fn head_manifest(
        &self,
        name: &str,
        reference: &str,
        accept: &str,
    ) -> Result<String, Error> {
        let url = format!("{}/v2/{name}/manifests/{reference}", self.base);
        let headers = [(header::ACCEPT, accept.to_string())];
        let response = self.send(Method::HEAD, &url, &headers, empty()).await?;
        let response = expect(response, StatusCode::OK, "HEAD manifest").await?;
        let digest = response
            .headers()
            .get("docker-content-digest")
            .ok_or("HEAD manifest: no Docker-Content-Digest header")?
            .to_str()?
            .to_string();
        Ok(digest)
    }

    /// Uploads a small blob held in memory: `POST`, then one `PUT ?digest=` with the bytes.
    /// Returns its digest.
    pub async fn upload_bytes(&self, name: &str, data: Bytes) -> Result<String, Error> {
        let digest = sha256_digest(&data);
        let location = self.start_upload(name).await?;
        let url = with_digest(&location, &digest);
        let headers = [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, data.len().to_string()),
        ];
        let body = Either::Left(Full::new(data));
        let response = self.send(Method::PUT, &url, &headers, body).await?;
        expect(response, StatusCode::CREATED, "PUT blob").await?;
        Ok(digest)
    }

    /// `PUT /v2/<name>/manifests/<reference>` with `Content-Type: media_type`. Returns the
    /// manifest's digest.
    pub async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        media_type: &str,
        manifest: Bytes,
    ) -> Result<String, Error> {
        let digest = sha256_digest(&manifest);
        let url = format!("{}/v2/{name}/manifests/{reference}", self.base);
        let headers = [
            (header::CONTENT_TYPE, media_type.to_string()),
            (header::CONTENT_LENGTH, manifest.len().to_string()),
        ];
        let body = Either::Left(Full::new(manifest));
        let response = self.send(Method::PUT, &url, &headers, body).await?;
        expect(response, StatusCode::CREATED, "PUT manifest").await?;
        Ok(digest)
    }

    /// `POST /v2/<name>/blobs/uploads/`: opens an upload session, returns its `Location`.
    pub async fn start_upload(&self, name: &str) -> Result<String, Error> {
        let url = format!("{}/v2/{name}/blobs/uploads/", self.base);
        let response = self.send(Method::POST, &url, &[], empty()).await?;
        let response = expect(response, StatusCode::ACCEPTED, "POST upload").await?;
        self.location(&response)
    }

    /// Uploads the whole of `blob` as `PATCH` requests of `chunk` bytes with `Content-Range`,
    /// then `PUT ?digest=` with an empty body. The digest is computed while sending.
    pub async fn upload_chunked(
        &self,
        name: &str,
        blob: &SharedBlob,
        chunk: u64,
    ) -> Result<(String, Transfer), Error> {
        let started = Instant::now();
        let size = lock(blob).size();
        let mut location = self.start_upload(name).await?;
        let mut offset = 0u64;
        while offset < size {
            let len = chunk.min(size - offset);
            let range = format!("{offset}-{}", offset + len - 1);
            let headers = [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_LENGTH, len.to_string()),
                (header::CONTENT_RANGE, range),
            ];
            let body = Either::Right(BlobBody::new(blob, len));
            let response = self.send(Method::PATCH, &location, &headers, body).await?;
            let response = expect(response, StatusCode::ACCEPTED, "PATCH chunk").await?;
            location = self.location(&response)?;
            offset += len;
        }
        let digest = lock(blob)
            .digest()
            .ok_or("the blob was not fully produced")?;
        let url = with_digest(&location, &digest);
        let headers = [(header::CONTENT_LENGTH, "0".to_string())];
        let response = self.send(Method::PUT, &url, &headers, empty()).await?;
        expect(response, StatusCode::CREATED, "PUT closing chunked upload").await?;
        Ok((
            digest,
            Transfer {
                bytes: size,
                elapsed: started.elapsed(),
            },
        ))
    }

    /// Uploads the whole of `blob` as one streamed `PUT ?digest=` after the `POST`. The digest
    /// must be known beforehand (it goes in the URL); the one computed while sending must match.
    pub async fn upload_monolithic(
        &self,
        name: &str,
        blob: &SharedBlob,
        digest: &str,
    ) -> Result<Transfer, Error> {
        let started = Instant::now();
        let size = lock(blob).size();
        let location = self.start_upload(name).await?;
        let url = with_digest(&location, digest);
        let headers = [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ];
        let body = Either::Right(BlobBody::new(blob, size));
        let response = self.send(Method::PUT, &url, &headers, body).await?;
        expect(response, StatusCode::CREATED, "monolithic PUT").await?;
        let sent = lock(blob).digest();
        if sent.as_deref() != Some(digest) {
            return Err(format!("sent {sent:?}, but announced {digest}").into());
        }
        Ok(Transfer {
            bytes: size,
            elapsed: started.elapsed(),
        })
    }

    /// Uploads a blob held in memory (its digest known): `POST`, then one `PUT ?digest=` whose
    /// body is the blob's chunks as they are (no copy, no hashing on the client).
    pub async fn upload_memory_monolithic(
        &self,
        name: &str,
        blob: &MemoryBlob,
    ) -> Result<Transfer, Error> {
        let started = Instant::now();
        let location = self.start_upload(name).await?;
        let url = with_digest(&location, blob.digest());
        let headers = [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, blob.size().to_string()),
        ];
        let body = Either::Right(blob.whole());
        let response = self.send(Method::PUT, &url, &headers, body).await?;
        expect(response, StatusCode::CREATED, "monolithic PUT").await?;
        Ok(Transfer {
            bytes: blob.size(),
            elapsed: started.elapsed(),
        })
    }

    /// Uploads a blob held in memory as `PATCH`es of `chunk` bytes with `Content-Range`, then
    /// `PUT ?digest=` with an empty body.
    pub async fn upload_memory_chunked(
        &self,
        name: &str,
        blob: &MemoryBlob,
        chunk: u64,
    ) -> Result<Transfer, Error> {
        if chunk == 0 {
            return Err("the chunk size must be positive".into());
        }
        let started = Instant::now();
        let size = blob.size();
        let mut location = self.start_upload(name).await?;
        let mut offset = 0u64;
        while offset < size {
            let len = chunk.min(size - offset);
            let range = format!("{offset}-{}", offset + len - 1);
            let headers = [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_LENGTH, len.to_string()),
                (header::CONTENT_RANGE, range),
            ];
            let body = Either::Right(blob.body(offset, len));
            let response = self.send(Method::PATCH, &location, &headers, body).await?;
            let response = expect(response, StatusCode::ACCEPTED, "PATCH chunk").await?;
            location = self.location(&response)?;
            offset += len;
        }
        let url = with_digest(&location, blob.digest());
        let headers = [(header::CONTENT_LENGTH, "0".to_string())];
        let response = self.send(Method::PUT, &url, &headers, empty()).await?;
        expect(response, StatusCode::CREATED, "PUT closing chunked upload").await?;
        Ok(Transfer {
            bytes: size,
            elapsed: started.elapsed(),
        })
    }

    /// `GET /v2/<name>/blobs/<digest>`, streamed and counted but not hashed (so the client's
    /// hashing does not bound the figure); fails unless exactly `size` bytes arrive.
    pub async fn download_counted(
        &self,
        name: &str,
        digest: &str,
        size: u64,
    ) -> Result<Transfer, Error> {
        let started = Instant::now();
        let url = format!("{}/v2/{name}/blobs/{digest}", self.base);
        let response = self.send(Method::GET, &url, &[], empty()).await?;
        let mut body = expect(response, StatusCode::OK, "GET blob")
            .await?
            .into_body();
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                received += data.len() as u64;
            }
        }
        if received != size {
            return Err(format!("GET returned {received} bytes, want {size}").into());
        }
        Ok(Transfer {
            bytes: received,
            elapsed: started.elapsed(),
        })
    }

    /// `GET /v2/<name>/blobs/<digest>` with `Range: bytes=offset-(offset+len-1)`: the bytes of
    /// the `206 Partial Content` answer, and the time to the last of them.
    pub async fn download_range(
        &self,
        name: &str,
        digest: &str,
        offset: u64,
        len: u64,
    ) -> Result<(Bytes, Duration), Error> {
        let started = Instant::now();
        let url = format!("{}/v2/{name}/blobs/{digest}", self.base);
        let headers = [(
            header::RANGE,
            format!("bytes={offset}-{}", offset + len.max(1) - 1),
        )];
        let response = self.send(Method::GET, &url, &headers, empty()).await?;
        let response = expect(response, StatusCode::PARTIAL_CONTENT, "GET blob range").await?;
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((bytes, started.elapsed()))
    }

    /// `GET /v2/<name>/manifests/<reference>` accepting `accept`: the status and the body.
    pub async fn get_manifest(
        &self,
        name: &str,
        reference: &str,
        accept: &str,
    ) -> Result<(StatusCode, Bytes), Error> {
        let url = format!("{}/v2/{name}/manifests/{reference}", self.base);
        let headers = [(header::ACCEPT, accept.to_string())];
        let response = self.send(Method::GET, &url, &headers, empty()).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// `HEAD path_and_query` (`/v2/<name>/blobs/<digest>`): the status.
    pub async fn head(&self, path_and_query: &str) -> Result<StatusCode, Error> {
        let url = format!("{}{path_and_query}", self.base);
        let response = self.send(Method::HEAD, &url, &[], empty()).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }

    /// `GET path_and_query` (`/v2/_catalog?n=10000`): the status, the `Link` header, the body
    /// and the time to its last byte.
    pub async fn get(
        &self,
        path_and_query: &str,
    ) -> Result<(StatusCode, Option<String>, Bytes, Duration), Error> {
        let started = Instant::now();
        let url = format!("{}{path_and_query}", self.base);
        let response = self.send(Method::GET, &url, &[], empty()).await?;
        let status = response.status();
        let link = response
            .headers()
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, link, body, started.elapsed()))
    }

    /// `GET /v2/<name>/blobs/<digest>`, streamed and hashed; fails unless the bytes match both
    /// `digest` and `size`.
    pub async fn download_verified(
        &self,
        name: &str,
        digest: &str,
        size: u64,
    ) -> Result<Transfer, Error> {
        let started = Instant::now();
        let url = format!("{}/v2/{name}/blobs/{digest}", self.base);
        let response = self.send(Method::GET, &url, &[], empty()).await?;
        let mut body = expect(response, StatusCode::OK, "GET blob")
            .await?
            .into_body();
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                hasher.update(&data);
                received += data.len() as u64;
            }
        }
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        if received != size || got != digest {
            return Err(format!(
                "GET returned {received} bytes with {got}, want {size} bytes with {digest}"
            )
            .into());
        }
        Ok(Transfer {
            bytes: received,
            elapsed: started.elapsed(),
        })
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
        body: RequestBody,
    ) -> Result<Response<hyper::body::Incoming>, Error> {
        let mut request = Request::builder().method(&method).uri(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = request.body(body)?;
        self.http
            .request(request)
            .await
            .map_err(|e| format!("{method} {url}: {e}").into())
    }

    /// The absolute URL of a response's `Location` (registries may answer with a path).
    fn location<B>(&self, response: &Response<B>) -> Result<String, Error> {
        let location = response
            .headers()
            .get(header::LOCATION)
            .ok_or("the response has no Location header")?
            .to_str()?;
        Ok(if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        })
    }
}

fn lock(blob: &SharedBlob) -> std::sync::MutexGuard<'_, BlobSource> {
    blob.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The `Authorization` header value for HTTP Basic credentials: `Basic base64(user:password)`.
pub fn basic_authorization(user: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}").as_bytes());
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .expect("base64 text is a valid header value");
    value.set_sensitive(true);
    value
}

fn with_digest(location: &str, digest: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

/// Passes the response on when it has the `want` status; otherwise reads its body into an error.
async fn expect(
    response: Response<hyper::body::Incoming>,
    want: StatusCode,
    step: &str,
) -> Result<Response<hyper::body::Incoming>, Error> {
    if response.status() == want {
        return Ok(response);
    }
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    Err(format!("{step}: expected {want}, got {status}: {body}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_base64_encoded() {
        assert_eq!(
            basic_authorization("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn digest_is_appended_to_the_upload_location() {
        assert_eq!(
            with_digest("http://h/v2/a/blobs/uploads/1?_state=x", "sha256:00"),
            "http://h/v2/a/blobs/uploads/1?_state=x&digest=sha256:00"
        );
        assert_eq!(
            with_digest("/v2/a/blobs/uploads/1", "sha256:00"),
            "/v2/a/blobs/uploads/1?digest=sha256:00"
        );
    }
}
