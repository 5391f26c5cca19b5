//! TLS for the registry's listener (registry:2's `http.tls`): a rustls [`ServerConfig`] loaded
//! from PEM files, with optional client certificates, that can be reloaded while serving.
//!
//! registryd uses rustls with the aws-lc-rs provider, passed explicitly so that no process-wide
//! default provider is needed. rustls speaks TLS 1.2 and 1.3 only, and only AEAD cipher suites
//! with forward secrecy; settings that ask for less are refused or skipped, never silently
//! weakened.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientAuth, TlsConfig, TlsVersion};

/// Why a TLS configuration could not be loaded. Every message names the config key, and the file
/// where there is one, and says what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{key} {}: cannot read the file: {source}", path.display())]
    Read {
        /// The config key naming the file (`http.tls.key`, `http.tls.clientcas[0]`).
        key: String,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not usable.
    #[error("{key} {}: {reason}", path.display())]
    File {
        /// The config key naming the file.
        key: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate was not issued for the private key.
    #[error(
        "http.tls.certificate {} and http.tls.key {}: certificate and key do not match \
         (the first certificate in the file must be the one issued for this key)",
        certificate.display(),
        key.display()
    )]
    KeyMismatch {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A setting asks for something registryd does not do.
    #[error("{key}: {reason}")]
    Unsupported {
        /// The config key.
        key: String,
        /// What is not supported and what to use instead.
        reason: String,
    },
}

/// The ALPN protocol names offered, most preferred first.
const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Loads a rustls [`ServerConfig`] from `config`: the certificate chain (every certificate in
/// the file, leaf first), the private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519), the
/// client CAs, the minimum version and the cipher suites. ALPN offers `h2` (when
/// `offer_http2`) and `http/1.1`.
///
/// Reads files synchronously: call it from a blocking context when on an async runtime.
pub fn load_server_config(config: &TlsConfig, offer_http2: bool) -> Result<ServerConfig, TlsError> {
    let versions = protocol_versions(config.minimumtls)?;
    let provider = Arc::new(CryptoProvider {
        cipher_suites: cipher_suites(&config.ciphersuites, config.minimumtls)?,
        ..aws_lc_rs::default_provider()
    });
    let chain = load_certificates("http.tls.certificate", &config.certificate)?;
    let key = load_private_key(&config.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|error| TlsError::Unsupported {
            key: "http.tls.ciphersuites".to_owned(),
            reason: format!("no cipher suite is usable with the TLS versions allowed: {error}"),
        })?;
    let builder = if config.clientcas.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_verifier(client_verifier(config, provider)?)
    };
    let mut server_config = builder
        .with_single_cert(chain, key)
        .map_err(|error| certified_key_error(config, error))?;
    server_config.alpn_protocols = if offer_http2 {
        vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()]
    } else {
        vec![ALPN_HTTP1.to_vec()]
    };
    Ok(server_config)
}

/// A TLS configuration that can be reloaded from its files while serving: new connections use
/// the latest configuration that loaded, connections already open keep theirs. Cloning is cheap
/// and clones share the configuration.
#[derive(Clone, Debug)]
pub struct ReloadableTls {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: TlsConfig,
    offer_http2: bool,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadableTls {
    /// Loads the configuration `config` describes (see [`load_server_config`]).
    pub fn load(config: &TlsConfig, offer_http2: bool) -> Result<Self, TlsError> {
        let server_config = load_server_config(config, offer_http2)?;
        Ok(ReloadableTls {
            inner: Arc::new(Inner {
                source: config.clone(),
                offer_http2,
                current: RwLock::new(Arc::new(server_config)),
            }),
        })
    }

    /// Reads the files again and, when they load, uses them for new connections. On error the
    /// previous configuration stays in use and the error says why the new one was refused.
    ///
    /// Reads files synchronously: call it from a blocking context when on an async runtime.
    pub fn reload(&self) -> Result<(), TlsError> {
        let server_config = load_server_config(&self.inner.source, self.inner.offer_http2)?;
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Arc::new(server_config);
        Ok(())
    }

    /// The configuration for a new connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.inner
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The settings the configuration is loaded from.
    pub fn source(&self) -> &TlsConfig {
        &self.inner.source
    }
}

static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn protocol_versions(
    minimum: TlsVersion,
) -> Result<&'static [&'static SupportedProtocolVersion], TlsError> {
    match minimum {
        TlsVersion::Tls12 => Ok(rustls::ALL_VERSIONS),
        TlsVersion::Tls13 => Ok(TLS13_ONLY),
        TlsVersion::Tls10 | TlsVersion::Tls11 => Err(TlsError::Unsupported {
            key: "http.tls.minimumtls".to_owned(),
            reason: "TLS 1.0 and 1.1 are not supported (they are deprecated by RFC 8996); \
                     set tls1.2 (the default) or tls1.3"
                .to_owned(),
        }),
    }
}

