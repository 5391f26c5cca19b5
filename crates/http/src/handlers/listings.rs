//! `/v2/_catalog` and `/v2/<name>/tags/list`: sorted listings with `n`/`last` pagination and a
//! `Link` header to the next page.

use http::{Response, StatusCode, header};
use registry_content::{Listing, Page};
use registry_model::RepositoryName;
use serde::Serialize;

use super::{Context, set};
use crate::body::{self, ResponseBody};
use crate::error::{ApiError, ErrorCode};
use crate::query;

/// `GET /v2/_catalog`: `{"repositories": [...]}`, the repositories the grant lists
/// ([`registry_auth::Grant::lists_in_catalog`]).
pub(super) async fn catalog(
    context: Context<'_>,
    params: &[(String, String)],
    head: bool,
) -> Result<Response<ResponseBody>, ApiError> {
    #[derive(Serialize)]
    struct Catalog<'a> {
        repositories: Vec<&'a str>,
    }
    let mut page = page(params)?;
    page.n = Some(page.n.map_or(context.catalog_max_entries, |n| {
        n.min(context.catalog_max_entries)
    }));
    let grant = context.grant;
    let listing = context
        .content
        .catalog_where(&page, |name| grant.lists_in_catalog(name))
        .await?;
    let json = to_json(&Catalog {
        repositories: listing.items().map(RepositoryName::as_str).collect(),
    });
    Ok(listing_response(
        context,
        "/v2/_catalog",
        &page,
        &listing,
        json,
        head,
    ))
}

/// `GET /v2/<name>/tags/list`: `{"name": ..., "tags": [...]}`.
pub(super) async fn tags(
    context: Context<'_>,
    name: RepositoryName,
    params: &[(String, String)],
    head: bool,
) -> Result<Response<ResponseBody>, ApiError> {
    #[derive(Serialize)]
    struct Tags<'a> {
        name: &'a str,
        tags: Vec<&'a str>,
    }
    let mut page = page(params)?;
    page.n = page.n.map(|n| n.min(context.max_tags));
    let listing = context.source.tags(&name, &page).await?;
    let json = to_json(&Tags {
        name: name.as_str(),
        tags: listing.items().map(|tag| tag.as_str()).collect(),
    });
    let path = format!("/v2/{name}/tags/list");
    Ok(listing_response(
        context, &path, &page, &listing, json, head,
    ))
}

/// The `n` and `last` parameters of a listing request.
pub(super) fn page(params: &[(String, String)]) -> Result<Page, ApiError> {
    let n = match query::first(params, "n") {
        None | Some("") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::PaginationNumberInvalid,
                format!("n must be a non-negative integer, not {n:?}"),
            )
        })?),
    };
    let last = query::first(params, "last")
        .filter(|last| !last.is_empty())
        .map(str::to_owned);
    Ok(Page { n, last })
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn listing_response<T: AsRef<str>>(
    context: Context<'_>,
    path: &str,
    page: &Page,
    listing: &Listing<T>,
    json: Vec<u8>,
    head: bool,
) -> Response<ResponseBody> {
    let length = json.len();
    let mut response = body::json_response(StatusCode::OK, json);
    if head {
        *response.body_mut() = body::empty_response(StatusCode::OK).into_body();
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length.into());
    }
    if listing.more
        && let (Some(n), Some(last)) = (page.n, listing.last())
    {
        set_next_link(&mut response, context, path, n, last.as_ref(), &[]);
    }
    response
}

/// Sets `Link` to the next page of the listing at `path`: `n` entries after `last`, with the
/// request's other parameters `kept` (name, value) so that the next page is cut the same way.
pub(super) fn set_next_link(
    response: &mut Response<ResponseBody>,
    context: Context<'_>,
    path: &str,
    n: usize,
    last: &str,
    kept: &[(&str, &str)],
) {
    let mut url = format!("{}?n={n}&last={}", context.path(path), query::encode(last));
    for (name, value) in kept {
        url.push_str(&format!("&{name}={}", query::encode(value)));
    }
    set(
        response.headers_mut(),
        header::LINK,
        &format!("<{url}>; rel=\"next\""),
    );
}
