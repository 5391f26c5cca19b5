//! Access control at the HTTP layer: challenges, denials and filtered answers, decided before
//! anything is read or written. A small in-test authenticator stands in for htpasswd and tokens.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use http::{Method, StatusCode};
use registry_auth::{
    Access, AccessController, AccessRule, AccessRules, AuthError, Authenticator, Challenge,
    ChallengeError, Credentials, HtpasswdAuthenticator, Principal, RuleAction,
};
use registry_http::HttpOptions;

use common::*;

/// Users `alice`, `ci` and `admin`, each with the password `<name>-password`; and the bearer
/// tokens `catalog-only` and `catalog-and-pull-public-tool`, issued to `robot`.
#[derive(Debug)]
struct Users;

#[async_trait]
impl Authenticator for Users {
    async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<Option<Principal>, AuthError> {
        match credentials {
            Credentials::None => Ok(None),
            Credentials::Basic { user, password }
                if ["alice", "ci", "admin"].contains(&user.as_str())
                    && password == &format!("{user}-password") =>
            {
                Ok(Some(Principal {
                    name: Some(user.clone()),
                    granted: None,
                }))
            }
            Credentials::Basic { .. } => Err(AuthError::InvalidCredentials),
            // Tokens as a token server issues them: the grant is in the token.
            Credentials::Bearer(token) if token == "catalog-only" => Ok(Some(Principal {
                name: Some("robot".into()),
                granted: Some(vec![Access::catalog()]),
            })),
            Credentials::Bearer(token) if token == "catalog-and-pull-public-tool" => {
                Ok(Some(Principal {
                    name: Some("robot".into()),
                    granted: Some(vec![
                        Access::catalog(),
                        Access::repository(
                            "public/tool".parse().expect("name"),
                            &[registry_auth::Action::Pull],
                        ),
                    ]),
                }))
            }
            Credentials::Bearer(_) => Err(AuthError::InvalidToken {
                reason: "unknown test token".into(),
            }),
            _ => Err(AuthError::MalformedHeader),
        }
    }

