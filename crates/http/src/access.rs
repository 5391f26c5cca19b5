//! The one place that says what access each request needs, and how a refusal is answered.

use http::{HeaderValue, Method, StatusCode, header};
use registry_auth::{Access, AccessController, Action, Credentials, Decision, Grant, Resource};
use registry_model::RepositoryName;

use crate::error::{ApiError, ErrorCode};
use crate::{Route, query};

/// What `method` on `route` needs, as registry:2 defines it: reads need pull; writes (uploads,
/// manifest pushes) need pull and push, and a cross-repository mount also pull on its source (a
/// mount without `from` needs no more: it is served only from repositories the grant lets the
/// caller pull); deletes need delete; the catalog needs the catalog scope; `GET /v2/` only needs
/// the caller to be known.
pub fn required_access(route: &Route, method: &Method, params: &[(String, String)]) -> Vec<Access> {
    const READ: &[Action] = &[Action::Pull];
    const WRITE: &[Action] = &[Action::Pull, Action::Push];
    const DELETE: &[Action] = &[Action::Delete];
    let on =
        |name: &RepositoryName, actions: &[Action]| vec![Access::repository(name.clone(), actions)];
    match route {
        Route::Base => Vec::new(),
        Route::Catalog => vec![Access::catalog()],
        Route::Tags(name) | Route::Referrers(name, _) => on(name, READ),
        Route::Manifest(name, _) | Route::Blob(name, _) => match *method {
            Method::PUT => on(name, WRITE),
            Method::DELETE => on(name, DELETE),
            _ => on(name, READ),
        },
        Route::UploadStart(name) => {
            let mut accesses = on(name, WRITE);
            if query::first(params, "mount").is_some()
                && let Some(source) = query::first(params, "from")
                    .and_then(|from| from.parse::<RepositoryName>().ok())
                && &source != name
            {
                accesses.push(Access::repository(source, READ));
            }
            accesses
        }
        Route::Upload(name, _) => on(name, WRITE),
    }
}

/// Whether a request needing `accesses` changes what is stored: it pushes or deletes. These are
/// the requests read-only mode refuses.
pub(crate) fn changes_content(accesses: &[Access]) -> bool {
    accesses.iter().any(changes)
}

/// The repositories `accesses` push to or delete from.
pub(crate) fn changed_repositories(accesses: &[Access]) -> impl Iterator<Item = &RepositoryName> {
    accesses
        .iter()
        .filter(|access| changes(access))
        .filter_map(|access| match &access.resource {
            Resource::Repository(name) => Some(name),
            _ => None,
        })
}

fn changes(access: &Access) -> bool {
    access
        .actions
        .iter()
        .any(|action| matches!(action, Action::Push | Action::Delete))
}

/// Decides a request: the grant to serve it with, or the 401/403 to answer instead (503 when the
/// authenticator cannot decide).
pub(crate) async fn authorize(
    controller: Option<&AccessController>,
    authorization: Option<&HeaderValue>,
    accesses: &[Access],
) -> Result<Grant, ApiError> {
    let Some(controller) = controller else {
        return Ok(Grant::everything());
    };
    let credentials = Credentials::from_header(authorization.map(HeaderValue::as_bytes));
    match controller.decide(&credentials, accesses).await {
        Decision::Granted(grant) => Ok(grant),
        Decision::Unauthorized { challenge, message } => {
            let detail: Vec<serde_json::Value> = accesses
                .iter()
                .map(|access| serde_json::json!({ "scope": access.scope() }))
                .collect();
            let mut error =
                ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
                    .with_detail(serde_json::Value::Array(detail));
            if let Ok(value) = HeaderValue::try_from(challenge.header_value()) {
                error = error.with_header(header::WWW_AUTHENTICATE, value);
            }
            Err(error)
        }
        Decision::Denied { message } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Denied,
            message,
        )),
        Decision::Unavailable { reason } => Err(ApiError::unavailable("authentication", &reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> RepositoryName {
        text.parse().expect("name")
    }

    fn scopes(route: &Route, method: Method, query: &str) -> Vec<String> {
        let params = query::parse(Some(query));
        required_access(route, &method, &params)
            .iter()
            .map(Access::scope)
            .collect()
    }

    #[test]
    fn each_endpoint_needs_what_registry2_asks() {
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .expect("digest");
        let manifest = Route::Manifest(name("a"), "v1".parse().expect("tag"));
        let blob = Route::Blob(name("a"), digest);
        assert!(scopes(&Route::Base, Method::GET, "").is_empty());
        assert_eq!(
            scopes(&Route::Catalog, Method::GET, ""),
            ["registry:catalog:*"]
        );
        assert_eq!(
            scopes(&Route::Tags(name("a")), Method::GET, ""),
            ["repository:a:pull"]
        );
        assert_eq!(scopes(&manifest, Method::HEAD, ""), ["repository:a:pull"]);
        assert_eq!(
            scopes(&manifest, Method::PUT, ""),
            ["repository:a:pull,push"]
        );
        assert_eq!(
            scopes(&manifest, Method::DELETE, ""),
            ["repository:a:delete"]
        );
        assert_eq!(scopes(&blob, Method::GET, ""), ["repository:a:pull"]);
        assert_eq!(scopes(&blob, Method::DELETE, ""), ["repository:a:delete"]);
        assert_eq!(
            scopes(&Route::UploadStart(name("a")), Method::POST, ""),
            ["repository:a:pull,push"]
        );
    }

    #[test]
    fn cross_repository_mount_needs_pull_on_the_source() {
        let route = Route::UploadStart(name("target"));
        assert_eq!(
            scopes(&route, Method::POST, "mount=sha256:x&from=source/repo"),
            ["repository:target:pull,push", "repository:source/repo:pull"]
        );
        assert_eq!(
            scopes(&route, Method::POST, "mount=sha256:x&from=NOT..valid"),
            ["repository:target:pull,push"]
        );
    }
}
