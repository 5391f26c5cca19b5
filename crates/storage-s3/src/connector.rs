//! The HTTP client object_store talks to the bucket with: hyper-util's client over rustls, trusting
//! the system's certificate authorities. object_store's own client is reqwest, which the
//! workspace keeps out of its library crates.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    HttpResponse, HttpResponseBody, HttpService,
};

/// How long a connection to the bucket's endpoint may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the endpoint may take to start answering a request (the body may stream longer).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

type HttpsClient = Client<hyper_rustls::HttpsConnector<TcpConnector>, HttpRequestBody>;

/// Makes the [`HyperService`] object_store sends its requests through.
#[derive(Debug, Default)]
pub(crate) struct HyperConnector;

impl HttpConnector for HyperConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = https_client().map_err(|error| object_store::Error::Generic {
            store: "S3",
            source: Box::new(error),
        })?;
        Ok(HttpClient::new(HyperService { client }))
    }
}

/// object_store's HTTP service over hyper-util's pooled client.
#[derive(Debug)]
struct HyperService {
    client: HttpsClient,
}

#[async_trait]
impl HttpService for HyperService {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .map_err(|elapsed| HttpError::new(HttpErrorKind::Timeout, elapsed))?
            .map_err(|error| {
                let kind = if error.is_connect() {
                    HttpErrorKind::Connect
                } else {
                    HttpErrorKind::Request
                };
                HttpError::new(kind, error)
            })?;
        let (parts, body) = answer.into_parts();
        let body = body.map_err(|error| {
            let kind = if error.is_timeout() {
                HttpErrorKind::Timeout
            } else {
                HttpErrorKind::Interrupted
            };
            HttpError::new(kind, error)
        });
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

/// A client for `http://` and `https://` endpoints, trusting the system's certificate authorities.
fn https_client() -> Result<HttpsClient, rustls::Error> {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "system certificate authorities could not all be loaded");
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(native.certs);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    tcp.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}
