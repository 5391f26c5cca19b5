//! The binary itself: its command line, its configuration errors, and a graceful shutdown that
//! lets a request in flight finish. No external clients needed; every server is on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest as _;

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
        Running::start_with(root, "")
    }

    /// [`Running::start`] with more top-level YAML (an `auth:` section) in the config.
    fn start_with(root: &Path, extra_yaml: &str) -> Running {
        Running::start_configured(root, "", extra_yaml)
    }

    /// [`Running::start`] with more keys of the `http` section (indented by two spaces) and more
    /// top-level YAML in the config.
    fn start_configured(root: &Path, http_yaml: &str, extra_yaml: &str) -> Running {
        let address = free_address();
        let config = root.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n{http_yaml}{extra_yaml}",
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

    /// Stops the process and returns what it wrote to stderr (its log).
    fn stop_and_read_log(mut self) -> String {
        let stderr = self.child.stderr.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        if let Some(mut stderr) = stderr {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
        }
        log
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
fn help_lists_each_command_on_one_line_and_ends_with_a_quick_start() {
    let out = output(registryd().arg("--help"));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let commands = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("a Commands section");
    for line in commands.lines().filter(|line| !line.trim().is_empty()) {
        assert!(line.len() <= 100, "a command's summary wraps: {line:?}");
    }
    let quick_start = help.split("Quick start:").nth(1).expect("a quick start");
    for first_steps in [
        "registryd serve",
        "REGISTRY_HTTP_ADDR",
        "registryd cert",
        "htpasswd",
    ] {
        assert!(
            quick_start.contains(first_steps),
            "{first_steps} in\n{help}"
        );
    }
}

#[test]
fn help_and_serve_help_say_where_configuration_comes_from_the_signals_and_the_docs() {
    for args in [&["--help"][..], &["serve", "--help"]] {
        let out = output(registryd().args(args));
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for expected in [
            "REGISTRY_CONFIGURATION_PATH",
            "REGISTRY_<SECTION>_<KEY>",
            "REGISTRY_LOG_LEVEL=debug",
            "built-in defaults",
            "/etc/docker/registry/config.yml",
            "SIGHUP",
            "SIGTERM",
            "http.draintimeout",
            "docs/configuration.md",
            "registryd man",
        ] {
            assert!(
                help.contains(expected),
                "{expected} in `registryd {args:?}`:\n{help}"
            );
        }
        let sections = help
            .split("Configuration:")
            .nth(1)
            .expect("a Configuration section");
        for line in sections.lines() {
            assert!(line.len() <= 100, "a line of {args:?} wraps: {line:?}");
        }
    }
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
fn environment_without_a_file_configures_the_server_and_the_log_names_its_variables_not_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let address = free_address();
    let secret = "never-log-this-7d1e";
    let mut child = registryd()
        .env("REGISTRY_HTTP_ADDR", address.to_string())
        .env("REGISTRY_HTTP_SECRET", secret)
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
    assert!(
        log.contains(
            "configuration: no configuration file, so the built-in defaults, with \
             http.addr (REGISTRY_HTTP_ADDR), http.secret (REGISTRY_HTTP_SECRET), \
             storage.filesystem.rootdirectory (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY) from \
             the environment"
        ),
        "the start-up log names what the environment set: {log}"
    );
    assert!(!log.contains(secret), "a value was logged: {log}");
}

/// Starts an upload on `server` and returns its location.
fn start_upload(server: &Running) -> String {
    let (status, headers) = request(
        server.address,
        "POST /v2/app/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 202);
    headers
        .iter()
        .find_map(|header| header.strip_prefix("location: "))
        .expect("location")
        .to_owned()
}

/// Sends the head of a PATCH of `length` bytes to `location` and the first `sent` of them.
fn begin_patch(server: &Running, location: &str, body: &[u8], sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(server.address).expect("connect");
    stream
        .write_all(
            format!(
                "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .expect("head");
    stream.write_all(&body[..sent]).expect("part of the body");
    stream
}

/// Waits until a request holds the upload at `location` of the registry storing below `root`:
/// its lease is in storage and not expired.
fn wait_for_upload_in_use(root: &Path, location: &str) {
    let id = location.rsplit('/').next().expect("upload id");
    let lease = root.join(format!(
        "data/docker/registry/v2/repositories/app/_uploads/{id}/registryd-lease"
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        let held = std::fs::read(&lease)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|record| record["expires"].as_u64())
            .is_some_and(|expires| u128::from(expires) > now);
        if held {
            return;
        }
        assert!(Instant::now() < deadline, "the PATCH never took the upload");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the server no longer accepts connections: shutdown has begun.
fn wait_until_not_accepting(server: &Running) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(server.address).is_ok() {
        assert!(Instant::now() < deadline, "registryd kept accepting");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The size an upload reports (`Range: 0-<last>` of its status), retrying while the session is
/// still held by a request cut off by a stop.
fn upload_size(server: &Running, location: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, headers) = request(
            server.address,
            &format!("GET {location} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 204, "{headers:?}");
        let range = headers
            .iter()
            .find_map(|header| header.strip_prefix("range: "))
            .expect("range")
            .to_owned();
        // A session the stopped server still leases answers 409 to a PATCH; wait it out.
        let (probe, _) = request(
            server.address,
            &format!(
                "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Range: 999999999-999999999\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
            ),
        );
        if probe == 416 {
            let last: u64 = range
                .strip_prefix("0-")
                .and_then(|last| last.parse().ok())
                .expect("Range: 0-<last>");
            return if range == "0-0" { 0 } else { last + 1 };
        }
        assert_eq!(probe, 409, "an out-of-order PATCH on a free session is 416");
        assert!(Instant::now() < deadline, "the upload stayed in use");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Running::start(dir.path());
    let location = start_upload(&server);

    // Start a PATCH, send half its body, stop the server once the PATCH holds the upload, then
    // send the rest once the server has stopped accepting.
    let body = vec![b'x'; 64 * 1024];
    let mut stream = begin_patch(&server, &location, &body, body.len() / 2);
    wait_for_upload_in_use(dir.path(), &location);
    server.signal("TERM");
    wait_until_not_accepting(&server);
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

#[test]
fn an_upload_still_arriving_at_the_drain_timeout_is_cut_and_stays_resumable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Running::start_configured(dir.path(), "  draintimeout: 1s\n", "");
    let location = start_upload(&server);
    let body = vec![b'y'; 64 * 1024];
    let mut stream = begin_patch(&server, &location, &body, 20_000);
    wait_for_upload_in_use(dir.path(), &location);
    let stopped = Instant::now();
    server.signal("TERM");
    // The client sends nothing more: the body is ended at the drain timeout, what arrived is
    // stored, and the client is told to resume.
    let (status, _) = read_response_head(&mut stream);
    assert_eq!(status, 503, "the cut request is answered");
    assert!(server.wait_exit(Duration::from_secs(10)), "exit status 0");
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "stopped within the drain timeout and the save grace: {:?}",
        stopped.elapsed()
    );

    let server = Running::start(dir.path());
    assert_eq!(upload_size(&server, &location), 20_000);
    let (status, headers) = request(
        server.address,
        &format!(
            "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Range: 20000-65535\r\nContent-Length: 45536\r\nConnection: close\r\n\r\n{}",
            "y".repeat(45_536)
        ),
    );
    assert_eq!(status, 202, "{headers:?}");
    assert!(
        headers.contains(&"range: 0-65535".to_owned()),
        "{headers:?}"
    );
}

#[test]
fn a_second_stop_signal_exits_at_once_and_the_upload_resumes_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Running::start(dir.path());
    let location = start_upload(&server);
    let body = vec![b'z'; 64 * 1024];
    let _stream = begin_patch(&server, &location, &body, 10_000);
    wait_for_upload_in_use(dir.path(), &location);
    server.signal("TERM");
    wait_until_not_accepting(&server);
    let second = Instant::now();
    server.signal("INT");
    assert!(
        !server.wait_exit(Duration::from_secs(5)),
        "a second signal exits with a failure status"
    );
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "exited at once, not after the 20 s drain: {:?}",
        second.elapsed()
    );

    let server = Running::start(dir.path());
    let size = upload_size(&server, &location);
    assert!(size <= 10_000, "no more than what was sent: {size}");
}

/// `registryd htpasswd USER [PASSWORD]`, the password on standard input when `stdin` is set.
fn htpasswd(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = registryd()
        .arg("htpasswd")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn registryd htpasswd");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .expect("write the password");
    }
    child.wait_with_output().expect("registryd htpasswd")
}

/// The `user:hash` line `registryd htpasswd` printed, split.
fn htpasswd_line(out: &Output) -> (String, String) {
    assert!(
        out.status.success(),
        "registryd htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).expect("utf-8");
    let line = text.trim_end_matches('\n');
    assert!(!line.contains('\n'), "one line: {text:?}");
    let (user, hash) = line.split_once(':').expect("user:hash");
    (user.to_owned(), hash.to_owned())
}

#[test]
fn htpasswd_prints_a_bcrypt_line_that_verifies() {
    let (user, hash) = htpasswd_line(&htpasswd(&["alice", "wonder land"], None));
    assert_eq!(user, "alice");
    assert!(
        hash.starts_with("$2y$10$"),
        "bcrypt, default cost 10: {hash}"
    );
    assert!(bcrypt::verify("wonder land", &hash).expect("a valid bcrypt hash"));
    assert!(!bcrypt::verify("wonder", &hash).expect("a valid bcrypt hash"));

    // From standard input (the trailing newline is not part of the password), with -B -C.
    let (user, hash) = htpasswd_line(&htpasswd(&["-B", "-C", "5", "bob"], Some("s3cret\n")));
    assert_eq!(user, "bob");
    assert!(hash.starts_with("$2y$05$"), "cost 5: {hash}");
    assert!(bcrypt::verify("s3cret", &hash).expect("a valid bcrypt hash"));
    assert!(!bcrypt::verify("s3cret\n", &hash).expect("a valid bcrypt hash"));
}

#[test]
fn htpasswd_from_a_pipe_reads_one_line_without_prompting_or_confirming() {
    let out = htpasswd(&["-C", "4", "piper"], Some("first line\nsecond line\n"));
    let (user, hash) = htpasswd_line(&out);
    assert_eq!(user, "piper");
    assert!(bcrypt::verify("first line", &hash).expect("a valid bcrypt hash"));
    assert!(
        out.stderr.is_empty(),
        "no prompt: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let empty = htpasswd(&["-C", "4", "piper"], Some(""));
    assert!(!empty.status.success());
    assert!(empty.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("no password given"),
        "{}",
        String::from_utf8_lossy(&empty.stderr)
    );
}

/// RFC 4648 base64 with padding, for a `Basic` header.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A registryd over `root` whose only user, `user`, has the password `password` in a file that
/// `registryd htpasswd` made; `extra_yaml` adds top-level keys.
fn serving_one_htpasswd_user(root: &Path, user: &str, password: &str, extra_yaml: &str) -> Running {
    let out = htpasswd(&["-C", "4", user], Some(&format!("{password}\n")));
    assert!(out.status.success());
    let htpasswd_path = root.join("htpasswd");
    std::fs::write(&htpasswd_path, &out.stdout).expect("htpasswd file");
    Running::start_with(
        root,
        &format!(
            "{extra_yaml}auth:\n  htpasswd:\n    realm: cli test\n    path: {}\n",
            htpasswd_path.display()
        ),
    )
}

#[test]
fn registryd_accepts_the_credentials_registryd_htpasswd_made() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serving_one_htpasswd_user(dir.path(), "carol", "pa:ss word", "");
    let get = |credentials: Option<&str>| {
        let authorization = credentials
            .map(|c| format!("Authorization: Basic {}\r\n", base64(c.as_bytes())))
            .unwrap_or_default();
        request(
            server.address,
            &format!("GET /v2/ HTTP/1.1\r\nHost: x\r\n{authorization}Connection: close\r\n\r\n"),
        )
    };
    let (status, headers) = get(None);
    assert_eq!(status, 401);
    assert!(
        headers.contains(&"www-authenticate: basic realm=\"cli test\"".to_owned()),
        "{headers:?}"
    );
    assert_eq!(get(Some("carol:pa:ss word")).0, 200);
    assert_eq!(get(Some("carol:pa:ss")).0, 401);
    assert_eq!(get(Some("mallory:pa:ss word")).0, 401);
}

#[test]
fn debug_log_says_why_a_login_was_refused_and_the_access_log_names_the_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        serving_one_htpasswd_user(dir.path(), "carol", "open sesame", "log:\n  level: debug\n");
    let get = |credentials: &str| {
        let authorization = base64(credentials.as_bytes());
        request(
            server.address,
            &format!(
                "GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {authorization}\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
        .0
    };
    assert_eq!(get("carol:open sesame"), 200);
    assert_eq!(get("carol:closed sesame"), 401);
    assert_eq!(get("mallory:open sesame"), 401);
    let log = server.stop_and_read_log();

    let line_with = |needles: &[&str]| {
        log.lines()
            .find(|line| needles.iter().all(|needle| line.contains(needle)))
            .unwrap_or_else(|| panic!("no line with {needles:?} in:\n{log}"))
            .to_owned()
    };
    line_with(&["DEBUG", "login refused: wrong password", "carol"]);
    line_with(&["DEBUG", "login refused: unknown user", "mallory"]);
    line_with(&["registryd::access", "status=200", "user=carol"]);
    assert!(!log.contains("sesame"), "a password in the log:\n{log}");
    // Dependencies stay at info: no wire-level lines among registryd's own.
    for line in log.lines().filter(|line| line.contains("DEBUG")) {
        assert!(
            line.contains(" registry"),
            "a dependency's debug line: {line}"
        );
    }
}

#[test]
fn config_check_redacts_secrets_and_names_the_bad_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let htpasswd_path = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd_path,
        htpasswd(&["-C", "4", "dave", "pw"], None).stdout,
    )
    .expect("htpasswd file");
    let secret = "do-not-print-this-3f9c2a";
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:5000\n  secret: {secret}\n\
             auth:\n  htpasswd:\n    realm: r\n    path: {}\n",
            dir.path().join("data").display(),
            htpasswd_path.display()
        ),
    )
    .expect("config");
    let out = output(registryd().args(["config", "check"]).arg(&good));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("secret: <redacted>"), "{stdout}");
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the secret was printed: {stdout}{stderr}"
    );
    assert!(stdout.contains("htpasswd"), "{stdout}");

    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        format!(
            "version: 0.1\nhttp:\n  secret: {secret}\n\
             auth:\n  htpasswd:\n    realm: r\n    path: {}\n  access:\n    - {{ users: [dave], repositories: [\"*\"], actions: [pul] }}\n",
            htpasswd_path.display()
        ),
    )
    .expect("config");
    let out = output(registryd().args(["config", "check"]).arg(&bad));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad config must fail");
    assert!(stderr.contains("auth.access[0].actions[0]"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(secret) && !stderr.contains(secret),
        "the secret was printed"
    );

    // A TLS key that is missing is named too.
    let no_key = dir.path().join("no-key.yml");
    std::fs::write(
        &no_key,
        "version: 0.1\nhttp:\n  tls:\n    certificate: /nonexistent/server.crt\n",
    )
    .expect("config");
    let out = output(registryd().args(["config", "check"]).arg(&no_key));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("http.tls.key"), "{stderr}");
}

