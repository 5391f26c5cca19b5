//! Who is asking and may they.
//!
//! `registry-http` derives, in one place, the [`Access`] each request needs (pull, push or
//! delete on a repository, or the catalog) and asks an [`AccessController`] to decide. The
//! controller authenticates the request's [`Credentials`] with an [`Authenticator`] (htpasswd
//! users, bearer tokens, or an embedder's own) and checks the accesses against what the principal
//! may do: a token's grant, the [`AccessRules`], or registry:2's rule that any authenticated user
//! may do everything. A refused request gets a [`Challenge`] (401) or a denial (403).

mod access;
mod authenticator;
mod controller;
mod credentials;
pub mod htpasswd;
mod rules;
pub mod token;

pub use access::{Access, Action, Resource};
pub use authenticator::{AuthError, Authenticator, Challenge, ChallengeError, Principal};
pub use controller::{AccessController, Decision, Grant, Identity};
pub use credentials::Credentials;
pub use htpasswd::HtpasswdAuthenticator;
pub use rules::{AccessRule, AccessRules, RuleAction};
pub use token::TokenAuthenticator;
