//! Blob uploads: monolithic, streamed and chunked, their status and cancellation, mounts, sha512,
//! sessions surviving a restart or a client that goes away, concurrent pushes, and the
//! `Location` URLs they are answered with.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Registry, content, sha256, sha512, with_query};
use http::{Method, StatusCode};
use registry_content::ContentOptions;
use registry_http::{HttpOptions, UrlBase};
use registry_storage::FilesystemDriver;
use registry_storage::faults::{Fault, FaultyDriver, Operation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Asserts `reply` is the 201 of a blob now at `/v2/<repo>/blobs/<digest>`.
fn assert_blob_created(reply: &common::Reply, repo: &str, digest: &str) {
    reply.assert_empty(StatusCode::CREATED);
    assert_eq!(reply.location_path(), format!("/v2/{repo}/blobs/{digest}"));
    assert_eq!(reply.header("docker-content-digest"), digest);
}

/// Asserts the blob `digest` of `repo` is exactly `data`.
async fn assert_blob_is(registry: &Registry, repo: &str, digest: &str, data: &[u8]) {
    let reply = registry.get(&format!("/v2/{repo}/blobs/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert_eq!(reply.body.len(), data.len());
    assert!(reply.body.as_ref() == data, "blob content differs");
}

#[tokio::test]
async fn post_starts_upload_with_location_range_and_uuid() {
    let registry = Registry::filesystem().await;
    let reply = registry
        .send(
            Method::POST,
            "/v2/library/app/blobs/uploads/",
            &[],
            Bytes::new(),
        )
        .await;
    reply.assert_empty(StatusCode::ACCEPTED);
    let uuid = reply.header("docker-upload-uuid");
    assert!(!uuid.is_empty());
    assert_eq!(
        reply.location_path(),
        format!("/v2/library/app/blobs/uploads/{uuid}")
    );
    assert_eq!(reply.header("range"), "0-0");
}

#[tokio::test]
async fn upload_status_is_204_with_range() {
    let registry = Registry::filesystem().await;
    let location = registry.start_upload("repo").await;

    let reply = registry.get(&location).await;
    reply.assert_empty(StatusCode::NO_CONTENT);
    assert_eq!(reply.header("range"), "0-0");
    assert_eq!(reply.header("location"), location);
    assert!(location.ends_with(reply.header("docker-upload-uuid")));

    let reply = registry.patch_chunk(&location, 0, &content(1, 300)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    let reply = registry.get(&location).await;
    reply.assert_empty(StatusCode::NO_CONTENT);
    assert_eq!(reply.header("range"), "0-299");
}

#[tokio::test]
async fn streamed_patch_then_put_creates_the_blob() {
    let registry = Registry::filesystem().await;
    let data = content(2, 200_000);
    let digest = sha256(&data);
    let location = registry.start_upload("repo").await;

    let chunks: Vec<Vec<u8>> = data.chunks(7_000).map(<[u8]>::to_vec).collect();
    let reply = registry
        .send_streamed(
            Method::PATCH,
            &location,
            &[("content-type", "application/octet-stream")],
            chunks,
        )
        .await;
    reply.assert_empty(StatusCode::ACCEPTED);
    assert_eq!(reply.header("range"), "0-199999");
    assert_eq!(reply.header("location"), location);

    let reply = registry.complete_upload(&location, &digest, b"").await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
}

#[tokio::test]
async fn chunked_patches_report_the_range_after_each_chunk() {
    let registry = Registry::filesystem().await;
    let data = content(3, 10_000);
    let digest = sha256(&data);
    let location = registry.start_upload("repo").await;

    let mut start = 0;
    for chunk in data.chunks(3_000) {
        let reply = registry.patch_chunk(&location, start, chunk).await;
        reply.assert_empty(StatusCode::ACCEPTED);
        start += chunk.len();
        assert_eq!(reply.header("range"), format!("0-{}", start - 1));
        assert_eq!(reply.header("location"), location);
        assert!(!reply.header("docker-upload-uuid").is_empty());
    }
    assert_eq!(start, data.len());

    let reply = registry.complete_upload(&location, &digest, b"").await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
}

#[tokio::test]
async fn out_of_order_chunk_is_416() {
    let registry = Registry::filesystem().await;
    let data = content(4, 2_000);
    let location = registry.start_upload("repo").await;
    let reply = registry.patch_chunk(&location, 0, &data[..1_000]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);

    // A gap.
    let reply = registry.patch_chunk(&location, 1_500, &data[1_500..]).await;
    reply.assert_empty(StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(reply.header("range"), "0-999");
    // A repeat.
    let reply = registry.patch_chunk(&location, 0, &data[..1_000]).await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE);

    // The session is intact and continues where it stood.
    let reply = registry.get(&location).await;
    assert_eq!(reply.header("range"), "0-999");
    let reply = registry.patch_chunk(&location, 1_000, &data[1_000..]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let reply = registry
        .complete_upload(&location, &sha256(&data), b"")
        .await;
    assert_blob_created(&reply, "repo", &sha256(&data));
}

#[tokio::test]
async fn out_of_order_final_chunk_is_416() {
    let registry = Registry::filesystem().await;
    let data = content(5, 2_000);
    let location = registry.start_upload("repo").await;
    registry.patch_chunk(&location, 0, &data[..1_000]).await;

    let reply = registry
        .send(
            Method::PUT,
            &with_query(&location, &format!("digest={}", sha256(&data))),
            &[("content-range", "1200-1999")],
            data[1_200..].to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE, "{reply:?}");
    assert_eq!(reply.header("range"), "0-999");
}

/// A `Content-Range` of 2^64 bytes cannot describe any body; bounds past `u64::MAX` are not
/// numbers this registry reads. Both are 400, and the upload goes on as if they had not come.
#[tokio::test]
async fn content_range_with_huge_bounds_is_refused_without_overflow() {
    let registry = Registry::filesystem().await;
    let data = content(9, 10);
    let location = registry.start_upload("repo").await;
    let max = u64::MAX;
    for range in [
        format!("0-{max}"),
        format!("bytes 0-{max}/*"),
        "0-18446744073709551616".to_owned(),
        "18446744073709551616-18446744073709551617".to_owned(),
    ] {
        let reply = registry
            .send(
                Method::PATCH,
                &location,
                &[("content-range", &range)],
                data.clone(),
            )
            .await;
        reply.assert_error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");
    }
    // Well-formed but far from where the upload stands.
    let reply = registry
        .send(
            Method::PATCH,
            &location,
            &[("content-range", &format!("{}-{max}", max - 9))],
            data.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE, "{reply:?}");
    assert_eq!(reply.header("range"), "0-0");

    let reply = registry.patch_chunk(&location, 0, &data).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    let reply = registry
        .complete_upload(&location, &sha256(&data), b"")
        .await;
    assert_blob_created(&reply, "repo", &sha256(&data));
}

#[tokio::test]
async fn put_with_final_body_completes_the_upload() {
    let registry = Registry::filesystem().await;
    let data = content(6, 5_000);
    let digest = sha256(&data);
    let location = registry.start_upload("repo").await;
    registry.patch_chunk(&location, 0, &data[..2_000]).await;

    let reply = registry
        .complete_upload(&location, &digest, &data[2_000..])
        .await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;

    // The session is gone once the blob exists.
    registry
        .get(&location)
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn put_with_whole_body_and_no_patch_completes_the_upload() {
    let registry = Registry::filesystem().await;
    let data = content(7, 4_096);
    let digest = sha256(&data);
    let location = registry.start_upload("repo").await;
    let reply = registry.complete_upload(&location, &digest, &data).await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
}

#[tokio::test]
async fn single_post_with_digest_creates_the_blob() {
    let registry = Registry::filesystem().await;
    let data = content(8, 12_345);
    let digest = sha256(&data);
    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/repo/blobs/uploads/?digest={digest}"),
            &[("content-type", "application/octet-stream")],
            data.clone(),
        )
        .await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
}

#[tokio::test]
async fn empty_blob_via_session_is_created() {
    let registry = Registry::filesystem().await;
    let digest = sha256(b"");
    let location = registry.start_upload("repo").await;
    let reply = registry.complete_upload(&location, &digest, b"").await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, b"").await;
}

#[tokio::test]
async fn deleted_upload_is_204_then_unknown() {
    let registry = Registry::filesystem().await;
    let location = registry.start_upload("repo").await;
    registry.patch_chunk(&location, 0, b"some bytes").await;

    registry
        .delete(&location)
        .await
        .assert_empty(StatusCode::NO_CONTENT);
    registry
        .get(&location)
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    registry
        .patch_chunk(&location, 0, b"more")
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    registry
        .delete(&location)
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn unknown_upload_id_is_404_blob_upload_unknown() {
    let registry = Registry::filesystem().await;
    let location = "/v2/repo/blobs/uploads/0b5a0c1e-7e0e-4d7e-9a57-000000000000";
    registry
        .get(location)
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    registry
        .patch_chunk(location, 0, b"data")
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    registry
        .complete_upload(location, &sha256(b"data"), b"data")
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    registry
        .delete(location)
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn upload_of_another_repository_is_unknown() {
    let registry = Registry::filesystem().await;
    let location = registry.start_upload("first").await;
    let uuid = location.rsplit('/').next().expect("an id");
    registry
        .get(&format!("/v2/second/blobs/uploads/{uuid}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn mount_from_a_repository_holding_the_blob_is_201() {
    let registry = Registry::filesystem().await;
    let data = content(9, 1_000);
    let digest = registry.push_blob("source/repo", &data).await;

    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}&from=source/repo"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_blob_created(&reply, "target", &digest);
    assert_blob_is(&registry, "target", &digest, &data).await;
}

#[tokio::test]
async fn mount_from_a_repository_without_the_blob_starts_an_upload() {
    let registry = Registry::filesystem().await;
    let data = content(10, 1_000);
    let digest = sha256(&data);
    // The blob exists in the registry, but not in the repository named as the source.
    registry.push_blob("elsewhere", &data).await;
    registry.push_blob("source", b"another blob").await;

    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}&from=source"),
            &[],
            Bytes::new(),
        )
        .await;
    reply.assert_empty(StatusCode::ACCEPTED);
    assert_eq!(reply.header("range"), "0-0");
    let location = reply.header("location").to_owned();
    assert!(
        location.starts_with(&registry.url("/v2/target/blobs/uploads/")),
        "{location}"
    );
    registry
        .get(&format!("/v2/target/blobs/{digest}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");

    // The new session works as any other.
    let reply = registry.complete_upload(&location, &digest, &data).await;
    assert_blob_created(&reply, "target", &digest);
}

#[tokio::test]
async fn mount_without_from_takes_the_blob_from_any_repository_holding_it() {
    let registry = Registry::filesystem().await;
    registry.push_image("a/source", "v1", 12).await;
    let layer = content(12, 300);
    let digest = sha256(&layer);

    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_blob_created(&reply, "target", &digest);
    assert_blob_is(&registry, "target", &digest, &layer).await;

    // Already in the repository: mounted again without looking elsewhere.
    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}&from="),
            &[],
            Bytes::new(),
        )
        .await;
    assert_blob_created(&reply, "target", &digest);
}

#[tokio::test]
async fn mount_without_from_of_a_blob_nobody_has_starts_an_upload() {
    let registry = Registry::filesystem().await;
    registry.push_image("source", "v1", 13).await;
    let data = content(14, 1_000);
    let digest = sha256(&data);

    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}"),
            &[],
            Bytes::new(),
        )
        .await;
    reply.assert_empty(StatusCode::ACCEPTED);
    let location = reply.header("location").to_owned();
    let reply = registry.complete_upload(&location, &digest, &data).await;
    assert_blob_created(&reply, "target", &digest);
}

#[tokio::test]
async fn monolithic_sha512_upload_is_stored_under_its_sha512_digest() {
    let registry = Registry::filesystem().await;
    let data = content(11, 20_000);
    let digest = sha512(&data);
    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/repo/blobs/uploads/?digest={digest}"),
            &[("content-type", "application/octet-stream")],
            data.clone(),
        )
        .await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
    let reply = registry.head(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert_eq!(reply.header("content-length"), "20000");
}

#[tokio::test]
async fn session_with_sha512_digest_algorithm_completes_with_sha512() {
    let registry = Registry::filesystem().await;
    let data = content(12, 9_000);
    let digest = sha512(&data);
    let reply = registry
        .send(
            Method::POST,
            "/v2/repo/blobs/uploads/?digest-algorithm=sha512",
            &[],
            Bytes::new(),
        )
        .await;
    reply.assert_empty(StatusCode::ACCEPTED);
    let location = reply.header("location").to_owned();

    let reply = registry.patch_chunk(&location, 0, &data[..4_000]).await;
    assert_eq!(reply.header("range"), "0-3999");
    let reply = registry
        .send_streamed(Method::PATCH, &location, &[], vec![data[4_000..].to_vec()])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.header("range"), "0-8999");

    let reply = registry.complete_upload(&location, &digest, b"").await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
}

#[tokio::test]
async fn sha256_session_completed_with_a_sha512_digest_is_verified_with_sha512() {
    let registry = Registry::filesystem().await;
    let data = content(13, 3_000);
    let location = registry.start_upload("repo").await;
    registry.patch_chunk(&location, 0, &data).await;
    let reply = registry
        .complete_upload(&location, &sha512(&data), b"")
        .await;
    assert_blob_created(&reply, "repo", &sha512(&data));
}

#[tokio::test]
async fn chunked_upload_is_continued_by_a_new_service_over_the_same_root() {
    let root = tempfile::tempdir().expect("temp dir");
    let data = content(14, 30_000);
    let digest = sha256(&data);

    let location = {
        let first = Registry::filesystem_at(root.path(), ContentOptions::default()).await;
        let location = first.start_upload("repo").await;
        let reply = first.patch_chunk(&location, 0, &data[..10_000]).await;
        assert_eq!(reply.header("range"), "0-9999");
        let reply = first
            .patch_chunk(&location, 10_000, &data[10_000..20_000])
            .await;
        assert_eq!(reply.header("range"), "0-19999");
        // The path: the second service listens elsewhere.
        reply.location_path().to_owned()
    };

    let second = Registry::filesystem_at(root.path(), ContentOptions::default()).await;
    let reply = second.get(&location).await;
    reply.assert_empty(StatusCode::NO_CONTENT);
    assert_eq!(reply.header("range"), "0-19999");
    let reply = second.patch_chunk(&location, 20_000, &data[20_000..]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.header("range"), "0-29999");
    let reply = second.complete_upload(&location, &digest, b"").await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&second, "repo", &digest, &data).await;
}

