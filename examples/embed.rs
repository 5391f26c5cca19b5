//! Embedding the registry in an existing hyper service, beside the service's own routes.
//!
//! The application below answers `/healthz` itself and hands everything else to the registry's
//! HTTP API, which keeps its content in memory. It then acts as its own client: it pushes a blob
//! and a manifest through the API it serves, reads them back, and exits.
//!
//! Run it with `cargo run -p registry --example embed`.
//!
//! With axum the mounting is one line: `Router::new().route("/healthz", get(health))
//! .fallback_service(registry.service())`: the service is a `tower_service::Service`, with
//! request ids, the access log and metrics around the API.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use registry::Registry;
use registry::http_api::layers::ObservedService;
use registry::http_api::{RegistryService, ResponseBody};
use registry::storage::InMemoryDriver;
use tokio::net::TcpListener;
use tower_service::Service as _;

/// The application's own routes, with the registry mounted for the rest.
async fn app(
    mut registry: ObservedService<RegistryService>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    if request.uri().path() == "/healthz" {
        let body = Full::new(Bytes::from_static(b"ok\n"))
            .map_err(|never| match never {})
            .boxed_unsync();
        return Ok(Response::new(body));
    }
    registry.call(request).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let service = registry.service();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let app = hyper::service::service_fn(move |request| app(service.clone(), request));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), app)
                    .await;
            });
        }
    });
    println!("application with an embedded registry on http://{address}");

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let call = |method: Method, path: String, content_type: Option<&'static str>, body: Bytes| {
        let client = client.clone();
        async move {
            let mut request = Request::builder()
                .method(method)
                .uri(format!("http://{address}{path}"));
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = client.request(request.body(Full::new(body))?).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error>>((status, headers, body))
        }
    };

    let (status, _, body) = call(Method::GET, "/healthz".into(), None, Bytes::new()).await?;
    expect(
        status == StatusCode::OK && body.as_ref() == b"ok\n",
        "own route /healthz",
    )?;
    let (status, _, _) = call(Method::GET, "/v2/".into(), None, Bytes::new()).await?;
    expect(status == StatusCode::OK, "registry route /v2/")?;

    let config = Bytes::from_static(b"{}");
    let config_digest = registry::model::Digest::sha256(&config);
    let (status, _, _) = call(
        Method::POST,
        format!("/v2/demo/app/blobs/uploads/?digest={config_digest}"),
        None,
        config.clone(),
    )
    .await?;
    expect(status == StatusCode::CREATED, "blob pushed")?;

    let manifest = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config_digest}","size":2}},"layers":[]}}"#
    ));
    let (status, headers, _) = call(
        Method::PUT,
        "/v2/demo/app/manifests/v1".into(),
        Some("application/vnd.oci.image.manifest.v1+json"),
        manifest.clone(),
    )
    .await?;
    expect(status == StatusCode::CREATED, "manifest pushed")?;
    let digest = headers
        .get("docker-content-digest")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();

    let (status, _, body) = call(
        Method::GET,
        "/v2/demo/app/manifests/v1".into(),
        None,
        Bytes::new(),
    )
    .await?;
    expect(
        status == StatusCode::OK && body == manifest,
        "manifest pulled back byte for byte",
    )?;
    let (_, _, body) = call(Method::GET, "/v2/_catalog".into(), None, Bytes::new()).await?;
    println!("catalog: {}", String::from_utf8_lossy(&body));
    println!("pushed and pulled demo/app:v1 ({digest}) through the embedded registry");
    Ok(())
}

fn expect(condition: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if condition {
        println!("ok: {what}");
        Ok(())
    } else {
        Err(format!("failed: {what}").into())
    }
}
