//! Token authentication against keys and certificates made at test time, with tokens signed the
//! way token servers sign them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData, RsaKeySize,
    SignatureAlgorithm,
};
use registry_auth::token::{TokenError, TokenSettings, libtrust_key_id};
use registry_auth::{
    Access, AccessController, AccessRule, AccessRules, Action, AuthError, Authenticator, Challenge,
    ChallengeError, Credentials, Decision, Identity, Principal, RuleAction, TokenAuthenticator,
};
use serde_json::{Value, json};
use tempfile::TempDir;

mod common;

const REALM: &str = "https://auth.example.com/token";
const SERVICE: &str = "registry.example.com";
const ISSUER: &str = "auth.example.com";

/// A token server's signing key and its certificate.
struct Signer {
    key: KeyPair,
    encoding: EncodingKey,
    algorithm: Algorithm,
    certificate_der: Vec<u8>,
    certificate_pem: String,
}

impl Signer {
    fn rs256() -> Signer {
        let key =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048).expect("RSA key");
        Signer::self_signed(key, Algorithm::RS256)
    }

    fn es256() -> Signer {
        Signer::generate(&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256)
    }

    fn generate(kind: &'static SignatureAlgorithm, algorithm: Algorithm) -> Signer {
        Signer::self_signed(KeyPair::generate_for(kind).expect("key"), algorithm)
    }

    fn self_signed(key: KeyPair, algorithm: Algorithm) -> Signer {
        let certificate = params("token signer", false)
            .self_signed(&key)
            .expect("certificate");
        Signer::with_certificate(key, algorithm, certificate)
    }

    /// A signer whose certificate `issuer` signed.
    fn issued_by(issuer: &Issuer<'_, KeyPair>, not_after_year: i32) -> Signer {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = params("token signer", false);
        params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
        let certificate = params.signed_by(&key, issuer).expect("certificate");
        Signer::with_certificate(key, Algorithm::ES256, certificate)
    }

    fn with_certificate(
        key: KeyPair,
        algorithm: Algorithm,
        certificate: rcgen::Certificate,
    ) -> Signer {
        let pem = key.serialize_pem();
        let encoding = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("encoding key");
        Signer {
            key,
            encoding,
            algorithm,
            certificate_der: certificate.der().to_vec(),
            certificate_pem: certificate.pem(),
        }
    }

    /// registry:2's key id for this key: the libtrust fingerprint of its public key.
    fn kid(&self) -> String {
        libtrust_key_id(&self.key.subject_public_key_info())
    }

    fn jwk(&self) -> Jwk {
        Jwk::from_encoding_key(&self.encoding, self.algorithm).expect("jwk")
    }

    /// A token with a `kid` header.
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid());
        self.sign_with(header, claims)
    }

    fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("token")
    }
}

fn params(common_name: &str, ca: bool) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params
}

/// A certificate authority: its certificate and what signs with it.
fn authority(
    common_name: &str,
    ca: bool,
    parent: Option<&Issuer<'_, KeyPair>>,
) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let params = params(common_name, ca);
    let certificate = match parent {
        Some(parent) => params.signed_by(&key, parent),
        None => params.self_signed(&key),
    }
    .expect("certificate");
    (certificate, Issuer::new(params, key))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The claims a token server issues for `access`, valid now.
fn claims(access: Value) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now - 10,
        "jti": "tYJCO1c6cnyy7kAn0c7rKPgbV1H1bFws",
        "access": access,
    })
}

fn pull_push_on(name: &str) -> Value {
    json!([{"type": "repository", "name": name, "actions": ["pull", "push"]}])
}

fn name(text: &str) -> registry_model::RepositoryName {
    text.parse().expect("repository name")
}

fn settings(root_cert_bundle: Option<PathBuf>, jwks: Option<PathBuf>) -> TokenSettings {
    TokenSettings {
        realm: REALM.to_owned(),
        service: SERVICE.to_owned(),
        issuer: ISSUER.to_owned(),
        root_cert_bundle,
        jwks,
        signing_algorithms: Vec::new(),
    }
}

fn write(dir: &TempDir, file: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(file);
    std::fs::write(&path, contents).expect("write");
    path
}

/// An authenticator trusting the certificates `pems`, with the temporary directory holding them.
fn trusting(pems: &[&str]) -> (TempDir, TokenAuthenticator) {
    let dir = TempDir::new().expect("temporary directory");
    let bundle = write(&dir, "bundle.pem", &pems.concat());
    let authenticator =
        TokenAuthenticator::new(settings(Some(bundle), None)).expect("authenticator");
    (dir, authenticator)
}

