//! Serving a [`RegistryService`] on a TCP listener: HTTP/1.1 and HTTP/2 on one port, over TLS
//! when configured, explicit protocol limits, and a graceful shutdown that drains in-flight
//! requests.
//!
//! Each accepted connection gets its own task, which peeks at the first byte before anything
//! else reads it: a TLS ClientHello on the plain listener, or a plain HTTP request on the TLS
//! listener, is answered with a clear message instead of an opaque protocol error (a ClientHello
//! is only logged at debug level, once per client address: Docker tries HTTPS before HTTP on
//! every push to an insecure registry, so it is routine). The TLS
//! handshake runs in that task too, under a time limit, so a slow client never holds up the
//! accept loop.

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use registry_http::layers::ObservedService;
use registry_http::{BodyGuard, ClientConnection, RegistryService};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::tls::ReloadableTls;

/// How connections are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may run after shutdown begins (registry:2's
    /// `http.draintimeout`). Then request bodies still arriving are ended, and their handlers get
    /// a few seconds (4) to store what arrived (an upload cut this way stays resumable) before the
    /// remaining connections are closed.
    pub drain_timeout: Duration,
    /// How long a request body may go without data before the request is ended, its upload
    /// keeping what arrived (`http.bodyidletimeout`).
    pub body_idle_timeout: Duration,
    /// The most connections served at once (`http.maxconnections`); further clients wait in the
    /// listen queue.
    pub max_connections: usize,
    /// Whether every request is logged (method, path, status, time) at info level, as
    /// registry:2's access log does (`log.accesslog.disabled` turns it off).
    pub access_log: bool,
    /// How long a client may take to send its first byte and complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
}

/// After the drain timeout, how long handlers of cut requests get to store what they received.
pub(crate) const SAVE_GRACE: Duration = Duration::from_secs(4);

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(30),
            // With SAVE_GRACE, shutdown ends within 25 s: inside Kubernetes' default grace
            // period of 30 s between SIGTERM and SIGKILL.
            drain_timeout: Duration::from_secs(20),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            access_log: true,
            tls_handshake_timeout: Duration::from_secs(10),
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
    service: ObservedService<RegistryService>,
    options: &ServerOptions,
    tls: Option<ReloadableTls>,
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
    let (stopping, stopping_rx) = watch::channel(false);
    let cut_bodies = CancellationToken::new();
    let context = Arc::new(ConnectionContext {
        builder,
        service,
        header_read_timeout: options.header_read_timeout,
        tls_handshake_timeout: options.tls_handshake_timeout,
        tls,
        stopping: stopping_rx,
        bodies: BodyGuard::new(options.body_idle_timeout, cut_bodies.clone()),
        tls_probers: FirstSeen::new(TLS_PROBERS_REMEMBERED),
    });
    let connections = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the limit, stop accepting: new clients wait in the kernel's listen queue rather
        // than each costing a task, a socket and buffers here.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
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
        // Taken here, before the task runs, so that shutdown also waits for connections not yet
        // handed to hyper (those close as soon as `stopping` is set).
        let watcher = graceful.watcher();
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            handle_connection(context, stream, peer, watcher).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let mut drained = std::pin::pin!(graceful.shutdown());
    tokio::select! {
        () = &mut drained => {
            tracing::info!("all connections drained");
            return Ok(());
        }
        () = tokio::time::sleep(options.drain_timeout) => {}
    }
    tracing::warn!(
        timeout = ?options.drain_timeout,
        "drain timeout reached: ending request bodies still arriving (their uploads stay \
         resumable)"
    );
    cut_bodies.cancel();
    tokio::select! {
        () = &mut drained => tracing::info!("all connections drained"),
        () = tokio::time::sleep(SAVE_GRACE) => {
            tracing::warn!("closing the connections still open");
        }
    }
    Ok(())
}

/// What every connection task needs, shared.
struct ConnectionContext {
    builder: auto::Builder<TokioExecutor>,
    service: ObservedService<RegistryService>,
    header_read_timeout: Duration,
    tls_handshake_timeout: Duration,
    tls: Option<ReloadableTls>,
    /// Becomes true when shutdown begins: connections not yet handed to hyper just close.
    stopping: watch::Receiver<bool>,
    /// Ends request bodies that go idle, and all of them once the drain timeout has passed.
    bodies: BodyGuard,
    /// The client addresses whose TLS ClientHello on the plain listener was logged.
    tls_probers: FirstSeen,
}

/// How many client addresses [`FirstSeen`] remembers for the plain listener's ClientHello line.
const TLS_PROBERS_REMEMBERED: usize = 1024;

/// Remembers up to a fixed number of addresses, to do something once per address: when full, it
/// forgets them all and starts again, so memory stays bounded whatever the clients, at the cost
/// of repeating the thing for an address seen before.
struct FirstSeen {
    seen: Mutex<HashSet<IpAddr>>,
    limit: usize,
}

