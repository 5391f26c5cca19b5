//! Errors as the distribution spec renders them: a status code and the JSON envelope
//! `{"errors":[{"code","message","detail"}]}`. The mapping from every lower layer's error to a code
//! lives here and nowhere else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Response, StatusCode, header};
use registry_content::ContentError;
use registry_model::{DigestError, NameError, ReferenceError, TagError};
use serde::Serialize;

use crate::body::{self, ResponseBody};
use crate::body_guard::BodyCut;

/// The error codes of the distribution spec (plus `TAG_INVALID`, which the spec names among the
/// codes clients may meet, for a tag that breaks the tag grammar).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: blob unknown to registry.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: blob upload invalid.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: blob upload unknown to registry.
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: provided digest did not match uploaded content.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: manifest invalid.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: manifest unknown to registry.
    ManifestUnknown,
    /// `NAME_INVALID`: invalid repository name.
    NameInvalid,
    /// `NAME_UNKNOWN`: repository name not known to registry.
    NameUnknown,
    /// `SIZE_INVALID`: provided length did not match content length.
    SizeInvalid,
    /// `TAG_INVALID`: the tag does not match the tag grammar.
    TagInvalid,
    /// `UNAUTHORIZED`: authentication required.
    Unauthorized,
    /// `DENIED`: requested access to the resource is denied.
    Denied,
    /// `UNSUPPORTED`: the operation is unsupported.
    Unsupported,
    /// `TOOMANYREQUESTS`: too many requests.
    TooManyRequests,
    /// `PAGINATION_NUMBER_INVALID`: registry:2's code for an `n` that is not a number.
    PaginationNumberInvalid,
    /// `UNAVAILABLE`: registry:2's code for "service unavailable" (503), for a backend that
    /// cannot answer now, such as an authenticator whose password file cannot be read.
    Unavailable,
}

impl ErrorCode {
    /// The code as it appears in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::TagInvalid => "TAG_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }
}

