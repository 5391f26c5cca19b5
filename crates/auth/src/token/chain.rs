//! The `x5c` header: a certificate chain whose leaf holds the signing key and which must lead to
//! a certificate of the root bundle, as registry:2 verifies it with Go's `x509.Verify`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA};

use super::keys::TrustedKey;

/// The longest chain accepted: the leaf and up to this many intermediates, bounding the work an
/// untrusted header can cause.
const MAX_CHAIN_LEN: usize = 8;

/// The signing key of a token whose header carries the certificate chain `x5c` (standard base64
/// DER, leaf first), when the chain is trusted: its leaf is a bundle certificate, or the leaf is
/// signed by a bundle certificate, directly or through the chain's intermediates (which must be
/// CA certificates). Every certificate used must be within its validity period; SHA-1
/// signatures are refused.
pub(crate) fn leaf_key(
    x5c: &[String],
    roots: &[CertificateDer<'static>],
) -> Result<TrustedKey, &'static str> {
    if x5c.len() > MAX_CHAIN_LEN {
        return Err("the x5c certificate chain is too long");
    }
    let ders = x5c
        .iter()
        .map(|certificate| STANDARD.decode(certificate))
        .collect::<Result<Vec<Vec<u8>>, _>>()
        .map_err(|_| "the x5c header holds a certificate that is not base64")?;
    let chain = ders
        .iter()
        .map(|der| x509_parser::parse_x509_certificate(der).map(|(_, certificate)| certificate))
        .collect::<Result<Vec<X509Certificate<'_>>, _>>()
        .map_err(|_| "the x5c header holds a malformed certificate")?;
    let (Some(leaf), Some(leaf_der)) = (chain.first(), ders.first()) else {
        return Err("the x5c header is empty");
    };
    if !leaf.validity().is_valid() {
        return Err("the signing certificate has expired or is not valid yet");
    }
    let roots: Vec<X509Certificate<'_>> = roots
        .iter()
        .filter_map(|root| x509_parser::parse_x509_certificate(root).ok())
        .map(|(_, root)| root)
        .collect();
    let leaf_is_root = roots
        .iter()
        .any(|root| root.as_raw() == leaf_der.as_slice());
    if !leaf_is_root && !chains_to_a_root(leaf, &chain[1..], &roots) {
        return Err("the signing certificate is not issued by a trusted certificate");
    }
    TrustedKey::from_spki(leaf.public_key())
        .map_err(|_| "the signing certificate holds an unsupported key")
}

/// Whether `certificate` is signed by one of `roots`, or by one of `intermediates` that is
/// itself (recursively, within [`MAX_CHAIN_LEN`] links) signed by one of `roots`.
fn chains_to_a_root(
    certificate: &X509Certificate<'_>,
    intermediates: &[X509Certificate<'_>],
    roots: &[X509Certificate<'_>],
) -> bool {
    let mut current = certificate;
    for _ in 0..MAX_CHAIN_LEN {
        if roots
            .iter()
            .any(|root| root.validity().is_valid() && issued_by(current, root))
        {
            return true;
        }
        let next = intermediates.iter().find(|intermediate| {
            is_ca(intermediate)
                && intermediate.validity().is_valid()
                && issued_by(current, intermediate)
        });
        match next {
            Some(intermediate) => current = intermediate,
            None => return false,
        }
    }
    false
}

/// Whether `issuer` names and signed `certificate`.
fn issued_by(certificate: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    let algorithm = &certificate.signature_algorithm.algorithm;
    if *algorithm == OID_PKCS1_SHA1WITHRSA || *algorithm == OID_SHA1_WITH_RSA {
        return false;
    }
    certificate.issuer().as_raw() == issuer.subject().as_raw()
        && certificate
            .verify_signature(Some(issuer.public_key()))
            .is_ok()
}

/// Whether `certificate` may sign others (basic constraints `cA`), as an intermediate must.
fn is_ca(certificate: &X509Certificate<'_>) -> bool {
    matches!(certificate.basic_constraints(), Ok(Some(constraints)) if constraints.value.ca)
}
