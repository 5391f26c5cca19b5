//! Serving over TLS: HTTPS on HTTP/1.1 and HTTP/2, certificate trust, client certificates,
//! reloading, key formats, chains, and clients that speak the wrong protocol. Certificates are
//! made with rcgen as the tests run; every server listens on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SignatureAlgorithm,
};
use registry::config::{ClientAuth, Config, TlsConfig, TlsVersion};
use registry::{BuildError, Registry, ReloadableTls, ServeError, ServerOptions, TlsError};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

// ---------------------------------------------------------------------------------------------
// Certificates

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        Ca::signed(name, None)
    }

    /// An intermediate CA when `parent` is given, else a root.
    fn signed(name: &str, parent: Option<&Ca>) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let issuer = match parent {
            None => CertifiedIssuer::self_signed(params, key),
            Some(parent) => CertifiedIssuer::signed_by(params, key, &parent.issuer),
        }
        .expect("CA certificate");
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A certificate for `key`, valid for localhost and 127.0.0.1, for servers or clients.
    fn issue(&self, key: &KeyPair, purpose: ExtendedKeyUsagePurpose) -> String {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "registry test");
        params.extended_key_usages = vec![purpose];
        params.use_authority_key_identifier_extension = true;
        params
            .signed_by(key, &self.issuer)
            .expect("leaf certificate")
            .pem()
    }
}

