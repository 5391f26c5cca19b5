//! `/v2/<name>/manifests/<reference>`: pull, push and delete manifests and tags.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::Body;
use registry_events::Action;
use registry_model::{Reference, RepositoryName, Tag, parse_manifest};

use super::{Context, OCI_SUBJECT, OCI_TAG, not_modified, set, set_digest};
use crate::body::{self, BoxError, ResponseBody};
use crate::error::{ApiError, ErrorCode};
use crate::events::ManifestEvent;
use crate::{MAX_TAGS_PER_MANIFEST_PUSH, query};

/// `GET`/`HEAD`: the manifest byte for byte, typed with its media type, with
/// `Docker-Content-Digest` on both methods.
pub(super) async fn get(
    context: Context<'_>,
    name: RepositoryName,
    reference: Reference,
    request_headers: &HeaderMap,
    head: bool,
) -> Result<Response<ResponseBody>, ApiError> {
    let manifest = context.source.manifest(&name, &reference).await?;
    if let Some(notice) = context.notice.filter(|notice| notice.wants(Action::Pull)) {
        let parsed = if notice.include_references() {
            parse_manifest(&manifest.bytes, Some(&manifest.media_type)).ok()
        } else {
            None
        };
        let tag = match &reference {
            Reference::Tag(tag) => vec![tag],
            Reference::Digest(_) => Vec::new(),
        };
        let seen = ManifestEvent {
            repository: &name,
            digest: &manifest.digest,
            media_type: &manifest.media_type,
            size: manifest.bytes.len() as u64,
            parsed: parsed.as_ref(),
        };
        notice.manifest(Action::Pull, seen, &tag).await;
    }
    if not_modified(request_headers, &manifest.digest) {
        let mut response = body::empty_response(StatusCode::NOT_MODIFIED);
        set_digest(response.headers_mut(), &manifest.digest);
        return Ok(response);
    }
    let content_type = HeaderValue::try_from(manifest.media_type.as_str())
        .unwrap_or(HeaderValue::from_static("application/json"));
    let length = manifest.bytes.len();
    let mut response = if head {
        let mut response = body::empty_response(StatusCode::OK);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        response
    } else {
        body::full_response(StatusCode::OK, content_type, manifest.bytes)
    };
    set_digest(response.headers_mut(), &manifest.digest);
    Ok(response)
}

/// `PUT`: stores the manifest (201) with `Location`, `Docker-Content-Digest`, `OCI-Subject` when
/// it has a subject, and `OCI-Tag` listing the tags set when `?tag=` parameters were given;
/// more than [`MAX_TAGS_PER_MANIFEST_PUSH`] of them are 414 `TAG_INVALID`.
pub(super) async fn put<B>(
    context: Context<'_>,
    name: RepositoryName,
    reference: Reference,
    params: &[(String, String)],
    headers: &HeaderMap,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let tag_count = query::all(params, "tag").count();
    if tag_count > MAX_TAGS_PER_MANIFEST_PUSH {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::TagInvalid,
            format!(
                "a manifest push may name at most {MAX_TAGS_PER_MANIFEST_PUSH} tags, this one names {tag_count}; push the rest in further requests"
            ),
        ));
    }
    let extra_tags = query::all(params, "tag")
        .map(str::parse::<Tag>)
        .collect::<Result<Vec<Tag>, _>>()?;
    let limit = context.content.options().manifest_size_limit;
    let bytes = body::collect_limited(body, limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::ManifestInvalid,
                "the manifest body ended before it was complete",
            )
        })?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::SizeInvalid,
                format!("manifest exceeds the limit of {limit} bytes"),
            )
        })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let size = bytes.len() as u64;
    let repository = context.content.repository(name);
    let pushed = repository
        .put_manifest(&reference, content_type, bytes, &extra_tags)
        .await?;
    let mut response = body::empty_response(StatusCode::CREATED);
    let response_headers = response.headers_mut();
    set(
        response_headers,
        header::LOCATION,
        &context.url(&format!(
            "/v2/{}/manifests/{}",
            repository.name(),
            pushed.digest
        )),
    );
    set_digest(response_headers, &pushed.digest);
    if let Some(subject) = &pushed.manifest.subject {
        set(response_headers, OCI_SUBJECT, subject.digest.as_str());
    }
    if !extra_tags.is_empty() {
        // One field with the tags as a comma-separated list, as the spec's example allows (RFC
        // 9110 list semantics): a hundred `OCI-Tag` lines would exceed the header count that
        // hyper-based clients accept (100 by default).
        let tags: Vec<&str> = pushed.tags.iter().map(Tag::as_str).collect();
        set(response_headers, OCI_TAG, &tags.join(", "));
    }
    if let Some(notice) = context.notice {
        let tags: Vec<&Tag> = pushed.tags.iter().collect();
        let seen = ManifestEvent {
            repository: repository.name(),
            digest: &pushed.digest,
            media_type: pushed.manifest.media_type,
            size,
            parsed: Some(&pushed.manifest),
        };
        notice.manifest(Action::Push, seen, &tags).await;
    }
    Ok(response)
}

/// `DELETE`: deletes a tag, or a manifest by digest (202).
pub(super) async fn delete(
    context: Context<'_>,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response<ResponseBody>, ApiError> {
    context
        .content
        .repository(name.clone())
        .delete_manifest(&reference)
        .await?;
    if let Some(notice) = context.notice {
        match &reference {
            Reference::Tag(tag) => notice.tag_deleted(&name, tag).await,
            Reference::Digest(digest) => notice.deleted(&name, digest).await,
        }
    }
    Ok(body::empty_response(StatusCode::ACCEPTED))
}
