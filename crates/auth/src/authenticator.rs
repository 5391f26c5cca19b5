//! The `Authenticator` trait: who is asking, and how to tell a client to authenticate.

use std::fmt;

use async_trait::async_trait;

use crate::{Access, Credentials};

/// Someone whose credentials were verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user name (htpasswd) or the token's subject. `None` for a token issued to an anonymous
    /// client (no `sub`, or an empty one): it acts as
    /// [`Identity::Anonymous`](crate::Identity::Anonymous), with what the token grants.
    pub name: Option<String>,
    /// What the credentials themselves grant, when they carry their own grant (a token's
    /// `access` claim). `None` when rights come from the access rules alone.
    pub granted: Option<Vec<Access>>,
}

/// Why credentials were not accepted. Messages never say whether a user exists.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong user name or password: one message for both, so answers do not reveal which users
    /// exist. An authenticator returning it logs which it was, at debug level, for the operator.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The `Authorization` header could not be read.
    #[error("malformed Authorization header")]
    MalformedHeader,
    /// The credentials are of a kind this authenticator does not take (Basic for token auth).
    #[error("this registry expects {expected} credentials")]
    WrongScheme {
        /// The scheme it expects, e.g. "Bearer".
        expected: &'static str,
    },
    /// A bearer token that is not valid: bad signature, unknown key, expired, wrong audience...
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// What is wrong with it.
        reason: String,
    },
    /// The authenticator could not decide: its password file cannot be read, a key source or a
    /// backend failed. The credentials may well be right, so this is answered as 503 Service
    /// Unavailable (a client retries) rather than 401 (a client concludes its password is
    /// wrong).
    #[error("authentication is unavailable: {reason}")]
    Unavailable {
        /// What failed, for the log: it may name files, so it is never sent to the client.
        reason: String,
    },
}

/// What the challenge reports as the reason for a 401 (the `error` parameter of a Bearer
/// challenge, RFC 6750).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeError {
    /// The credentials were not valid.
    InvalidToken,
    /// Valid, but they do not grant what the request needs.
    InsufficientScope,
}

/// A `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic {
        /// The realm.
        realm: String,
    },
    /// `Bearer realm="...",service="...",scope="..."[,error="..."]`: where to get a token.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// The service name tokens are issued for.
        service: String,
        /// The scopes the request needs, space-separated; empty for none.
        scope: String,
        /// Why the request was refused, when it carried a token.
        error: Option<ChallengeError>,
    },
}

impl Challenge {
    /// The header value.
    pub fn header_value(&self) -> String {
        match self {
            Challenge::Basic { realm } => format!("Basic realm={}", quoted(realm)),
            Challenge::Bearer {
                realm,
                service,
                scope,
                error,
            } => {
                let mut value =
                    format!("Bearer realm={},service={}", quoted(realm), quoted(service));
                if !scope.is_empty() {
                    value.push_str(&format!(",scope={}", quoted(scope)));
                }
                match error {
                    Some(ChallengeError::InvalidToken) => {
                        value.push_str(",error=\"invalid_token\"")
                    }
                    Some(ChallengeError::InsufficientScope) => {
                        value.push_str(",error=\"insufficient_scope\"")
                    }
                    None => {}
                }
                value
            }
        }
    }
}

/// An RFC 9110 quoted string.
fn quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        if character == '"' || character == '\\' {
            quoted.push('\\');
        }
        quoted.push(character);
    }
    quoted.push('"');
    quoted
}

/// Verifies credentials: htpasswd users, bearer tokens, or an embedder's own scheme.
///
/// An authenticator only says who is asking; [`AccessController`](crate::AccessController)
/// decides what they may do.
#[async_trait]
pub trait Authenticator: Send + Sync + fmt::Debug + 'static {
    /// Who `credentials` belong to: `Ok(None)` for a request without credentials (anonymous),
    /// an error for credentials that are present but not valid.
    async fn authenticate(&self, credentials: &Credentials)
    -> Result<Option<Principal>, AuthError>;

    /// The challenge to answer a refused request with, naming what it needed.
    fn challenge(&self, accesses: &[Access], error: Option<ChallengeError>) -> Challenge;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_render_as_clients_expect() {
        assert_eq!(
            Challenge::Basic {
                realm: "Registry \"R\"".into()
            }
            .header_value(),
            r#"Basic realm="Registry \"R\"""#
        );
        assert_eq!(
            Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: "registry.example.com".into(),
                scope: "repository:a:pull repository:b:pull,push".into(),
                error: Some(ChallengeError::InsufficientScope),
            }
            .header_value(),
            "Bearer realm=\"https://auth.example.com/token\",service=\"registry.example.com\",\
             scope=\"repository:a:pull repository:b:pull,push\",error=\"insufficient_scope\""
        );
    }
}
