//! Docker token authentication (`auth.token`): clients present a JWT that a separate token
//! server signed, and registryd verifies it with the server's public keys alone, never calling
//! back (spec-auth-token.md, spec-auth-jwt.md).
//!
//! A token is accepted when:
//! - its signing key is trusted: the header's `x5c` chain leads to a certificate of the root
//!   bundle, or its `jwk` is a trusted key, or its `kid` names a trusted key: the libtrust key id
//!   of a bundle certificate (registry:2 up to 2.8), the JWK thumbprint of a bundle certificate
//!   or JWKS key (registry:2 3.x), or a JWKS key's own `kid`. These are tried in that order, as
//!   registry:2 does;
//! - its algorithm is an asymmetric one that is enabled: `alg: none` and the HMAC algorithms are
//!   always refused, so a public key is never used as a shared secret;
//! - its signature verifies;
//! - `iss` is the configured issuer, `aud` (a string or an array) contains the service, `exp`
//!   is present and not past, and `nbf`, when present, is not in the future, both with 60
//!   seconds of leeway for clock skew as registry:2 allows.
//!
//! Its `access` claim becomes the [`Principal`]'s grant; its `sub` the principal's name. A token
//! without a `sub`, or with an empty one (token servers issue those to anonymous clients), has no
//! name: its holder is anonymous, with what the token grants.

mod cache;
mod chain;
mod claims;
mod keys;

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::{Access, AuthError, Authenticator, Challenge, ChallengeError, Credentials, Principal};

use cache::VerifiedTokens;
use claims::Claims;
use keys::{Keyring, TrustedKey};

pub use keys::libtrust_key_id;

/// Leeway for `exp` and `nbf`, in seconds: registry:2's, for clock skew between servers.
const LEEWAY_SECONDS: u64 = 60;

/// How many verified tokens are remembered.
const VERIFIED_TOKENS_CAPACITY: usize = 4096;

/// The algorithms accepted when [`TokenSettings::signing_algorithms`] is empty: every
/// asymmetric algorithm the verifier implements.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The `auth.token` configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenSettings {
    /// The token server's URL, sent to clients in the challenge.
    pub realm: String,
    /// The name of this registry as the token server knows it: sent in the challenge and
    /// required in the tokens' `aud`.
    pub service: String,
    /// The token server's name, required in the tokens' `iss`.
    pub issuer: String,
    /// A PEM file of the certificates whose keys sign tokens (`rootcertbundle`).
    pub root_cert_bundle: Option<PathBuf>,
    /// A JSON Web Key Set file of keys that sign tokens (`jwks`).
    pub jwks: Option<PathBuf>,
    /// The accepted signing algorithms by their JWA names (`signingalgorithms`); empty for all
    /// that registryd supports: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 and
    /// EdDSA.
    pub signing_algorithms: Vec<String>,
}

/// Why token authentication could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A key file could not be read.
    #[error("cannot read the token {what} {path}: {source}")]
    Read {
        /// Which file: "root certificate bundle" or "JWKS file".
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A key file was read but holds no usable keys, or a key registryd cannot use.
    #[error("the token {what} {path} is not usable: {reason}")]
    Invalid {
        /// Which file: "root certificate bundle" or "JWKS file".
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither a root certificate bundle nor a JWKS file was given.
    #[error(
        "token authentication needs the keys that sign tokens: set a root certificate bundle \
         (rootcertbundle) or a JWKS file (jwks)"
    )]
    NoKeys,
    /// A configured signing algorithm is unknown or refused.
    #[error("signing algorithm {name:?} cannot be used: {reason}")]
    Algorithm {
        /// The name as configured.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// None of the trusted keys makes signatures with any of the accepted algorithms.
    #[error(
        "none of the trusted keys can verify tokens signed with the accepted signing algorithms"
    )]
    NoUsableKey,
}

/// Verifies Docker registry bearer tokens (JWTs) signed by a trusted token server.
///
/// Keys are decoded once, at construction; verified tokens are remembered (at most a few
/// thousand, each until it expires) so a client's repeated requests cost a hash and a lookup.
pub struct TokenAuthenticator {
    realm: String,
    service: String,
    keys: Keyring,
    algorithms: Vec<Algorithm>,
    /// `iss`, `aud`, `exp` and `nbf` checks; the algorithm is set per token.
    validation: Validation,
    verified: VerifiedTokens,
}