/// Runs `registryd config check [extra...] FILE` on `yaml` written to a file in `dir`.
fn config_check(dir: &Path, yaml: &str, extra: &[&str]) -> (Output, String) {
    let file = dir.join("check.yml");
    std::fs::write(&file, yaml).expect("config");
    let out = output(registryd().args(["config", "check"]).args(extra).arg(&file));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[test]
fn config_check_refuses_a_listen_address_that_serve_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "version: 0.1\nstorage: inmemory\nhttp:\n  addr: notaport\n";
    let (out, stderr) = config_check(dir.path(), yaml, &[]);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("config key http.addr"), "{stderr}");
    assert!(stderr.contains("notaport"), "{stderr}");

    let yaml = "version: 0.1\nstorage: inmemory\nhttp:\n  addr: 127.0.0.1:0\n  debug:\n    addr: nowhere\n";
    let (out, stderr) = config_check(dir.path(), yaml, &[]);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("config key http.debug.addr"), "{stderr}");

    // serve fails on the same file, before listening.
    let out = output(registryd().arg("serve").arg(dir.path().join("check.yml")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config key http.debug.addr"));
}

#[test]
fn config_check_creates_no_storage_directory_and_refuses_one_that_cannot_be() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("not-yet/registry");
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
        root.display()
    );
    let (out, stderr) = config_check(dir.path(), &yaml, &[]);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !dir.path().join("not-yet").exists(),
        "config check created the storage directory"
    );

    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("file");
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
        file.join("registry").display()
    );
    let (out, stderr) = config_check(dir.path(), &yaml, &[]);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("config key storage.filesystem.rootdirectory")
            && stderr.contains("is not a directory"),
        "{stderr}"
    );
}