    fn challenge(&self, _: &[Access], _: Option<ChallengeError>) -> Challenge {
        Challenge::Basic {
            realm: "test realm".into(),
        }
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn login(user: &str) -> String {
    basic(user, &format!("{user}-password"))
}

fn rule(users: &[&str], repositories: &[&str], actions: &[RuleAction]) -> AccessRule {
    AccessRule {
        users: users.iter().map(|s| s.to_string()).collect(),
        repositories: repositories.iter().map(|s| s.to_string()).collect(),
        actions: actions.to_vec(),
    }
}

async fn registry_with(rules: Option<AccessRules>) -> Registry {
    Registry::filesystem_with_http(HttpOptions {
        access: Some(AccessController::new(Arc::new(Users), rules)),
        ..HttpOptions::default()
    })
    .await
}

fn example_rules() -> AccessRules {
    use RuleAction::*;
    AccessRules::new(vec![
        rule(&["anonymous", "*"], &["public/*"], &[Pull]),
        rule(&["ci"], &["team/*", "public/*"], &[Pull, Push]),
        rule(&["admin"], &["*"], &[All]),
    ])
}

/// Pushes a one-layer image to `repository:tag` as `user`.
async fn push_image(registry: &Registry, user: &str, repository: &str, tag: &str) {
    let auth = login(user);
    let headers = [("authorization", auth.as_str())];
    let config = content(1, 10);
    let digest = sha256(&config);
    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/{repository}/blobs/uploads/?digest={digest}"),
            &headers,
            config.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let reply = registry
        .send(
            Method::PUT,
            &format!("/v2/{repository}/manifests/{tag}"),
            &[
                ("authorization", auth.as_str()),
                ("content-type", OCI_MANIFEST),
            ],
            manifest,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
}

fn nothing_stored(registry: &Registry) -> bool {
    !registry.root().join("docker").exists()
}

#[tokio::test]
async fn base_endpoint_challenges_anonymous_clients() {
    let registry = registry_with(None).await;
    let reply = registry.get("/v2/").await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(
        reply.header("www-authenticate"),
        r#"Basic realm="test realm""#
    );
    let auth = login("alice");
    let reply = registry.get_with("/v2/", &[("authorization", &auth)]).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_unknown_user_and_malformed_header_are_401_and_store_nothing() {
    let registry = registry_with(None).await;
    for header in [
        basic("alice", "wrong"),
        basic("mallory", "alice-password"),
        "Basic not-base64!".to_owned(),
        "Digest username=alice".to_owned(),
    ] {
        let reply = registry
            .send(
                Method::POST,
                "/v2/app/blobs/uploads/",
                &[("authorization", &header)],
                Vec::new(),
            )
            .await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        assert!(reply.header_opt("www-authenticate").is_some(), "{reply:?}");
    }
    let wrong_password = registry
        .get_with("/v2/", &[("authorization", &basic("alice", "wrong"))])
        .await;
    let unknown_user = registry
        .get_with("/v2/", &[("authorization", &basic("mallory", "x"))])
        .await;
    assert_eq!(
        wrong_password.body, unknown_user.body,
        "the answer does not reveal which users exist"
    );
    assert!(nothing_stored(&registry));
}

#[tokio::test]
async fn without_rules_any_authenticated_user_may_do_everything() {
    let registry = registry_with(None).await;
    push_image(&registry, "alice", "anything/app", "v1").await;
    let reply = registry
        .get_with(
            "/v2/anything/app/manifests/v1",
            &[("authorization", &login("ci"))],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = registry.get("/v2/anything/app/manifests/v1").await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

#[tokio::test]
async fn access_rules_are_enforced_per_repository_and_action() {
    let registry = registry_with(Some(example_rules())).await;
    push_image(&registry, "ci", "public/tool", "v1").await;
    push_image(&registry, "ci", "team/app", "v1").await;

    // Anyone may pull public repositories, even without credentials.
    let reply = registry.get("/v2/public/tool/manifests/v1").await;
    assert_eq!(reply.status, StatusCode::OK);
    // Anonymous clients are challenged for anything else.
    let reply = registry.get("/v2/team/app/manifests/v1").await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    // A known user without the right is denied.
    let alice = login("alice");
    let reply = registry
        .get_with("/v2/team/app/manifests/v1", &[("authorization", &alice)])
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "DENIED");
    let reply = registry
        .send(
            Method::POST,
            "/v2/public/tool/blobs/uploads/",
            &[("authorization", &alice)],
            Vec::new(),
        )
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "DENIED");
    // Only admin may delete.
    let reply = registry
        .send(
            Method::DELETE,
            "/v2/team/app/manifests/v1",
            &[("authorization", &login("ci"))],
            Vec::new(),
        )
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "DENIED");
    let reply = registry
        .send(
            Method::DELETE,
            "/v2/team/app/manifests/v1",
            &[("authorization", &login("admin"))],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
}

#[tokio::test]
async fn catalog_lists_only_what_the_caller_may_pull() {
    let registry = registry_with(Some(example_rules())).await;
    push_image(&registry, "admin", "public/tool", "v1").await;
    push_image(&registry, "admin", "team/app", "v1").await;
    push_image(&registry, "admin", "secret/db", "v1").await;

    let catalog = |user: Option<&str>| {
        let registry = &registry;
        let auth = user.map(login);
        async move {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|auth| vec![("authorization", auth)])
                .unwrap_or_default();
            let reply = registry.get_with("/v2/_catalog", &headers).await;
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            reply.json()["repositories"].clone()
        }
    };
    assert_eq!(catalog(None).await, serde_json::json!(["public/tool"]));
    assert_eq!(
        catalog(Some("alice")).await,
        serde_json::json!(["public/tool"])
    );
    assert_eq!(
        catalog(Some("ci")).await,
        serde_json::json!(["public/tool", "team/app"])
    );
    assert_eq!(
        catalog(Some("admin")).await,
        serde_json::json!(["public/tool", "secret/db", "team/app"])
    );
}

#[tokio::test]
async fn a_token_granting_the_catalog_lists_every_repository_whatever_it_may_pull() {
    let registry = registry_with(None).await;
    push_image(&registry, "admin", "public/tool", "v1").await;
    push_image(&registry, "admin", "secret/db", "v1").await;
    let catalog = |token: &'static str| {
        let registry = &registry;
        async move {
            let auth = format!("Bearer {token}");
            let reply = registry
                .get_with("/v2/_catalog", &[("authorization", auth.as_str())])
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            reply.json()["repositories"].clone()
        }
    };
    let everything = serde_json::json!(["public/tool", "secret/db"]);
    assert_eq!(catalog("catalog-only").await, everything);
    assert_eq!(catalog("catalog-and-pull-public-tool").await, everything);

    // The catalog grant lists names; it does not let the token pull them.
    let reply = registry
        .get_with(
            "/v2/secret/db/tags/list",
            &[("authorization", "Bearer catalog-only")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
}

#[tokio::test]
async fn a_token_granting_the_catalog_lists_only_what_the_access_rules_let_its_subject_pull() {
    let registry = registry_with(Some(example_rules())).await;
    push_image(&registry, "admin", "public/tool", "v1").await;
    push_image(&registry, "admin", "secret/db", "v1").await;
    let reply = registry
        .get_with("/v2/_catalog", &[("authorization", "Bearer catalog-only")])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.json()["repositories"],
        serde_json::json!(["public/tool"])
    );
}

#[tokio::test]
async fn cross_repository_mount_needs_pull_on_the_source() {
    let registry = registry_with(Some(example_rules())).await;
    push_image(&registry, "admin", "secret/db", "v1").await;
    let digest = sha256(&content(1, 10));
    // ci may push to team/* but may not pull secret/db: the mount is refused outright.
    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?mount={digest}&from=secret/db"),
            &[("authorization", &login("ci"))],
            Vec::new(),
        )
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "DENIED");
    // admin may do both: mounted.
    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?mount={digest}&from=secret/db"),
            &[("authorization", &login("admin"))],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
}

#[tokio::test]
async fn a_mount_without_from_comes_only_from_a_repository_the_caller_may_pull() {
    let registry = registry_with(Some(example_rules())).await;
    push_image(&registry, "admin", "secret/db", "v1").await;
    let digest = sha256(&content(1, 10));
    let mount = |user: &'static str| {
        let registry = &registry;
        let path = format!("/v2/team/app/blobs/uploads/?mount={digest}");
        async move {
            registry
                .send(
                    Method::POST,
                    &path,
                    &[("authorization", &login(user))],
                    Vec::new(),
                )
                .await
        }
    };

