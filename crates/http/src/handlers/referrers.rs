//! `/v2/<name>/referrers/<digest>`: the manifests whose subject is the digest, as an image index,
//! in pages linked with `Link`.

use http::{HeaderValue, Response, StatusCode, header};
use registry_model::{Descriptor, Digest, RepositoryName, media_type};
use serde::Serialize;

use super::listings::{page, set_next_link};
use super::{Context, OCI_FILTERS_APPLIED};
use crate::body::{self, ResponseBody};
use crate::error::ApiError;
use crate::query;

/// `GET`: an OCI image index of the referrers' descriptors (empty when there are none, never a
/// 404), filtered by `?artifactType=` with `OCI-Filters-Applied: artifactType`. At most `n` of
/// them (at most, and by default, the configured page size), after `last`; when more may follow,
/// `Link` names the next page, with the same filter ("A `Link` header MUST be included in the
/// response when the descriptor list cannot be returned in a single manifest").
pub(super) async fn list(
    context: Context<'_>,
    name: RepositoryName,
    subject: Digest,
    params: &[(String, String)],
    head: bool,
) -> Result<Response<ResponseBody>, ApiError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Index<'a> {
        schema_version: u32,
        media_type: &'static str,
        manifests: &'a [Descriptor],
    }
    let artifact_type = query::first(params, "artifactType").filter(|value| !value.is_empty());
    let mut page = page(params)?;
    let n = page
        .n
        .map_or(context.max_referrers, |n| n.min(context.max_referrers));
    page.n = Some(n);
    let repository = context.content.repository(name);
    let found = repository.referrers(&subject, artifact_type, &page).await?;
    let json = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: media_type::OCI_IMAGE_INDEX,
        manifests: &found.descriptors,
    })
    .unwrap_or_default();
    let length = json.len();
    let mut response = body::full_response(
        StatusCode::OK,
        HeaderValue::from_static(media_type::OCI_IMAGE_INDEX),
        json.into(),
    );
    if head {
        *response.body_mut() = body::empty_response(StatusCode::OK).into_body();
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length.into());
    }
    if artifact_type.is_some() {
        response.headers_mut().insert(
            OCI_FILTERS_APPLIED,
            HeaderValue::from_static("artifactType"),
        );
    }
    if let Some(after) = &found.resume_after {
        let path = format!("/v2/{}/referrers/{subject}", repository.name());
        let kept: Vec<(&str, &str)> = artifact_type
            .map(|artifact_type| ("artifactType", artifact_type))
            .into_iter()
            .collect();
        set_next_link(&mut response, context, &path, n, after.as_str(), &kept);
    }
    Ok(response)
}
