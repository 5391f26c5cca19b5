//! `registryd health`: asks the registryd that serves a configuration whether it is healthy, for
//! a container's `HEALTHCHECK` (an image without a shell or curl) or any other supervisor.
//!
//! With `http.debug` set it asks the debug server's `/debug/health` (200 is healthy: it reports
//! the storage health check too); otherwise it sends `GET /v2/` (under `http.prefix`) to
//! `http.addr`, over TLS when `http.tls` is set, and 200 or 401 is healthy (a 503 is what
//! `health.storagedriver` answers when storage fails). An address that listens on every
//! interface is asked on the loopback interface.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use registry::config::{Config, Net};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// `registryd health`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct HealthArgs {
    /// The configuration file the server was started with; else $REGISTRY_CONFIGURATION_PATH;
    /// else the built-in defaults.
    pub(crate) config: Option<PathBuf>,
    /// How long to wait for the answer, in seconds.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

/// Where and how to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe {
    target: Target,
    tls: bool,
    path: String,
    /// Whether 401 counts as healthy (the API's answer to a client without credentials).
    unauthorized_is_healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Runs the probe; `Ok` (exit 0) when the server answered healthy.
pub(crate) fn run(args: &HealthArgs, config_path: Option<PathBuf>) -> Result<(), String> {
    let loaded = Config::load(config_path.as_deref()).map_err(|error| error.to_string())?;
    let probe = probe_for(&loaded.config)?;
    let status = ask(&probe, Duration::from_secs(args.timeout.max(1)))?;
    let shown = match &probe.target {
        Target::Tcp(addr) => addr.to_string(),
        Target::Unix(path) => path.display().to_string(),
    };
    let healthy = status == 200 || (status == 401 && probe.unauthorized_is_healthy);
    let scheme = if probe.tls { "https" } else { "http" };
    let said = format!("GET {scheme}://{shown}{} answered {status}", probe.path);
    if healthy {
        println!("healthy: {said}");
        Ok(())
    } else {
        Err(format!("unhealthy: {said}"))
    }
}

/// What to ask for `config`.
fn probe_for(config: &Config) -> Result<Probe, String> {
    if let Some(debug) = &config.http.debug {
        let addr = registry::config::listen_address("http.debug.addr", &debug.addr)?;
        return Ok(Probe {
            target: Target::Tcp(loopback_if_unspecified(addr)),
            tls: false,
            path: registry::HEALTH_PATH.to_owned(),
            unauthorized_is_healthy: false,
        });
    }
    let target = match config.http.net {
        Net::Unix => Target::Unix(PathBuf::from(&config.http.addr)),
        Net::Tcp => Target::Tcp(loopback_if_unspecified(registry::config::listen_address(
            "http.addr",
            &config.http.addr,
        )?)),
    };
    let prefix = config
        .http
        .prefix
        .as_deref()
        .unwrap_or("/")
        .trim_matches('/');
    let path = if prefix.is_empty() {
        "/v2/".to_owned()
    } else {
        format!("/{prefix}/v2/")
    };
    Ok(Probe {
        target,
        tls: config.http.tls.is_some(),
        path,
        unauthorized_is_healthy: true,
    })
}

/// `0.0.0.0:P` and `[::]:P` accept connections on the loopback interface: ask there.
fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// Sends the request and returns the response's status code.
fn ask(probe: &Probe, timeout: Duration) -> Result<u16, String> {
    let unreachable = |error: std::io::Error| format!("unhealthy: cannot connect: {error}");
    match &probe.target {
        Target::Tcp(addr) => {
            let stream = TcpStream::connect_timeout(addr, timeout).map_err(unreachable)?;
            stream
                .set_read_timeout(Some(timeout))
                .and_then(|()| stream.set_write_timeout(Some(timeout)))
                .map_err(unreachable)?;
            exchange(stream, probe)
        }
        Target::Unix(path) => {
            let stream = UnixStream::connect(path).map_err(unreachable)?;
            stream
                .set_read_timeout(Some(timeout))
                .and_then(|()| stream.set_write_timeout(Some(timeout)))
                .map_err(unreachable)?;
            exchange(stream, probe)
        }
    }
}

fn exchange<S: Read + Write>(stream: S, probe: &Probe) -> Result<u16, String> {
    if !probe.tls {
        return request(stream, &probe.path);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("cannot set up TLS: {error}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").map_err(|error| error.to_string())?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|error| format!("cannot set up TLS: {error}"))?;
    request(rustls::StreamOwned::new(connection, stream), &probe.path)
}

/// One HTTP/1.1 GET; the status code of the answer.
fn request<S: Read + Write>(mut stream: S, path: &str) -> Result<u16, String> {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: registryd-health\r\n\
         Connection: close\r\n\r\n"
    )
    .and_then(|()| stream.flush())
    .map_err(|error| format!("unhealthy: cannot send the request: {error}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|error| format!("unhealthy: no answer: {error}"))?;
    status_code(&head).ok_or_else(|| {
        format!(
            "unhealthy: not an HTTP answer: {:?}",
            String::from_utf8_lossy(&head)
        )
    })
}

/// The status code of a response starting `HTTP/1.x NNN`.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// Accepts the server's certificate without checking who it names or who signed it: the probe
/// asks the registry on this host whether it answers, not whether it is who it claims to be
/// (its certificate names the public host, signed by a CA this container need not hold). The
/// handshake's signatures are still verified.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml, Vec::new())
            .expect("valid test config")
            .config
    }

    #[test]
    fn default_config_is_probed_on_loopback_port_5000() {
        let probe = probe_for(&Config::default()).expect("probe");
        assert_eq!(
            probe.target,
            Target::Tcp("127.0.0.1:5000".parse().expect("addr"))
        );
        assert_eq!(probe.path, "/v2/");
        assert!(!probe.tls);
        assert!(probe.unauthorized_is_healthy);
    }

    #[test]
    fn prefix_and_tls_shape_the_probe() {
        let probe = probe_for(&config(
            "version: 0.1\nhttp:\n  addr: \"[::]:5443\"\n  prefix: /mirror/\n  tls:\n    certificate: /c.crt\n    key: /c.key\n",
        ))
        .expect("probe");
        assert_eq!(
            probe.target,
            Target::Tcp("[::1]:5443".parse().expect("addr"))
        );
        assert_eq!(probe.path, "/mirror/v2/");
        assert!(probe.tls);
    }

    #[test]
    fn debug_server_is_asked_for_its_health_when_configured() {
        let probe = probe_for(&config(
            "version: 0.1\nhttp:\n  addr: 10.0.0.1:5000\n  debug:\n    addr: :5001\n",
        ))
        .expect("probe");
        assert_eq!(
            probe.target,
            Target::Tcp("127.0.0.1:5001".parse().expect("addr"))
        );
        assert_eq!(probe.path, registry::HEALTH_PATH);
        assert!(!probe.unauthorized_is_healthy);
    }

    #[test]
    fn status_line_is_parsed() {
        assert_eq!(status_code(b"HTTP/1.1 401 "), Some(401));
        assert_eq!(status_code(b"HTTP/1.0 200 "), Some(200));
        assert_eq!(status_code(b"SSH-2.0-Open"), None);
    }

    #[test]
    fn verifier_offers_the_providers_schemes() {
        let verifier = AnyCertificate {
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
        };
        assert!(!verifier.supported_verify_schemes().is_empty());
    }
}
