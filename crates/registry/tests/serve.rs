//! Serving through the facade: maintenance runs beside the server and stops with it.

use std::sync::Arc;
use std::time::Duration;

use registry::content::ContentError;
use registry::model::DigestAlgorithm;
use registry::storage::InMemoryDriver;
use registry::{Registry, UploadPurging};

/// Serves `registry` on 127.0.0.1 for two hours of the test's clock, with one upload started
/// before; returns whether the upload is still there afterwards.
///
/// The tests run with tokio's clock paused, which skips ahead whenever every task waits: the two
/// hours pass at once, long enough for any purge schedule to have run many times.
async fn upload_survives_two_hours_of_serving(registry: Registry) -> bool {
    let repository = registry
        .service()
        .content()
        .repository("app".parse().expect("name"));
    let upload = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start upload");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    registry
        .serve(listener, tokio::time::sleep(Duration::from_secs(2 * 3600)))
        .await
        .expect("serve ended cleanly");
    match repository.upload_status(&upload.id).await {
        Ok(_) => true,
        Err(ContentError::UploadUnknown { .. }) => false,
        Err(error) => panic!("upload status: {error}"),
    }
}

#[tokio::test(start_paused = true)]
async fn abandoned_uploads_are_purged_while_serving() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .upload_purging(Some(UploadPurging {
            age: Duration::ZERO,
            interval: Duration::from_secs(60),
            dry_run: false,
        }))
        .build();
    assert!(
        !upload_survives_two_hours_of_serving(registry).await,
        "the abandoned upload was purged"
    );
}

#[tokio::test(start_paused = true)]
async fn without_purging_uploads_stay() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .build();
    assert!(upload_survives_two_hours_of_serving(registry).await);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_purges_nothing() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .upload_purging(Some(UploadPurging {
            age: Duration::ZERO,
            interval: Duration::from_secs(60),
            dry_run: true,
        }))
        .build();
    assert!(upload_survives_two_hours_of_serving(registry).await);
}
