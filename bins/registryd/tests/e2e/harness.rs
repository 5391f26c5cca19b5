//! The end-to-end harness: the `REGISTRY_E2E` gate, finding the real clients, running commands
//! with a time limit, and starting a registry server process (ours or registry:2) on a free port.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

/// How long a server may take to answer `GET /v2/` after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The message a test prints when `REGISTRY_E2E` is unset.
const SKIP_MESSAGE: &str = "skipped: set REGISTRY_E2E=1 (or =require) to run end-to-end tests";

/// What `REGISTRY_E2E` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Unset (or empty): every end-to-end test skips.
    Skip,
    /// `1`: run; a test whose clients are missing says what is missing and skips.
    Run,
    /// `require`: run; a missing client fails the test.
    Require,
}

fn mode() -> Mode {
    match std::env::var("REGISTRY_E2E") {
        Err(_) => Mode::Skip,
        Ok(v) => match v.trim() {
            "" | "0" => Mode::Skip,
            "require" => Mode::Require,
            _ => Mode::Run,
        },
    }
}

/// A program an end-to-end test needs besides the registry under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// The `docker` command and a reachable Docker engine.
    Docker,
    /// `skopeo`.
    Skopeo,
    /// CNCF Distribution 2.x (`docker-registry` from Debian), the registry:2 we must be
    /// compatible with.
    Registry2,
    /// A statically linked busybox, the root filesystem of the test image.
    Busybox,
    /// `curl`, the plain HTTP client of the TLS and authentication checks.
    Curl,
    /// nginx, the reverse proxy of registry:2's recipe.
    Nginx,
    /// `systemd-analyze`, which checks unit files.
    SystemdAnalyze,
    /// `docker-compose` 1.x (Debian's 1.29) and a reachable Docker engine.
    ComposeV1,
    /// Compose v2, the `docker compose` plugin, and a reachable Docker engine.
    ComposeV2,
}

/// The programs a test runs, found on this machine.
#[derive(Debug, Default)]
pub(crate) struct Tools {
    /// `docker` client (its engine answered `docker version`).
    docker: Option<PathBuf>,
    /// `skopeo`.
    skopeo: Option<PathBuf>,
    /// CNCF Distribution's server binary.
    registry2: Option<PathBuf>,
    /// Statically linked busybox.
    busybox: Option<PathBuf>,
    /// `curl`.
    curl: Option<PathBuf>,
    /// nginx.
    nginx: Option<PathBuf>,
    /// `systemd-analyze`.
    systemd_analyze: Option<PathBuf>,
    /// `docker-compose` 1.x.
    compose_v1: Option<PathBuf>,
}

impl Tools {
    /// The docker client; present whenever the test asked for [`Need::Docker`].
    pub(crate) fn docker(&self) -> &Path {
        self.docker
            .as_deref()
            .expect("the test did not ask for Need::Docker")
    }

    /// skopeo; present whenever the test asked for [`Need::Skopeo`].
    pub(crate) fn skopeo(&self) -> &Path {
        self.skopeo
            .as_deref()
            .expect("the test did not ask for Need::Skopeo")
    }

    /// registry:2; present whenever the test asked for [`Need::Registry2`].
    pub(crate) fn registry2(&self) -> &Path {
        self.registry2
            .as_deref()
            .expect("the test did not ask for Need::Registry2")
    }

    /// busybox; present whenever the test asked for [`Need::Busybox`].
    pub(crate) fn busybox(&self) -> &Path {
        self.busybox
            .as_deref()
            .expect("the test did not ask for Need::Busybox")
    }

    /// nginx; present whenever the test asked for [`Need::Nginx`].
    pub(crate) fn nginx(&self) -> &Path {
        self.nginx
            .as_deref()
            .expect("the test did not ask for Need::Nginx")
    }

    /// systemd-analyze; present whenever the test asked for [`Need::SystemdAnalyze`].
    pub(crate) fn systemd_analyze(&self) -> &Path {
        self.systemd_analyze
            .as_deref()
            .expect("the test did not ask for Need::SystemdAnalyze")
    }