fn refusal(result: Result<Principal, AuthError>) -> String {
    match result {
        Err(AuthError::InvalidToken { reason }) => reason,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

#[test]
fn rs256_token_is_accepted_and_its_access_claim_becomes_the_grant() {
    let signer = Signer::rs256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let principal = authenticator
        .verify(&signer.sign(&claims(json!([
            {"type": "repository", "name": "samalba/my-app", "actions": ["pull", "push"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ]))))
        .expect("accepted");
    assert_eq!(
        principal,
        Principal {
            name: Some("alice".into()),
            granted: Some(vec![
                Access::repository(name("samalba/my-app"), &[Action::Pull, Action::Push]),
                Access::catalog(),
            ]),
        }
    );
}

#[test]
fn es256_token_is_accepted_and_its_access_claim_becomes_the_grant() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let principal = authenticator
        .verify(&signer.sign(&claims(json!([
            {"type": "repository", "name": "library/busybox", "actions": ["*"]},
            {"type": "repository", "name": "Not A Name", "actions": ["pull"]},
            {"type": "repository", "name": "other", "actions": ["tag"]},
            {"type": "namespace", "name": "library", "actions": ["*"]},
        ]))))
        .expect("accepted");
    assert_eq!(
        principal.granted,
        Some(vec![Access::repository(
            name("library/busybox"),
            &Action::ALL
        )])
    );
}

#[test]
fn every_supported_asymmetric_algorithm_is_accepted() {
    let rsa = Signer::rs256();
    let signers = [
        Signer::generate(&rcgen::PKCS_ECDSA_P384_SHA384, Algorithm::ES384),
        Signer::generate(&rcgen::PKCS_ED25519, Algorithm::EdDSA),
    ];
    let pems: Vec<&str> = std::iter::once(rsa.certificate_pem.as_str())
        .chain(signers.iter().map(|signer| signer.certificate_pem.as_str()))
        .collect();
    let (_dir, authenticator) = trusting(&pems);
    for signer in &signers {
        authenticator
            .verify(&signer.sign(&claims(pull_push_on("a"))))
            .unwrap_or_else(|error| panic!("{:?}: {error}", signer.algorithm));
    }
    for algorithm in [
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS512,
    ] {
        let mut header = Header::new(algorithm);
        header.kid = Some(rsa.kid());
        authenticator
            .verify(&rsa.sign_with(header, &claims(pull_push_on("a"))))
            .unwrap_or_else(|error| panic!("{algorithm:?}: {error}"));
    }
}

#[test]
fn unsigned_token_is_refused() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    for alg in ["none", "None"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": signer.kid()});
        let token = format!(
            "{}.{}.",
            encode(&header),
            encode(&claims(pull_push_on("a")))
        );
        assert!(
            refusal(authenticator.verify(&token)).contains("none"),
            "{alg}"
        );
    }
}

#[test]
fn hmac_token_signed_with_the_public_key_is_refused() {
    let signer = Signer::rs256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let public_key_forms = [
        signer.certificate_pem.clone().into_bytes(),
        signer.key.public_key_pem().into_bytes(),
        signer.key.subject_public_key_info(),
        signer.certificate_der.clone(),
    ];
    for secret in &public_key_forms {
        for algorithm in [Algorithm::HS256, Algorithm::HS512] {
            let mut header = Header::new(algorithm);
            header.kid = Some(signer.kid());
            let token = jsonwebtoken::encode(
                &header,
                &claims(pull_push_on("a")),
                &EncodingKey::from_secret(secret),
            )
            .expect("token");
            assert!(refusal(authenticator.verify(&token)).contains("HMAC"));
        }
    }
}

#[test]
fn token_signed_by_an_unknown_key_is_refused() {
    let trusted = Signer::es256();
    let stranger = Signer::es256();
    let (_dir, authenticator) = trusting(&[&trusted.certificate_pem]);
    let token = stranger.sign(&claims(pull_push_on("a")));
    assert_eq!(
        refusal(authenticator.verify(&token)),
        "signed by an unknown key"
    );

    // Naming a trusted key does not help a token that key did not sign.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(trusted.kid());
    let forged = stranger.sign_with(header, &claims(pull_push_on("a")));
    assert_eq!(refusal(authenticator.verify(&forged)), "bad signature");
}

#[test]
fn token_naming_no_key_is_refused() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let token = signer.sign_with(Header::new(Algorithm::ES256), &claims(pull_push_on("a")));
    assert!(refusal(authenticator.verify(&token)).contains("which key"));
}

#[test]
fn token_signed_with_an_algorithm_its_key_cannot_make_is_refused() {
    let signer = Signer::es256();
    let rsa = Signer::rs256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    // An RSA signature claiming to come from the trusted ECDSA key.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(signer.kid());
    let token = rsa.sign_with(header, &claims(pull_push_on("a")));
    assert!(refusal(authenticator.verify(&token)).contains("cannot make RS256"));
}

#[test]
fn expired_token_is_refused() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let mut expired = claims(pull_push_on("a"));
    expired["exp"] = json!(now() - 3600);
    expired["nbf"] = json!(now() - 7200);
    assert_eq!(
        refusal(authenticator.verify(&signer.sign(&expired))),
        "expired"
    );

    let mut without_exp = claims(pull_push_on("a"));
    without_exp.as_object_mut().expect("object").remove("exp");
    assert!(refusal(authenticator.verify(&signer.sign(&without_exp))).contains("exp"));
}

#[test]
fn token_just_past_its_expiry_is_accepted_within_the_clock_skew_leeway() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let mut claims = claims(pull_push_on("a"));
    claims["exp"] = json!(now() - 20);
    authenticator
        .verify(&signer.sign(&claims))
        .expect("accepted");
}

