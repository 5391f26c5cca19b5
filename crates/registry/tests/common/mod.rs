//! What several integration tests of the facade share: a client of the registry API.

#![allow(dead_code)]

use std::net::SocketAddr;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest as _, Sha256};

/// A client of the registry's API.
pub(crate) struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Sent with every request, when set.
    authorization: Option<String>,
}

impl Api {
    pub(crate) fn new(address: SocketAddr) -> Api {
        Api {
            base: format!("http://{address}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            authorization: None,
        }
    }

    /// A client that sends `authorization` with every request.
    pub(crate) fn with_authorization(address: SocketAddr, authorization: &str) -> Api {
        Api {
            authorization: Some(authorization.to_owned()),
            ..Api::new(address)
        }
    }

    /// A client that sends `user` and `password` with every request (Basic).
    pub(crate) fn with_basic(address: SocketAddr, user: &str, password: &str) -> Api {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Api {
            authorization: Some(format!("Basic {encoded}")),
            ..Api::new(address)
        }
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> (StatusCode, HeaderMap, Bytes) {
        self.try_send(method, path, headers, body)
            .await
            .expect("an answer")
    }

    /// A `GET` of `path`, answered as soon as the headers arrive: the body streams.
    pub(crate) async fn open(&self, path: &str) -> hyper::Response<hyper::body::Incoming> {
        let mut request = Request::builder()
            .uri(format!("{}{path}", self.base))
            .header("user-agent", "registry-test/1.0");
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let request = request.body(Full::new(Bytes::new())).expect("request");
        self.client.request(request).await.expect("response")
    }

    /// [`Api::send`], with a failure to get the whole answer (a connection cut in the middle of
    /// the body, say) as an error.
    pub(crate) async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("user-agent", "registry-test/1.0");
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).expect("request");
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| format!("request: {error}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("body: {error}"))?
            .to_bytes();
        Ok((status, headers, body))
    }

    pub(crate) async fn push_blob(&self, repository: &str, content: &[u8]) -> String {
        let digest = sha256(content);
        let (status, _, _) = self
            .send(
                Method::POST,
                &format!("/v2/{repository}/blobs/uploads/?digest={digest}"),
                &[],
                Bytes::copy_from_slice(content),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "blob push");
        digest
    }

    /// Pushes an image (a config and one layer) tagged `tag`; returns the manifest's digest and
    /// bytes, and the layer's digest.
    pub(crate) async fn push_image(
        &self,
        repository: &str,
        tag: &str,
        seed: &str,
    ) -> (String, Vec<u8>, String) {
        let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
        let layer = format!("layer of {seed}");
        let config_digest = self.push_blob(repository, config.as_bytes()).await;
        let layer_digest = self.push_blob(repository, layer.as_bytes()).await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer.len(),
            }],
        }))
        .expect("manifest");
        let (status, _, _) = self
            .send(
                Method::PUT,
                &format!("/v2/{repository}/manifests/{tag}"),
                &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
                Bytes::from(manifest.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "manifest push");
        (sha256(&manifest), manifest, layer_digest)
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
