//! `/v2/<name>/blobs/<digest>`: download (whole or a range) and delete.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use registry_events::Action;
use registry_model::{Digest, RepositoryName};

use super::{Context, not_modified, set, set_digest};
use crate::ApiError;
use crate::body::{self, ResponseBody};
use crate::range::{RangeRequest, parse_range};

/// `GET`/`HEAD`: the blob, or the bytes a `Range` header asks for (206), or 416 with
/// `Content-Range: bytes */SIZE` when no byte of the range exists or the range is backwards.
pub(super) async fn get(
    context: Context<'_>,
    name: RepositoryName,
    digest: Digest,
    request_headers: &HeaderMap,
    head: bool,
) -> Result<Response<ResponseBody>, ApiError> {
    let blob = context.source.blob(&name, &digest).await?;
    let size = blob.size();
    if !head && let Some(notice) = context.notice {
        notice.blob(Action::Pull, &name, &digest, size, None).await;
    }
    if !head && let Some(url) = blob.redirect_url().await? {
        let mut response = body::empty_response(StatusCode::TEMPORARY_REDIRECT);
        set(response.headers_mut(), header::LOCATION, &url);
        set_digest(response.headers_mut(), &digest);
        return Ok(response);
    }
    if not_modified(request_headers, &digest) {
        let mut response = body::empty_response(StatusCode::NOT_MODIFIED);
        set_digest(response.headers_mut(), &digest);
        return Ok(response);
    }
    let range_header = request_headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok());
    let partial = match parse_range(range_header, size) {
        RangeRequest::Whole => None,
        RangeRequest::Partial(range) => Some(range),
        RangeRequest::Unsatisfiable => {
            let mut response = body::empty_response(StatusCode::RANGE_NOT_SATISFIABLE);
            set(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            set_digest(response.headers_mut(), &digest);
            return Ok(response);
        }
    };
    let (status, offset, length) = match partial {
        None => (StatusCode::OK, 0, size),
        Some(range) => (StatusCode::PARTIAL_CONTENT, range.start(), range.len()),
    };
    let mut response = if head || length == 0 {
        body::empty_response(status)
    } else {
        let stream = blob.open(offset, Some(length)).await?;
        body::streamed_response(status, stream)
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set_digest(headers, &digest);
    if let Some(range) = partial {
        set(
            headers,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", range.start(), range.end()),
        );
    }
    Ok(response)
}

/// `DELETE`: removes the blob from the repository (202).
pub(super) async fn delete(
    context: Context<'_>,
    name: RepositoryName,
    digest: Digest,
) -> Result<Response<ResponseBody>, ApiError> {
    context
        .content
        .repository(name.clone())
        .delete_blob(&digest)
        .await?;
    if let Some(notice) = context.notice {
        notice.deleted(&name, &digest).await;
    }
    let mut response = body::empty_response(StatusCode::ACCEPTED);
    set_digest(response.headers_mut(), &digest);
    Ok(response)
}
