//! The keys tokens may be signed with: loading them from the root certificate bundle and the
//! JWKS file, and the ids tokens name them by.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::TokenError;

/// The smallest RSA modulus accepted, in bytes (2048 bits), as the signature verifier requires.
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// The libtrust key id of a public key, as registry:2 computes it for the certificates of its
/// root certificate bundle and as token servers put it in the JWT `kid` header: the SHA-256 of
/// the DER `SubjectPublicKeyInfo`, truncated to 240 bits, base32-encoded and written as 12
/// groups of 4 characters joined by `:` (`PYYO:TEWU:V7JH:...`).
pub fn libtrust_key_id(subject_public_key_info_der: &[u8]) -> String {
    let digest = Sha256::digest(subject_public_key_info_der);
    let encoded = data_encoding::BASE32_NOPAD.encode(&digest[..30]);
    let mut id = String::with_capacity(encoded.len() + encoded.len() / 4);
    for (index, character) in encoded.chars().enumerate() {
        if index > 0 && index % 4 == 0 {
            id.push(':');
        }
        id.push(character);
    }
    id
}

/// An elliptic curve registryd verifies ECDSA signatures on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    /// The length of one coordinate, in bytes.
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    /// The curve's name in a JWK (`crv`).
    fn jwk_name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
}

/// A public key's numbers, in one normalized form whatever file it came from, so the same key
/// read from a certificate and from a JWK compares equal and has one thumbprint.
#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyMaterial {
    /// Modulus and public exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed point: `0x04 || x || y`.
    Ec { curve: Curve, point: Vec<u8> },
    /// The 32-byte public key.
    Ed25519 { x: Vec<u8> },
}

/// A public key tokens may be signed with, decoded once.
#[derive(Clone)]
pub(crate) struct TrustedKey {
    material: KeyMaterial,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKey")
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl TrustedKey {
    fn new(material: KeyMaterial) -> Result<TrustedKey, String> {
        let decoding = match &material {
            KeyMaterial::Rsa { n, e } => {
                if n.len() < MIN_RSA_MODULUS_BYTES {
                    return Err("RSA keys shorter than 2048 bits are not accepted".to_owned());
                }
                if e.is_empty() {
                    return Err("the RSA public exponent is empty".to_owned());
                }
                DecodingKey::from_rsa_raw_components(n, e)
            }
            KeyMaterial::Ec { curve, point } => {
                if point.len() != 1 + 2 * curve.coordinate_len() || point.first() != Some(&0x04) {
                    return Err(format!(
                        "the {} public key is not an uncompressed point",
                        curve.jwk_name()
                    ));
                }
                DecodingKey::from_ec_der(point)
            }
            KeyMaterial::Ed25519 { x } => {
                if x.len() != 32 {
                    return Err("the Ed25519 public key is not 32 bytes long".to_owned());
                }
                DecodingKey::from_ed_der(x)
            }
        };
        Ok(TrustedKey { material, decoding })
    }

    /// The key of a certificate's `SubjectPublicKeyInfo`: RSA, ECDSA on P-256 or P-384, or
    /// Ed25519.
    pub(crate) fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<TrustedKey, String> {
        let algorithm = &spki.algorithm.algorithm;
        let material = if *algorithm == OID_PKCS1_RSAENCRYPTION {
            match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => KeyMaterial::Rsa {
                    n: strip_leading_zeros(rsa.modulus),
                    e: strip_leading_zeros(rsa.exponent),
                },
                _ => return Err("the RSA public key cannot be read".to_owned()),
            }
        } else if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|parameters| parameters.as_oid().ok());
            let curve = match curve {
                Some(oid) if oid == OID_EC_P256 => Curve::P256,
                Some(oid) if oid == OID_NIST_EC_P384 => Curve::P384,
                _ => {
                    return Err("only the P-256 and P-384 elliptic curves are supported".to_owned());
                }
            };
            KeyMaterial::Ec {
                curve,
                point: spki.subject_public_key.data.to_vec(),
            }
        } else if *algorithm == OID_SIG_ED25519 {
            KeyMaterial::Ed25519 {
                x: spki.subject_public_key.data.to_vec(),
            }
        } else {
            return Err(format!(
                "keys of type {} are not supported (use RSA, ECDSA P-256/P-384 or Ed25519)",
                algorithm
            ));
        };
        TrustedKey::new(material)
    }

    /// The key of a JWK: RSA, EC on P-256 or P-384, or OKP Ed25519. Symmetric (`oct`) keys are
    /// refused: a token verifiable with a shared secret could be forged by anyone holding it.
    pub(crate) fn from_jwk(jwk: &Jwk) -> Result<TrustedKey, String> {
        let material = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => KeyMaterial::Rsa {
                n: strip_leading_zeros(&decode_jwk_number("n", &rsa.n)?),
                e: strip_leading_zeros(&decode_jwk_number("e", &rsa.e)?),
            },
            AlgorithmParameters::EllipticCurve(ec) => {
                let curve = match ec.curve {
                    EllipticCurve::P256 => Curve::P256,
                    EllipticCurve::P384 => Curve::P384,
                    _ => {
                        return Err(
                            "only the P-256 and P-384 elliptic curves are supported".to_owned()
                        );
                    }
                };
                let x = decode_jwk_number("x", &ec.x)?;
                let y = decode_jwk_number("y", &ec.y)?;
                if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                    return Err(format!(
                        "the {} coordinates have the wrong length",
                        curve.jwk_name()
                    ));
                }
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::Ec { curve, point }
            }
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                KeyMaterial::Ed25519 {
                    x: decode_jwk_number("x", &okp.x)?,
                }
            }
            AlgorithmParameters::OctetKeyPair(_) => {
                return Err("only the Ed25519 curve is supported for OKP keys".to_owned());
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(
                    "symmetric (oct) keys are not accepted: tokens must be signed with a private \
                     key and verified with its public key"
                        .to_owned(),
                );
            }
            _ => return Err("unsupported key type".to_owned()),
        };
        TrustedKey::new(material)
    }

    /// Whether this key makes `algorithm` signatures.
    pub(crate) fn supports(&self, algorithm: Algorithm) -> bool {
        match &self.material {
            KeyMaterial::Rsa { .. } => matches!(
                algorithm,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            KeyMaterial::Ec {
                curve: Curve::P256, ..
            } => algorithm == Algorithm::ES256,
            KeyMaterial::Ec {
                curve: Curve::P384, ..
            } => algorithm == Algorithm::ES384,
            KeyMaterial::Ed25519 { .. } => algorithm == Algorithm::EdDSA,
        }
    }

    /// The key as jsonwebtoken verifies with it.
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Whether `other` is the same public key.
    pub(crate) fn same_key(&self, other: &TrustedKey) -> bool {
        self.material == other.material
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): how registry:2 since 3.0 names the keys
    /// of its root certificate bundle.
    pub(crate) fn thumbprint(&self) -> String {
        let encode = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        // The members in lexicographic order, no whitespace (RFC 7638 section 3).
        let canonical = match &self.material {
            KeyMaterial::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, encode(e), encode(n))
            }
            KeyMaterial::Ec { curve, point } => {
                let coordinates = point.get(1..).unwrap_or_default();
                let (x, y) = coordinates.split_at(coordinates.len() / 2);
                format!(
                    r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                    curve.jwk_name(),
                    encode(x),
                    encode(y)
                )
            }
            KeyMaterial::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, encode(x))
            }
        };
        encode(&Sha256::digest(canonical.as_bytes()))
    }
}