#[test]
fn config_check_refuses_a_tls_certificate_that_does_not_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certificate = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    std::fs::write(&certificate, "not a certificate").expect("certificate");
    std::fs::write(&key, "not a key").expect("key");
    let yaml = format!(
        "version: 0.1\nstorage: inmemory\nhttp:\n  addr: 127.0.0.1:0\n  tls:\n    certificate: {}\n    key: {}\n",
        certificate.display(),
        key.display()
    );
    let (out, stderr) = config_check(dir.path(), &yaml, &[]);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("http.tls"), "{stderr}");
}

#[test]
fn config_check_names_every_unknown_key_with_the_key_it_most_likely_meant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml =
        "version: 0.1\nstorage: inmemory\nhttp:\n  adr: :6000\n  tsl:\n    certificate: /c\n";
    let (out, stderr) = config_check(dir.path(), yaml, &[]);
    assert!(
        out.status.success(),
        "without --strict, warnings pass: {stderr}"
    );
    assert!(
        stderr.contains("unknown config key http.adr (line 4) is ignored; did you mean http.addr?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown config key http.tsl (line 5) is ignored; did you mean http.tls?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("valid with 2 warnings (config check --strict would fail)"),
        "{stderr}"
    );
}

#[test]
fn config_check_strict_fails_on_a_warning_and_passes_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "version: 0.1\nstorage: inmemory\nhttp:\n  adr: :6000\n";
    let (out, stderr) = config_check(dir.path(), yaml, &["--strict"]);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did you mean http.addr?"), "{stderr}");
    assert!(stderr.contains("--strict"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "a failed check prints no configuration"
    );

    let yaml = "version: 0.1\nstorage: inmemory\nhttp:\n  addr: 127.0.0.1:6000\n";
    let (out, stderr) = config_check(dir.path(), yaml, &["--strict"]);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn config_check_resolves_relative_paths_against_the_working_directory_and_prints_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().canonicalize().expect("canonical tempdir");
    let out = output(registryd().current_dir(&dir).args([
        "cert",
        "--host",
        "localhost",
        "--out",
        "certs",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir(dir.join("auth")).expect("auth dir");
    std::fs::write(
        dir.join("auth/htpasswd"),
        htpasswd(&["-C", "4", "erin", "pw"], None).stdout,
    )
    .expect("htpasswd file");
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: data\n\
         http:\n  addr: 127.0.0.1:0\n  tls:\n    certificate: certs/server.crt\n    key: certs/server.key\n    clientcas: [certs/ca.crt]\n\
         auth:\n  htpasswd:\n    realm: r\n    path: auth/htpasswd\n",
    )
    .expect("config");

    let out = output(
        registryd()
            .current_dir(&dir)
            .args(["config", "check"])
            .arg(&config),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for (key, written) in [
        ("storage.filesystem.rootdirectory", "data"),
        ("http.tls.certificate", "certs/server.crt"),
        ("http.tls.key", "certs/server.key"),
        ("http.tls.clientcas[0]", "certs/ca.crt"),
        ("auth.htpasswd.path", "auth/htpasswd"),
    ] {
        let line = format!(
            "  {key}: {} (written {written})",
            dir.join(written).display()
        );
        assert!(stderr.contains(&line), "{line:?} missing from:\n{stderr}");
    }

    // From another directory the same file names other files, as with registry:2; the check
    // shows where it looked.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let elsewhere = elsewhere.path().canonicalize().expect("canonical tempdir");
    let out = output(
        registryd()
            .current_dir(&elsewhere)
            .args(["config", "check"])
            .arg(&config),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let line = format!(
        "  http.tls.certificate: {} (written certs/server.crt)",
        elsewhere.join("certs/server.crt").display()
    );
    assert!(stderr.contains(&line), "{line:?} missing from:\n{stderr}");
}

#[test]
fn two_processes_over_one_directory_let_one_request_at_a_time_use_an_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = Running::start(dir.path());
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).expect("other config dir");
    std::os::unix::fs::symlink(dir.path().join("data"), other_dir.join("data"))
        .expect("the same data directory");
    let other = Running::start(&other_dir);

    let location = start_upload(&one);
    let body = vec![b'w'; 64 * 1024];
    let mut stream = begin_patch(&one, &location, &body, 1_000);
    wait_for_upload_in_use(dir.path(), &location);

    // The other process refuses to complete or extend the upload while the first one writes it.
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(&body[..1_000]))
    );
    let (status, headers) = request(
        other.address,
        &format!(
            "PUT {location}?digest={digest} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 409, "{headers:?}");
    assert!(
        headers
            .iter()
            .any(|header| header.starts_with("retry-after: "))
    );

    stream.write_all(&body[1_000..]).expect("the rest");
    let (status, headers) = read_response_head(&mut stream);
    assert_eq!(status, 202);
    assert!(
        headers.contains(&"range: 0-65535".to_owned()),
        "{headers:?}"
    );
    // Free again: the other process takes it over.
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
    let (status, headers) = request(
        other.address,
        &format!(
            "PUT {location}?digest={digest} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 201, "{headers:?}");
}

#[test]
fn the_manual_page_and_shell_completions_come_from_the_command_line_definition() {
    let man = registryd().arg("man").output().expect("registryd man");
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH registryd 1"),
        "{page}"
    );
    for subcommand in [
        "serve",
        "cert",
        "htpasswd",
        "garbage\\-collect",
        "completions",
    ] {
        assert!(page.contains(subcommand), "the page lists {subcommand}");
    }
    for (shell, marker) in [
        ("bash", "_registryd()"),
        ("zsh", "#compdef registryd"),
        ("fish", "complete -c registryd"),
    ] {
        let completions = registryd()
            .args(["completions", shell])
            .output()
            .expect("registryd completions");
        assert!(completions.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&completions.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("garbage-collect"),
            "{shell} completes subcommands"
        );
    }
}
