//! The binary itself: its command line, its configuration errors, and a graceful shutdown that
//! lets a request in flight finish. No external clients needed; every server is on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const REGISTRYD: &str = env!("CARGO_BIN_EXE_registryd");

fn registryd() -> Command {
    let mut command = Command::new(REGISTRYD);
    // The tests' own environment must not configure the servers they start.
    for (key, _) in std::env::vars() {
        if key.starts_with("REGISTRY_") {
            command.env_remove(key);
        }
    }
    command
}

fn output(command: &mut Command) -> Output {
    command.output().expect("run registryd")
}

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// A running registryd, killed on drop.
struct Running {
    child: Child,
    address: SocketAddr,
}

impl Running {
    fn start(root: &Path) -> Running {
        let address = free_address();
        let config = root.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                root.join("data").display()
            ),
        )
        .expect("config");
        let child = registryd()
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn registryd");
        let running = Running { child, address };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(address).is_err() {
            assert!(
                Instant::now() < deadline,
                "registryd did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        running
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns whether it exited successfully.
    fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "registryd did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request and reads the status line and headers of the response.
fn read_response_head(stream: &mut TcpStream) -> (u16, Vec<String>) {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        if line.trim().is_empty() {
            break;
        }
        headers.push(line.trim().to_ascii_lowercase());
    }
    (status, headers)
}

fn request(address: SocketAddr, head: &str) -> (u16, Vec<String>) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.write_all(head.as_bytes()).expect("send");
    read_response_head(&mut stream)
}

#[test]
fn version_flag_prints_the_version() {
    let out = output(registryd().arg("--version"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[test]
fn wrong_config_value_names_the_key_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        "version: 0.1\nstorage:\n  delete:\n    enabled: maybe\n",
    )
    .expect("config");
    let out = output(registryd().arg("serve").arg(&config));
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("storage.delete.enabled"), "{text}");
}

#[test]
fn missing_config_file_is_reported() {
    let out = output(
        registryd()
            .arg("serve")
            .arg("/nonexistent/registryd/config.yml"),
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("/nonexistent/registryd/config.yml"), "{text}");
}

#[test]
fn configured_auth_is_refused_rather_than_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = output(
        registryd()
            .env("REGISTRY_HTTP_ADDR", free_address().to_string())
            .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", dir.path())
            .env("REGISTRY_AUTH", "htpasswd")
            .env("REGISTRY_AUTH_HTPASSWD_REALM", "realm")
            .env("REGISTRY_AUTH_HTPASSWD_PATH", dir.path().join("htpasswd")),
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("auth"), "{text}");
}

#[test]
fn environment_configures_address_and_storage_without_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let address = free_address();
    let mut child = registryd()
        .env("REGISTRY_HTTP_ADDR", address.to_string())
        .env(
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            dir.path().join("store"),
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(address).is_err() {
        assert!(
            Instant::now() < deadline,
            "registryd did not listen on {address}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, headers) = request(
        address,
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let _ = child.kill();
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut log);
    }
    let _ = child.wait();
    assert_eq!(status, 200);
    assert!(headers.contains(&"docker-distribution-api-version: registry/2.0".to_owned()));
    assert!(
        log.contains("store"),
        "the storage location is printed at start: {log}"
    );
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Running::start(dir.path());
    let (status, headers) = request(
        server.address,
        "POST /v2/app/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 202);
    let location = headers
        .iter()
        .find_map(|header| header.strip_prefix("location: "))
        .expect("location")
        .to_owned();

    // Start a PATCH, send half its body, stop the server, then send the rest.
    let mut stream = TcpStream::connect(server.address).expect("connect");
    let body = vec![b'x'; 64 * 1024];
    stream
        .write_all(
            format!(
                "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .expect("head");
    stream
        .write_all(&body[..body.len() / 2])
        .expect("first half");
    std::thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    stream
        .write_all(&body[body.len() / 2..])
        .expect("second half");
    let (status, headers) = read_response_head(&mut stream);
    assert_eq!(status, 202, "the request in flight completed");
    assert!(
        headers.contains(&format!("range: 0-{}", body.len() - 1)),
        "all of it was stored: {headers:?}"
    );
    assert!(
        server.wait_exit(Duration::from_secs(20)),
        "exit status 0 after draining"
    );
    assert!(
        TcpStream::connect(server.address).is_err(),
        "no longer accepting connections"
    );
}