/// An error response: status, code, message and optional detail, plus headers some errors need
/// (`Content-Range` on a 416, `Range` on an out-of-order chunk).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Option<ErrorCode>,
    message: String,
    detail: Option<serde_json::Value>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with the spec's `code`, answered with `status`.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: Some(code),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// A 404 for a path that is not part of the API.
    pub fn not_found() -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: None,
            message: "not found".to_owned(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Adds the spec's `detail` member.
    pub fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    /// Adds a header to the response.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The spec's code, when the error has one.
    pub fn code(&self) -> Option<ErrorCode> {
        self.code
    }

    /// An internal failure: logged with its cause, answered as a bare 500 that leaks no detail.
    pub fn internal(error: &dyn std::error::Error) -> ApiError {
        tracing::error!(error = %error, "internal error");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: None,
            message: "internal server error".to_owned(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// A backend that cannot answer now (authentication, say): logged with its reason, answered
    /// as 503 `UNAVAILABLE` with a message that names no file or host, so the client retries.
    pub fn unavailable(what: &str, reason: &str) -> ApiError {
        tracing::error!(reason, "{what} is unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!("{what} is unavailable; try again later"),
        )
    }

    /// The HTTP response. A `HEAD` request gets the same status and headers without a body.
    pub fn into_response(self, head: bool) -> Response<ResponseBody> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            errors: [Entry<'a>; 1],
        }
        #[derive(Serialize)]
        struct Entry<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: Option<&'a serde_json::Value>,
        }
        let code = self.code.map_or("UNKNOWN", ErrorCode::as_str);
        let json = serde_json::to_vec(&Envelope {
            errors: [Entry {
                code,
                message: &self.message,
                detail: self.detail.as_ref(),
            }],
        })
        .unwrap_or_default();
        let no_body = head || self.status == StatusCode::RANGE_NOT_SATISFIABLE;
        let mut response = if no_body {
            body::empty_response(self.status)
        } else {
            body::json_response(self.status, json)
        };
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<ContentError> for ApiError {
    fn from(error: ContentError) -> ApiError {
        use StatusCode as S;
        let message = error.to_string();
        match error {
            ContentError::BlobUnknown { digest } => {
                ApiError::new(S::NOT_FOUND, ErrorCode::BlobUnknown, message)
                    .with_detail(serde_json::json!({ "digest": digest.as_str() }))
            }
            ContentError::UploadUnknown { .. } | ContentError::UploadLost { .. } => {
                ApiError::new(S::NOT_FOUND, ErrorCode::BlobUploadUnknown, message)
            }
            ContentError::UploadInUse { retry_after, .. } => {
                ApiError::new(S::CONFLICT, ErrorCode::BlobUploadInvalid, message)
                    .with_header(header::RETRY_AFTER, retry_after_seconds(retry_after))
            }
            ContentError::RepositoryBusy { retry_after, .. } => {
                ApiError::new(S::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests, message)
                    .with_header(header::RETRY_AFTER, retry_after_seconds(retry_after))
            }
            ContentError::UploadOutOfOrder { size, .. } => ApiError::new(
                S::RANGE_NOT_SATISFIABLE,
                ErrorCode::BlobUploadInvalid,
                message,
            )
            .with_header(header::RANGE, crate::range::upload_range_header(size)),
            ContentError::DigestMismatch { .. } => {
                ApiError::new(S::BAD_REQUEST, ErrorCode::DigestInvalid, message)
            }
            ContentError::ManifestInvalid(_) => {
                ApiError::new(S::BAD_REQUEST, ErrorCode::ManifestInvalid, message)
            }
            ContentError::ManifestTooLarge { .. } => {
                ApiError::new(S::PAYLOAD_TOO_LARGE, ErrorCode::SizeInvalid, message)
            }
            ContentError::ManifestBlobUnknown { digest } => {
                ApiError::new(S::BAD_REQUEST, ErrorCode::ManifestBlobUnknown, message)
                    .with_detail(serde_json::json!({ "digest": digest.as_str() }))
            }
            ContentError::ManifestUnknown { .. } => {
                ApiError::new(S::NOT_FOUND, ErrorCode::ManifestUnknown, message)
            }
            ContentError::NameUnknown { .. } => {
                ApiError::new(S::NOT_FOUND, ErrorCode::NameUnknown, message)
            }
            ContentError::DeleteDisabled => ApiError::new(
                S::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                "deletes are disabled on this registry (storage.delete.enabled is false)",
            ),
            ContentError::ReadOnly => ApiError::new(
                S::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                "the registry is in read-only mode: pulls work, pushes and deletes do not",
            ),
            ContentError::ReadThrough { .. } => {
                ApiError::new(S::METHOD_NOT_ALLOWED, ErrorCode::Unsupported, message)
            }
            ContentError::UpstreamBusy { retry_after, .. } => {
                let error =
                    ApiError::new(S::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests, message);
                match retry_after {
                    Some(retry_after) => {
                        error.with_header(header::RETRY_AFTER, retry_after_seconds(retry_after))
                    }
                    None => error,
                }
            }
            ContentError::UpstreamFailed { .. } => {
                ApiError::new(S::BAD_GATEWAY, ErrorCode::Unavailable, message)
            }
            ContentError::Body(error) => match error.downcast_ref::<BodyCut>() {
                Some(BodyCut::Idle(idle)) => ApiError::new(
                    S::REQUEST_TIMEOUT,
                    ErrorCode::BlobUploadInvalid,
                    format!(
                        "the client sent no data for {} s; what arrived is kept: resume from \
                         the upload's Range",
                        idle.as_secs()
                    ),
                ),
                Some(BodyCut::Stopping) => ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    ErrorCode::BlobUploadInvalid,
                    "the registry is stopping; what arrived is kept: resume from the upload's \
                     Range",
                ),
                None => ApiError::new(
                    S::BAD_REQUEST,
                    ErrorCode::BlobUploadInvalid,
                    "the request body ended before it was complete",
                ),
            },
            ContentError::Storage(error) if error.is_storage_full() => storage_full(&error),
            other => ApiError::internal(&other),
        }
    }
}

/// 507 for a store out of space, with a message a client can show; logged at error level once a
/// minute at most, so that a full disk under many clients does not also flood the log.
fn storage_full(error: &dyn std::error::Error) -> ApiError {
    static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let last = LAST_LOGGED.load(Ordering::Relaxed);
    if now >= last.saturating_add(60)
        && LAST_LOGGED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::error!(%error, "storage is full: writes fail until space is freed (logged once a minute)");
    } else {
        tracing::debug!(%error, "storage is full");
    }
    ApiError {
        status: StatusCode::INSUFFICIENT_STORAGE,
        code: None,
        message: "the registry's storage is full; nothing was stored by this request beyond what \
                  an upload in progress keeps: retry once space is freed"
            .to_owned(),
        detail: None,
        headers: Vec::new(),
    }
}

/// `Retry-After` in whole seconds, rounded up: a client that waits that long finds the holder's
/// term over.
fn retry_after_seconds(wait: std::time::Duration) -> HeaderValue {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(seconds.max(1))
}

impl From<NameError> for ApiError {
    fn from(error: NameError) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NameInvalid,
            error.to_string(),
        )
    }
}

impl From<TagError> for ApiError {
    fn from(error: TagError) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::TagInvalid,
            error.to_string(),
        )
    }
}

impl From<DigestError> for ApiError {
    fn from(error: DigestError) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::DigestInvalid,
            error.to_string(),
        )
    }
}

impl From<ReferenceError> for ApiError {
    fn from(error: ReferenceError) -> ApiError {
        match error {
            ReferenceError::Tag(error) => error.into(),
            ReferenceError::Digest(error) => error.into(),
        }
    }
}