#[test]
fn not_yet_valid_token_is_refused() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let mut early = claims(pull_push_on("a"));
    early["nbf"] = json!(now() + 3600);
    early["exp"] = json!(now() + 7200);
    assert!(refusal(authenticator.verify(&signer.sign(&early))).contains("not valid yet"));

    let mut without_nbf = claims(pull_push_on("a"));
    without_nbf.as_object_mut().expect("object").remove("nbf");
    authenticator
        .verify(&signer.sign(&without_nbf))
        .expect("nbf is optional");
}

#[test]
fn token_from_another_issuer_is_refused() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let mut claims = claims(pull_push_on("a"));
    claims["iss"] = json!("evil.example.com");
    assert!(refusal(authenticator.verify(&signer.sign(&claims))).contains("issuer"));
}

#[test]
fn token_for_another_service_is_refused() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    for audience in [
        json!("other.example.com"),
        json!(["other.example.com"]),
        json!([]),
    ] {
        let mut claims = claims(pull_push_on("a"));
        claims["aud"] = audience;
        assert_eq!(
            refusal(authenticator.verify(&signer.sign(&claims))),
            "issued for another service"
        );
    }
    let mut without_aud = claims(pull_push_on("a"));
    without_aud.as_object_mut().expect("object").remove("aud");
    assert!(refusal(authenticator.verify(&signer.sign(&without_aud))).contains("aud"));
}

#[test]
fn token_whose_audience_list_contains_the_service_is_accepted() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let mut claims = claims(pull_push_on("a"));
    claims["aud"] = json!(["other.example.com", SERVICE]);
    authenticator
        .verify(&signer.sign(&claims))
        .expect("accepted");
}

#[test]
fn malformed_tokens_are_refused() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let good = signer.sign(&claims(pull_push_on("a")));
    let (unsigned, _signature) = good.rsplit_once('.').expect("three parts");
    let (header, _) = good.split_once('.').expect("three parts");
    let not_json = URL_SAFE_NO_PAD.encode("not json");
    let tampered_claims = URL_SAFE_NO_PAD
        .encode(claims(json!([{"type": "repository", "name": "a", "actions": ["*"]}])).to_string());
    let malformed = [
        "not-a-token".to_owned(),
        "a.b".to_owned(),
        "a.b.c".to_owned(),
        format!("{good}.extra"),
        format!("{unsigned}."),
        format!("{unsigned}.!!!"),
        format!("{not_json}.{}", &good[header.len() + 1..]),
        format!(
            "{header}.{tampered_claims}.{}",
            good.rsplit('.').next().unwrap_or("")
        ),
        format!("{header}.%%%.{}", good.rsplit('.').next().unwrap_or("")),
    ];
    for token in &malformed {
        let reason = refusal(authenticator.verify(token));
        assert!(!reason.contains(token.as_str()), "{reason}");
    }
}

#[test]
fn keys_from_a_jwks_file_verify_tokens() {
    let rsa = Signer::rs256();
    let ec = Signer::es256();
    let mut rsa_jwk = rsa.jwk();
    rsa_jwk.common.key_id = Some("rsa-signing-key".into());
    let mut ec_jwk = ec.jwk();
    ec_jwk.common.key_id = Some("ec-signing-key".into());
    let dir = TempDir::new().expect("temporary directory");
    let jwks = write(
        &dir,
        "jwks.json",
        &serde_json::to_string(&JwkSet {
            keys: vec![rsa_jwk, ec_jwk],
        })
        .expect("json"),
    );
    let authenticator = TokenAuthenticator::new(settings(None, Some(jwks))).expect("authenticator");
    for (signer, kid) in [(&rsa, "rsa-signing-key"), (&ec, "ec-signing-key")] {
        let mut header = Header::new(signer.algorithm);
        header.kid = Some(kid.into());
        let principal = authenticator
            .verify(&signer.sign_with(header, &claims(pull_push_on("a"))))
            .expect("accepted");
        assert_eq!(
            principal.granted,
            Some(vec![Access::repository(
                name("a"),
                &[Action::Pull, Action::Push]
            )])
        );
    }
    // The wrong kid for the key that signed.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("rsa-signing-key".into());
    assert!(
        refusal(authenticator.verify(&ec.sign_with(header, &claims(pull_push_on("a")))))
            .contains("cannot make ES256")
    );
}

#[test]
fn bundle_keys_are_also_known_by_their_jwk_thumbprint() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(
        signer
            .jwk()
            .thumbprint(ThumbprintHash::SHA256)
            .expect("thumbprint"),
    );
    authenticator
        .verify(&signer.sign_with(header, &claims(pull_push_on("a"))))
        .expect("accepted");
}