fn key(algorithm: &'static SignatureAlgorithm) -> KeyPair {
    if algorithm == &rcgen::PKCS_RSA_SHA256 {
        KeyPair::generate_rsa_for(algorithm, rcgen::RsaKeySize::_2048).expect("RSA key")
    } else {
        KeyPair::generate_for(algorithm).expect("key")
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test file");
    path
}

/// A server certificate and key from `ca`, written to `dir` as server.crt and server.key.
fn server_files(dir: &Path, ca: &Ca) -> TlsConfig {
    let key = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    tls_config(
        write(
            dir,
            "server.crt",
            &ca.issue(&key, ExtendedKeyUsagePurpose::ServerAuth),
        ),
        write(dir, "server.key", &key.serialize_pem()),
    )
}

fn tls_config(certificate: PathBuf, key: PathBuf) -> TlsConfig {
    TlsConfig {
        certificate,
        key,
        clientcas: Vec::new(),
        clientauth: ClientAuth::default(),
        minimumtls: TlsVersion::default(),
        ciphersuites: Vec::new(),
    }
}

/// Unwraps a PKCS#8 PrivateKeyInfo (SEQUENCE { version, algorithm, OCTET STRING key }) into the
/// key inside: PKCS#1 for RSA, SEC1 for EC.
fn pkcs8_inner(der: &[u8]) -> Vec<u8> {
    /// One DER element: (tag, contents, rest).
    fn element(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (length, header) = match input[1] {
            short @ 0..=0x7f => (usize::from(short), 2),
            0x81 => (usize::from(input[2]), 3),
            0x82 => (usize::from(input[2]) << 8 | usize::from(input[3]), 4),
            other => panic!("unexpected DER length byte {other:#x}"),
        };
        (
            tag,
            &input[header..header + length],
            &input[header + length..],
        )
    }
    let (tag, info, _) = element(der);
    assert_eq!(tag, 0x30);
    let (_, _, rest) = element(info); // version
    let (_, _, rest) = element(rest); // algorithm
    let (tag, key, _) = element(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::new();
    for chunk in der.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let bits = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for index in 0..4 {
            if index <= chunk.len() {
                encoded.push(char::from(
                    ALPHABET[(bits >> (18 - 6 * index) & 63) as usize],
                ));
            } else {
                encoded.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// ---------------------------------------------------------------------------------------------
// Servers and clients

struct Server {
    address: SocketAddr,
    registry: Registry,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Server {
    async fn start(tls: Option<ReloadableTls>) -> Server {
        Server::start_with(tls, ServerOptions::default()).await
    }

    async fn start_with(tls: Option<ReloadableTls>, options: ServerOptions) -> Server {
        let registry = Registry::builder().tls(tls).server_options(options).build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        Server {
            address,
            registry,
            stop: Some(stop),
            serving,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.serving)
            .await
            .expect("serve stops")
            .expect("serve task")
            .expect("serve ended cleanly");
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client trusting `roots`, offering `alpn`.
fn client(roots: &[CertificateDer<'static>], alpn: &[&[u8]]) -> ClientConfig {
    client_with(roots, alpn, rustls::ALL_VERSIONS, None)
}

fn client_with(
    roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> ClientConfig {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("root");
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(store);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    config
}

async fn connect(
    address: SocketAddr,
    config: ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    connect_as(address, config, "localhost").await
}

async fn connect_as(
    address: SocketAddr,
    config: ClientConfig,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(address).await?;
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Sends `GET /v2/` and reads the whole answer; the connection is closed after it.
async fn get_v2(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> std::io::Result<String> {
    stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    read_all(stream).await
}

/// Everything until the peer closes; an error only when nothing at all was read.
async fn read_all(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<String> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
            Err(error) if answer.is_empty() => return Err(error),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Sends `GET /v2/` on a connection that stays open and reads exactly one response.
async fn get_v2_keep_alive(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> String {
    stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("send request");
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.expect("read head"), 1);
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map(|value| value.trim().parse().expect("content length"))
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("read body");
    answer.extend_from_slice(&body);
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_ok(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 200"), "answer: {answer}");
}

/// Everything the servers of this test binary log, for tests that check a line of their own.
///
/// One global subscriber, installed once: a per-thread default (`set_default`) is unreliable
/// while other tests on other threads install and drop theirs, because tracing keeps its level
/// filter and callsite interest globally, and lines went missing that way.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

fn captured_log() -> &'static CapturedLog {
    static LOG: std::sync::OnceLock<CapturedLog> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = CapturedLog::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        log
    })
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTPS

#[tokio::test]
async fn https_get_v2_over_http1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let tls = ReloadableTls::load(&server_files(dir.path(), &ca), true).expect("load");
    let log = captured_log();
    let server = Server::start(Some(tls)).await;

    let mut stream = connect(server.address, client(&[ca.der()], &[b"http/1.1"]))
        .await
        .expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let client_address = stream.get_ref().0.local_addr().expect("local address");
    assert_ok(&get_v2(&mut stream).await.expect("GET /v2/"));
    // The access log works over TLS as it does without.
    let logged = log.text();
    assert!(
        logged.lines().any(|line| line.contains("registryd::access")
            && line.contains(&format!("peer={client_address}"))
            && line.contains("status=200")),
        "log: {logged}"
    );
    server.stop().await;
}

#[tokio::test]
async fn https_get_v2_over_h2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let tls = ReloadableTls::load(&server_files(dir.path(), &ca), true).expect("load");
    let server = Server::start(Some(tls)).await;

    let stream = connect(server.address, client(&[ca.der()], &[b"h2", b"http/1.1"]))
        .await
        .expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    let driving = tokio::spawn(connection);
    let request = http::Request::get("https://localhost/v2/")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    response.into_body().collect().await.expect("body");
    drop(sender);
    let _ = driving.await;
    server.stop().await;
}

#[tokio::test]
async fn without_http2_alpn_offers_only_http1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let tls = ReloadableTls::load(&server_files(dir.path(), &ca), false).expect("load");
    let server = Server::start(Some(tls)).await;

    let mut stream = connect(server.address, client(&[ca.der()], &[b"h2", b"http/1.1"]))
        .await
        .expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_ok(&get_v2(&mut stream).await.expect("GET /v2/"));
    server.stop().await;
}

#[tokio::test]
async fn client_that_does_not_trust_the_ca_fails_the_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let tls = ReloadableTls::load(&server_files(dir.path(), &ca), true).expect("load");
    let server = Server::start(Some(tls)).await;

    let other = Ca::new("another CA");
    let error = connect(server.address, client(&[other.der()], &[]))
        .await
        .expect_err("untrusted certificate");
    assert!(
        error.to_string().contains("UnknownIssuer"),
        "error: {error}"
    );
    // A client that trusts the CA still gets in.
    let mut stream = connect(server.address, client(&[ca.der()], &[]))
        .await
        .expect("handshake");
    assert_ok(&get_v2(&mut stream).await.expect("GET /v2/"));
    server.stop().await;
}

#[tokio::test]
async fn server_certificate_names_localhost_and_127_0_0_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let tls = ReloadableTls::load(&server_files(dir.path(), &ca), true).expect("load");
    let server = Server::start(Some(tls)).await;
    connect_as(server.address, client(&[ca.der()], &[]), "127.0.0.1")
        .await
        .expect("IP address name");
    let error = connect_as(server.address, client(&[ca.der()], &[]), "example.com")
        .await
        .expect_err("name not in the certificate");
    assert!(
        error.to_string().contains("not valid for name"),
        "error: {error}"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Versions and suites

#[tokio::test]
async fn tls12_is_accepted_by_default_and_refused_with_minimum_tls13() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let mut config = server_files(dir.path(), &ca);
    let tls12_client = || client_with(&[ca.der()], &[], &[&rustls::version::TLS12], None);

    let server = Server::start(Some(ReloadableTls::load(&config, true).expect("load"))).await;
    let mut stream = connect(server.address, tls12_client())
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_ok(&get_v2(&mut stream).await.expect("GET /v2/"));
    server.stop().await;

    config.minimumtls = TlsVersion::Tls13;
    let server = Server::start(Some(ReloadableTls::load(&config, true).expect("load"))).await;
    connect(server.address, tls12_client())
        .await
        .expect_err("TLS 1.2 refused");
    let stream = connect(server.address, client(&[ca.der()], &[]))
        .await
        .expect("TLS 1.3 handshake");
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    server.stop().await;
}

#[test]
fn tls10_and_tls11_minimums_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = server_files(dir.path(), &Ca::new("test CA"));
    for version in [TlsVersion::Tls10, TlsVersion::Tls11] {
        config.minimumtls = version;
        let error = ReloadableTls::load(&config, true).expect_err("old TLS refused");
        assert!(
            error
                .to_string()
                .starts_with("http.tls.minimumtls: TLS 1.0 and 1.1 are not supported"),
            "error: {error}"
        );
    }
}

#[tokio::test]
async fn cipher_suites_restrict_tls12() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let mut config = server_files(dir.path(), &ca);
    config.ciphersuites = vec![
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".to_owned(),
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA".to_owned(),
    ];
    let server = Server::start(Some(ReloadableTls::load(&config, true).expect("load"))).await;
    let stream = connect(
        server.address,
        client_with(&[ca.der()], &[], &[&rustls::version::TLS12], None),
    )
    .await
    .expect("TLS 1.2 handshake");
    assert_eq!(
        stream
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .map(|suite| suite.suite()),
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Client certificates

struct MutualTls {
    server_ca: Ca,
    client_ca: Ca,
    config: TlsConfig,
    _dir: tempfile::TempDir,
}

fn mutual_tls(mode: ClientAuth) -> MutualTls {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let mut config = server_files(dir.path(), &server_ca);
    config.clientcas = vec![write(dir.path(), "clients.pem", &client_ca.pem())];
    config.clientauth = mode;
    MutualTls {
        server_ca,
        client_ca,
        config,
        _dir: dir,
    }
}

fn client_identity(ca: &Ca) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let certificate = ca.issue(&key, ExtendedKeyUsagePurpose::ClientAuth);
    let chain = CertificateDer::pem_slice_iter(certificate.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("client chain");
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("client key");
    (chain, key)
}

/// Whether a GET /v2/ with this client configuration is answered with 200. With TLS 1.3 the
/// server refuses a client certificate after the client considers the handshake done, so the
/// refusal can surface on the first read.
async fn gets_in(address: SocketAddr, config: ClientConfig) -> bool {
    match connect(address, config).await {
        Ok(mut stream) => get_v2(&mut stream)
            .await
            .is_ok_and(|answer| answer.starts_with("HTTP/1.1 200")),
        Err(_) => false,
    }
}

#[tokio::test]
async fn client_certificate_required_by_default_with_clientcas() {
    let setup = mutual_tls(ClientAuth::default());
    let server = Server::start(Some(
        ReloadableTls::load(&setup.config, true).expect("load"),
    ))
    .await;
    let roots = [setup.server_ca.der()];
    let versions = rustls::ALL_VERSIONS;

    assert!(
        !gets_in(server.address, client_with(&roots, &[], versions, None)).await,
        "no client certificate is refused"
    );
    let stranger = Ca::new("unknown client CA");
    assert!(
        !gets_in(
            server.address,
            client_with(&roots, &[], versions, Some(client_identity(&stranger)))
        )
        .await,
        "a certificate from another CA is refused"
    );
    assert!(
        gets_in(
            server.address,
            client_with(
                &roots,
                &[],
                versions,
                Some(client_identity(&setup.client_ca))
            )
        )
        .await,
        "a certificate signed by clientcas is accepted"
    );
    server.stop().await;
}

#[tokio::test]
async fn verify_client_cert_if_given_accepts_none_but_checks_one() {
    let setup = mutual_tls(ClientAuth::VerifyClientCertIfGiven);
    let server = Server::start(Some(
        ReloadableTls::load(&setup.config, true).expect("load"),
    ))
    .await;
    let roots = [setup.server_ca.der()];
    let versions = rustls::ALL_VERSIONS;

    assert!(gets_in(server.address, client_with(&roots, &[], versions, None)).await);
    assert!(
        gets_in(
            server.address,
            client_with(
                &roots,
                &[],
                versions,
                Some(client_identity(&setup.client_ca))
            )
        )
        .await
    );
    let stranger = Ca::new("unknown client CA");
    assert!(
        !gets_in(
            server.address,
            client_with(&roots, &[], versions, Some(client_identity(&stranger)))
        )
        .await
    );
    server.stop().await;
}

#[test]
fn unverified_client_auth_modes_are_refused() {
    for mode in [
        ClientAuth::RequestClientCert,
        ClientAuth::RequireAnyClientCert,
    ] {
        let setup = mutual_tls(mode);
        let error = ReloadableTls::load(&setup.config, true).expect_err("refused");
        assert!(
            error.to_string().starts_with("http.tls.clientauth: "),
            "error: {error}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reloading

#[tokio::test]
async fn reload_serves_new_certificate_to_new_connections_and_keeps_old_on_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old_ca = Ca::new("old CA");
    let config = server_files(dir.path(), &old_ca);
    let tls = ReloadableTls::load(&config, true).expect("load");
    let server = Server::start(Some(tls.clone())).await;
    assert!(server.registry.reload_tls().expect("reload"));

    let mut open = connect(server.address, client(&[old_ca.der()], &[]))
        .await
        .expect("handshake");
    assert_ok(&get_v2_keep_alive(&mut open).await);

    // New files from another CA, then reload.
    let new_ca = Ca::new("new CA");
    server_files(dir.path(), &new_ca);
    assert!(server.registry.reload_tls().expect("reload"));
    connect(server.address, client(&[old_ca.der()], &[]))
        .await
        .expect_err("new connections no longer get the old certificate");
    let mut stream = connect(server.address, client(&[new_ca.der()], &[]))
        .await
        .expect("new certificate");
    assert_ok(&get_v2(&mut stream).await.expect("GET /v2/"));
    // The connection opened before the reload goes on.
    assert_ok(
        &get_v2(&mut open)
            .await
            .expect("GET /v2/ on the old connection"),
    );

    // Broken files: the reload fails and the last good configuration stays.
    write(dir.path(), "server.key", "not a key\n");
    let error = server.registry.reload_tls().expect_err("broken key");
    assert!(
        error.to_string().contains("no private key found"),
        "error: {error}"
    );
    let mut stream = connect(server.address, client(&[new_ca.der()], &[]))
        .await
        .expect("still the new certificate");
    assert_ok(&get_v2(&mut stream).await.expect("GET /v2/"));
    server.stop().await;
}

#[test]
fn reload_without_tls_reports_nothing_to_do() {
    assert!(!Registry::builder().build().reload_tls().expect("reload"));
}

// ---------------------------------------------------------------------------------------------
// Keys and chains

/// Serves `certificate` and `key` and checks a client trusting `ca` gets an answer.
async fn serves(ca: &Ca, certificate: PathBuf, key: PathBuf) {
    let tls = ReloadableTls::load(&tls_config(certificate, key), true).expect("load");
    let server = Server::start(Some(tls)).await;
    let mut stream = connect(server.address, client(&[ca.der()], &[]))
        .await
        .expect("handshake");
    assert_ok(&get_v2(&mut stream).await.expect("GET /v2/"));
    server.stop().await;
}

#[tokio::test]
async fn rsa_ecdsa_and_ed25519_keys_load_in_every_encoding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    for (name, algorithm) in [
        ("rsa", &rcgen::PKCS_RSA_SHA256),
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let key = key(algorithm);
        let certificate = write(
            dir.path(),
            &format!("{name}.crt"),
            &ca.issue(&key, ExtendedKeyUsagePurpose::ServerAuth),
        );
        let pkcs8 = write(dir.path(), &format!("{name}.p8.key"), &key.serialize_pem());
        serves(&ca, certificate.clone(), pkcs8).await;
        let traditional = match name {
            "rsa" => Some(pem("RSA PRIVATE KEY", &pkcs8_inner(&key.serialize_der()))),
            "p256" | "p384" => Some(pem("EC PRIVATE KEY", &pkcs8_inner(&key.serialize_der()))),
            _ => None,
        };
        if let Some(traditional) = traditional {
            let path = write(dir.path(), &format!("{name}.key"), &traditional);
            serves(&ca, certificate, path).await;
        }
    }
}

#[tokio::test]
async fn chain_file_is_served_as_a_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Ca::new("root CA");
    let intermediate = Ca::signed("intermediate CA", Some(&root));
    let key = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let chain = format!(
        "{}{}",
        intermediate.issue(&key, ExtendedKeyUsagePurpose::ServerAuth),
        intermediate.pem()
    );
    let config = tls_config(
        write(dir.path(), "chain.crt", &chain),
        write(dir.path(), "server.key", &key.serialize_pem()),
    );
    let server = Server::start(Some(ReloadableTls::load(&config, true).expect("load"))).await;
    // The client knows only the root: the intermediate must come from the server.
    let mut stream = connect(server.address, client(&[root.der()], &[]))
        .await
        .expect("handshake through the intermediate");
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates")
        .to_vec();
    assert_eq!(presented.len(), 2);
    assert_eq!(presented[1], intermediate.der());
    assert_ok(&get_v2(&mut stream).await.expect("GET /v2/"));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Configuration errors

#[test]
fn errors_name_the_key_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let good = server_files(dir.path(), &ca);
    let load_error = |certificate: &Path, key: &Path| {
        ReloadableTls::load(&tls_config(certificate.to_owned(), key.to_owned()), true)
            .expect_err("error")
            .to_string()
    };

    let garbage = write(dir.path(), "garbage.pem", "hello\n");
    assert_eq!(
        load_error(&good.certificate, &garbage),
        format!(
            "http.tls.key {}: no private key found (expected PKCS#8, PKCS#1 or SEC1 PEM)",
            garbage.display()
        )
    );
    assert_eq!(
        load_error(&garbage, &good.key),
        format!(
            "http.tls.certificate {}: no certificate found (expected PEM blocks starting with \
             -----BEGIN CERTIFICATE-----)",
            garbage.display()
        )
    );
    let missing = dir.path().join("missing.pem");
    assert!(
        load_error(&good.certificate, &missing).starts_with(&format!(
            "http.tls.key {}: cannot read the file: ",
            missing.display()
        ))
    );
    assert!(
        load_error(&good.key, &good.certificate)
            .contains("are http.tls.certificate and http.tls.key swapped?")
    );
    let other_key = write(
        dir.path(),
        "other.key",
        &key(&rcgen::PKCS_ECDSA_P256_SHA256).serialize_pem(),
    );
    assert_eq!(
        load_error(&good.certificate, &other_key),
        format!(
            "http.tls.certificate {} and http.tls.key {}: certificate and key do not match (the \
             first certificate in the file must be the one issued for this key)",
            good.certificate.display(),
            other_key.display()
        )
    );
    let encrypted = write(
        dir.path(),
        "encrypted.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    assert!(load_error(&good.certificate, &encrypted).contains("the private key is encrypted"));
    let truncated = write(
        dir.path(),
        "truncated.crt",
        "-----BEGIN CERTIFICATE-----\nMIIB\n",
    );
    assert!(
        load_error(&truncated, &good.key).contains("not a valid PEM file"),
        "{}",
        load_error(&truncated, &good.key)
    );
    let mut with_clientcas = good.clone();
    with_clientcas.clientcas = vec![good.certificate.clone(), garbage.clone()];
    assert!(
        ReloadableTls::load(&with_clientcas, true)
            .expect_err("bad client CA file")
            .to_string()
            .starts_with(&format!("http.tls.clientcas[1] {}: ", garbage.display()))
    );
}

#[test]
fn from_config_loads_tls_and_reports_errors_as_config_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = server_files(dir.path(), &Ca::new("test CA"));
    let mut config = Config::default();
    config.http.tls = Some(good.clone());
    let registry = Registry::from_config(&config).expect("TLS config builds");
    assert!(registry.tls().is_some());

    let mut broken = good;
    broken.key = write(dir.path(), "empty.key", "");
    config.http.tls = Some(broken.clone());
    let error = Registry::from_config(&config).expect_err("broken key");
    assert!(matches!(error, BuildError::Tls(TlsError::File { .. })));
    assert_eq!(
        error.to_string(),
        format!(
            "config key http.tls.key {}: no private key found (expected PKCS#8, PKCS#1 or SEC1 PEM)",
            broken.key.display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// The wrong protocol

#[tokio::test]
async fn plain_listener_closes_a_tls_client_hello_with_one_debug_line_per_client_address() {
    let log = captured_log();
    let server = Server::start(None).await;
    let ca = Ca::new("test CA");
    // Docker probes HTTPS before every push to an insecure registry.
    for _ in 0..3 {
        connect(server.address, client(&[ca.der()], &[]))
            .await
            .expect_err("no TLS here");
    }
    // Plain HTTP still works, and is answered after the probes were handled.
    let mut plain = TcpStream::connect(server.address).await.expect("connect");
    assert_ok(&get_v2(&mut plain).await.expect("GET /v2/"));
    server.stop().await;

    let logged = log.text();
    let lines: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains("started a TLS handshake"))
        .collect();
    assert_eq!(lines.len(), 1, "one line in: {logged}");
    let line = lines[0];
    assert!(line.contains(" DEBUG "), "line: {line}");
    assert!(line.contains("client at 127.0.0.1:"), "line: {line}");
    assert!(
        line.ends_with("configure http.tls or use http://"),
        "line: {line}"
    );
}

#[tokio::test]
async fn tls_listener_answers_plain_http_with_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let tls = ReloadableTls::load(&server_files(dir.path(), &ca), true).expect("load");
    let server = Server::start(Some(tls)).await;

    let mut plain = TcpStream::connect(server.address).await.expect("connect");
    let answer = get_v2(&mut plain).await.expect("an answer");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "answer: {answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\nthis registry serves HTTPS: use https://\n"),
        "answer: {answer}"
    );
    // HTTPS on the same listener is unaffected.
    let mut stream = connect(server.address, client(&[ca.der()], &[]))
        .await
        .expect("handshake");
    assert_ok(&get_v2(&mut stream).await.expect("GET /v2/"));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_connection_that_never_handshakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let tls = ReloadableTls::load(&server_files(dir.path(), &ca), true).expect("load");
    let options = ServerOptions {
        tls_handshake_timeout: Duration::from_secs(600),
        drain_timeout: Duration::from_secs(600),
        ..ServerOptions::default()
    };
    let server = Server::start_with(Some(tls), options).await;
    let _silent = TcpStream::connect(server.address).await.expect("connect");
    let mut idle = connect(server.address, client(&[ca.der()], &[]))
        .await
        .expect("handshake");
    assert_ok(&get_v2_keep_alive(&mut idle).await);
    // Both an unfinished handshake and an idle keep-alive connection let shutdown complete.
    server.stop().await;
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest).await;
}