#[tokio::test]
async fn sha512_upload_is_continued_by_a_new_service_over_the_same_root() {
    let root = tempfile::tempdir().expect("temp dir");
    let data = content(15, 8_000);
    let digest = sha512(&data);

    let location = {
        let first = Registry::filesystem_at(root.path(), ContentOptions::default()).await;
        let reply = first
            .send(
                Method::POST,
                "/v2/repo/blobs/uploads/?digest-algorithm=sha512",
                &[],
                Bytes::new(),
            )
            .await;
        // The path: the second service listens elsewhere.
        let location = reply.location_path().to_owned();
        first.patch_chunk(&location, 0, &data[..5_000]).await;
        location
    };

    let second = Registry::filesystem_at(root.path(), ContentOptions::default()).await;
    let reply = second
        .complete_upload(&location, &digest, &data[5_000..])
        .await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&second, "repo", &digest, &data).await;
}

/// Waits until the server has answered the request a client cut off (the `answered_before + 1`th
/// it answers), then checks the upload holds `expected` bytes: what arrived before the cut.
async fn assert_cut_request_kept(
    registry: &Registry,
    answered_before: usize,
    location: &str,
    expected: usize,
) {
    registry.wait_until_answered(answered_before + 1).await;
    let reply = registry.get(location).await;
    reply.assert_empty(StatusCode::NO_CONTENT);
    assert_eq!(reply.header("range"), format!("0-{}", expected - 1));
}