/// Decodes a base64url JWK member, tolerating padding, which some writers add.
fn decode_jwk_number(member: &str, value: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| format!("the {member:?} member is not base64url"))
}

fn strip_leading_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// The trusted keys, by every id a token may name them with, and the bundle's certificates for
/// `x5c` chains.
#[derive(Debug, Default)]
pub(crate) struct Keyring {
    by_id: HashMap<String, TrustedKey>,
    roots: Vec<CertificateDer<'static>>,
    keys: Vec<TrustedKey>,
}

impl Keyring {
    /// Adds every certificate of the PEM bundle at `path`, each known by its libtrust key id
    /// (registry:2 up to 2.8) and its JWK thumbprint (registry:2 3.x).
    pub(crate) fn add_root_cert_bundle(&mut self, path: &Path) -> Result<(), TokenError> {
        let what = "root certificate bundle";
        let invalid = |reason: String| TokenError::Invalid {
            what,
            path: path.to_owned(),
            reason,
        };
        let pem_error = |error: rustls_pki_types::pem::Error| match error {
            rustls_pki_types::pem::Error::Io(source) => TokenError::Read {
                what,
                path: path.to_owned(),
                source,
            },
            other => invalid(other.to_string()),
        };
        let certificates = CertificateDer::pem_file_iter(path).map_err(pem_error)?;
        let mut count = 0;
        for (index, certificate) in certificates.enumerate() {
            let certificate = certificate.map_err(pem_error)?;
            let number = index + 1;
            let (_, parsed) = x509_parser::parse_x509_certificate(&certificate)
                .map_err(|error| invalid(format!("certificate {number}: {error}")))?;
            let key = TrustedKey::from_spki(parsed.public_key())
                .map_err(|reason| invalid(format!("certificate {number}: {reason}")))?;
            let ids = [libtrust_key_id(parsed.public_key().raw), key.thumbprint()];
            self.insert(&ids, key).map_err(invalid)?;
            self.roots.push(certificate);
            count += 1;
        }
        if count == 0 {
            return Err(invalid("it contains no PEM certificate".to_owned()));
        }
        Ok(())
    }