#[test]
fn trusted_key_in_the_jwk_header_is_accepted_and_an_untrusted_one_refused() {
    let signer = Signer::es256();
    let stranger = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let mut header = Header::new(Algorithm::ES256);
    header.jwk = Some(signer.jwk());
    authenticator
        .verify(&signer.sign_with(header, &claims(pull_push_on("a"))))
        .expect("accepted");
    let mut header = Header::new(Algorithm::ES256);
    header.jwk = Some(stranger.jwk());
    assert_eq!(
        refusal(authenticator.verify(&stranger.sign_with(header, &claims(pull_push_on("a"))))),
        "signed by an unknown key"
    );
}

#[test]
fn libtrust_key_id_has_registry2s_shape() {
    let signer = Signer::es256();
    let kid = signer.kid();
    let groups: Vec<&str> = kid.split(':').collect();
    assert_eq!(groups.len(), 12, "{kid}");
    for group in groups {
        assert_eq!(group.len(), 4, "{kid}");
        assert!(
            group
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)),
            "{kid}"
        );
    }
    // The spec's example key (spec-auth-jwt.md) and its published key id.
    let x = URL_SAFE_NO_PAD
        .decode("m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q")
        .expect("x");
    let y = URL_SAFE_NO_PAD
        .decode("dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc")
        .expect("y");
    let mut spki = hex_decode("3059301306072a8648ce3d020106082a8648ce3d03010703420004");
    spki.extend_from_slice(&x);
    spki.extend_from_slice(&y);
    assert_eq!(
        libtrust_key_id(&spki),
        "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6"
    );
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&hex[index..index + 2], 16).expect("hex"))
        .collect()
}

fn x5c_header(chain: &[&[u8]]) -> Header {
    let mut header = Header::new(Algorithm::ES256);
    header.x5c = Some(chain.iter().map(|der| STANDARD.encode(der)).collect());
    header
}

#[test]
fn x5c_leaf_that_is_a_bundle_certificate_is_accepted() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let token = signer.sign_with(
        x5c_header(&[&signer.certificate_der]),
        &claims(pull_push_on("a")),
    );
    authenticator.verify(&token).expect("accepted");
}

#[test]
fn x5c_leaf_issued_by_a_bundle_certificate_is_accepted() {
    let (root, root_issuer) = authority("token root", true, None);
    let signer = Signer::issued_by(&root_issuer, 4000);
    let (_dir, authenticator) = trusting(&[&root.pem()]);
    let token = signer.sign_with(
        x5c_header(&[&signer.certificate_der, root.der()]),
        &claims(pull_push_on("a")),
    );
    authenticator.verify(&token).expect("accepted");
}

#[test]
fn x5c_chain_through_an_intermediate_is_accepted() {
    let (root, root_issuer) = authority("token root", true, None);
    let (intermediate, intermediate_issuer) =
        authority("token intermediate", true, Some(&root_issuer));
    let signer = Signer::issued_by(&intermediate_issuer, 4000);
    let (_dir, authenticator) = trusting(&[&root.pem()]);
    let token = signer.sign_with(
        x5c_header(&[&signer.certificate_der, intermediate.der()]),
        &claims(pull_push_on("a")),
    );
    authenticator.verify(&token).expect("accepted");
}

#[test]
fn x5c_chain_through_a_non_ca_intermediate_is_refused() {
    let (root, root_issuer) = authority("token root", true, None);
    let (intermediate, intermediate_issuer) = authority("not a ca", false, Some(&root_issuer));
    let signer = Signer::issued_by(&intermediate_issuer, 4000);
    let (_dir, authenticator) = trusting(&[&root.pem()]);
    let token = signer.sign_with(
        x5c_header(&[&signer.certificate_der, intermediate.der()]),
        &claims(pull_push_on("a")),
    );
    assert!(refusal(authenticator.verify(&token)).contains("not issued by a trusted"));
}

#[test]
fn x5c_chain_from_an_untrusted_authority_is_refused() {
    let (root, _) = authority("token root", true, None);
    let (_other, other_issuer) = authority("token root", true, None);
    let signer = Signer::issued_by(&other_issuer, 4000);
    let (_dir, authenticator) = trusting(&[&root.pem()]);
    let token = signer.sign_with(
        x5c_header(&[&signer.certificate_der]),
        &claims(pull_push_on("a")),
    );
    assert!(refusal(authenticator.verify(&token)).contains("not issued by a trusted"));

    let garbage = signer.sign_with(
        x5c_header(&[b"not a certificate".as_slice()]),
        &claims(pull_push_on("a")),
    );
    assert!(refusal(authenticator.verify(&garbage)).contains("malformed certificate"));
}

#[test]
fn x5c_with_an_expired_signing_certificate_is_refused() {
    let (root, root_issuer) = authority("token root", true, None);
    let signer = Signer::issued_by(&root_issuer, 2001);
    let (_dir, authenticator) = trusting(&[&root.pem()]);
    let token = signer.sign_with(
        x5c_header(&[&signer.certificate_der]),
        &claims(pull_push_on("a")),
    );
    assert!(refusal(authenticator.verify(&token)).contains("expired"));
}

