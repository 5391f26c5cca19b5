//! Requests with invalid names, tags and digests, wrong digests, and attempts to reach outside the
//! storage root: each is refused with the right status and code, and stores nothing.

mod common;

use common::{OCI_INDEX, Registry, TAG_GRAMMAR, content, files_below, sha256, sha512};
use http::{Method, StatusCode};
use registry_content::ContentOptions;

/// An index with no children: valid and self-contained, so only the request's path can make a
/// push of it fail.
const EMPTY_INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

#[tokio::test]
async fn upper_case_name_is_name_invalid() {
    let registry = Registry::in_memory().await;
    let message = registry
        .get("/v2/Library/app/tags/list")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "NAME_INVALID");
    assert!(message.contains("lowercase"), "{message}");
    registry
        .put_manifest("Upper", "latest", OCI_INDEX, EMPTY_INDEX)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "NAME_INVALID");
}

#[tokio::test]
async fn name_with_dot_dot_segment_is_name_invalid() {
    let registry = Registry::in_memory().await;
    for target in [
        "/v2/a/../b/tags/list",
        "/v2/../a/manifests/latest",
        "/v2/a/../blobs/uploads/",
    ] {
        registry
            .raw_request("GET", target)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "NAME_INVALID");
    }
}

#[tokio::test]
async fn name_with_encoded_dot_dot_is_name_invalid() {
    let registry = Registry::in_memory().await;
    for target in [
        "/v2/%2e%2e/tags/list",
        "/v2/a/%2E%2E/b/tags/list",
        "/v2/a%2F..%2Fb/manifests/latest",
    ] {
        registry
            .raw_request("GET", target)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "NAME_INVALID");
    }
}

#[tokio::test]
async fn name_with_empty_segment_is_name_invalid() {
    let registry = Registry::in_memory().await;
    for target in [
        "/v2/a//b/tags/list",
        "/v2/a/b//manifests/latest",
        "/v2//a/tags/list",
    ] {
        registry
            .raw_request("GET", target)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "NAME_INVALID");
    }
}