impl fmt::Debug for TokenAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuthenticator")
            .field("realm", &self.realm)
            .field("service", &self.service)
            .field("keys", &self.keys.keys().len())
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The part of a token's header that selects the key.
#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
    #[serde(default)]
    jwk: Option<serde_json::Value>,
}

impl TokenAuthenticator {
    /// Loads the trusted keys: every certificate of `root_cert_bundle` and every key of `jwks`
    /// (at least one of the two is required, and each given file must hold at least one key).
    pub fn new(settings: TokenSettings) -> Result<TokenAuthenticator, TokenError> {
        let algorithms = accepted_algorithms(&settings.signing_algorithms)?;
        let mut keys = Keyring::default();
        if settings.root_cert_bundle.is_none() && settings.jwks.is_none() {
            return Err(TokenError::NoKeys);
        }
        if let Some(path) = &settings.root_cert_bundle {
            keys.add_root_cert_bundle(path)?;
        }
        if let Some(path) = &settings.jwks {
            keys.add_jwks(path)?;
        }
        let usable = keys
            .keys()
            .iter()
            .any(|key| algorithms.iter().any(|&algorithm| key.supports(algorithm)));
        if !usable {
            return Err(TokenError::NoUsableKey);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.service]);
        Ok(TokenAuthenticator {
            realm: settings.realm,
            service: settings.service,
            keys,
            algorithms,
            validation,
            verified: VerifiedTokens::new(VERIFIED_TOKENS_CAPACITY, LEEWAY_SECONDS),
        })
    }

    /// Verifies `token` and returns whom it was issued to and what it grants. The error says
    /// what is wrong (unknown key, expired, issued for another service...) without repeating
    /// anything from the token but its algorithm name.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = now_seconds();
        if let Some(principal) = self.verified.get(token, now) {
            return Ok(principal);
        }
        let header = decode_header(token)?;
        let algorithm = self.accepted_algorithm(&header.alg)?;
        let key = self.signing_key(&header)?;
        if !key.supports(algorithm) {
            return Err(invalid(format!(
                "the signing key cannot make {algorithm:?} signatures"
            )));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![algorithm];
        let claims = jsonwebtoken::decode::<Claims>(token, key.decoding_key(), &validation)
            .map_err(|error| invalid(rejection(error.kind())))?
            .claims;
        let principal = Principal {
            name: claims.sub.clone().filter(|sub| !sub.is_empty()),
            granted: Some(claims.granted()),
        };
        if let Some(expires_at) = claims.expires_at() {
            self.verified
                .insert(token, principal.clone(), expires_at, now);
        }
        Ok(principal)
    }

    fn accepted_algorithm(&self, name: &str) -> Result<Algorithm, AuthError> {
        if name.eq_ignore_ascii_case("none") {
            return Err(invalid("unsigned tokens (alg \"none\") are not accepted"));
        }
        let algorithm = Algorithm::from_str(name)
            .map_err(|_| invalid("the token's signing algorithm is not supported"))?;
        if is_hmac(algorithm) {
            return Err(invalid(
                "HMAC-signed tokens are not accepted: tokens must be signed with a private key",
            ));
        }
        if !self.algorithms.contains(&algorithm) {
            return Err(invalid(format!(
                "the {algorithm:?} signing algorithm is not enabled"
            )));
        }
        Ok(algorithm)
    }

    /// The key the header says signed the token: its `x5c` chain's leaf, its `jwk`, or the key
    /// its `kid` names, in registry:2's order of preference.
    fn signing_key(&self, header: &TokenHeader) -> Result<Cow<'_, TrustedKey>, AuthError> {
        if let Some(x5c) = header.x5c.as_ref().filter(|x5c| !x5c.is_empty()) {
            return chain::leaf_key(x5c, self.keys.roots())
                .map(Cow::Owned)
                .map_err(invalid);
        }
        if let Some(jwk) = &header.jwk {
            let key = serde_json::from_value::<Jwk>(jwk.clone())
                .ok()
                .and_then(|jwk| TrustedKey::from_jwk(&jwk).ok())
                .ok_or_else(|| invalid("the jwk header is not a usable public key"))?;
            return self
                .keys
                .find(&key)
                .map(Cow::Borrowed)
                .ok_or_else(|| invalid("signed by an unknown key"));
        }
        if let Some(kid) = &header.kid {
            return self
                .keys
                .by_id(kid)
                .map(Cow::Borrowed)
                .ok_or_else(|| invalid("signed by an unknown key"));
        }
        Err(invalid(
            "the token does not say which key signed it (no kid, jwk or x5c header)",
        ))
    }
}