#[test]
fn configured_signing_algorithms_limit_what_is_accepted() {
    let rsa = Signer::rs256();
    let ec = Signer::es256();
    let dir = TempDir::new().expect("temporary directory");
    let bundle = write(
        &dir,
        "bundle.pem",
        &[rsa.certificate_pem.as_str(), ec.certificate_pem.as_str()].concat(),
    );
    let mut settings = settings(Some(bundle), None);
    settings.signing_algorithms = vec!["ES256".into()];
    let authenticator = TokenAuthenticator::new(settings).expect("authenticator");
    authenticator
        .verify(&ec.sign(&claims(pull_push_on("a"))))
        .expect("ES256 accepted");
    assert!(
        refusal(authenticator.verify(&rsa.sign(&claims(pull_push_on("a")))))
            .contains("not enabled")
    );
}

#[test]
fn setup_without_usable_keys_fails() {
    let dir = TempDir::new().expect("temporary directory");
    assert!(matches!(
        TokenAuthenticator::new(settings(None, None)),
        Err(TokenError::NoKeys)
    ));
    assert!(matches!(
        TokenAuthenticator::new(settings(Some(dir.path().join("missing.pem")), None)),
        Err(TokenError::Read { .. })
    ));
    let empty = write(&dir, "empty.pem", "no certificates here\n");
    assert!(matches!(
        TokenAuthenticator::new(settings(Some(empty), None)),
        Err(TokenError::Invalid { .. })
    ));
    let symmetric = write(
        &dir,
        "jwks.json",
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#,
    );
    assert!(matches!(
        TokenAuthenticator::new(settings(None, Some(symmetric))),
        Err(TokenError::Invalid { .. })
    ));
    let rsa = Signer::rs256();
    let bundle = write(&dir, "rsa.pem", &rsa.certificate_pem);
    let mut only_ecdsa = settings(Some(bundle.clone()), None);
    only_ecdsa.signing_algorithms = vec!["ES256".into()];
    assert!(matches!(
        TokenAuthenticator::new(only_ecdsa),
        Err(TokenError::NoUsableKey)
    ));
    let mut hmac = settings(Some(bundle), None);
    hmac.signing_algorithms = vec!["HS256".into()];
    assert!(matches!(
        TokenAuthenticator::new(hmac),
        Err(TokenError::Algorithm { .. })
    ));
}

#[tokio::test]
async fn credentials_other_than_a_bearer_token_are_not_verified() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    assert_eq!(
        authenticator.authenticate(&Credentials::None).await,
        Ok(None)
    );
    assert_eq!(
        authenticator
            .authenticate(&Credentials::Basic {
                user: "alice".into(),
                password: "secret".into()
            })
            .await,
        Err(AuthError::WrongScheme { expected: "Bearer" })
    );
    assert_eq!(
        authenticator.authenticate(&Credentials::Malformed).await,
        Err(AuthError::MalformedHeader)
    );
    let token = signer.sign(&claims(pull_push_on("a")));
    let principal = authenticator
        .authenticate(&Credentials::Bearer(token))
        .await
        .expect("accepted")
        .expect("a principal");
    assert_eq!(principal.name.as_deref(), Some("alice"));
}

#[test]
fn challenge_names_realm_service_and_every_scope() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let challenge = authenticator.challenge(
        &[
            Access::repository(name("source"), &[Action::Pull]),
            Access::repository(name("target"), &[Action::Pull, Action::Push]),
        ],
        Some(ChallengeError::InvalidToken),
    );
    assert_eq!(
        challenge.header_value(),
        "Bearer realm=\"https://auth.example.com/token\",service=\"registry.example.com\",\
         scope=\"repository:source:pull repository:target:pull,push\",error=\"invalid_token\""
    );
}

fn controller(authenticator: TokenAuthenticator) -> AccessController {
    AccessController::new(Arc::new(authenticator), None)
}

#[tokio::test]
async fn token_for_one_repository_grants_nothing_on_another() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let controller = controller(authenticator);
    let credentials = Credentials::Bearer(signer.sign(&claims(pull_push_on("a"))));

    let on_a = [Access::repository(name("a"), &[Action::Pull, Action::Push])];
    assert!(matches!(
        controller.decide(&credentials, &on_a).await,
        Decision::Granted(_)
    ));
    let on_b = [Access::repository(name("b"), &[Action::Pull])];
    match controller.decide(&credentials, &on_b).await {
        Decision::Unauthorized { challenge, .. } => assert_eq!(
            challenge,
            Challenge::Bearer {
                realm: REALM.into(),
                service: SERVICE.into(),
                scope: "repository:b:pull".into(),
                error: Some(ChallengeError::InsufficientScope),
            }
        ),
        other => panic!("expected a challenge, got {other:?}"),
    }
    let delete_a = [Access::repository(name("a"), &[Action::Delete])];
    assert!(matches!(
        controller.decide(&credentials, &delete_a).await,
        Decision::Unauthorized { .. }
    ));
}

