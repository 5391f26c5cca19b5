//! Serving through the facade: maintenance runs beside the server and stops with it.

use std::sync::Arc;
use std::time::Duration;

use registry::content::ContentError;
use registry::model::DigestAlgorithm;
use registry::storage::InMemoryDriver;
use registry::{Registry, UploadPurging};

#[tokio::test]
async fn abandoned_uploads_are_purged_while_serving() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .upload_purging(Some(UploadPurging {
            age: Duration::ZERO,
            interval: Duration::from_millis(100),
            dry_run: false,
        }))
        .build();
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let registry = registry.clone();
        tokio::spawn(async move {
            registry
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        })
    };

    let mut purged = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if matches!(
            repository.upload_status(&upload.id).await,
            Err(ContentError::UploadUnknown { .. })
        ) {
            purged = true;
            break;
        }
    }
    assert!(purged, "the abandoned upload was purged");
    let _ = stop.send(());
    serving
        .await
        .expect("serve task")
        .expect("serve ended cleanly");
}

#[tokio::test]
async fn without_purging_uploads_stay() {
    let registry = Registry::builder().build();
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
    let serving = tokio::spawn(async move {
        registry
            .serve(listener, tokio::time::sleep(Duration::from_millis(300)))
            .await
    });
    serving.await.expect("serve task").expect("serve ended");
    assert!(repository.upload_status(&upload.id).await.is_ok());
}