#[tokio::test]
async fn client_disconnecting_mid_patch_leaves_a_resumable_upload() {
    let registry = Registry::filesystem().await;
    let data = content(16, 4_000);
    let digest = sha256(&data);
    let location = registry.start_upload("repo").await;
    registry.patch_chunk(&location, 0, &data[..1_000]).await;

    // Announce 3000 bytes, send 1000, go away.
    let answered = registry.answered();
    let mut stream = TcpStream::connect(registry.addr()).await.expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 3000\r\n\r\n",
        registry.addr()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream
        .write_all(&data[1_000..2_000])
        .await
        .expect("write half the body");
    stream.flush().await.expect("flush");
    drop(stream);

    assert_cut_request_kept(&registry, answered, &location, 2_000).await;
    // No blob appeared under the final digest, nor under the digest of what arrived.
    for partial in [&digest, &sha256(&data[..2_000])] {
        registry
            .head(&format!("/v2/repo/blobs/{partial}"))
            .await
            .assert_empty(StatusCode::NOT_FOUND);
    }

    let reply = registry
        .patch_chunk(&location, 2_000, &data[2_000..3_000])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.header("range"), "0-2999");
    let reply = registry
        .complete_upload(&location, &digest, &data[3_000..])
        .await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
}

#[tokio::test]
async fn client_disconnecting_mid_final_put_leaves_a_resumable_upload() {
    let registry = Registry::filesystem().await;
    let data = content(19, 3_000);
    let digest = sha256(&data);
    let location = registry.start_upload("repo").await;
    registry.patch_chunk(&location, 0, &data[..1_000]).await;

    let answered = registry.answered();
    let mut stream = TcpStream::connect(registry.addr()).await.expect("connect");
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 2000\r\n\r\n",
        with_query(&location, &format!("digest={digest}")),
        registry.addr()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream
        .write_all(&data[1_000..1_500])
        .await
        .expect("write part of the body");
    stream.flush().await.expect("flush");
    drop(stream);

    assert_cut_request_kept(&registry, answered, &location, 1_500).await;
    registry
        .head(&format!("/v2/repo/blobs/{digest}"))
        .await
        .assert_empty(StatusCode::NOT_FOUND);
    let reply = registry
        .complete_upload(&location, &digest, &data[1_500..])
        .await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
}

