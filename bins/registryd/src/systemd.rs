//! systemd's readiness protocol (`Type=notify`): a datagram `READY=1` to the socket named by
//! `NOTIFY_SOCKET` once the registry listens, `STOPPING=1` when it begins to stop. Without the
//! variable (not started by systemd) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Tells the service manager `state` (`READY=1`, `STOPPING=1`), if one asked to be told. A
/// failure is logged: the service manager then times the start out, which says more than a
/// registry that refuses to run.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let address = match path.strip_prefix('@') {
        // An abstract socket (Linux): systemd's default.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => SocketAddr::from_pathname(&path),
    };
    let sent = address.and_then(|address| {
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(state.as_bytes(), &address)
    });
    if let Err(error) = sent {
        tracing::warn!(%error, socket = path, "cannot tell systemd {state}");
    }
}
