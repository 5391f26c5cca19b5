//! Routing: a request's method and path to one of the API's endpoints, with every name, reference
//! and digest in the path parsed into its validated type.

use http::{Method, StatusCode};
use registry_content::UploadId;
use registry_model::{Digest, Reference, RepositoryName};

use crate::error::{ApiError, ErrorCode};
use crate::query;

/// An endpoint of the distribution API, with what its path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`: the repositories.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags(RepositoryName),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(RepositoryName, Reference),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(RepositoryName, Digest),
    /// `/v2/<name>/blobs/uploads/`: starts an upload.
    UploadStart(RepositoryName),
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload(RepositoryName, UploadId),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(RepositoryName, Digest),
}

impl Route {
    /// Parses `path` (the part after any configured prefix). `Ok(None)` when the path is not part
    /// of the API; an error when it is, but a name, reference or digest in it is invalid.
    pub fn parse(path: &str) -> Result<Option<Route>, ApiError> {
        let Some(rest) = path.strip_prefix("/v2") else {
            return Ok(None);
        };
        if rest.is_empty() || rest == "/" {
            return Ok(Some(Route::Base));
        }
        let Some(rest) = rest.strip_prefix('/') else {
            return Ok(None);
        };
        if rest == "_catalog" {
            return Ok(Some(Route::Catalog));
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let count = segments.len();
        let name_of = |end: usize| -> Result<RepositoryName, ApiError> {
            let name = segments[..end].join("/");
            Ok(name.parse::<RepositoryName>()?)
        };
        let last = segments[count - 1];
        // Match the endpoint from the end of the path: a repository name may itself contain
        // "blobs" or "manifests" as components.
        if count >= 3 && segments[count - 2] == "tags" && last == "list" {
            return Ok(Some(Route::Tags(name_of(count - 2)?)));
        }
        if count >= 3 && segments[count - 2] == "uploads" && segments[count - 3] == "blobs" {
            let name = name_of(count - 3)?;
            if last.is_empty() {
                return Ok(Some(Route::UploadStart(name)));
            }
            let id = UploadId::parse(last).ok_or_else(|| upload_unknown(last))?;
            return Ok(Some(Route::Upload(name, id)));
        }
        if count >= 3 && segments[count - 1] == "uploads" && segments[count - 2] == "blobs" {
            return Ok(Some(Route::UploadStart(name_of(count - 2)?)));
        }
        if count >= 2 {
            let target = query::decode(last);
            match segments[count - 2] {
                "manifests" => {
                    let name = name_of(count - 2)?;
                    let reference = target.parse::<Reference>()?;
                    return Ok(Some(Route::Manifest(name, reference)));
                }
                "blobs" => {
                    let name = name_of(count - 2)?;
                    return Ok(Some(Route::Blob(name, target.parse()?)));
                }
                "referrers" => {
                    let name = name_of(count - 2)?;
                    return Ok(Some(Route::Referrers(name, target.parse()?)));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// The route's kind, as metrics label it: `base`, `catalog`, `tags`, `manifests`, `blobs`,
    /// `uploads` or `referrers`.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags(_) => "tags",
            Route::Manifest(..) => "manifests",
            Route::Blob(..) => "blobs",
            Route::UploadStart(_) | Route::Upload(..) => "uploads",
            Route::Referrers(..) => "referrers",
        }
    }

    /// The methods this route answers.
    pub fn allowed_methods(&self) -> &'static [Method] {
        match self {
            Route::Base | Route::Catalog | Route::Tags(_) | Route::Referrers(..) => {
                &[Method::GET, Method::HEAD]
            }
            Route::Manifest(..) | Route::Blob(..) => {
                &[Method::GET, Method::HEAD, Method::PUT, Method::DELETE]
            }
            Route::UploadStart(_) => &[Method::POST],
            Route::Upload(..) => &[Method::GET, Method::PATCH, Method::PUT, Method::DELETE],
        }
    }
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::BlobUploadUnknown,
        format!("upload {id:?} is unknown"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Option<Route> {
        match Route::parse(path) {
            Ok(route) => route,
            Err(error) => panic!("{path}: {error:?}"),
        }
    }

    fn error_code(path: &str) -> Option<ErrorCode> {
        match Route::parse(path) {
            Err(error) => error.code(),
            Ok(route) => panic!("{path} parsed as {route:?}"),
        }
    }

    fn name(text: &str) -> RepositoryName {
        text.parse().expect("valid name")
    }

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn every_endpoint_is_recognised() {
        let digest: Digest = DIGEST.parse().expect("digest");
        assert_eq!(route("/v2/"), Some(Route::Base));
        assert_eq!(route("/v2"), Some(Route::Base));
        assert_eq!(route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(route("/v2/a/b/tags/list"), Some(Route::Tags(name("a/b"))));
        assert_eq!(
            route("/v2/a/manifests/latest"),
            Some(Route::Manifest(name("a"), "latest".parse().expect("tag")))
        );
        assert_eq!(
            route(&format!("/v2/a/blobs/{DIGEST}")),
            Some(Route::Blob(name("a"), digest.clone()))
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart(name("a")))
        );
        assert_eq!(
            route("/v2/a/blobs/uploads"),
            Some(Route::UploadStart(name("a")))
        );
        assert!(matches!(
            route("/v2/a/blobs/uploads/abc-123"),
            Some(Route::Upload(..))
        ));
        assert_eq!(
            route(&format!("/v2/a/referrers/{DIGEST}")),
            Some(Route::Referrers(name("a"), digest))
        );
    }

    #[test]
    fn names_may_contain_endpoint_words() {
        assert_eq!(
            route("/v2/blobs/manifests/tags/list"),
            Some(Route::Tags(name("blobs/manifests")))
        );
        assert_eq!(
            route("/v2/x/blobs/manifests/v1"),
            Some(Route::Manifest(name("x/blobs"), "v1".parse().expect("tag")))
        );
    }

    #[test]
    fn percent_encoded_digest_is_decoded() {
        let encoded = DIGEST.replace(':', "%3A");
        assert!(matches!(
            route(&format!("/v2/a/blobs/{encoded}")),
            Some(Route::Blob(..))
        ));
    }

    #[test]
    fn invalid_names_are_name_invalid() {
        for path in [
            "/v2/Upper/tags/list",
            "/v2/a/../b/tags/list",
            "/v2/%2e%2e/tags/list",
            "/v2/a//b/tags/list",
            "/v2//tags/list",
        ] {
            assert_eq!(error_code(path), Some(ErrorCode::NameInvalid), "{path}");
        }
        let long = format!("/v2/{}/tags/list", "a".repeat(256));
        assert_eq!(error_code(&long), Some(ErrorCode::NameInvalid));
    }

    #[test]
    fn invalid_references_are_rejected_with_their_code() {
        assert_eq!(
            error_code("/v2/a/manifests/-bad"),
            Some(ErrorCode::TagInvalid)
        );
        assert_eq!(
            error_code("/v2/a/blobs/sha256:abc"),
            Some(ErrorCode::DigestInvalid)
        );
        assert_eq!(
            error_code("/v2/a/manifests/sha256:XYZ"),
            Some(ErrorCode::DigestInvalid)
        );
        assert_eq!(route("/v2/a/blobs/uploads/../../x"), None);
    }

    #[test]
    fn paths_outside_the_api_are_not_routes() {
        assert_eq!(route("/"), None);
        assert_eq!(route("/v3/"), None);
        assert_eq!(route("/v2x"), None);
        assert_eq!(route("/v2/a"), None);
        assert_eq!(route("/v2/a/unknown/thing"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Paths built from the API's own words, percent escapes and separators, so that cases
        /// reach every endpoint's name, reference and digest parsing.
        #[test]
        fn arbitrary_paths_never_panic_the_router(
            path in "/v2(/([a-z0-9._-]{0,8}|%[0-9A-Fa-f]{0,2}|sha256:[a-f0-9]{0,64}|blobs|manifests|uploads|tags|list|referrers|_catalog|\\.\\.)){0,7}/?|\\PC{0,80}",
        ) {
            if let Ok(Some(route)) = Route::parse(&path) {
                proptest::prop_assert!(!route.allowed_methods().is_empty());
            }
        }
    }
}
