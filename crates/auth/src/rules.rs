//! Access rules: which users (and anonymous clients) may do what to which repositories.
//!
//! registry:2 grants every authenticated user everything. With rules, each grant is explicit:
//!
//! ```yaml
//! auth:
//!   htpasswd: { realm: Registry, path: /etc/registry/htpasswd }
//!   access:
//!     - { users: [anonymous, "*"], repositories: ["public/*"], actions: [pull] }
//!     - { users: [ci], repositories: ["team/*"], actions: [pull, push] }
//!     - { users: [admin], repositories: ["*"], actions: [pull, push, delete] }
//! ```
//!
//! A request is allowed when any rule allows it. `anonymous` names clients without credentials,
//! `*` any authenticated user. In repository patterns `*` matches any run of characters, `/`
//! included, so `team/*` covers `team/app` and `team/a/b`.

use registry_model::RepositoryName;
use serde::{Deserialize, Serialize};

use crate::{Action, Identity};

/// One grant: these users may do these actions to repositories matching these patterns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// User names, `anonymous` for clients without credentials, `*` for any authenticated user.
    pub users: Vec<String>,
    /// Repository name patterns; `*` matches any run of characters.
    pub repositories: Vec<String>,
    /// What they may do.
    pub actions: Vec<RuleAction>,
}

/// An action as written in a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// `pull`.
    Pull,
    /// `push`.
    Push,
    /// `delete`.
    Delete,
    /// `*`: every action.
    #[serde(rename = "*")]
    All,
}

impl RuleAction {
    fn covers(self, action: Action) -> bool {
        match self {
            RuleAction::Pull => action == Action::Pull,
            RuleAction::Push => action == Action::Push,
            RuleAction::Delete => action == Action::Delete,
            RuleAction::All => true,
        }
    }
}

/// The rules, checked as a union: a request is allowed when any rule allows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRules {
    rules: Vec<AccessRule>,
}

impl AccessRules {
    /// Rules from their configuration.
    pub fn new(rules: Vec<AccessRule>) -> AccessRules {
        AccessRules { rules }
    }

    /// Whether `identity` may do `action` to `repository`.
    pub fn allows(&self, identity: &Identity, repository: &RepositoryName, action: Action) -> bool {
        self.rules.iter().any(|rule| {
            rule.users.iter().any(|user| matches_user(user, identity))
                && rule.actions.iter().any(|allowed| allowed.covers(action))
                && rule
                    .repositories
                    .iter()
                    .any(|pattern| glob_matches(pattern, repository.as_str()))
        })
    }

    /// Whether any rule names `identity` at all (so it may see a catalog, filtered).
    pub fn knows(&self, identity: &Identity) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.users.iter().any(|user| matches_user(user, identity)))
    }
}

fn matches_user(user: &str, identity: &Identity) -> bool {
    match identity {
        Identity::Anonymous => user == "anonymous",
        Identity::User(name) => user == "*" || user == name,
    }
}

/// `*` matches any run of characters (including `/`); everything else matches itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and how much text it had swallowed: classic backtracking glob.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rule(users: &[&str], repositories: &[&str], actions: &[RuleAction]) -> AccessRule {
        AccessRule {
            users: users.iter().map(|s| s.to_string()).collect(),
            repositories: repositories.iter().map(|s| s.to_string()).collect(),
            actions: actions.to_vec(),
        }
    }

    fn example_rules() -> AccessRules {
        use RuleAction::*;
        AccessRules::new(vec![
            rule(&["anonymous", "*"], &["public/*"], &[Pull]),
            rule(&["ci"], &["team/*"], &[Pull, Push]),
            rule(&["admin"], &["*"], &[All]),
        ])
    }

    #[test]
    fn rules_table() {
        let rules = example_rules();
        let anonymous = Identity::Anonymous;
        let ci = Identity::User("ci".into());
        let admin = Identity::User("admin".into());
        let bob = Identity::User("bob".into());
        let cases: &[(&Identity, &str, Action, bool)] = &[
            (&anonymous, "public/busybox", Action::Pull, true),
            (&anonymous, "public/busybox", Action::Push, false),
            (&anonymous, "team/app", Action::Pull, false),
            (&bob, "public/a/b", Action::Pull, true),
            (&bob, "public/a", Action::Push, false),
            (&bob, "team/app", Action::Pull, false),
            (&ci, "team/app", Action::Push, true),
            (&ci, "team/app", Action::Pull, true),
            (&ci, "team/app", Action::Delete, false),
            (&ci, "teamwork/app", Action::Push, false),
            (&ci, "public/x", Action::Pull, true),
            (&admin, "anything/at/all", Action::Delete, true),
            (&admin, "public/x", Action::Push, true),
        ];
        for (identity, repository, action, expected) in cases {
            let name: RepositoryName = repository.parse().expect("name");
            assert_eq!(
                rules.allows(identity, &name, *action),
                *expected,
                "{identity:?} {action} {repository}"
            );
        }
    }

    #[test]
    fn no_rules_allow_nothing() {
        let name: RepositoryName = "a".parse().expect("name");
        assert!(!AccessRules::default().allows(&Identity::User("x".into()), &name, Action::Pull));
    }

    #[test]
    fn glob_semantics() {
        assert!(glob_matches("*", "a/b/c"));
        assert!(glob_matches("team/*", "team/a/b"));
        assert!(!glob_matches("team/*", "team"));
        assert!(glob_matches("*/app", "x/y/app"));
        assert!(glob_matches("a*b*c", "a--b--c"));
        assert!(!glob_matches("a*b*c", "a--b--"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
    }

    proptest! {
        #[test]
        fn a_pattern_without_stars_matches_only_itself(a in "[a-z/]{0,12}", b in "[a-z/]{0,12}") {
            prop_assert_eq!(glob_matches(&a, &b), a == b);
        }

        #[test]
        fn star_suffix_matches_every_extension(prefix in "[a-z/]{0,8}", rest in "[a-z/]{0,8}") {
            let pattern = format!("{prefix}*");
            let text = format!("{prefix}{rest}");
            prop_assert!(glob_matches(&pattern, &text));
        }
    }
}