impl FirstSeen {
    fn new(limit: usize) -> FirstSeen {
        FirstSeen {
            seen: Mutex::new(HashSet::new()),
            limit: limit.max(1),
        }
    }

    /// Whether `address` is new (and from now on remembered).
    fn first_time(&self, address: IpAddr) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(&address) {
            return false;
        }
        if seen.len() >= self.limit {
            seen.clear();
        }
        seen.insert(address)
    }
}

/// The first byte of a TLS record carrying a handshake message (a ClientHello, first).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Looks at the connection's first byte to catch a client speaking the wrong protocol, does the
/// TLS handshake when TLS is on, and serves HTTP.
async fn handle_connection(
    context: Arc<ConnectionContext>,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
) {
    let mut stopping = context.stopping.clone();
    let prepared = tokio::select! {
        prepared = prepare_connection(&context, stream, peer) => prepared,
        _ = stopping.wait_for(|stopping| *stopping) => return,
    };
    match prepared {
        Some(Prepared::Plain(stream)) => serve_http(&context, stream, peer, false, watcher).await,
        Some(Prepared::Tls(stream)) => serve_http(&context, *stream, peer, true, watcher).await,
        None => {}
    }
}

enum Prepared {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

async fn prepare_connection(
    context: &ConnectionContext,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<Prepared> {
    let Some(tls) = &context.tls else {
        let first = first_byte(&stream, peer, context.header_read_timeout).await?;
        if first == TLS_HANDSHAKE_RECORD {
            // Docker tries HTTPS first on every push to an insecure registry and then falls back
            // to HTTP: routine, so at debug level and once per client address.
            if context.tls_probers.first_time(peer.ip()) {
                tracing::debug!(
                    "client at {peer} started a TLS handshake but this listener serves plain \
                     HTTP (Docker tries HTTPS before HTTP; logged once per client address); \
                     configure http.tls or use http://"
                );
            }
            return None;
        }
        return Some(Prepared::Plain(stream));
    };
    let deadline = tokio::time::Instant::now() + context.tls_handshake_timeout;
    let first = first_byte(&stream, peer, context.tls_handshake_timeout).await?;
    if first.is_ascii_uppercase() {
        refuse_plain_http(stream, peer).await;
        return None;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(Prepared::Tls(Box::new(stream))),
        Ok(Err(error)) => {
            tracing::info!("TLS handshake with {peer} failed: {error}");
            None
        }
        Err(_) => {
            tracing::info!(
                "TLS handshake with {peer} did not complete within {:?}",
                context.tls_handshake_timeout
            );
            None
        }
    }
}

/// The connection's first byte, left in the socket for whoever reads next; `None` when the
/// client closes or sends nothing in time.
async fn first_byte(stream: &TcpStream, peer: SocketAddr, limit: Duration) -> Option<u8> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(limit, stream.peek(&mut first)).await {
        Ok(Ok(1..)) => Some(first[0]),
        Ok(Ok(0)) => None,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "connection failed before its first byte");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "client sent nothing within {limit:?}");
            None
        }
    }
}

/// Answers a plain HTTP request sent to the TLS listener with a 400 that says what to do, as Go's
/// server (and so registry:2) does, then closes.
async fn refuse_plain_http(mut stream: TcpStream, peer: SocketAddr) {
    const BODY: &str = "this registry serves HTTPS: use https://\n";
    const HEAD_LIMIT: usize = 16 * 1024;
    tracing::warn!(
        "client at {peer} sent plain HTTP but this listener serves HTTPS; answered 400 \
         (the client should use https://)"
    );
    // Read the request head first: closing a socket with unread data resets the connection,
    // and the client could lose the answer.
    let mut head = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut buffer = [0u8; 4096];
        while head.len() < HEAD_LIMIT && !head.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => head.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Let the client read the answer and close first.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

async fn serve_http<S>(
    context: &ConnectionContext,
    stream: S,
    peer: SocketAddr,
    tls: bool,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = context.service.clone();
    let bodies = context.bodies.clone();
    let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut service = service.clone();
        let mut request = request.map(|body| bodies.guard(body));
        request
            .extensions_mut()
            .insert(ClientConnection { remote: peer, tls });
        tower_service::Service::call(&mut service, request)
    });
    let connection = context
        .builder
        .serve_connection_with_upgrades(TokioIo::new(stream), handler)
        .into_owned();
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_says_yes_once_per_address_and_stays_within_its_limit() {
        let seen = FirstSeen::new(2);
        let address = |last: u8| IpAddr::from([192, 0, 2, last]);
        assert!(seen.first_time(address(1)));
        assert!(!seen.first_time(address(1)));
        assert!(seen.first_time(address(2)));
        assert!(!seen.first_time(address(2)));
        // Full: a third address makes it forget the others.
        assert!(seen.first_time(address(3)));
        assert!(seen.seen.lock().map_or(0, |seen| seen.len()) <= 2);
        assert!(seen.first_time(address(1)));
    }
}
