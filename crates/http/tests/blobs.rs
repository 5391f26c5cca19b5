//! The API version check and blob downloads: whole, ranged and deleted.

mod common;

use common::{Registry, content, deletes_enabled, sha256};
use http::{HeaderName, HeaderValue, StatusCode};
use registry_http::HttpOptions;

#[tokio::test]
async fn base_endpoint_answers_200_with_api_version() {
    let registry = Registry::in_memory().await;
    let reply = registry.get("/v2/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_eq!(reply.json(), serde_json::json!({}));

    let reply = registry.head("/v2/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("docker-distribution-api-version"),
        "registry/2.0"
    );
}

#[tokio::test]
async fn error_responses_carry_api_version() {
    let registry = Registry::in_memory().await;
    let digest = sha256(b"absent");
    for reply in [
        registry.get(&format!("/v2/repo/blobs/{digest}")).await,
        registry.get("/v2/repo/manifests/latest").await,
        registry.get("/v2/Bad/tags/list").await,
        registry.get("/not-the-api").await,
        registry.delete("/v2/").await,
    ] {
        assert!(reply.status.is_client_error(), "{reply:?}");
        assert_eq!(
            reply.header("docker-distribution-api-version"),
            "registry/2.0"
        );
    }
}

#[tokio::test]
async fn blob_get_returns_content_with_length_digest_and_etag() {
    let registry = Registry::filesystem().await;
    let data = content(1, 70_000);
    let digest = registry.push_blob("library/app", &data).await;

    let reply = registry
        .get(&format!("/v2/library/app/blobs/{digest}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.as_ref(), data.as_slice());
    assert_eq!(reply.header("content-length"), data.len().to_string());
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert_eq!(reply.header("etag"), format!("\"{digest}\""));
    assert_eq!(sha256(&reply.body), digest);
}

#[tokio::test]
async fn blob_head_returns_headers_without_body() {
    let registry = Registry::filesystem().await;
    let data = content(2, 5_000);
    let digest = registry.push_blob("repo", &data).await;

    let reply = registry.head(&format!("/v2/repo/blobs/{digest}")).await;
    reply.assert_empty(StatusCode::OK);
    assert_eq!(reply.header("content-length"), "5000");
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert_eq!(reply.header("etag"), format!("\"{digest}\""));
}

#[tokio::test]
async fn unknown_blob_is_404_blob_unknown() {
    let registry = Registry::filesystem().await;
    registry.push_blob("repo", b"something").await;
    let digest = sha256(b"something else");
    registry
        .get(&format!("/v2/repo/blobs/{digest}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    registry
        .head(&format!("/v2/repo/blobs/{digest}"))
        .await
        .assert_empty(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn blob_of_another_repository_is_not_served() {
    let registry = Registry::filesystem().await;
    let digest = registry.push_blob("owner", b"private layer").await;
    registry
        .get(&format!("/v2/stranger/blobs/{digest}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn range_request_is_206_with_content_range() {
    let registry = Registry::filesystem().await;
    let data = content(3, 1000);
    let digest = registry.push_blob("repo", &data).await;

    let reply = registry
        .get_with(
            &format!("/v2/repo/blobs/{digest}"),
            &[("range", "bytes=100-199")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{reply:?}");
    assert_eq!(reply.header("content-range"), "bytes 100-199/1000");
    assert_eq!(reply.header("content-length"), "100");
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert_eq!(reply.body.as_ref(), &data[100..200]);

    let reply = registry
        .get_with(
            &format!("/v2/repo/blobs/{digest}"),
            &[("range", "bytes=900-")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.header("content-range"), "bytes 900-999/1000");
    assert_eq!(reply.body.as_ref(), &data[900..]);
}

#[tokio::test]
async fn suffix_range_returns_the_last_bytes() {
    let registry = Registry::filesystem().await;
    let data = content(4, 1000);
    let digest = registry.push_blob("repo", &data).await;

    let reply = registry
        .get_with(
            &format!("/v2/repo/blobs/{digest}"),
            &[("range", "bytes=-10")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.header("content-range"), "bytes 990-999/1000");
    assert_eq!(reply.header("content-length"), "10");
    assert_eq!(reply.body.as_ref(), &data[990..]);

    // A suffix longer than the blob is the whole blob.
    let reply = registry
        .get_with(
            &format!("/v2/repo/blobs/{digest}"),
            &[("range", "bytes=-5000")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.header("content-range"), "bytes 0-999/1000");
    assert_eq!(reply.body.as_ref(), data.as_slice());
}

#[tokio::test]
async fn unsatisfiable_range_is_416_with_size_and_no_body() {
    let registry = Registry::filesystem().await;
    let data = content(5, 1000);
    let digest = registry.push_blob("repo", &data).await;

    assert_unsatisfiable(
        &registry,
        &digest,
        &["bytes=1000-", "bytes=5000-6000", "bytes=-0"],
    )
    .await;
}

/// Asserts each of `ranges` of the 1,000-byte blob `digest` is 416 with its size and no body.
async fn assert_unsatisfiable(registry: &Registry, digest: &str, ranges: &[&str]) {
    for range in ranges {
        let reply = registry
            .get_with(&format!("/v2/repo/blobs/{digest}"), &[("range", range)])
            .await;
        reply.assert_empty(StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(reply.header("content-range"), "bytes */1000", "{range}");
    }
}

/// RFC 9110: "A byte-range-spec is invalid if the last-pos value is present and less than the
/// first-pos." Serving the whole blob would answer a question the client did not ask.
#[tokio::test]
async fn backwards_range_is_416() {
    let registry = Registry::filesystem().await;
    let data = content(5, 1000);
    let digest = registry.push_blob("repo", &data).await;

    assert_unsatisfiable(
        &registry,
        &digest,
        &["bytes=500-0", "bytes=1-0", "bytes=999-998"],
    )
    .await;
}

/// Bounds at and past `u64::MAX` are clipped to the blob, refused, or (when they are not a `u64`
/// at all) ignored, and nothing overflows on the way.
#[tokio::test]
async fn ranges_with_huge_bounds_do_not_overflow() {
    let registry = Registry::filesystem().await;
    let data = content(6, 1000);
    let digest = registry.push_blob("repo", &data).await;
    let max = u64::MAX;
    let cases = [
        (
            format!("bytes=0-{max}"),
            StatusCode::PARTIAL_CONTENT,
            "bytes 0-999/1000",
        ),
        (
            format!("bytes=999-{max}"),
            StatusCode::PARTIAL_CONTENT,
            "bytes 999-999/1000",
        ),
        (
            format!("bytes=-{max}"),
            StatusCode::PARTIAL_CONTENT,
            "bytes 0-999/1000",
        ),
        (
            format!("bytes={max}-"),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "bytes */1000",
        ),
        (
            format!("bytes={max}-{max}"),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "bytes */1000",
        ),
        (
            format!("bytes={}-{max}", max - 1),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "bytes */1000",
        ),
        (
            format!("bytes={max}-0"),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "bytes */1000",
        ),
        (
            "bytes=0-18446744073709551616".to_owned(),
            StatusCode::OK,
            "",
        ),
        ("bytes=-18446744073709551616".to_owned(), StatusCode::OK, ""),
        ("bytes=18446744073709551616-".to_owned(), StatusCode::OK, ""),
    ];
    for (range, status, content_range) in cases {
        let reply = registry
            .get_with(&format!("/v2/repo/blobs/{digest}"), &[("range", &range)])
            .await;
        assert_eq!(reply.status, status, "{range}: {reply:?}");
        match status {
            StatusCode::PARTIAL_CONTENT => {
                assert_eq!(reply.header("content-range"), content_range, "{range}");
                let start: usize = content_range["bytes ".len()..]
                    .split('-')
                    .next()
                    .and_then(|start| start.parse().ok())
                    .expect("a start");
                assert_eq!(reply.body.as_ref(), &data[start..], "{range}");
            }
            StatusCode::OK => assert_eq!(reply.body.as_ref(), data.as_slice(), "{range}"),
            _ => assert_eq!(reply.header("content-range"), content_range, "{range}"),
        }
    }
}

#[tokio::test]
async fn if_none_match_with_the_etag_is_304() {
    let registry = Registry::filesystem().await;
    let digest = registry.push_blob("repo", b"cached").await;
    let reply = registry
        .get_with(
            &format!("/v2/repo/blobs/{digest}"),
            &[("if-none-match", &format!("\"{digest}\""))],
        )
        .await;
    reply.assert_empty(StatusCode::NOT_MODIFIED);
    assert_eq!(reply.header("docker-content-digest"), digest);
}

#[tokio::test]
async fn empty_blob_is_uploaded_and_downloaded() {
    let registry = Registry::filesystem().await;
    let digest = registry.push_blob("repo", b"").await;
    assert_eq!(
        digest,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );

    let reply = registry.get(&format!("/v2/repo/blobs/{digest}")).await;
    reply.assert_empty(StatusCode::OK);
    assert_eq!(reply.header("content-length"), "0");
    assert_eq!(reply.header("docker-content-digest"), digest);

    let reply = registry.head(&format!("/v2/repo/blobs/{digest}")).await;
    reply.assert_empty(StatusCode::OK);
    assert_eq!(reply.header("content-length"), "0");

    let reply = registry
        .get_with(
            &format!("/v2/repo/blobs/{digest}"),
            &[("range", "bytes=0-")],
        )
        .await;
    reply.assert_empty(StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(reply.header("content-range"), "bytes */0");
}

#[tokio::test]
async fn blob_delete_is_202_when_deletes_are_enabled() {
    let registry = Registry::filesystem_with(deletes_enabled()).await;
    let digest = registry.push_blob("repo", b"doomed").await;

    let reply = registry.delete(&format!("/v2/repo/blobs/{digest}")).await;
    reply.assert_empty(StatusCode::ACCEPTED);
    assert_eq!(reply.header("docker-content-digest"), digest);

    registry
        .get(&format!("/v2/repo/blobs/{digest}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    registry
        .delete(&format!("/v2/repo/blobs/{digest}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn blob_delete_is_405_unsupported_when_deletes_are_disabled() {
    let registry = Registry::filesystem().await;
    let digest = registry.push_blob("repo", b"kept").await;

    registry
        .delete(&format!("/v2/repo/blobs/{digest}"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    let reply = registry.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.as_ref(), b"kept");
}

#[tokio::test]
async fn unsupported_method_is_405_with_allow() {
    let registry = Registry::in_memory().await;
    let reply = registry
        .send(
            http::Method::POST,
            "/v2/repo/tags/list",
            &[],
            bytes::Bytes::new(),
        )
        .await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    assert_eq!(reply.header("allow"), "GET, HEAD");
}

#[tokio::test]
async fn prefix_and_configured_headers_apply_to_routes_and_urls() {
    let registry = Registry::in_memory_with_http(HttpOptions {
        prefix: "/registry/".to_owned(),
        headers: vec![(
            HeaderName::from_static("x-served-by"),
            HeaderValue::from_static("registryd-test"),
        )],
        ..HttpOptions::default()
    })
    .await;
    let reply = registry.get("/registry/v2/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-served-by"), "registryd-test");

    let reply = registry
        .send(
            http::Method::POST,
            "/registry/v2/repo/blobs/uploads/",
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let location = reply.header("location").to_owned();
    assert!(
        location.starts_with(&registry.url("/registry/v2/repo/blobs/uploads/")),
        "{location}"
    );
    let digest = sha256(b"prefixed");
    let reply = registry
        .complete_upload(&location, &digest, b"prefixed")
        .await;
    assert_eq!(
        reply.header("location"),
        registry.url(&format!("/registry/v2/repo/blobs/{digest}"))
    );

    // Without the prefix nothing is routed, and errors carry the configured header too.
    let reply = registry.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header("x-served-by"), "registryd-test");
    let reply = registry
        .get(&format!("/registry/v2/repo/blobs/{digest}"))
        .await;
    assert_eq!(reply.body.as_ref(), b"prefixed");
}