#[tokio::test]
async fn refused_tokens_log_why_at_debug_without_the_token() {
    let log = common::captured_log();
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let controller = controller(authenticator);

    let mut expired = claims(pull_push_on("expired-token-probe"));
    expired["sub"] = json!("eve-expired");
    expired["exp"] = json!(now() - 3600);
    expired["nbf"] = json!(now() - 7200);
    let expired = signer.sign(&expired);
    let on_probe = [Access::repository(
        name("expired-token-probe"),
        &[Action::Pull],
    )];
    let decision = controller
        .decide(&Credentials::Bearer(expired.clone()), &on_probe)
        .await;
    assert!(matches!(decision, Decision::Unauthorized { .. }));

    let mut narrow = claims(pull_push_on("scope-probe/granted"));
    narrow["sub"] = json!("sam-scoped");
    let on_other = [Access::repository(
        name("scope-probe/other"),
        &[Action::Pull],
    )];
    let narrow = signer.sign(&narrow);
    let decision = controller
        .decide(&Credentials::Bearer(narrow.clone()), &on_other)
        .await;
    assert!(matches!(decision, Decision::Unauthorized { .. }));

    let refused = log.lines_with("login refused: invalid token: expired");
    assert!(!refused.is_empty(), "no line for the expired token");
    let scoped = log.lines_with("sam-scoped");
    assert_eq!(scoped.len(), 1, "{scoped:#?}");
    assert!(
        scoped[0].contains("DEBUG")
            && scoped[0].contains("insufficient scope")
            && scoped[0].contains("needs \"repository:scope-probe/other:pull\"")
            && scoped[0].contains("grants \"repository:scope-probe/granted:pull,push\""),
        "{scoped:#?}"
    );
    for line in refused.iter().chain(&scoped) {
        assert!(
            !line.contains(&expired) && !line.contains(&narrow),
            "a token in: {line}"
        );
    }
}

