//! The claims registryd reads from a verified token: its subject, its expiry (for the cache) and
//! its `access` grant.

use registry_model::RepositoryName;
use serde::Deserialize;

use crate::{Access, Action};

/// The claims registryd needs once jsonwebtoken has checked `exp`, `nbf`, `iss` and `aud`.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    /// The subject: the user the token was issued to, empty for an anonymous client.
    #[serde(default)]
    pub(crate) sub: Option<String>,
    /// Read as any JSON value: jsonwebtoken has already refused a malformed one.
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    access: Option<Vec<AccessEntry>>,
}

/// One entry of the `access` claim: `{"type":"repository","name":"x","actions":["pull"]}`.
#[derive(Debug, Deserialize)]
struct AccessEntry {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    actions: Vec<String>,
}

impl Claims {
    /// The expiry, in seconds since the epoch.
    pub(crate) fn expires_at(&self) -> Option<u64> {
        let exp = self.exp.as_ref()?;
        exp.as_u64().or_else(|| {
            exp.as_f64()
                .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
                .map(|seconds| seconds as u64)
        })
    }

    /// What the `access` claim grants, in registryd's vocabulary. As the token specification's
    /// scopes say: `repository` (and the deprecated class form `repository(plugin)`) entries
    /// grant their actions on the named repository, `*` meaning every action; a `registry`
    /// entry named `catalog` with the `*` action grants the catalog. Entries of other types,
    /// actions registryd does not use and names that are not valid repository names grant
    /// nothing.
    pub(crate) fn granted(&self) -> Vec<Access> {
        let mut granted = Vec::new();
        for entry in self.access.iter().flatten() {
            let everything = entry.actions.iter().any(|action| action == "*");
            if entry.kind == "repository" || entry.kind.starts_with("repository(") {
                let Ok(name) = entry.name.parse::<RepositoryName>() else {
                    continue;
                };
                let mut actions: Vec<Action> = if everything {
                    Action::ALL.to_vec()
                } else {
                    entry
                        .actions
                        .iter()
                        .filter_map(|action| Action::parse(action))
                        .collect()
                };
                actions.sort();
                actions.dedup();
                if !actions.is_empty() {
                    granted.push(Access::repository(name, &actions));
                }
            } else if entry.kind == "registry" && entry.name == "catalog" && everything {
                granted.push(Access::catalog());
            }
        }
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Claims {
        serde_json::from_str(json).expect("claims")
    }

    #[test]
    fn access_claim_maps_to_accesses() {
        let granted = claims(
            r#"{"access":[
                {"type":"repository","name":"samalba/my-app","actions":["push","pull","push"]},
                {"type":"repository(plugin)","name":"plugins/x","actions":["pull"]},
                {"type":"repository","name":"all/of/it","actions":["*"]},
                {"type":"registry","name":"catalog","actions":["*"]}
            ]}"#,
        )
        .granted();
        let name = |text: &str| text.parse::<RepositoryName>().expect("name");
        assert_eq!(
            granted,
            vec![
                Access::repository(name("samalba/my-app"), &[Action::Pull, Action::Push]),
                Access::repository(name("plugins/x"), &[Action::Pull]),
                Access::repository(name("all/of/it"), &Action::ALL),
                Access::catalog(),
            ]
        );
    }

    #[test]
    fn unknown_types_actions_and_invalid_names_grant_nothing() {
        let granted = claims(
            r#"{"access":[
                {"type":"repository","name":"Invalid/NAME","actions":["pull"]},
                {"type":"repository","name":"ok","actions":["tag","mount"]},
                {"type":"namespace","name":"ok","actions":["*"]},
                {"type":"registry","name":"catalog","actions":["pull"]},
                {"type":"registry","name":"other","actions":["*"]}
            ]}"#,
        )
        .granted();
        assert_eq!(granted, Vec::new());
    }

    #[test]
    fn missing_or_null_access_grants_nothing() {
        assert!(claims("{}").granted().is_empty());
        assert!(claims(r#"{"access":null}"#).granted().is_empty());
    }

    #[test]
    fn expiry_is_read_as_integer_or_float() {
        assert_eq!(
            claims(r#"{"exp":1415387315}"#).expires_at(),
            Some(1415387315)
        );
        assert_eq!(
            claims(r#"{"exp":1415387315.5}"#).expires_at(),
            Some(1415387315)
        );
        assert_eq!(claims(r#"{"exp":"soon"}"#).expires_at(), None);
    }
}
