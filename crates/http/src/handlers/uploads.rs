//! `/v2/<name>/blobs/uploads/[<id>]`: starting, feeding, finishing, inspecting and cancelling
//! blob uploads, plus monolithic uploads and cross-repository mounts.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, header};
use http_body::Body;
use registry_auth::Action;
use registry_content::{Blob, UploadId, UploadStatus};
use registry_events::Action as EventAction;
use registry_model::{Digest, DigestAlgorithm, RepositoryName};

use super::{Context, DOCKER_UPLOAD_UUID, set, set_digest};
use crate::body::{self, BoxError, ResponseBody, request_stream};
use crate::error::{ApiError, ErrorCode};
use crate::query;
use crate::range::{parse_content_range, upload_range_header};

/// `POST`: with `?digest=`, the whole blob in one request (201); with `?mount=&from=`, a
/// cross-repository mount (201); with `?mount=` alone, a mount from any repository holding the
/// blob that the caller may pull (201); either way a new upload when the blob cannot be mounted;
/// otherwise a new upload session (202), hashed with the `digest-algorithm` parameter's
/// algorithm when given.
pub(super) async fn start<B>(
    context: Context<'_>,
    name: RepositoryName,
    params: &[(String, String)],
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let repository = context.content.repository(name);
    if let Some(digest) = query::first(params, "digest") {
        let digest: Digest = digest.parse()?;
        let blob = repository.put_blob(&digest, request_stream(body)).await?;
        return Ok(blob_created(context, repository.name(), &blob, EventAction::Push, None).await);
    }
    if let Some(mount) = query::first(params, "mount") {
        let digest: Digest = mount.parse()?;
        let from = query::first(params, "from")
            .filter(|from| !from.is_empty())
            .map(str::parse::<RepositoryName>);
        let mounted = match &from {
            Some(Ok(from)) => repository.mount_blob(from, &digest).await?,
            // A `from` that is not a valid name cannot hold the blob: upload it instead.
            Some(Err(_)) => None,
            // Any repository holding the blob will do, as long as the caller may pull it: a
            // digest alone must not reveal content the caller could not read.
            None => {
                let grant = context.grant;
                repository
                    .mount_blob_from_any(&digest, |name| grant.allows(name, Action::Pull))
                    .await?
            }
        };
        if let Some(blob) = mounted {
            let from = from.and_then(Result::ok);
            return Ok(blob_created(
                context,
                repository.name(),
                &blob,
                EventAction::Mount,
                from.as_ref(),
            )
            .await);
        }
    }
    let algorithm = match query::first(params, "digest-algorithm") {
        None => DigestAlgorithm::Sha256,
        Some(algorithm) => algorithm.parse::<DigestAlgorithm>()?,
    };
    let status = repository.start_upload(algorithm).await?;
    Ok(upload_response(
        context,
        repository.name(),
        &status,
        StatusCode::ACCEPTED,
    ))
}

/// `GET`: where the upload stands (204 with `Range`).
pub(super) async fn status(
    context: Context<'_>,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response<ResponseBody>, ApiError> {
    let repository = context.content.repository(name);
    let status = repository.upload_status(&id).await?;
    Ok(upload_response(
        context,
        repository.name(),
        &status,
        StatusCode::NO_CONTENT,
    ))
}

/// `PATCH`: appends a chunk (with `Content-Range`, which must start where the upload ends, else
/// 416) or streams the rest of the blob (without); 202 with the new `Range`.
pub(super) async fn patch<B>(
    context: Context<'_>,
    name: RepositoryName,
    id: UploadId,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let start = chunk_start(headers)?;
    let repository = context.content.repository(name);
    let status = repository
        .append_upload(&id, start, request_stream(body))
        .await?;
    Ok(upload_response(
        context,
        repository.name(),
        &status,
        StatusCode::ACCEPTED,
    ))
}

/// `PUT ?digest=`: appends the final chunk, if any, verifies the digest and makes the blob
/// visible (201). A wrong digest is 400 `DIGEST_INVALID` and nothing is stored.
pub(super) async fn complete<B>(
    context: Context<'_>,
    name: RepositoryName,
    id: UploadId,
    params: &[(String, String)],
    headers: &HeaderMap,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let digest: Digest = query::first(params, "digest")
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::DigestInvalid,
                "completing an upload requires the digest query parameter",
            )
        })?
        .parse()?;
    let start = chunk_start(headers)?;
    let repository = context.content.repository(name);
    let blob = repository
        .complete_upload(&id, &digest, start, request_stream(body))
        .await?;
    Ok(blob_created(context, repository.name(), &blob, EventAction::Push, None).await)
}

/// `DELETE`: cancels the upload (204).
pub(super) async fn cancel(
    context: Context<'_>,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response<ResponseBody>, ApiError> {
    context.content.repository(name).cancel_upload(&id).await?;
    Ok(body::empty_response(StatusCode::NO_CONTENT))
}

/// Where a chunk says it starts, from its `Content-Range`. When `Content-Length` is given too,
/// the two must agree.
fn chunk_start(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let range = value
        .to_str()
        .ok()
        .and_then(parse_content_range)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BlobUploadInvalid,
                "Content-Range must be <start>-<end>",
            )
        })?;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(length) = length
        && length != range.len()
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::SizeInvalid,
            format!(
                "Content-Range {}-{} covers {} bytes but Content-Length is {length}",
                range.start(),
                range.end(),
                range.len()
            ),
        ));
    }
    Ok(Some(range.start()))
}

/// The response naming an upload session: `Location`, `Range`, `Docker-Upload-UUID`.
fn upload_response(
    context: Context<'_>,
    name: &RepositoryName,
    status: &UploadStatus,
    code: StatusCode,
) -> Response<ResponseBody> {
    let mut response = body::empty_response(code);
    let headers = response.headers_mut();
    let location = context.url(&format!("/v2/{name}/blobs/uploads/{}", status.id));
    set(headers, header::LOCATION, &location);
    headers.insert(header::RANGE, upload_range_header(status.size));
    set(headers, DOCKER_UPLOAD_UUID, status.id.as_str());
    response
}

/// 201 for a blob now in the repository (`Location` and `Docker-Content-Digest`), after its
/// event (a push, or a mount from `from`) is recorded.
async fn blob_created(
    context: Context<'_>,
    name: &RepositoryName,
    blob: &Blob,
    action: EventAction,
    from: Option<&RepositoryName>,
) -> Response<ResponseBody> {
    if let Some(notice) = context.notice {
        notice
            .blob(action, name, blob.digest(), blob.size(), from)
            .await;
    }
    let mut response = body::empty_response(StatusCode::CREATED);
    let headers = response.headers_mut();
    set(
        headers,
        header::LOCATION,
        &context.url(&format!("/v2/{name}/blobs/{}", blob.digest())),
    );
    set_digest(headers, blob.digest());
    response
}