    // Only secret/db holds the blob, and ci may not pull it: a new upload, as for a blob
    // nobody has.
    let reply = mount("ci").await;
    reply.assert_empty(StatusCode::ACCEPTED);
    assert!(
        reply
            .header("location")
            .starts_with(&registry.url("/v2/team/app/blobs/uploads/")),
        "{reply:?}"
    );
    registry
        .get_with(
            &format!("/v2/team/app/blobs/{digest}"),
            &[("authorization", &login("ci"))],
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");

    // Once a repository ci may pull holds it too, ci gets the mount.
    push_image(&registry, "admin", "public/tool", "v1").await;
    let reply = mount("ci").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(
        reply.header("location"),
        registry.url(&format!("/v2/team/app/blobs/{digest}"))
    );
}

#[tokio::test]
async fn refused_request_reads_no_body() {
    let registry = registry_with(Some(example_rules())).await;
    let big = vec![0u8; 8 * 1024 * 1024];
    let digest = sha256(&big);
    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={digest}"),
            &[("authorization", &login("alice"))],
            big,
        )
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "DENIED");
    assert!(nothing_stored(&registry));
}

/// An authenticator whose backend is down: it cannot tell right credentials from wrong ones.
#[derive(Debug)]
struct Unreachable;

#[async_trait]
impl Authenticator for Unreachable {
    async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<Option<Principal>, AuthError> {
        match credentials {
            Credentials::None => Ok(None),
            _ => Err(AuthError::Unavailable {
                reason: "cannot read /etc/secret/backend.conf".into(),
            }),
        }
    }

    fn challenge(&self, _: &[Access], _: Option<ChallengeError>) -> Challenge {
        Challenge::Basic {
            realm: "test realm".into(),
        }
    }
}

/// "Try again later", not "wrong password": a client that gets 401 asks its user for other
/// credentials, one that gets 503 retries. The answer names no file of the server.
#[tokio::test]
async fn unavailable_authenticator_is_503_with_a_json_error_that_names_no_path() {
    let registry = Registry::filesystem_with_http(HttpOptions {
        access: Some(AccessController::new(Arc::new(Unreachable), None)),
        ..HttpOptions::default()
    })
    .await;
    for (method, path) in [
        (Method::GET, "/v2/"),
        (Method::GET, "/v2/app/tags/list"),
        (Method::POST, "/v2/app/blobs/uploads/"),
    ] {
        let reply = registry
            .send(
                method.clone(),
                path,
                &[("authorization", &login("alice"))],
                Vec::new(),
            )
            .await;
        let message = reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE");
        assert!(!message.contains("/etc"), "{message}");
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("backend.conf"),
            "{reply:?}"
        );
        assert!(reply.header_opt("www-authenticate").is_none(), "{reply:?}");
    }
    // Without credentials there is nothing to check: the usual challenge.
    let reply = registry.get("/v2/").await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(nothing_stored(&registry));
}

/// The htpasswd authenticator whose file was removed after start-up: 503 until it is back.
#[tokio::test]
async fn unreadable_htpasswd_file_is_503_and_a_restored_one_is_used() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("htpasswd");
    let entry = |password: &str| {
        registry_auth::htpasswd::entry_line("alice", password, 4).expect("an entry") + "\n"
    };
    std::fs::write(&path, entry("alice-password")).expect("write htpasswd");
    let htpasswd = Arc::new(HtpasswdAuthenticator::open("test realm", &path).expect("opens"));
    let registry = Registry::filesystem_with_http(HttpOptions {
        access: Some(AccessController::new(htpasswd.clone(), None)),
        ..HttpOptions::default()
    })
    .await;
    let alice = login("alice");
    let reply = registry
        .get_with("/v2/", &[("authorization", &alice)])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");

    std::fs::remove_file(&path).expect("remove htpasswd");
    assert!(htpasswd.refresh().is_err());
    let reply = registry
        .get_with("/v2/", &[("authorization", &alice)])
        .await;
    let message = reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE");
    let shown = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(
        !shown.contains(&dir.path().display().to_string()) && !shown.contains("htpasswd"),
        "{message}"
    );

    std::fs::write(&path, entry("alice-password")).expect("restore htpasswd");
    assert!(htpasswd.refresh().is_ok());
    let reply = registry
        .get_with("/v2/", &[("authorization", &alice)])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}