    /// `docker-compose` 1.x; present whenever the test asked for [`Need::ComposeV1`].
    pub(crate) fn compose_v1(&self) -> &Path {
        self.compose_v1
            .as_deref()
            .expect("the test did not ask for Need::ComposeV1")
    }

    /// curl; present whenever the test asked for [`Need::Curl`].
    pub(crate) fn curl(&self) -> &Path {
        self.curl
            .as_deref()
            .expect("the test did not ask for Need::Curl")
    }
}

/// The gate every end-to-end test starts with. Returns `None` when the test should pass without
/// running (gate closed, or a client is missing under `REGISTRY_E2E=1`), and panics when a client
/// is missing under `REGISTRY_E2E=require`.
pub(crate) fn e2e_gate(test: &str, needs: &[Need]) -> Option<Tools> {
    let mode = mode();
    if mode == Mode::Skip {
        println!("{SKIP_MESSAGE}");
        return None;
    }
    let mut tools = Tools::default();
    let mut missing = Vec::new();
    for need in needs {
        match find(*need) {
            Ok(path) => match need {
                Need::Docker => tools.docker = Some(path),
                Need::Skopeo => tools.skopeo = Some(path),
                Need::Registry2 => tools.registry2 = Some(path),
                Need::Busybox => tools.busybox = Some(path),
                Need::Curl => tools.curl = Some(path),
                Need::Nginx => tools.nginx = Some(path),
                Need::SystemdAnalyze => tools.systemd_analyze = Some(path),
                Need::ComposeV1 => tools.compose_v1 = Some(path),
                // Run as `docker compose`: the docker client is what the test needs.
                Need::ComposeV2 => tools.docker = Some(path),
            },
            Err(why) => missing.push(why),
        }
    }
    if missing.is_empty() {
        return Some(tools);
    }
    let message = format!(
        "{test}: missing {} (.ci/e2e-setup installs and starts them)",
        missing.join("; ")
    );
    if mode == Mode::Require {
        panic!("REGISTRY_E2E=require and {message}");
    }
    println!("skipped {message}");
    None
}

/// The registry binary under test: `registryd` as cargo built it for this test, or
/// `REGISTRY_E2E_SERVER` to point the whole suite at another implementation (for example
/// registry:2, to check the client-side steps).
pub(crate) fn registryd() -> PathBuf {
    match std::env::var_os("REGISTRY_E2E_SERVER") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => registryd_tool(),
    }
}

/// The `registryd` cargo built, for its helper commands (`cert`, `htpasswd`): those exist
/// whatever server `REGISTRY_E2E_SERVER` names.
pub(crate) fn registryd_tool() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_registryd"))
}

/// Whether `program ARGS` succeeds and prints a version starting with `prefix` (after an
/// optional `v`).
fn answers_version(program: &Path, args: &[&str], prefix: &str) -> Result<(), String> {
    let out = run_quiet(Command::new(program).args(args), Duration::from_secs(30))?;
    let version = out.stdout.trim().trim_start_matches('v');
    if out.status.success() && version.starts_with(prefix) {
        Ok(())
    } else {
        Err(format!(
            "`{} {}` printed {:?} {:?}",
            program.display(),
            args.join(" "),
            out.stdout.trim(),
            out.stderr.trim()
        ))
    }
}