#[tokio::test]
async fn client_disconnecting_mid_patch_in_memory_leaves_a_resumable_upload() {
    let registry = Registry::in_memory().await;
    let data = content(20, 2_000);
    let digest = sha256(&data);
    let location = registry.start_upload("repo").await;

    let answered = registry.answered();
    let mut stream = TcpStream::connect(registry.addr()).await.expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Length: 2000\r\n\r\n",
        registry.addr()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&data[..700]).await.expect("write part");
    stream.flush().await.expect("flush");
    drop(stream);

    assert_cut_request_kept(&registry, answered, &location, 700).await;
    let reply = registry.patch_chunk(&location, 700, &data[700..]).await;
    assert_eq!(reply.header("range"), "0-1999");
    let reply = registry.complete_upload(&location, &digest, b"").await;
    assert_blob_created(&reply, "repo", &digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
}

#[tokio::test]
async fn client_disconnecting_mid_monolithic_post_stores_nothing() {
    let registry = Registry::filesystem().await;
    let data = content(17, 4_000);
    let digest = sha256(&data);

    let answered = registry.answered();
    let mut stream = TcpStream::connect(registry.addr()).await.expect("connect");
    let head = format!(
        "POST /v2/repo/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 4000\r\n\r\n",
        registry.addr()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&data[..2_000]).await.expect("write half");
    stream.flush().await.expect("flush");
    drop(stream);

    // Once the server has answered the cut request, nothing of it is left or visible, and the
    // same blob can still be pushed whole.
    registry.wait_until_answered(answered + 1).await;
    let uploads = registry
        .root()
        .join("docker/registry/v2/repositories/repo/_uploads");
    assert!(
        !uploads.exists() || common::files_below(&uploads).is_empty(),
        "left behind: {:?}",
        common::files_below(&uploads)
    );
    registry
        .head(&format!("/v2/repo/blobs/{digest}"))
        .await
        .assert_empty(StatusCode::NOT_FOUND);
    assert_eq!(registry.push_blob("repo", &data).await, digest);
    assert_blob_is(&registry, "repo", &digest, &data).await;
}

