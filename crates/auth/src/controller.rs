//! The access decision: authenticate the request, then check every access it needs.

use std::fmt;
use std::sync::Arc;

use registry_model::RepositoryName;

use crate::{
    Access, AccessRules, Action, AuthError, Authenticator, Challenge, ChallengeError, Credentials,
    Resource,
};

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A client that sent no credentials, or a token issued to no one in particular.
    Anonymous,
    /// An authenticated user (or a token's subject); never empty.
    User(String),
}

impl fmt::Display for Identity {
    /// The user's name, or `anonymous`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("anonymous"),
            Identity::User(name) => f.write_str(name),
        }
    }
}

/// What a granted request may do beyond what it asked for, for answers that depend on rights
/// (what the catalog lists: [`Grant::lists_in_catalog`]).
#[derive(Clone, Debug)]
pub struct Grant {
    identity: Identity,
    permissions: Permissions,
}

#[derive(Clone, Debug)]
enum Permissions {
    /// registry:2's rule: an authenticated user may do everything.
    Everything,
    /// What the access rules give this identity.
    Rules(Arc<AccessRules>),
    /// What the token grants, further limited by the rules when there are any.
    Token {
        granted: Arc<[Access]>,
        rules: Option<Arc<AccessRules>>,
    },
}

impl Grant {
    /// A grant to do everything, for a registry without authentication.
    pub fn everything() -> Grant {
        Grant {
            identity: Identity::Anonymous,
            permissions: Permissions::Everything,
        }
    }

    /// Who was granted.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Whether the grant covers `action` on `repository`.
    pub fn allows(&self, repository: &RepositoryName, action: Action) -> bool {
        match &self.permissions {
            Permissions::Everything => true,
            Permissions::Rules(rules) => rules.allows(&self.identity, repository, action),
            Permissions::Token { granted, rules } => {
                let in_token = granted.iter().any(|access| {
                    access.resource == Resource::Repository(repository.clone())
                        && access.actions.contains(&action)
                });
                in_token
                    && rules
                        .as_ref()
                        .is_none_or(|rules| rules.allows(&self.identity, repository, action))
            }
        }
    }

    /// Whether the catalog shows `repository` to this grant (which must have been given for the
    /// catalog). A token's `registry:catalog:*` lists every repository, as registry:2 does: the
    /// token server decided what the caller may see, so its pull scopes do not narrow the list
    /// (the access rules still do, when there are any). Without a token, the catalog lists what
    /// the caller may pull.
    pub fn lists_in_catalog(&self, repository: &RepositoryName) -> bool {
        match &self.permissions {
            Permissions::Token { rules, .. } => rules
                .as_ref()
                .is_none_or(|rules| rules.allows(&self.identity, repository, Action::Pull)),
            Permissions::Everything | Permissions::Rules(_) => {
                self.allows(repository, Action::Pull)
            }
        }
    }

    fn allows_catalog(&self) -> bool {
        match &self.permissions {
            Permissions::Everything => true,
            Permissions::Rules(rules) => rules.knows(&self.identity),
            Permissions::Token { granted, .. } => granted
                .iter()
                .any(|access| access.resource == Resource::Catalog),
        }
    }
}

/// The outcome of [`AccessController::decide`].
#[derive(Clone, Debug)]
pub enum Decision {
    /// Go ahead.
    Granted(Grant),
    /// 401 `UNAUTHORIZED`: no valid credentials, or a token without the needed scope; the
    /// challenge tells the client how to authenticate.
    Unauthorized {
        /// For the `WWW-Authenticate` header.
        challenge: Challenge,
        /// For the error body.
        message: String,
    },
    /// 403 `DENIED`: the user is known but may not do this.
    Denied {
        /// For the error body.
        message: String,
    },
    /// 503 `UNAVAILABLE`: the authenticator could not decide ([`AuthError::Unavailable`]).
    /// Not a 401: the credentials may be right, and the client should retry rather than ask its
    /// user for another password.
    Unavailable {
        /// What failed, for the log only: it may name files.
        reason: String,
    },
}

/// Decides every request of an authenticated registry: who is asking (the [`Authenticator`]) and
/// whether they may do what the request needs (the token's grant, the access rules, or
/// registry:2's "authenticated means everything").
#[derive(Clone, Debug)]
pub struct AccessController {
    authenticator: Arc<dyn Authenticator>,
    rules: Option<Arc<AccessRules>>,
}