#[tokio::test]
async fn cross_repository_mount_is_granted_only_when_the_token_holds_both_scopes() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let controller = controller(authenticator);
    let mount = [
        Access::repository(name("source"), &[Action::Pull]),
        Access::repository(name("target"), &[Action::Pull, Action::Push]),
    ];
    let both = signer.sign(&claims(json!([
        {"type": "repository", "name": "source", "actions": ["pull"]},
        {"type": "repository", "name": "target", "actions": ["pull", "push"]},
    ])));
    assert!(matches!(
        controller.decide(&Credentials::Bearer(both), &mount).await,
        Decision::Granted(_)
    ));
    for only_one in [
        json!([{"type": "repository", "name": "target", "actions": ["pull", "push"]}]),
        json!([{"type": "repository", "name": "source", "actions": ["pull"]}]),
        json!([
            {"type": "repository", "name": "source", "actions": ["pull"]},
            {"type": "repository", "name": "target", "actions": ["pull"]},
        ]),
    ] {
        let token = signer.sign(&claims(only_one.clone()));
        match controller.decide(&Credentials::Bearer(token), &mount).await {
            Decision::Unauthorized { challenge, .. } => assert_eq!(
                challenge,
                Challenge::Bearer {
                    realm: REALM.into(),
                    service: SERVICE.into(),
                    scope: "repository:source:pull repository:target:pull,push".into(),
                    error: Some(ChallengeError::InsufficientScope),
                },
                "{only_one}"
            ),
            other => panic!("expected a challenge for {only_one}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn invalid_token_gets_an_invalid_token_challenge_and_no_token_a_plain_one() {
    let signer = Signer::es256();
    let stranger = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let controller = controller(authenticator);
    let on_a = [Access::repository(name("a"), &[Action::Pull])];
    let forged = Credentials::Bearer(stranger.sign(&claims(pull_push_on("a"))));
    match controller.decide(&forged, &on_a).await {
        Decision::Unauthorized { challenge, message } => {
            assert!(matches!(
                challenge,
                Challenge::Bearer {
                    error: Some(ChallengeError::InvalidToken),
                    ..
                }
            ));
            assert!(message.contains("unknown key"), "{message}");
        }
        other => panic!("expected a challenge, got {other:?}"),
    }
    match controller.decide(&Credentials::None, &on_a).await {
        Decision::Unauthorized { challenge, .. } => assert_eq!(
            challenge,
            Challenge::Bearer {
                realm: REALM.into(),
                service: SERVICE.into(),
                scope: "repository:a:pull".into(),
                error: None,
            }
        ),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// Token servers issue tokens to anonymous clients with an empty `sub` (or none). Such a token
/// names no one: its holder is anonymous, with the token's grant, and never a user named "" that
/// rules for any authenticated user (`*`) would let in.
#[tokio::test]
async fn token_with_an_empty_or_missing_sub_is_anonymous() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let pull_a = [Access::repository(name("a"), &[Action::Pull])];
    let mut tokens = Vec::new();
    for sub in [Some(""), None] {
        let mut claims = claims(json!([
            {"type": "repository", "name": "a", "actions": ["pull"]},
        ]));
        match sub {
            Some(sub) => claims["sub"] = json!(sub),
            None => {
                claims.as_object_mut().expect("an object").remove("sub");
            }
        }
        let token = signer.sign(&claims);
        let principal = authenticator.verify(&token).expect("accepted");
        assert_eq!(principal.name, None, "sub {sub:?}");
        assert_eq!(
            principal.granted,
            Some(vec![Access::repository(name("a"), &[Action::Pull])])
        );
        tokens.push(Credentials::Bearer(token));
    }

    let any_user_may_push = AccessRule {
        users: vec!["*".into()],
        repositories: vec!["*".into()],
        actions: vec![RuleAction::Pull, RuleAction::Push],
    };
    let anonymous_may_pull = AccessRule {
        users: vec!["anonymous".into()],
        repositories: vec!["a".into()],
        actions: vec![RuleAction::Pull],
    };
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let for_users_only = AccessController::new(
        Arc::new(authenticator),
        Some(AccessRules::new(vec![any_user_may_push.clone()])),
    );
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let with_anonymous = AccessController::new(
        Arc::new(authenticator),
        Some(AccessRules::new(vec![
            any_user_may_push,
            anonymous_may_pull,
        ])),
    );
    for credentials in &tokens {
        match for_users_only.decide(credentials, &pull_a).await {
            Decision::Unauthorized { challenge, .. } => assert!(matches!(
                challenge,
                Challenge::Bearer {
                    error: Some(ChallengeError::InsufficientScope),
                    ..
                }
            )),
            other => panic!("an anonymous token is not a user: {other:?}"),
        }
        match with_anonymous.decide(credentials, &pull_a).await {
            Decision::Granted(grant) => assert_eq!(grant.identity(), &Identity::Anonymous),
            other => panic!("anonymous may pull a: {other:?}"),
        }
        // Valid credentials pass the base endpoint, as with registry:2.
        assert!(matches!(
            for_users_only.decide(credentials, &[]).await,
            Decision::Granted(_)
        ));
    }
}

#[test]
fn repeated_verification_of_a_token_gives_the_same_principal() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let token = signer.sign(&claims(pull_push_on("a")));
    let first = authenticator.verify(&token).expect("accepted");
    let second = authenticator
        .verify(&token)
        .expect("accepted from the cache");
    assert_eq!(first, second);
}

/// The ES256 key of spec-auth-jwt.md's example and the key id the specification
/// gives it. (The example's signature itself does not verify: its claims were edited after
/// signing.)
fn specification_key() -> (KeyPair, &'static str) {
    let part = |text: &str| URL_SAFE_NO_PAD.decode(text).expect("base64url");
    let mut sec1 = hex_decode("307702010104");
    sec1.push(0x20);
    sec1.extend(part("R7OnbfMaD5J2jl7GeE8ESo7CnHSBm_1N2k9IXYFrKJA"));
    sec1.extend(hex_decode("a00a06082a8648ce3d030107a14403420004"));
    sec1.extend(part("m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q"));
    sec1.extend(part("dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc"));
    // PKCS#8: SEQUENCE { 0, { id-ecPublicKey, prime256v1 }, OCTET STRING sec1 }
    let mut pkcs8 = hex_decode("308193020100301306072a8648ce3d020106082a8648ce3d0301070479");
    pkcs8.extend(sec1);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(&pkcs8)
    );
    (
        KeyPair::from_pem(&pem).expect("the specification's key"),
        "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6",
    )
}

#[test]
fn certificate_of_the_specification_key_is_found_by_the_published_key_id() {
    let (key, published_kid) = specification_key();
    let signer = Signer::self_signed(key, Algorithm::ES256);
    assert_eq!(signer.kid(), published_kid);
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(published_kid.to_owned());
    let principal = authenticator
        .verify(&signer.sign_with(header, &claims(pull_push_on("samalba/my-app"))))
        .expect("accepted");
    assert_eq!(principal.name.as_deref(), Some("alice"));
}

// ---- untrusted input ------------------------------------------------------------------------

/// Any JSON value, a few levels deep, for the fields a token server might get wrong.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A field that is usually `right` and sometimes any JSON at all.
fn mostly(right: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Value> {
    prop_oneof![16 => right.boxed(), 1 => any_json().boxed()]
}

/// A time claim: valid now, past, future, or of a type or size no clock has.
fn time_claim(now: u64) -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => Just(json!(now + 300)),
        1 => Just(json!(now - 3600)),
        1 => Just(json!(now + 3600)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(-1)),
        1 => Just(json!(1e300)),
        1 => Just(json!((now + 300) as f64 + 0.5)),
        1 => any_json(),
    ]
}

/// An `access` claim: a list of entries shaped like the specification's, with random types,
/// names and actions.
fn access_claim() -> impl Strategy<Value = Value> {
    let entry = (
        mostly(prop_oneof![
            Just(json!("repository")),
            Just(json!("repository(plugin)")),
            Just(json!("registry")),
            "\\PC{0,12}".prop_map(Value::from),
        ]),
        mostly(prop_oneof![
            "[a-z0-9/._-]{0,30}".prop_map(Value::from),
            Just(json!("catalog")),
            "\\PC{0,20}".prop_map(Value::from),
        ]),
        mostly(
            prop::collection::vec(
                prop_oneof![
                    Just(json!("pull")),
                    Just(json!("push")),
                    Just(json!("delete")),
                    Just(json!("*")),
                    any_json(),
                ],
                0..4,
            )
            .prop_map(Value::from),
        ),
    )
        .prop_map(|(kind, name, actions)| json!({"type": kind, "name": name, "actions": actions}));
    mostly(prop::collection::vec(entry, 0..4).prop_map(Value::from))
}