#[tokio::test]
async fn concurrent_pushes_of_the_same_blob_and_tag_all_succeed_and_agree() {
    concurrent_pushes_agree(Registry::filesystem().await).await;
}

#[tokio::test]
async fn concurrent_pushes_in_memory_all_succeed_and_agree() {
    concurrent_pushes_agree(Registry::in_memory().await).await;
}

/// 16 clients push the same blob (half in one request, half in chunks) and then each its own
/// manifest under the same tag.
async fn concurrent_pushes_agree(registry: Registry) {
    let registry = std::sync::Arc::new(registry);
    let data = content(18, 50_000);
    let digest = sha256(&data);
    let config = common::config_blob(1);
    let config_digest = registry.push_blob("shared/repo", &config).await;

    let mut tasks = Vec::new();
    for worker in 0..16u8 {
        let registry = registry.clone();
        let data = data.clone();
        let config_digest = config_digest.clone();
        let config_len = config.len();
        tasks.push(tokio::spawn(async move {
            // Half push monolithically, half in chunks.
            let pushed = if worker % 2 == 0 {
                registry.push_blob("shared/repo", &data).await
            } else {
                let location = registry.start_upload("shared/repo").await;
                let reply = registry.patch_chunk(&location, 0, &data[..25_000]).await;
                assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
                let reply = registry
                    .complete_upload(&location, &sha256(&data), &data[25_000..])
                    .await;
                assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
                reply.header("docker-content-digest").to_owned()
            };
            let manifest = common::manifest_json(serde_json::json!({
                "schemaVersion": 2,
                "mediaType": common::OCI_MANIFEST,
                "config": common::descriptor(common::OCI_CONFIG, &config_digest, config_len),
                "layers": [common::descriptor(common::OCI_LAYER, &pushed, data.len())],
                "annotations": {"worker": worker.to_string()},
            }));
            let reply = registry
                .put_manifest("shared/repo", "latest", common::OCI_MANIFEST, &manifest)
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
            assert_eq!(reply.header("docker-content-digest"), sha256(&manifest));
            (pushed, sha256(&manifest))
        }));
    }
    let mut manifests = Vec::new();
    for task in tasks {
        let (pushed, manifest) = task.await.expect("worker");
        assert_eq!(pushed, digest);
        manifests.push(manifest);
    }

    assert_blob_is(&registry, "shared/repo", &digest, &data).await;
    let reply = registry.get("/v2/shared/repo/manifests/latest").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let tagged = reply.header("docker-content-digest").to_owned();
    assert!(manifests.contains(&tagged), "{tagged} was never pushed");
    assert_eq!(sha256(&reply.body), tagged);
    for manifest in &manifests {
        let reply = registry
            .head(&format!("/v2/shared/repo/manifests/{manifest}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let reply = registry.get("/v2/shared/repo/tags/list").await;
    assert_eq!(reply.json()["tags"], serde_json::json!(["latest"]));
}

/// The race of the integrity issue, as a hostile client plays it: a second PATCH holds the
/// session while sending slowly, and a PUT of the first 100 bytes tries to complete the upload
/// meanwhile. The PUT is refused at once (409), and no blob ever exists under the digest of the
/// first 100 bytes with other bytes in it.
#[tokio::test]
async fn a_put_during_another_requests_patch_is_refused_and_no_blob_holds_other_bytes() {
    let temp = tempfile::tempdir().expect("tempdir");
    let driver = Arc::new(FaultyDriver::new(Arc::new(
        FilesystemDriver::new(temp.path()).expect("driver"),
    )));
    let registry = Registry::serve(driver.clone(), ContentOptions::default()).await;
    let first = content(30, 100);
    let digest = sha256(&first);
    let location = registry.start_upload("race/x").await;
    let reply = registry.patch_chunk(&location, 0, &first).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");

    // PATCH announcing 4,096 bytes: send 16, hold the rest once the server is writing them.
    let (fault, writing) = Fault::stall(Operation::Write);
    driver.inject(fault.on_path("/_uploads/"));
    let rest = content(31, 4_096);
    let mut held = TcpStream::connect(registry.addr()).await.expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Length: 4096\r\n\r\n",
        registry.addr()
    );
    held.write_all(head.as_bytes()).await.expect("head");
    held.write_all(&rest[..16]).await.expect("16 bytes");
    held.flush().await.expect("flush");
    writing.reached().await;
    writing.release();

    let started = std::time::Instant::now();
    let reply = registry.complete_upload(&location, &digest, b"").await;
    reply.assert_error(StatusCode::CONFLICT, "BLOB_UPLOAD_INVALID");
    assert!(!reply.header("retry-after").is_empty(), "{reply:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not queued behind the slow body"
    );
    let reply = registry.patch_chunk(&location, 100, b"more").await;
    assert_eq!(
        reply.status,
        StatusCode::CONFLICT,
        "a third writer: {reply:?}"
    );

    held.write_all(&rest[16..]).await.expect("the rest");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = held.read(&mut buffer).await.expect("read the answer");
        assert!(read > 0, "the held PATCH got no answer");
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 202"), "{answer}");
    assert!(answer.contains("range: 0-4195"), "{answer}");

    registry
        .head(&format!("/v2/race/x/blobs/{digest}"))
        .await
        .assert_empty(StatusCode::NOT_FOUND);
    let reply = registry.complete_upload(&location, &digest, b"").await;
    reply.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    registry
        .head(&format!("/v2/race/x/blobs/{digest}"))
        .await
        .assert_empty(StatusCode::NOT_FOUND);
}

/// The `Location` a new upload of `repo` is answered with, the request carrying `headers`.
async fn upload_location(registry: &Registry, headers: &[(&str, &str)]) -> String {
    let reply = registry
        .send(
            Method::POST,
            "/v2/repo/blobs/uploads/",
            headers,
            Bytes::new(),
        )
        .await;
    reply.assert_empty(StatusCode::ACCEPTED);
    let uuid = reply.header("docker-upload-uuid");
    let location = reply.header("location");
    let suffix = format!("/v2/repo/blobs/uploads/{uuid}");
    location
        .strip_suffix(&suffix)
        .unwrap_or_else(|| panic!("{location} does not end in {suffix}"))
        .to_owned()
}

#[tokio::test]
async fn locations_are_absolute_as_the_client_addressed_the_registry() {
    let registry = Registry::in_memory().await;
    assert_eq!(
        upload_location(&registry, &[("host", "registry.example.com:5000")]).await,
        "http://registry.example.com:5000"
    );
    // Behind a reverse proxy that terminates TLS, as nginx's recipe sets the headers.
    assert_eq!(
        upload_location(
            &registry,
            &[
                ("host", "127.0.0.1:5000"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "registry.example.com"),
            ]
        )
        .await,
        "https://registry.example.com"
    );
    assert_eq!(
        upload_location(
            &registry,
            &[
                ("host", "127.0.0.1:5000"),
                ("forwarded", "for=10.1.2.3;proto=https;host=r.example.com"),
            ]
        )
        .await,
        "https://r.example.com"
    );
}

#[tokio::test]
async fn http_host_fixes_locations_and_relativeurls_drops_the_origin() {
    let fixed = Registry::in_memory_with_http(HttpOptions {
        urls: UrlBase::Fixed("https://registry.example.com/".to_owned()),
        ..HttpOptions::default()
    })
    .await;
    assert_eq!(
        upload_location(&fixed, &[("x-forwarded-host", "elsewhere.example")]).await,
        "https://registry.example.com"
    );
    let relative = Registry::in_memory_with_http(HttpOptions {
        urls: UrlBase::Relative,
        ..HttpOptions::default()
    })
    .await;
    assert_eq!(upload_location(&relative, &[]).await, "");
}