#[tokio::test]
async fn name_of_256_bytes_is_name_invalid() {
    let registry = Registry::in_memory().await;
    let name = format!("{}/{}", "a".repeat(127), "b".repeat(128));
    assert_eq!(name.len(), 256);
    registry
        .get(&format!("/v2/{name}/tags/list"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "NAME_INVALID");

    // One byte less is a valid name, just unknown.
    let name = &name[..255];
    registry
        .get(&format!("/v2/{name}/tags/list"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
}

#[tokio::test]
async fn invalid_tag_is_tag_invalid_naming_the_grammar() {
    let registry = Registry::in_memory().await;
    let too_long = "t".repeat(129);
    for tag in [
        "-leading-dash",
        ".hidden",
        too_long.as_str(),
        "a%2Fb",
        "tag%20space",
    ] {
        let message = registry
            .get(&format!("/v2/repo/manifests/{tag}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "TAG_INVALID");
        assert!(message.contains(TAG_GRAMMAR), "{tag}: {message}");
    }
    let message = registry
        .put_manifest("repo", "-bad", OCI_INDEX, EMPTY_INDEX)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "TAG_INVALID");
    assert!(message.contains(TAG_GRAMMAR), "{message}");

    // 128 characters is the longest valid tag.
    let longest = "t".repeat(128);
    registry
        .put_manifest("repo", &longest, OCI_INDEX, EMPTY_INDEX)
        .await
        .assert_empty(StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_digest_is_digest_invalid() {
    let registry = Registry::in_memory().await;
    let upper = format!("sha256:{}", "A".repeat(64));
    let short = format!("sha256:{}", "a".repeat(63));
    let sha512_short = format!("sha512:{}", "a".repeat(64));
    for path in [
        "/v2/repo/blobs/sha256:abc".to_owned(),
        "/v2/repo/blobs/notadigest".to_owned(),
        format!("/v2/repo/blobs/{upper}"),
        format!("/v2/repo/blobs/{short}"),
        format!("/v2/repo/blobs/{sha512_short}"),
        format!("/v2/repo/blobs/md5:{}", "a".repeat(32)),
        format!("/v2/repo/manifests/{short}"),
        format!("/v2/repo/referrers/{short}"),
    ] {
        registry
            .get(&path)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    }
}

#[tokio::test]
async fn malformed_digest_in_upload_parameters_is_digest_invalid() {
    let registry = Registry::filesystem().await;
    registry
        .send(
            Method::POST,
            "/v2/repo/blobs/uploads/?digest=sha256:nothex",
            &[],
            b"data".to_vec(),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    registry
        .send(
            Method::POST,
            "/v2/repo/blobs/uploads/?mount=sha256:short&from=other",
            &[],
            Vec::new(),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    registry
        .send(
            Method::POST,
            "/v2/repo/blobs/uploads/?digest-algorithm=md5",
            &[],
            Vec::new(),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");

    let location = registry.start_upload("repo").await;
    registry
        .complete_upload(&location, "sha256:nothex", b"data")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    // Completing without any digest is refused too.
    registry
        .send(Method::PUT, &location, &[], b"data".to_vec())
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn wrong_digest_on_upload_completion_is_digest_invalid_and_stores_nothing() {
    let registry = Registry::filesystem().await;
    let data = content(1, 5_000);
    let claimed = sha256(b"something else entirely");
    let location = registry.start_upload("repo").await;
    registry.patch_chunk(&location, 0, &data).await;

    registry
        .complete_upload(&location, &claimed, b"")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    for digest in [&claimed, &sha256(&data)] {
        registry
            .head(&format!("/v2/repo/blobs/{digest}"))
            .await
            .assert_empty(StatusCode::NOT_FOUND);
    }
    let blobs = registry.root().join("docker/registry/v2/blobs");
    assert!(
        !blobs.exists() || files_below(&blobs).is_empty(),
        "no blob data was stored"
    );
}

#[tokio::test]
async fn wrong_sha512_digest_on_upload_completion_is_digest_invalid() {
    let registry = Registry::filesystem().await;
    let data = content(2, 1_000);
    let location = registry.start_upload("repo").await;
    registry
        .complete_upload(&location, &sha512(b"not it"), &data)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    registry
        .head(&format!("/v2/repo/blobs/{}", sha512(&data)))
        .await
        .assert_empty(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_digest_on_monolithic_post_is_digest_invalid_and_stores_nothing() {
    let registry = Registry::filesystem().await;
    let data = content(3, 2_000);
    let claimed = sha256(b"a different blob");
    registry
        .send(
            Method::POST,
            &format!("/v2/repo/blobs/uploads/?digest={claimed}"),
            &[],
            data.clone(),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    for digest in [&claimed, &sha256(&data)] {
        registry
            .head(&format!("/v2/repo/blobs/{digest}"))
            .await
            .assert_empty(StatusCode::NOT_FOUND);
    }
    // Nothing is left behind, not even the upload session.
    let tree = registry.root().join("docker/registry/v2");
    assert!(
        !tree.exists() || files_below(&tree).is_empty(),
        "{:?}",
        files_below(&tree)
    );
}

#[tokio::test]
async fn content_range_disagreeing_with_content_length_is_400() {
    let registry = Registry::filesystem().await;
    let location = registry.start_upload("repo").await;
    registry
        .send(
            Method::PATCH,
            &location,
            &[("content-range", "0-99")],
            vec![0u8; 50],
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    registry
        .send(
            Method::PATCH,
            &location,
            &[("content-range", "bytes=nonsense")],
            vec![0u8; 50],
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");
    let reply = registry.get(&location).await;
    assert_eq!(reply.header("range"), "0-0");
}

/// Requests that try to name something outside the repository tree: `..` plain and encoded,
/// encoded slashes, absolute paths and backslashes, in names, references, digests, upload ids
/// and query parameters. `(method, target)`; PUTs carry a valid manifest.
const ESCAPES: &[(&str, &str)] = &[
    ("GET", "/v2/../../../etc/passwd/tags/list"),
    ("GET", "/v2/..%2F..%2Fetc/tags/list"),
    ("GET", "/v2/%2e%2e/%2e%2e/tags/list"),
    ("GET", "/v2/a%2F..%2F..%2Fb/tags/list"),
    ("PUT", "/v2/%2Ftmp%2Fevil/manifests/latest"),
    ("PUT", "/v2//tmp/evil/manifests/latest"),
    ("PUT", "/v2/..%5C..%5Cevil/manifests/latest"),
    ("PUT", "/v2/repo/manifests/..%2F..%2F..%2Fevil"),
    ("PUT", "/v2/repo/manifests/.."),
    ("PUT", "/v2/repo/manifests/%2Fetc%2Fevil"),
    ("PUT", "/v2/repo/manifests/sha256:..%2F..%2Fevil"),
    ("PUT", "/v2/repo/manifests/latest?tag=..%2F..%2Fevil"),
    ("PUT", "/v2/repo/manifests/latest?tag=%2Fetc%2Fevil"),
    ("GET", "/v2/repo/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd"),
    ("GET", "/v2/repo/blobs/sha256%3A..%2F..%2Fdata"),
    ("GET", "/v2/repo/referrers/sha256:..%2F..%2Fevil"),
    (
        "POST",
        "/v2/repo/blobs/uploads/?digest=sha256:..%2F..%2Fevil",
    ),
    ("POST", "/v2/repo/blobs/uploads/?digest=..%2F..%2Fevil"),
    (
        "POST",
        "/v2/repo/blobs/uploads/?mount=..%2Fevil&from=..%2F..%2Fother",
    ),
    ("POST", "/v2/../evil/blobs/uploads/"),
    ("POST", "/v2/%2Fevil/blobs/uploads/"),
    ("PATCH", "/v2/repo/blobs/uploads/..%2F..%2F..%2Fevil"),
    ("PATCH", "/v2/repo/blobs/uploads/%2E%2E"),
    ("PATCH", "/v2/repo/blobs/uploads/%2Fetc%2Fevil"),
    ("PATCH", "/v2/repo/blobs/uploads/../../evil"),
    (
        "PUT",
        "/v2/repo/blobs/uploads/..?digest=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    ("GET", "/v2/repo/blobs/uploads/..%2F_uploads"),
    ("DELETE", "/v2/repo/blobs/uploads/..%2F..%2F.."),
    ("DELETE", "/v2/repo/manifests/..%2F..%2F..%2Fblobs"),
];

#[tokio::test]
async fn no_request_escapes_the_storage_root() {
    let outer = tempfile::tempdir().expect("temp dir");
    let root = outer.path().join("root");
    let registry = Registry::filesystem_at(
        &root,
        ContentOptions {
            delete_enabled: true,
            ..ContentOptions::default()
        },
    )
    .await;

    for (method, target) in ESCAPES {
        let reply = if *method == "PUT" || *method == "POST" || *method == "PATCH" {
            registry
                .raw_request_with_body(method, target, OCI_INDEX, EMPTY_INDEX)
                .await
        } else {
            registry.raw_request(method, target).await
        };
        assert!(
            reply.status.is_client_error(),
            "{method} {target} must be refused: {reply:?}"
        );
    }

    assert_eq!(
        files_below(outer.path()),
        Vec::<std::path::PathBuf>::new(),
        "refused requests wrote nothing, inside the root or outside it"
    );
    let entries: Vec<_> = std::fs::read_dir(outer.path())
        .expect("read dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(entries, [std::ffi::OsString::from("root")]);
}

#[tokio::test]
async fn mount_from_an_invalid_source_starts_an_upload_inside_the_repository() {
    let outer = tempfile::tempdir().expect("temp dir");
    let root = outer.path().join("root");
    let registry = Registry::filesystem_at(&root, ContentOptions::default()).await;
    let digest = sha256(b"anything");

    let reply = registry
        .raw_request(
            "POST",
            &format!("/v2/repo/blobs/uploads/?mount={digest}&from=..%2F..%2F..%2Fother"),
        )
        .await;
    reply.assert_empty(StatusCode::ACCEPTED);
    assert!(
        reply
            .header("location")
            .starts_with(&registry.url("/v2/repo/blobs/uploads/"))
    );
    for file in files_below(outer.path()) {
        assert!(
            file.starts_with("root/docker/registry/v2/repositories/repo/_uploads"),
            "{}",
            file.display()
        );
    }
}
