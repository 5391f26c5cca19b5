//! registryd started by systemd with `Type=notify` (deploy/systemd/registryd.service): it says
//! `READY=1` once it listens and `STOPPING=1` when a stop begins.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{REGISTRYD, Server, exchange};

#[test]
fn registryd_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let server = Server::new(dir.path());
    let mut child = Command::new(REGISTRYD)
        .arg("serve")
        .arg(&server.config)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn registryd");

    let mut message = [0u8; 64];
    let length = socket.recv(&mut message).expect("READY=1 within 30 s");
    assert_eq!(&message[..length], b"READY=1");
    // Ready means listening.
    let reply = exchange(server.address, "GET", "/v2/", &[], b"").expect("GET /v2/");
    assert_eq!(reply.status, 200);

    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let length = socket.recv(&mut message).expect("STOPPING=1 within 30 s");
    assert_eq!(&message[..length], b"STOPPING=1");
    let status = child.wait().expect("registryd exits");
    assert!(status.success(), "{status}");
}