#[async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<Option<Principal>, AuthError> {
        match credentials {
            Credentials::None => Ok(None),
            Credentials::Bearer(token) => self.verify(token).map(Some),
            Credentials::Basic { .. } => Err(AuthError::WrongScheme { expected: "Bearer" }),
            Credentials::Malformed => Err(AuthError::MalformedHeader),
        }
    }

    fn challenge(&self, accesses: &[Access], error: Option<ChallengeError>) -> Challenge {
        let scopes: Vec<String> = accesses.iter().map(Access::scope).collect();
        Challenge::Bearer {
            realm: self.realm.clone(),
            service: self.service.clone(),
            scope: scopes.join(" "),
            error,
        }
    }
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidToken {
        reason: reason.into(),
    }
}

fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

/// The header of a compact JWT, read before the signature is checked to find the key.
fn decode_header(token: &str) -> Result<TokenHeader, AuthError> {
    let malformed = || invalid("malformed token");
    let mut parts = token.split('.');
    let (Some(header), Some(_claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    serde_json::from_slice(&header).map_err(|_| malformed())
}

/// Why jsonwebtoken refused a token, in words that repeat nothing from it.
fn rejection(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "expired".to_owned(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf is in the future)".to_owned(),
        ErrorKind::InvalidIssuer => "issued by an untrusted issuer".to_owned(),
        ErrorKind::InvalidAudience => "issued for another service".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "the token has no exp claim".to_owned(),
            "iss" => "the token has no iss claim".to_owned(),
            "aud" => "the token has no aud claim".to_owned(),
            _ => "the token lacks a required claim".to_owned(),
        },
        ErrorKind::InvalidClaimFormat(_) => "a time claim is malformed".to_owned(),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_) => {
            "the signing key does not match the signing algorithm".to_owned()
        }
        _ => "malformed token".to_owned(),
    }
}

/// The accepted algorithms from their configured names.
fn accepted_algorithms(names: &[String]) -> Result<Vec<Algorithm>, TokenError> {
    if names.is_empty() {
        return Ok(DEFAULT_ALGORITHMS.to_vec());
    }
    let mut algorithms = Vec::with_capacity(names.len());
    for name in names {
        let refused = |reason| TokenError::Algorithm {
            name: name.clone(),
            reason,
        };
        if name.eq_ignore_ascii_case("none") {
            return Err(refused("unsigned tokens are never accepted"));
        }
        let algorithm = match Algorithm::from_str(name) {
            Ok(algorithm) => algorithm,
            Err(_) if name == "ES512" => {
                return Err(refused(
                    "ES512 (P-521) is not supported; use ES256 or ES384",
                ));
            }
            Err(_) => {
                return Err(refused(
                    "unknown algorithm; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, \
                     ES384 or EdDSA",
                ));
            }
        };
        if is_hmac(algorithm) {
            return Err(refused(
                "HMAC algorithms are refused: registryd verifies tokens with public keys, \
                 which must never serve as shared secrets",
            ));
        }
        if !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    Ok(algorithms)
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_algorithm_list_means_every_asymmetric_algorithm() {
        let algorithms = accepted_algorithms(&[]).expect("defaults");
        assert!(algorithms.contains(&Algorithm::RS256));
        assert!(algorithms.contains(&Algorithm::ES256));
        assert!(algorithms.contains(&Algorithm::EdDSA));
        assert!(!algorithms.iter().any(|&algorithm| is_hmac(algorithm)));
    }

    #[test]
    fn hmac_none_and_unknown_algorithms_cannot_be_configured() {
        for name in ["HS256", "none", "ES512", "RS1"] {
            assert!(
                matches!(
                    accepted_algorithms(&[name.to_owned()]),
                    Err(TokenError::Algorithm { .. })
                ),
                "{name}"
            );
        }
        assert_eq!(
            accepted_algorithms(&["ES256".to_owned(), "ES256".to_owned()]).expect("ES256"),
            vec![Algorithm::ES256]
        );
    }

    #[test]
    fn header_of_a_malformed_token_is_refused() {
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!!.b.c",
            "e30",
            "bm90IGpzb24.b.c",
        ] {
            assert!(decode_header(token).is_err(), "{token}");
        }
    }
}