impl AccessController {
    /// A controller over `authenticator`, with access `rules` when given.
    pub fn new(
        authenticator: Arc<dyn Authenticator>,
        rules: Option<AccessRules>,
    ) -> AccessController {
        AccessController {
            authenticator,
            rules: rules.map(Arc::new),
        }
    }

    /// Decides a request carrying `credentials` that needs `accesses` (none for `GET /v2/`,
    /// which only asks "who are you?").
    pub async fn decide(&self, credentials: &Credentials, accesses: &[Access]) -> Decision {
        let principal = match self.authenticator.authenticate(credentials).await {
            Ok(principal) => principal,
            Err(AuthError::Unavailable { reason }) => return Decision::Unavailable { reason },
            Err(error) => {
                // The reason (wrong password, expired token...) is for the operator's log only:
                // the client's answer stays the same whatever the reason.
                match (credentials, &error) {
                    // The authenticator logged which it was (unknown user or wrong password).
                    (_, AuthError::InvalidCredentials) => {}
                    (Credentials::Basic { user, .. }, _) => {
                        tracing::debug!(user, "login refused: {error}");
                    }
                    _ => tracing::debug!("login refused: {error}"),
                }
                return Decision::Unauthorized {
                    challenge: self
                        .authenticator
                        .challenge(accesses, Some(ChallengeError::InvalidToken)),
                    message: error.to_string(),
                };
            }
        };
        let authenticated = principal.is_some();
        let has_token = principal.as_ref().is_some_and(|p| p.granted.is_some());
        let rules = || match &self.rules {
            Some(rules) => Permissions::Rules(rules.clone()),
            None => Permissions::Rules(Arc::new(AccessRules::default())),
        };
        let grant = match principal {
            None => Grant {
                identity: Identity::Anonymous,
                permissions: rules(),
            },
            Some(principal) => {
                // An empty name is no one in particular, never a user that `*` rules match.
                let identity = principal
                    .name
                    .filter(|name| !name.is_empty())
                    .map_or(Identity::Anonymous, Identity::User);
                let permissions = match (principal.granted, &self.rules) {
                    (Some(granted), rules) => Permissions::Token {
                        granted: granted.into(),
                        rules: rules.clone(),
                    },
                    (None, Some(rules)) => Permissions::Rules(rules.clone()),
                    (None, None) if identity == Identity::Anonymous => rules(),
                    (None, None) => Permissions::Everything,
                };
                Grant {
                    identity,
                    permissions,
                }
            }
        };
        let anonymous = grant.identity == Identity::Anonymous;
        // The base endpoint answers clients without credentials with a challenge even when some
        // repositories are public: that 401 is how clients learn to send credentials. Any
        // verified credentials pass, an anonymous token too, as with registry:2.
        let allowed = if accesses.is_empty() {
            authenticated
        } else {
            accesses.iter().all(|access| match &access.resource {
                Resource::Catalog => grant.allows_catalog(),
                Resource::Repository(name) => access
                    .actions
                    .iter()
                    .all(|&action| grant.allows(name, action)),
            })
        };
        if allowed {
            return Decision::Granted(grant);
        }
        let needed = || {
            let scopes: Vec<String> = accesses.iter().map(Access::scope).collect();
            scopes.join(" ")
        };
        if has_token {
            if tracing::enabled!(tracing::Level::DEBUG) {
                let granted = match &grant.permissions {
                    Permissions::Token { granted, .. } => {
                        let scopes: Vec<String> = granted.iter().map(Access::scope).collect();
                        scopes.join(" ")
                    }
                    _ => String::new(),
                };
                let rules = if self.rules.is_some() {
                    " (or auth.access does not allow it)"
                } else {
                    ""
                };
                tracing::debug!(
                    user = %grant.identity,
                    "request refused: insufficient scope{rules}: it needs {needed:?}, the token \
                     grants {granted:?}",
                    needed = needed(),
                );
            }
            Decision::Unauthorized {
                challenge: self
                    .authenticator
                    .challenge(accesses, Some(ChallengeError::InsufficientScope)),
                message: "the token does not grant the access this request needs".to_owned(),
            }
        } else if anonymous {
            tracing::debug!(
                "request refused: no credentials, and anonymous clients may not {:?}",
                needed()
            );
            Decision::Unauthorized {
                challenge: self.authenticator.challenge(accesses, None),
                message: "authentication required".to_owned(),
            }
        } else {
            let needed = needed();
            tracing::debug!(
                user = %grant.identity,
                "request refused: auth.access does not allow {needed:?}"
            );
            Decision::Denied {
                message: format!("access denied: {needed}"),
            }
        }
    }
}
