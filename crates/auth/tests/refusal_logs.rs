//! At debug level, a refused login or request logs why, for the operator, without any secret;
//! the client's answer stays the same whatever the reason.

mod common;

use std::sync::Arc;

use registry_auth::htpasswd::entry_line;
use registry_auth::{
    Access, AccessController, AccessRule, AccessRules, Action, Credentials, Decision,
    HtpasswdAuthenticator, RuleAction,
};

use common::captured_log;

/// A controller over an htpasswd file holding `users` (each with the password
/// `<name>-secret-password`), with `rules` when given.
fn controller(
    dir: &tempfile::TempDir,
    users: &[&str],
    rules: Option<AccessRules>,
) -> AccessController {
    let lines: Vec<String> = users
        .iter()
        .map(|user| entry_line(user, &format!("{user}-secret-password"), 4).expect("entry"))
        .collect();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, lines.join("\n") + "\n").expect("htpasswd file");
    let authenticator = HtpasswdAuthenticator::open("test", &path).expect("htpasswd");
    AccessController::new(Arc::new(authenticator), rules)
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    }
}

fn pull(repository: &str) -> [Access; 1] {
    [Access::repository(
        repository.parse().expect("name"),
        &[Action::Pull],
    )]
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_are_told_apart_in_the_log_only() {
    let log = captured_log();
    let dir = tempfile::tempdir().expect("tempdir");
    let controller = controller(&dir, &["wanda"], None);

    let wrong = controller
        .decide(&basic("wanda", "not-wandas-password"), &pull("a"))
        .await;
    let unknown = controller
        .decide(&basic("ursula", "ursulas-guess"), &pull("a"))
        .await;
    for decision in [&wrong, &unknown] {
        match decision {
            Decision::Unauthorized { message, .. } => {
                assert_eq!(message, "invalid username or password");
            }
            other => panic!("expected a 401, got {other:?}"),
        }
    }

    let wanda = log.lines_with("wanda");
    assert_eq!(wanda.len(), 1, "{wanda:#?}");
    assert!(
        wanda[0].contains("DEBUG") && wanda[0].contains("login refused: wrong password"),
        "{wanda:#?}"
    );
    let ursula = log.lines_with("ursula");
    assert_eq!(ursula.len(), 1, "{ursula:#?}");
    assert!(
        ursula[0].contains("login refused: unknown user"),
        "{ursula:#?}"
    );
    for line in wanda.iter().chain(&ursula) {
        assert!(
            !line.contains("not-wandas-password") && !line.contains("ursulas-guess"),
            "a password in: {line}"
        );
    }
}

#[tokio::test]
async fn a_request_the_access_rules_refuse_logs_the_user_and_what_it_needed() {
    let log = captured_log();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = AccessRules::new(vec![AccessRule {
        users: vec!["rhoda".to_owned()],
        repositories: vec!["rhodas/*".to_owned()],
        actions: vec![RuleAction::Pull],
    }]);
    let controller = controller(&dir, &["rhoda"], Some(rules));

    let decision = controller
        .decide(
            &basic("rhoda", "rhoda-secret-password"),
            &pull("others/app"),
        )
        .await;
    assert!(matches!(decision, Decision::Denied { .. }), "{decision:?}");
    let lines = log.lines_with("rhoda");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("auth.access does not allow \"repository:others/app:pull\""),
        "{lines:#?}"
    );
    assert!(!lines[0].contains("secret"), "{lines:#?}");
}

#[tokio::test]
async fn an_anonymous_request_that_is_refused_says_it_had_no_credentials() {
    let log = captured_log();
    let dir = tempfile::tempdir().expect("tempdir");
    let controller = controller(&dir, &["nobody-here"], None);
    let decision = controller
        .decide(&Credentials::None, &pull("anonymous-probe"))
        .await;
    assert!(
        matches!(decision, Decision::Unauthorized { .. }),
        "{decision:?}"
    );
    let lines = log.lines_with("anonymous-probe");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("no credentials"), "{lines:#?}");
}
