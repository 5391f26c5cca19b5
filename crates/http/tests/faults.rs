//! What clients get when storage fails under them: a blob that vanishes between its lookup and its
//! read, a disk that fills in the middle of an upload. Failures are injected with
//! `registry_storage::faults::FaultyDriver`.

mod common;

use std::sync::Arc;

use common::{Registry, content, sha256};
use http::{Method, StatusCode};
use registry_content::ContentOptions;
use registry_storage::faults::{Fault, FaultyDriver, Operation};
use registry_storage::{FilesystemDriver, InMemoryDriver};

#[tokio::test]
async fn a_blob_deleted_between_its_lookup_and_its_read_is_blob_unknown() {
    let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
    let registry = Registry::serve(driver.clone(), ContentOptions::default()).await;
    let digest = registry.push_blob("app", &content(1, 5_000)).await;
    // The blob is found (stat), then gone when its data is opened, as when garbage collection
    // runs in between.
    driver.inject(Fault::vanish(Operation::Reader).on_path("/blobs/"));
    let reply = registry.get(&format!("/v2/app/blobs/{digest}")).await;
    reply.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn a_full_disk_answers_507_and_the_upload_resumes_once_space_is_freed() {
    let temp = tempfile::tempdir().expect("tempdir");
    let driver = Arc::new(FaultyDriver::new(Arc::new(
        FilesystemDriver::new(temp.path()).expect("driver"),
    )));
    let registry = Registry::serve(driver.clone(), ContentOptions::default()).await;
    let data = content(2, 3 << 20);
    let digest = sha256(&data);
    let location = registry.start_upload("app").await;
    // Every write of data fails: into upload sessions and straight to blobs.
    driver.inject(
        Fault::fail(Operation::Write)
            .on_path("/docker/registry/v2/")
            .storage_full()
            .repeatedly(),
    );
    let reply = registry.patch_chunk(&location, 0, &data).await;
    assert_eq!(reply.status, StatusCode::INSUFFICIENT_STORAGE, "{reply:?}");
    let message = reply.json()["errors"][0]["message"]
        .as_str()
        .expect("a message")
        .to_owned();
    assert!(message.contains("storage is full"), "{message}");
    // A monolithic upload is refused the same way and leaves nothing.
    let reply = registry
        .send(
            Method::POST,
            &format!("/v2/app/blobs/uploads/?digest={digest}"),
            &[("content-type", "application/octet-stream")],
            data.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::INSUFFICIENT_STORAGE, "{reply:?}");
    registry
        .head(&format!("/v2/app/blobs/{digest}"))
        .await
        .assert_empty(StatusCode::NOT_FOUND);

    driver.clear();
    let reply = registry.get(&location).await;
    reply.assert_empty(StatusCode::NO_CONTENT);
    let stored: usize = match reply.header("range") {
        "0-0" => 0,
        range => {
            let last: usize = range
                .strip_prefix("0-")
                .and_then(|last| last.parse().ok())
                .expect("Range: 0-<last>");
            last + 1
        }
    };
    let reply = registry
        .complete_upload(&location, &digest, &data[stored..])
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let reply = registry.get(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.as_ref() == data.as_slice(), "the blob is whole");
}