/// The suites `names` (registry:2's Go names) select, or the defaults when empty.
///
/// As in Go's crypto/tls, which registry:2 uses, the list chooses the TLS 1.2 suites; TLS 1.3
/// suites are all enabled unless the list names some of them, in which case only those are.
/// Go names of suites rustls does not implement (CBC, RC4, 3DES, RSA key exchange) are skipped
/// with a warning: leaving out a weak suite never weakens a connection.
fn cipher_suites(
    names: &[String],
    minimum: TlsVersion,
) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let defaults = aws_lc_rs::DEFAULT_CIPHER_SUITES;
    if names.is_empty() {
        return Ok(defaults.to_vec());
    }
    let mut tls12 = Vec::new();
    let mut tls13 = Vec::new();
    for name in names {
        let upper = name.to_ascii_uppercase();
        if let Some(suite) = rustls_suite(&upper) {
            let list = if matches!(suite, SupportedCipherSuite::Tls13(_)) {
                &mut tls13
            } else {
                &mut tls12
            };
            if !list.contains(&suite) {
                list.push(suite);
            }
        } else if GO_ONLY_SUITES.contains(&upper.as_str()) {
            tracing::warn!(
                "config key http.tls.ciphersuites: {name} is not supported by registryd \
                 (only AEAD suites with forward secrecy are) and is skipped"
            );
        } else {
            return Err(TlsError::Unsupported {
                key: "http.tls.ciphersuites".to_owned(),
                reason: format!(
                    "{name:?} is not a cipher suite name; use Go names such as \
                     TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
                ),
            });
        }
    }
    if tls13.is_empty() {
        tls13 = defaults
            .iter()
            .copied()
            .filter(|suite| matches!(suite, SupportedCipherSuite::Tls13(_)))
            .collect();
    }
    if tls12.is_empty() && minimum <= TlsVersion::Tls12 {
        return Err(TlsError::Unsupported {
            key: "http.tls.ciphersuites".to_owned(),
            reason: "none of the listed suites is usable for TLS 1.2; add one of \
                     TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, \
                     TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, \
                     TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 or \
                     TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, or set minimumtls: tls1.3"
                .to_owned(),
        });
    }
    tls13.extend(tls12);
    Ok(tls13)
}

/// The rustls suite for a Go cipher suite name (upper case).
fn rustls_suite(name: &str) -> Option<SupportedCipherSuite> {
    Some(match name {
        "TLS_AES_128_GCM_SHA256" => cipher_suite::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cipher_suite::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// Suites registry:2 accepts that rustls does not implement.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

fn client_verifier(
    config: &TlsConfig,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, path) in config.clientcas.iter().enumerate() {
        let key = format!("http.tls.clientcas[{index}]");
        for (position, certificate) in load_certificates(&key, path)?.into_iter().enumerate() {
            roots.add(certificate).map_err(|error| TlsError::File {
                key: key.clone(),
                path: path.clone(),
                reason: format!(
                    "certificate {} in the file is not a usable CA certificate: {error}",
                    position + 1
                ),
            })?;
        }
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = match config.clientauth {
        ClientAuth::RequireAndVerifyClientCert => builder,
        ClientAuth::VerifyClientCertIfGiven => builder.allow_unauthenticated(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            return Err(TlsError::Unsupported {
                key: "http.tls.clientauth".to_owned(),
                reason: format!(
                    "{} accepts client certificates without verifying them, which registryd \
                     does not do; use require-and-verify-client-cert (the default) or \
                     verify-client-cert-if-given",
                    client_auth_name(config.clientauth)
                ),
            });
        }
    };
    builder.build().map_err(|error| TlsError::Unsupported {
        key: "http.tls.clientcas".to_owned(),
        reason: format!("cannot verify client certificates with these CAs: {error}"),
    })
}

fn client_auth_name(mode: ClientAuth) -> &'static str {
    match mode {
        ClientAuth::RequestClientCert => "request-client-cert",
        ClientAuth::RequireAnyClientCert => "require-any-client-cert",
        ClientAuth::VerifyClientCertIfGiven => "verify-client-cert-if-given",
        ClientAuth::RequireAndVerifyClientCert => "require-and-verify-client-cert",
    }
}

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })
}