    /// Adds every key of the JWKS file at `path`, each known by its `kid` when it has one and by
    /// its JWK thumbprint.
    pub(crate) fn add_jwks(&mut self, path: &Path) -> Result<(), TokenError> {
        let what = "JWKS file";
        let invalid = |reason: String| TokenError::Invalid {
            what,
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read(path).map_err(|source| TokenError::Read {
            what,
            path: path.to_owned(),
            source,
        })?;
        let set: JwkSet = serde_json::from_slice(&text)
            .map_err(|error| invalid(format!("not a JSON Web Key Set: {error}")))?;
        if set.keys.is_empty() {
            return Err(invalid("it contains no key".to_owned()));
        }
        for (index, jwk) in set.keys.iter().enumerate() {
            let number = index + 1;
            let key = TrustedKey::from_jwk(jwk)
                .map_err(|reason| invalid(format!("key {number}: {reason}")))?;
            let mut ids = vec![key.thumbprint()];
            if let Some(kid) = jwk.common.key_id.as_ref().filter(|kid| !kid.is_empty()) {
                ids.push(kid.clone());
            }
            self.insert(&ids, key).map_err(invalid)?;
        }
        Ok(())
    }

    fn insert(&mut self, ids: &[String], key: TrustedKey) -> Result<(), String> {
        for id in ids {
            match self.by_id.entry(id.clone()) {
                Entry::Occupied(existing) if !existing.get().same_key(&key) => {
                    return Err(format!("key id {id:?} names two different keys"));
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(slot) => {
                    slot.insert(key.clone());
                }
            }
        }
        if !self.keys.iter().any(|known| known.same_key(&key)) {
            self.keys.push(key);
        }
        Ok(())
    }

    /// The key a token's `kid` names.
    pub(crate) fn by_id(&self, id: &str) -> Option<&TrustedKey> {
        self.by_id.get(id)
    }

    /// The trusted key equal to `key`, if any.
    pub(crate) fn find(&self, key: &TrustedKey) -> Option<&TrustedKey> {
        self.keys.iter().find(|known| known.same_key(key))
    }

    /// The certificates an `x5c` chain must lead to.
    pub(crate) fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// The distinct trusted keys.
    pub(crate) fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ES256 key of the token specification's example (spec-auth-jwt.md), whose libtrust
    /// key id the specification gives as `PYYO:TEWU:...`.
    fn specification_key_spki() -> Vec<u8> {
        let x = URL_SAFE_NO_PAD
            .decode("m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q")
            .expect("x");
        let y = URL_SAFE_NO_PAD
            .decode("dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc")
            .expect("y");
        // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 04 || x || y }
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
        ];
        spki.extend_from_slice(&x);
        spki.extend_from_slice(&y);
        spki
    }

    #[test]
    fn libtrust_key_id_matches_the_token_specification_example() {
        assert_eq!(
            libtrust_key_id(&specification_key_spki()),
            "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6"
        );
    }

    #[test]
    fn certificate_key_and_jwk_of_the_same_key_are_the_same_key() {
        let spki_der = specification_key_spki();
        let (_, spki) =
            <SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&spki_der)
                .expect("spki");
        let from_certificate = TrustedKey::from_spki(&spki).expect("key");
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"EC","crv":"P-256","kid":"PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6",
                "x":"m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q",
                "y":"dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc"}"#,
        )
        .expect("jwk");
        let from_jwk = TrustedKey::from_jwk(&jwk).expect("key");
        assert!(from_certificate.same_key(&from_jwk));
        assert_eq!(from_certificate.thumbprint(), from_jwk.thumbprint());
        assert_eq!(
            from_jwk.thumbprint(),
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .expect("thumbprint")
        );
        assert!(from_jwk.supports(Algorithm::ES256));
        assert!(!from_jwk.supports(Algorithm::ES384));
        assert!(!from_jwk.supports(Algorithm::HS256));
    }

    #[test]
    fn symmetric_jwks_keys_are_refused() {
        let jwk: Jwk = serde_json::from_str(r#"{"kty":"oct","k":"c2VjcmV0"}"#).expect("jwk");
        assert!(TrustedKey::from_jwk(&jwk).is_err());
    }
}