fn find(need: Need) -> Result<PathBuf, String> {
    match need {
        Need::Docker => {
            let docker = which("docker").ok_or("the docker client (Debian package docker.io)")?;
            let out = run_quiet(
                Command::new(&docker).args(["version", "--format", "{{.Server.Version}}"]),
                Duration::from_secs(30),
            );
            match out {
                Ok(out) if out.status.success() => Ok(docker),
                Ok(out) => Err(format!(
                    "a reachable Docker engine (`docker version` failed: {}; start dockerd)",
                    out.stderr.trim()
                )),
                Err(e) => Err(format!("a reachable Docker engine ({e})")),
            }
        }
        Need::ComposeV1 => {
            find(Need::Docker)?;
            let compose = which("docker-compose")
                .ok_or("docker-compose 1.x (Debian package docker-compose)")?;
            answers_version(&compose, &["version", "--short"], "1.")
                .map(|()| compose)
                .map_err(|e| format!("docker-compose 1.x ({e})"))
        }
        Need::ComposeV2 => {
            let docker = find(Need::Docker)?;
            answers_version(&docker, &["compose", "version", "--short"], "")
                .map(|()| docker)
                .map_err(|e| {
                    format!("Compose v2, `docker compose` (.ci/e2e-setup installs it: {e})")
                })
        }
        Need::Skopeo => which("skopeo").ok_or_else(|| "skopeo (Debian package skopeo)".into()),
        Need::Curl => which("curl").ok_or_else(|| "curl (Debian package curl)".into()),
        Need::Nginx => which("nginx")
            .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
            .ok_or_else(|| "nginx (Debian package nginx-light)".into()),
        Need::SystemdAnalyze => which("systemd-analyze")
            .ok_or_else(|| "systemd-analyze (Debian package systemd)".into()),
        Need::Registry2 => match std::env::var_os("REGISTRY_E2E_REGISTRY2") {
            Some(path) if !path.is_empty() => Some(PathBuf::from(path))
                .filter(|p| p.is_file())
                .ok_or_else(|| "the registry:2 binary REGISTRY_E2E_REGISTRY2 names".into()),
            _ => which("docker-registry")
                .ok_or_else(|| "docker-registry (Debian package docker-registry)".into()),
        },
        Need::Busybox => {
            let candidates = [
                PathBuf::from("/bin/busybox"),
                PathBuf::from("/usr/bin/busybox"),
            ];
            let found = candidates
                .into_iter()
                .chain(which("busybox"))
                .find(|p| is_static_elf(p));
            found
                .ok_or_else(|| "a statically linked busybox (Debian package busybox-static)".into())
        }
    }
}

/// Looks a program up on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// True for a 64-bit little-endian ELF executable without a program interpreter (`PT_INTERP`),
/// that is one that runs in an empty root filesystem.
fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false;
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let mut phoff = [0u8; 8];
    phoff.copy_from_slice(&bytes[32..40]);
    let Ok(phoff) = usize::try_from(u64::from_le_bytes(phoff)) else {
        return false;
    };
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != PT_INTERP)
    })
}

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct Output {
    /// Exit status.
    pub(crate) status: ExitStatus,
    /// Standard output, lossily decoded.
    pub(crate) stdout: String,
    /// Standard error, lossily decoded.
    pub(crate) stderr: String,
}

/// Runs a command to completion with a time limit, collecting both output streams. Errors only
/// when it cannot be spawned or outlives `timeout` (it is killed then).
fn run_quiet(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    run_with_input(cmd, None, timeout)
}

/// [`run_quiet`] with `input` written to the command's standard input (else it reads nothing).
fn run_with_input(
    cmd: &mut Command,
    input: Option<&str>,
    timeout: Duration,
) -> Result<Output, String> {
    let shown = show(cmd);
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        let input = input.to_owned();
        // From a thread, so that a command that does not read its input cannot block us.
        thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("waiting for {shown}: {e}")),
        }
    };
    let join = |h: thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let _ = write!(s, " {}", arg.to_string_lossy());
    }
    s
}