fn file_error(key: &str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        key: key.to_owned(),
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Every certificate in a PEM file, in file order.
fn load_certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(key, path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(key, path, pem_error(&error)))?;
    if certificates.is_empty() {
        let reason = if looks_like_der(&bytes) {
            "no PEM certificate found: the file looks like binary DER; convert it with \
             `openssl x509 -inform der -in FILE -out FILE.pem`"
        } else if PrivateKeyDer::from_pem_slice(&bytes).is_ok() {
            "no certificate found, only a private key: are http.tls.certificate and \
             http.tls.key swapped?"
        } else {
            "no certificate found (expected PEM blocks starting with -----BEGIN CERTIFICATE-----)"
        };
        return Err(file_error(key, path, reason));
    }
    Ok(certificates)
}

/// The first private key in a PEM file.
fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const KEY: &str = "http.tls.key";
    let bytes = read_file(KEY, path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let reason = if contains(&bytes, b"ENCRYPTED PRIVATE KEY")
                || contains(&bytes, b"Proc-Type: 4,ENCRYPTED")
            {
                "the private key is encrypted; registryd needs it unencrypted \
                 (`openssl pkey -in FILE -out FILE.plain`, then keep that file readable only \
                 by registryd)"
            } else if looks_like_der(&bytes) {
                "no PEM private key found: the file looks like binary DER; convert it with \
                 `openssl pkey -inform der -in FILE -out FILE.pem`"
            } else if contains(&bytes, b"-----BEGIN CERTIFICATE-----") {
                "no private key found, only certificates: are http.tls.certificate and \
                 http.tls.key swapped?"
            } else {
                "no private key found (expected PKCS#8, PKCS#1 or SEC1 PEM)"
            };
            Err(file_error(KEY, path, reason))
        }
        Err(error) => Err(file_error(KEY, path, pem_error(&error))),
    }
}

fn certified_key_error(config: &TlsConfig, error: rustls::Error) -> TlsError {
    match error {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            certificate: config.certificate.clone(),
            key: config.key.clone(),
        },
        rustls::Error::InvalidCertificate(error) => file_error(
            "http.tls.certificate",
            &config.certificate,
            format!("the first certificate cannot be used: {error}"),
        ),
        error => file_error(
            "http.tls.key",
            &config.key,
            format!("not a usable RSA, ECDSA or Ed25519 private key: {error}"),
        ),
    }
}

fn pem_error(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "not a valid PEM file: a block has no end line {:?}",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "not a valid PEM file: malformed line {:?}",
            String::from_utf8_lossy(line)
        ),
        error => format!("not a valid PEM file: {error}"),
    }
}

/// A DER file starts with a SEQUENCE tag; PEM is text.
fn looks_like_der(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x30)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_suite_list_is_the_default() {
        let suites = cipher_suites(&[], TlsVersion::Tls12).expect("suites");
        assert_eq!(suites, aws_lc_rs::DEFAULT_CIPHER_SUITES.to_vec());
    }

    #[test]
    fn suite_list_chooses_tls12_suites_and_keeps_tls13() {
        let names = [
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_owned(),
            "TLS_RSA_WITH_AES_128_CBC_SHA".to_owned(),
        ];
        let suites = cipher_suites(&names, TlsVersion::Tls12).expect("suites");
        let tls12: Vec<_> = suites
            .iter()
            .filter(|suite| matches!(suite, SupportedCipherSuite::Tls12(_)))
            .collect();
        assert_eq!(
            tls12,
            [&cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
        );
        assert_eq!(
            suites.len(),
            4,
            "three TLS 1.3 suites and one TLS 1.2 suite"
        );
    }

    #[test]
    fn unknown_suite_name_is_an_error() {
        let error =
            cipher_suites(&["TLS_FANCY".to_owned()], TlsVersion::Tls12).expect_err("unknown suite");
        assert!(
            error
                .to_string()
                .starts_with("http.tls.ciphersuites: \"TLS_FANCY\"")
        );
    }

    #[test]
    fn only_weak_suites_is_an_error() {
        let error = cipher_suites(&["TLS_RSA_WITH_RC4_128_SHA".to_owned()], TlsVersion::Tls12)
            .expect_err("no usable suite");
        assert!(error.to_string().contains("none of the listed suites"));
    }

    #[test]
    fn old_protocol_versions_are_refused() {
        assert!(protocol_versions(TlsVersion::Tls10).is_err());
        assert!(protocol_versions(TlsVersion::Tls11).is_err());
        assert_eq!(protocol_versions(TlsVersion::Tls13).expect("1.3").len(), 1);
    }
}
