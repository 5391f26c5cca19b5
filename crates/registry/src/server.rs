//! Serving a [`RegistryService`] on a TCP listener: HTTP/1.1 and HTTP/2 on one port, explicit
//! protocol limits, and a graceful shutdown that drains in-flight requests.

use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use http::Request;
use hyper::body::Incoming;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use registry_http::RegistryService;
use tokio::net::TcpListener;

/// How connections are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may run after shutdown begins (registry:2's
    /// `http.draintimeout`); connections still open then are closed.
    pub drain_timeout: Duration,
    /// Whether every request is logged (method, path, status, time) at info level, as
    /// registry:2's access log does (`log.accesslog.disabled` turns it off).
    pub access_log: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(60),
            access_log: true,
        }
    }
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Accepting connections failed in a way that is not about one client.
    #[error("accepting connections failed: {0}")]
    Accept(#[source] std::io::Error),
}

pub(crate) async fn serve(
    service: RegistryService,
    options: &ServerOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_per_connection(&error) => {
                    tracing::debug!(%error, "connection failed before it was accepted");
                    continue;
                }
                Err(error) if is_resource_exhaustion(&error) => {
                    // Out of file descriptors: wait for some to be released instead of spinning.
                    tracing::warn!(%error, "cannot accept connections, retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(error) => return Err(ServeError::Accept(error)),
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let access_log = options.access_log;
        let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
            let service = service.clone();
            async move {
                if !access_log {
                    return Ok::<_, Infallible>(service.handle(request).await);
                }
                let started = Instant::now();
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                let response = service.handle(request).await;
                tracing::info!(
                    target: "registryd::access",
                    %peer,
                    %method,
                    path,
                    status = response.status().as_u16(),
                    elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "request"
                );
                Ok(response)
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), handler)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!(timeout = ?options.drain_timeout, "drain timeout reached, closing remaining connections");
        }
    }
    Ok(())
}

fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

fn is_resource_exhaustion(error: &std::io::Error) -> bool {
    // EMFILE / ENFILE / ENOMEM / ENOBUFS
    matches!(error.raw_os_error(), Some(23 | 24 | 12 | 105))
}
