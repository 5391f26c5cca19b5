//! `registryd cert`: the files it writes, and a registryd serving HTTPS with them to a client
//! that trusts only the generated CA, including a reload on SIGHUP. Every server listens on
//! 127.0.0.1.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

const REGISTRYD: &str = env!("CARGO_BIN_EXE_registryd");

fn registryd() -> Command {
    let mut command = Command::new(REGISTRYD);
    // The tests' own environment must not configure the commands they run.
    for (key, _) in std::env::vars() {
        if key.starts_with("REGISTRY_") {
            command.env_remove(key);
        }
    }
    command
}

fn cert(out: &Path, extra: &[&str]) -> Output {
    registryd()
        .args([
            "cert",
            "--host",
            "localhost",
            "--host",
            "127.0.0.1",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .expect("run registryd cert")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// A registryd serving HTTPS with the files in `certs`, killed on drop; its log goes to a file.
struct Running {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

impl Running {
    fn start(dir: &Path, certs: &Path) -> Running {
        let address = free_address();
        let log = dir.join("registryd.log");
        let child = registryd()
            .arg("serve")
            .env("REGISTRY_HTTP_ADDR", address.to_string())
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                dir.join("data"),
            )
            .env("REGISTRY_HTTP_TLS_CERTIFICATE", certs.join("server.crt"))
            .env("REGISTRY_HTTP_TLS_KEY", certs.join("server.key"))
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn registryd");
        let mut running = Running {
            child,
            address,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(address).is_err() {
            if let Some(status) = running.child.try_wait().expect("wait") {
                panic!("registryd exited with {status}: {}", running.log());
            }
            assert!(
                Instant::now() < deadline,
                "registryd did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        running
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hang_up(&self) {
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET /v2/ over TLS, trusting only `ca`, with `name` as the server name; the status line.
async fn get_v2(address: SocketAddr, ca: &Path, name: &str) -> Result<String, String> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).expect("ca.crt") {
        roots.add(certificate.expect("CA PEM")).expect("CA");
    }
    let config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|error| error.to_string())?;
    let server_name = ServerName::try_from(name.to_owned()).expect("server name");
    let mut stream = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|error| error.to_string())?;
    stream
        .write_all(
            format!("GET /v2/ HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|error| error.to_string())?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
            Err(error) if answer.is_empty() => return Err(error.to_string()),
            Err(_) => break,
        }
    }
    Ok(text(&answer).lines().next().unwrap_or_default().to_owned())
}

#[test]
fn cert_writes_the_four_files_with_private_keys_readable_only_by_the_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("certs");
    let result = cert(&out, &[]);
    assert!(result.status.success(), "{}", text(&result.stderr));

    for key in ["ca.key", "server.key"] {
        assert_eq!(mode(&out.join(key)), 0o600, "{key}");
        let pem = std::fs::read_to_string(out.join(key)).expect("key");
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{key}: {pem}"
        );
    }
    for certificate in ["ca.crt", "server.crt"] {
        assert_eq!(
            mode(&out.join(certificate)) & 0o022,
            0,
            "{certificate} is writable by others"
        );
        let count = CertificateDer::pem_file_iter(out.join(certificate))
            .expect("open")
            .count();
        assert_eq!(count, 1, "{certificate} holds one certificate");
    }

    let stdout = text(&result.stdout);
    let ca = std::fs::canonicalize(out.join("ca.crt")).expect("ca.crt");
    for expected in [
        format!(
            "sudo cp {} /etc/docker/certs.d/localhost:5000/ca.crt",
            ca.display()
        ),
        format!(
            "sudo cp {} /etc/docker/certs.d/127.0.0.1:5000/ca.crt",
            ca.display()
        ),
        format!(
            "sudo cp {} /usr/local/share/ca-certificates/registryd-ca.crt",
            ca.display()
        ),
        "sudo update-ca-certificates".to_owned(),
        "REGISTRY_HTTP_TLS_CERTIFICATE=".to_owned(),
        "REGISTRY_HTTP_TLS_KEY=".to_owned(),
        "certificate: ".to_owned(),
    ] {
        assert!(
            stdout.contains(&expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
}

#[test]
fn docker_instructions_use_the_port_of_registry_http_addr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let result = registryd()
        .env("REGISTRY_HTTP_ADDR", ":5443")
        .args(["cert", "--host", "registry.example.com", "--out"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(result.status.success(), "{}", text(&result.stderr));
    assert!(
        text(&result.stdout).contains("/etc/docker/certs.d/registry.example.com:5443/ca.crt"),
        "{}",
        text(&result.stdout)
    );
}

#[test]
fn existing_files_are_kept_unless_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(cert(dir.path(), &[]).status.success());
    let first = std::fs::read(dir.path().join("ca.crt")).expect("ca.crt");

    let again = cert(dir.path(), &[]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exist") && text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("ca.crt")).expect("ca.crt"),
        first
    );

    let forced = cert(dir.path(), &["--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    let out = std::fs::canonicalize(dir.path()).expect("directory");
    let said = text(&forced.stderr);
    assert!(said.contains("--force: replacing "), "{said}");
    for name in ["ca.crt", "ca.key", "server.crt", "server.key"] {
        assert!(
            said.contains(&out.join(name).display().to_string()),
            "{name} not named in: {said}"
        );
    }
    assert_ne!(
        std::fs::read(dir.path().join("ca.crt")).expect("ca.crt"),
        first
    );
    assert_eq!(mode(&dir.path().join("server.key")), 0o600);
}

#[test]
fn a_host_with_a_port_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let result = registryd()
        .args(["cert", "--host", "localhost:5000", "--out"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!result.status.success());
    assert!(
        text(&result.stderr).contains("without a port"),
        "{}",
        text(&result.stderr)
    );
    assert!(!dir.path().join("ca.key").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registryd_serves_https_with_the_generated_files_and_reloads_them_on_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let result = cert(&certs, &[]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    let old_ca = dir.path().join("old-ca.crt");
    std::fs::copy(certs.join("ca.crt"), &old_ca).expect("copy ca.crt");

    let running = Running::start(dir.path(), &certs);
    assert!(
        running
            .log()
            .contains(&format!("https://{}", running.address)),
        "{}",
        running.log()
    );
    for name in ["localhost", "127.0.0.1"] {
        let status = get_v2(running.address, &old_ca, name).await;
        assert_eq!(
            status.as_deref(),
            Ok("HTTP/1.1 200 OK"),
            "as {name}; log: {}",
            running.log()
        );
    }
    // The certificate names only the hosts it was made for.
    let error = get_v2(running.address, &old_ca, "example.com")
        .await
        .expect_err("another name");
    assert!(error.contains("not valid for name"), "{error}");

    // New files, then SIGHUP: new connections get the new certificate.
    let result = cert(&certs, &["--force"]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    running.hang_up();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !running.log().contains("TLS certificate and key reloaded") {
        assert!(Instant::now() < deadline, "no reload: {}", running.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get_v2(running.address, &certs.join("ca.crt"), "localhost")
            .await
            .as_deref(),
        Ok("HTTP/1.1 200 OK")
    );
    assert!(
        get_v2(running.address, &old_ca, "localhost").await.is_err(),
        "the old CA no longer verifies new connections"
    );

    // A broken key: the reload fails, registryd keeps serving the last good files.
    std::fs::write(certs.join("server.key"), "broken\n").expect("break the key");
    running.hang_up();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !running.log().contains("TLS reload failed") {
        assert!(
            Instant::now() < deadline,
            "no failed reload: {}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        running
            .log()
            .contains("still serving the previous certificate: config key http.tls.key"),
        "{}",
        running.log()
    );
    assert_eq!(
        get_v2(running.address, &certs.join("ca.crt"), "localhost")
            .await
            .as_deref(),
        Ok("HTTP/1.1 200 OK")
    );
}

/// Whether a client trusting only `ca` accepts `certificate` for `name`.
fn verifies(ca: &Path, certificate: &CertificateDer<'static>, name: &str) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("ca.crt"))
        .expect("CA");
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .expect("verifier");
    verifier
        .verify_server_cert(
            certificate,
            &[],
            &ServerName::try_from(name.to_owned()).expect("name"),
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|error| error.to_string())
}

#[test]
fn the_ca_cannot_vouch_for_hosts_it_was_not_made_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(cert(dir.path(), &[]).status.success());
    let ca = dir.path().join("ca.crt");
    let server = CertificateDer::from_pem_file(dir.path().join("server.crt")).expect("server.crt");
    verifies(&ca, &server, "localhost").expect("localhost");
    verifies(&ca, &server, "127.0.0.1").expect("127.0.0.1");

    // Whoever holds ca.key signs a certificate for another site: clients refuse it.
    let ca_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(dir.path().join("ca.key")).expect("ca.key"),
    )
    .expect("CA key");
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "registryd CA for localhost");
    ca_params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "registryd");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let forged_key = rcgen::KeyPair::generate().expect("key");
    let mut forged = rcgen::CertificateParams::new(vec!["example.com".to_owned()]).expect("params");
    forged.use_authority_key_identifier_extension = true;
    let forged = forged
        .signed_by(&forged_key, &issuer)
        .expect("forged certificate")
        .der()
        .clone();
    let error = verifies(&ca, &forged, "example.com").expect_err("outside the name constraints");
    assert!(error.contains("NameConstraintViolation"), "{error}");
}

#[test]
fn renew_keeps_the_ca_byte_for_byte_and_its_new_server_certificate_verifies_against_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(cert(dir.path(), &[]).status.success());
    let read = |name: &str| std::fs::read(dir.path().join(name)).expect(name);
    let (ca_crt, ca_key, old_server) = (read("ca.crt"), read("ca.key"), read("server.crt"));
    let old_key = read("server.key");

    let renewed = registryd()
        .args([
            "cert",
            "--renew",
            "--host",
            "localhost",
            "--days",
            "30",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("run registryd cert --renew");
    assert!(renewed.status.success(), "{}", text(&renewed.stderr));
    assert_eq!(read("ca.crt"), ca_crt, "ca.crt unchanged");
    assert_eq!(read("ca.key"), ca_key, "ca.key unchanged");
    assert_ne!(read("server.crt"), old_server, "a new server certificate");
    assert_ne!(read("server.key"), old_key, "a new server key");
    assert_eq!(mode(&dir.path().join("server.key")), 0o600);

    let server = CertificateDer::from_pem_file(dir.path().join("server.crt")).expect("server.crt");
    let ca = dir.path().join("ca.crt");
    verifies(&ca, &server, "localhost").expect("the new certificate, for the renewed name");
    assert!(
        verifies(&ca, &server, "127.0.0.1").is_err(),
        "only the names asked for this time"
    );
    let said = text(&renewed.stderr);
    let out = std::fs::canonicalize(dir.path()).expect("directory");
    assert!(
        said.contains(&format!(
            "--renew: replacing {}, {}; keeping {} and {}",
            out.join("server.crt").display(),
            out.join("server.key").display(),
            out.join("ca.crt").display(),
            out.join("ca.key").display()
        )),
        "{said}"
    );
    assert!(
        text(&renewed.stdout).contains("clients that trust the CA need nothing new"),
        "{}",
        text(&renewed.stdout)
    );
}

#[test]
fn renew_refuses_a_name_the_ca_may_not_vouch_for_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(cert(dir.path(), &[]).status.success());
    let server = std::fs::read(dir.path().join("server.crt")).expect("server.crt");
    let renewed = registryd()
        .args([
            "cert",
            "--renew",
            "--host",
            "localhost",
            "--host",
            "registry.example.com",
        ])
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!renewed.status.success());
    let said = text(&renewed.stderr);
    assert!(
        said.contains("may only vouch for localhost (and its subdomains), 127.0.0.1")
            && said.contains("refuse a certificate for registry.example.com")
            && said.contains("--force"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("server.crt")).expect("server.crt"),
        server
    );
}

#[test]
fn renew_without_a_ca_says_it_needs_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let renewed = cert(dir.path(), &["--renew"]);
    assert!(!renewed.status.success());
    let said = text(&renewed.stderr);
    assert!(
        said.contains("cannot read") && said.contains("ca.crt"),
        "{said}"
    );
    assert!(!dir.path().join("server.crt").exists());
}

#[test]
fn renew_with_a_key_that_is_not_the_cas_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(cert(dir.path(), &[]).status.success());
    std::fs::copy(dir.path().join("server.key"), dir.path().join("ca.key")).expect("wrong key");
    let renewed = cert(dir.path(), &["--renew"]);
    assert!(!renewed.status.success());
    assert!(
        text(&renewed.stderr).contains("ca.key is not the key of ca.crt"),
        "{}",
        text(&renewed.stderr)
    );
}