/// Claims almost as a token server writes them: each standard claim present or not, mostly
/// right, sometimes of another type or out of range.
fn almost_claims(now: u64) -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.95, mostly(Just(json!(ISSUER)))),
        prop::option::weighted(
            0.95,
            mostly(prop_oneof![
                Just(json!(SERVICE)),
                Just(json!([SERVICE, "other"])),
                Just(json!([])),
            ]),
        ),
        prop::option::weighted(0.95, time_claim(now)),
        prop::option::weighted(0.5, time_claim(now)),
        prop::option::weighted(
            0.8,
            mostly(prop_oneof![
                Just(json!("")),
                Just(json!("alice")),
                "\\PC{0,12}".prop_map(Value::from),
            ]),
        ),
        prop::option::weighted(0.9, access_claim()),
    )
        .prop_map(|(iss, aud, exp, nbf, sub, access)| {
            let mut claims = serde_json::Map::new();
            for (name, value) in [
                ("iss", iss),
                ("aud", aud),
                ("exp", exp),
                ("nbf", nbf),
                ("sub", sub),
                ("access", access),
            ] {
                if let Some(value) = value {
                    claims.insert(name.to_owned(), value);
                }
            }
            Value::Object(claims)
        })
}

/// A token header: the signer's `kid`, or an `x5c` of random or mutated certificates, or a
/// random `jwk`, with the algorithm the key signs with or another.
fn almost_header(kid: String, certificate: Vec<u8>) -> impl Strategy<Value = Value> {
    let mutated = (
        Just(certificate),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(mut der, edits)| {
            for (at, byte) in edits {
                let at = at.index(der.len());
                der[at] = byte;
            }
            STANDARD.encode(der)
        });
    let x5c = prop::collection::vec(
        prop_oneof![
            mutated.boxed(),
            prop::collection::vec(any::<u8>(), 0..200)
                .prop_map(|der| STANDARD.encode(der))
                .boxed(),
            "\\PC{0,20}".boxed(),
        ],
        0..3,
    );
    (
        mostly(prop_oneof![
            12 => Just(json!("ES256")),
            1 => prop::sample::select(vec!["RS256", "HS256", "none", "NONE", "EdDSA", "ES512"])
                .prop_map(Value::from),
            1 => "\\PC{0,8}".prop_map(Value::from),
        ]),
        prop_oneof![
            12 => Just(json!({ "kid": kid })),
            1 => x5c.prop_map(|x5c| json!({ "x5c": x5c })),
            1 => any_json().prop_map(|jwk| json!({ "jwk": jwk })),
            1 => any_json().prop_map(|kid| json!({ "kid": kid })),
        ],
    )
        .prop_map(|(alg, mut header)| {
            header["alg"] = alg;
            header
        })
}

fn check_verified(result: Result<Principal, AuthError>) -> Result<(), TestCaseError> {
    match result {
        Ok(principal) => {
            prop_assert_ne!(principal.name.as_deref(), Some(""));
            prop_assert!(principal.granted.is_some());
        }
        Err(error) => prop_assert!(matches!(error, AuthError::InvalidToken { .. }), "{error:?}"),
    }
    Ok(())
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig::with_cases(cases))
}

#[test]
fn arbitrary_strings_never_panic_the_token_verifier() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let token = "\\PC{0,200}|[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,80}";
    runner(256)
        .run(&token, |token| {
            let result = authenticator.verify(&token);
            prop_assert!(result.is_err(), "{token:?} was accepted");
            check_verified(result)
        })
        .expect("no token panics the verifier");
}

/// Tokens whose header and claims are random JSON, base64url-encoded and signed with the trusted
/// key (or carrying a random signature), so that cases pass the signature check and reach the
/// claim checks: `exp` of every type and size, `aud` lists, `sub` and `access` of every shape.
#[test]
fn almost_valid_tokens_are_refused_or_accepted_without_panic() {
    let signer = Signer::es256();
    let (_dir, authenticator) = trusting(&[&signer.certificate_pem]);
    let now = now();
    let strategy = (
        almost_header(signer.kid(), signer.certificate_der.clone()),
        almost_claims(now),
        prop_oneof![4 => Just(None), 1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(Some)],
    );
    runner(128)
        .run(&strategy, |(header, claims, signature)| {
            let signed = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = match signature {
                Some(bytes) => URL_SAFE_NO_PAD.encode(bytes),
                None => jsonwebtoken::crypto::sign(
                    signed.as_bytes(),
                    &signer.encoding,
                    Algorithm::ES256,
                )
                .expect("signature"),
            };
            let result = authenticator.verify(&format!("{signed}.{signature}"));
            if let (Ok(principal), Some(sub)) = (&result, claims["sub"].as_str()) {
                prop_assert_eq!(
                    principal.name.as_deref(),
                    Some(sub).filter(|sub| !sub.is_empty())
                );
            }
            check_verified(result)
        })
        .expect("no token panics the verifier");
}
