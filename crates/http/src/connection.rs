//! What the server knows about the connection a request came on, handed to the service as a
//! request extension.

use std::net::SocketAddr;

/// The connection a request came on, which the server puts in the request's extensions: the
/// client's address (events' `request.addr`) and whether it spoke TLS (the scheme of events'
/// URLs). A request without it is recorded with no address, as plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConnection {
    /// The client's address.
    pub remote: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}