/// Runs a command that must succeed within `timeout`; panics with everything it printed
/// otherwise. The command line and its output go to the test's (captured) stdout.
pub(crate) fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let out = run(cmd, timeout);
    assert!(
        out.status.success(),
        "`{}` failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        show(cmd),
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

/// Runs a command within `timeout` whatever its exit status; panics only if it cannot be
/// spawned or hangs.
pub(crate) fn run(cmd: &mut Command, timeout: Duration) -> Output {
    run_input(cmd, None, timeout)
}

/// [`run`] with `input` (a password, say; it is not printed) on the command's standard input.
pub(crate) fn run_input(cmd: &mut Command, input: Option<&str>, timeout: Duration) -> Output {
    let stdin_note = if input.is_some() { " <input" } else { "" };
    println!("$ {}{stdin_note}", show(cmd));
    let out = run_with_input(cmd, input, timeout).unwrap_or_else(|e| panic!("{e}"));
    if !out.stdout.trim().is_empty() {
        println!("{}", out.stdout.trim_end());
    }
    if !out.stderr.trim().is_empty() {
        println!("(stderr) {}", out.stderr.trim_end());
    }
    out
}

/// The registry:2-format configuration a test server is started with. Both registryd and
/// CNCF Distribution (`docker-registry serve FILE`) read it.
#[derive(Clone, Debug)]
pub(crate) struct RegistryConfig {
    /// `storage.filesystem.rootdirectory`.
    pub(crate) root: PathBuf,
    /// Another storage driver's section instead of the filesystem (`  s3:\n    bucket: ...`,
    /// indented for under `storage:`).
    pub(crate) driver_yaml: Option<String>,
    /// `storage.delete.enabled`.
    pub(crate) delete: bool,
    /// HTTPS, when set.
    pub(crate) tls: Option<Tls>,
    /// More top-level sections (an `auth:` section, say), appended to the YAML as they are.
    pub(crate) extra_yaml: String,
}

/// The files `registryd cert` wrote, for serving HTTPS.
#[derive(Clone, Debug)]
pub(crate) struct Tls {
    /// `http.tls.certificate`.
    pub(crate) certificate: PathBuf,
    /// `http.tls.key`.
    pub(crate) key: PathBuf,
    /// The CA that signed the certificate (for `localhost` and `127.0.0.1`), for the readiness
    /// check.
    pub(crate) ca: PathBuf,
    /// Whether the server is given the files with `REGISTRY_HTTP_TLS_CERTIFICATE` and
    /// `REGISTRY_HTTP_TLS_KEY` instead of in the YAML.
    pub(crate) from_env: bool,
}

impl RegistryConfig {
    /// A filesystem registry over `root`, delete disabled.
    pub(crate) fn filesystem(root: &Path) -> Self {
        RegistryConfig {
            root: root.to_path_buf(),
            driver_yaml: None,
            delete: false,
            tls: None,
            extra_yaml: String::new(),
        }
    }

    /// The same configuration over another driver: `driver_yaml` is its section, indented for
    /// under `storage:` (`  s3:\n    bucket: ...`).
    pub(crate) fn with_driver(mut self, driver_yaml: &str) -> Self {
        self.driver_yaml = Some(driver_yaml.to_owned());
        self
    }

    /// HTTPS with `server.crt` and `server.key` of `certs` (the directory `registryd cert --host
    /// localhost --host 127.0.0.1` wrote), given in the YAML.
    pub(crate) fn with_tls(mut self, certs: &Path) -> Self {
        self.tls = Some(Tls {
            certificate: certs.join("server.crt"),
            key: certs.join("server.key"),
            ca: certs.join("ca.crt"),
            from_env: false,
        });
        self
    }

    /// The same, given with `REGISTRY_HTTP_TLS_CERTIFICATE` and `REGISTRY_HTTP_TLS_KEY`.
    pub(crate) fn with_tls_from_env(mut self, certs: &Path) -> Self {
        self = self.with_tls(certs);
        if let Some(tls) = self.tls.as_mut() {
            tls.from_env = true;
        }
        self
    }

    /// Appends top-level YAML (`auth:\n  htpasswd: ...`).
    pub(crate) fn with_yaml(mut self, yaml: &str) -> Self {
        self.extra_yaml.push_str(yaml);
        if !self.extra_yaml.ends_with('\n') {
            self.extra_yaml.push('\n');
        }
        self
    }

    /// The environment variables the server is started with.
    fn env(&self) -> Vec<(&'static str, PathBuf)> {
        match &self.tls {
            Some(tls) if tls.from_env => vec![
                ("REGISTRY_HTTP_TLS_CERTIFICATE", tls.certificate.clone()),
                ("REGISTRY_HTTP_TLS_KEY", tls.key.clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// The same with `storage.delete.enabled: true`.
    pub(crate) fn with_delete(mut self) -> Self {
        self.delete = true;
        self
    }

    fn to_yaml(&self, addr: SocketAddr) -> String {
        let driver = self.driver_yaml.clone().unwrap_or_else(|| {
            format!(
                "  filesystem:\n    rootdirectory: {}\n",
                self.root.display()
            )
        });
        let mut yaml = format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n{driver}  delete:\n    enabled: {delete}\n\
             http:\n  addr: {addr}\n",
            delete = self.delete,
        );
        if let Some(tls) = self.tls.as_ref().filter(|tls| !tls.from_env) {
            let _ = write!(
                yaml,
                "  tls:\n    certificate: {}\n    key: {}\n",
                tls.certificate.display(),
                tls.key.display()
            );
        }
        yaml.push_str(&self.extra_yaml);
        yaml
    }
}

/// A registry server process listening on 127.0.0.1; killed when dropped. Its log is printed
/// when the test fails (or the server does not come up).
pub(crate) struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    name: String,
    log: PathBuf,
    /// The CA to check the server's certificate with, when it serves HTTPS.
    tls_ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Writes `config` into a temporary directory, picks a free port on 127.0.0.1, runs
    /// `binary serve CONFIG` and waits until `GET /v2/` answers (over HTTPS, checking the
    /// certificate against the CA, when the config has TLS; any status, 401 included).
    pub(crate) fn start(binary: &Path, config: &RegistryConfig) -> Server {
        let name = binary
            .file_name()
            .map_or_else(|| "server".into(), |n| n.to_string_lossy().into_owned());
        let mut last_error = String::new();
        // The port is free when picked but another process may take it before the server binds;
        // a few attempts make that race harmless.
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("registry-e2e-server-")
                .tempdir()
                .expect("temp dir for the server");
            let addr = free_port();
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config.to_yaml(addr)).expect("write config");
            let log = dir.path().join("server.log");
            let log_file = std::fs::File::create(&log).expect("create server log");
            let stdout_log = log_file.try_clone().expect("clone log handle");
            println!(
                "starting {} serve {} on {addr}",
                binary.display(),
                config_path.display()
            );
            let child = Command::new(binary)
                .arg("serve")
                .arg(&config_path)
                .envs(config.env())
                // registry:2's S3 driver (aws-sdk-go v1) panics at start-up when AWS_CA_BUNDLE
                // is set ("HTTPClient's transport unsupported type"); the tests' S3 is plain
                // HTTP on 127.0.0.1 and needs no CA.
                .env_remove("AWS_CA_BUNDLE")
                .stdin(Stdio::null())
                .stdout(stdout_log)
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut server = Server {
                child: Some(child),
                addr,
                name: name.clone(),
                log,
                tls_ca: config.tls.as_ref().map(|tls| tls.ca.clone()),
                _dir: dir,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => {
                    let log = server.log_text();
                    server.kill();
                    last_error = format!(
                        "{e}\n--- config.yml\n{}--- {name} log\n{log}",
                        config.to_yaml(addr)
                    );
                    if !log.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("{name} did not start: {last_error}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("it exited with {status} before answering GET /v2/"));
            }
            let (scheme, status) = match &self.tls_ca {
                Some(ca) => ("https", https_status(self.addr, ca, "/v2/")),
                None => ("http", http_status(self.addr, "/v2/")),
            };
            if let Some(status) = status {
                println!(
                    "{} on {scheme}://{} answers GET /v2/ with {status}",
                    self.name, self.addr
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "GET {scheme}://{}/v2/ did not answer within {START_TIMEOUT:?}",
                    self.addr
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`, the registry host clients are given.
    pub(crate) fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `localhost:PORT`, the registry host for clients that check the certificate by name.
    pub(crate) fn localhost(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    /// Stops the server: SIGTERM, then SIGKILL after 10 s.
    pub(crate) fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the server logged so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- {} on {} log ({})\n{}",
                self.name,
                self.addr,
                self.log.display(),
                self.log_text()
            );
        }
    }
}

pub(crate) fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// The status code of a plain HTTP/1.1 GET, or `None` when nothing answers.
pub(crate) fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    let line = std::str::from_utf8(&head).ok()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// The status code of an HTTP/1.1 GET over TLS, the server's certificate checked against `ca`
/// for the name `127.0.0.1`; `None` when nothing answers or the handshake fails.
pub(crate) fn https_status(addr: SocketAddr, ca: &Path, path: &str) -> Option<u16> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).ok()? {
        roots.add(certificate.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let connection = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    let mut tls = rustls::StreamOwned::new(connection, stream);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    tls.flush().ok()?;
    let mut head = [0u8; 12];
    tls.read_exact(&mut head).ok()?;
    let line = std::str::from_utf8(&head).ok()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}
