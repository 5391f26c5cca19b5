//! Serving through the facade: maintenance (upload purging, garbage collection) runs beside the
//! server, pauses in read-only mode, and stops with the server.

use std::sync::Arc;
use std::time::Duration;

use registry::content::{ContentError, GcOptions};
use registry::model::DigestAlgorithm;
use registry::storage::{InMemoryDriver, StorageDriver, StoragePath};
use registry::{GarbageCollection, Registry, UploadPurging};

/// Serves `registry` on 127.0.0.1 for two hours of the test's paused clock, long enough for any
/// maintenance schedule to have run many times.
async fn serve_for_two_hours(registry: &Registry) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    registry
        .serve(listener, tokio::time::sleep(Duration::from_secs(2 * 3600)))
        .await
        .expect("serve ended cleanly");
}

/// Serves `registry` on 127.0.0.1 for two hours of the test's clock, with one upload started
/// before; returns whether the upload is still there afterwards.
///
/// The tests run with tokio's clock paused, which skips ahead whenever every task waits: the two
/// hours pass at once, long enough for any purge schedule to have run many times.
async fn upload_survives_two_hours_of_serving(registry: Registry) -> bool {
    let repository = registry.content().repository("app".parse().expect("name"));
    let upload = repository
        .start_upload(DigestAlgorithm::Sha256)
        .await
        .expect("start upload");
    serve_for_two_hours(&registry).await;
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

/// Serves `registry` on 127.0.0.1 in the background; returns its address and the sender that
/// stops it.
async fn serve_in_background(
    registry: Registry,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        registry
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    (address, stop)
}

/// Sends `request` on `stream` and reads the response head, waiting at most `patience` of the
/// test's paused clock: `None` when nothing came, which with the clock paused means the server
/// had nothing left to do without an answer.
async fn answer_within(
    patience: Duration,
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.expect("read") == 0 {
                break;
            }
            head.push(byte[0]);
        }
    };
    tokio::time::timeout(patience, read).await.ok()?;
    Some(String::from_utf8_lossy(&head).to_ascii_lowercase())
}

/// [`answer_within`] an hour.
async fn answer(stream: &mut tokio::net::TcpStream, request: &[u8]) -> Option<String> {
    answer_within(Duration::from_secs(3600), stream, request).await
}

#[tokio::test(start_paused = true)]
async fn connections_past_the_limit_wait_until_one_closes() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .server_options(registry::ServerOptions {
            max_connections: 2,
            ..registry::ServerOptions::default()
        })
        .build();
    let (address, _stop) = serve_in_background(registry).await;
    let ping = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = tokio::net::TcpStream::connect(address).await.expect("one");
    let mut second = tokio::net::TcpStream::connect(address).await.expect("two");
    for stream in [&mut first, &mut second] {
        let head = answer(stream, ping).await.expect("an answer");
        assert!(head.starts_with("http/1.1 200"), "{head}");
    }
    // The third waits in the listen queue: no answer while the two stay open (for less than the
    // header read timeout, which would close them).
    let mut third = tokio::net::TcpStream::connect(address)
        .await
        .expect("three");
    assert_eq!(
        answer_within(Duration::from_secs(20), &mut third, ping).await,
        None,
        "served past the limit"
    );
    // One closes: the third is taken and answered.
    drop(first);
    let head = answer(&mut third, b"")
        .await
        .expect("answered once a connection closed");
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[tokio::test(start_paused = true)]
async fn an_upload_body_idle_past_the_limit_is_ended_and_resumes() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .server_options(registry::ServerOptions {
            body_idle_timeout: Duration::from_secs(30),
            ..registry::ServerOptions::default()
        })
        .build();
    let (address, _stop) = serve_in_background(registry).await;
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = answer(
        &mut stream,
        b"POST /v2/app/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .expect("started");
    let location = head
        .lines()
        .find_map(|line| line.strip_prefix("location: "))
        .expect("location")
        .to_owned();

    // 100 of 1,000 bytes, then nothing: ended after 30 s of the test's clock.
    let mut patch = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let started = tokio::time::Instant::now();
    let mut request =
        format!("PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            .into_bytes();
    request.extend_from_slice(&[7u8; 100]);
    let head = answer(&mut patch, &request).await.expect("ended");
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    let mut resume = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let mut request = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Range: 100-999\r\nContent-Length: 900\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&[7u8; 900]);
    let head = answer(&mut resume, &request).await.expect("resumed");
    assert!(head.starts_with("http/1.1 202"), "{head}");
    assert!(head.contains("range: 0-999"), "{head}");
}

/// Serves `registry` for two hours of the test's paused clock with a blob uploaded before and
/// linked nowhere (its link removed); returns whether the blob's data is still stored.
async fn unlinked_blob_survives_two_hours_of_serving(registry: Registry) -> bool {
    use futures_util::stream;
    let content = registry.content().clone();
    let repository = content.repository("app".parse().expect("name"));
    let data = bytes::Bytes::from_static(b"unlinked blob");
    let digest = registry::model::Digest::sha256(&data);
    let body = stream::iter([Ok::<_, std::convert::Infallible>(data)]);
    repository.put_blob(&digest, body).await.expect("upload");
    // Read-only mode is the HTTP API's: the content layer still takes the link away.
    repository.delete_blob(&digest).await.expect("unlink");
    serve_for_two_hours(&registry).await;
    let path = format!(
        "/docker/registry/v2/blobs/sha256/{}/{}/data",
        &digest.hex()[..2],
        digest.hex()
    );
    registry
        .driver()
        .stat(&registry::storage::StoragePath::parse(&path).expect("storage path"))
        .await
        .is_ok()
}

fn collecting_every_hour() -> Option<GarbageCollection> {
    Some(GarbageCollection {
        interval: Duration::from_secs(3600),
        options: GcOptions {
            grace_period: Duration::ZERO,
            ..GcOptions::default()
        },
    })
}

#[tokio::test(start_paused = true)]
async fn garbage_is_collected_on_schedule_while_serving() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .delete_enabled(true)
        .garbage_collection(collecting_every_hour())
        .build();
    assert!(!unlinked_blob_survives_two_hours_of_serving(registry).await);
}

#[tokio::test(start_paused = true)]
async fn collection_pauses_while_read_only() {
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .delete_enabled(true)
        .garbage_collection(collecting_every_hour())
        .read_only(true)
        .build();
    assert!(unlinked_blob_survives_two_hours_of_serving(registry).await);
}

/// An event sink that keeps what it is given.
#[derive(Debug, Default)]
struct Recorded(std::sync::Mutex<Vec<registry::events::Event>>);

#[registry::storage::async_trait]
impl registry::events::EventSink for Recorded {
    async fn record(&self, events: Vec<registry::events::Event>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(events);
    }
}

#[tokio::test(start_paused = true)]
async fn a_tag_removed_by_retention_is_a_delete_event() {
    use futures_util::stream;
    use registry::content::{RepositoryPattern, RetentionPolicy};
    let recorded = Arc::new(Recorded::default());
    let registry = Registry::builder()
        .driver(Arc::new(InMemoryDriver::new()))
        .delete_enabled(true)
        .event_sink(Some(
            recorded.clone() as Arc<dyn registry::events::EventSink>
        ))
        .garbage_collection(Some(GarbageCollection {
            interval: Duration::from_secs(3600),
            options: GcOptions {
                grace_period: Duration::ZERO,
                retention: vec![RetentionPolicy {
                    repositories: vec![RepositoryPattern::new("app").expect("pattern")],
                    keep_newest: Some(1),
                    keep_tags: Vec::new(),
                    untagged_older_than: None,
                }],
                ..GcOptions::default()
            },
        }))
        .build();
    let repository = registry.content().repository("app".parse().expect("name"));
    for tag in ["v1", "v2"] {
        let config = bytes::Bytes::from(format!("{{\"tag\":\"{tag}\"}}"));
        let digest = registry::model::Digest::sha256(&config);
        let body = stream::iter([Ok::<_, std::convert::Infallible>(config.clone())]);
        repository.put_blob(&digest, body).await.expect("config");
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.to_string(), "size": config.len()},
            "layers": [],
        })
        .to_string();
        repository
            .put_manifest(
                &registry::model::Reference::Tag(tag.parse().expect("tag")),
                Some("application/vnd.oci.image.manifest.v1+json"),
                bytes::Bytes::from(manifest),
                &[],
            )
            .await
            .expect("manifest");
    }
    serve_for_two_hours(&registry).await;

    let events = recorded
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let deletes: Vec<(String, String)> = events
        .iter()
        .filter(|event| event.action == registry::events::Action::Delete)
        .map(|event| (event.target.repository.clone(), event.target.tag.clone()))
        .collect();
    assert_eq!(
        deletes,
        [("app".to_owned(), "v1".to_owned())],
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_configuration_served_over_a_binarys_own_driver_keeps_its_other_settings() {
    let yaml = "storage:\n  filesystem:\n    rootdirectory: /nonexistent/registryd-test\n  \
                delete:\n    enabled: true\nhttp:\n  headers:\n    X-Served-By: [registryd-test]\n";
    let config = registry::config::Config::from_yaml(yaml, Vec::new())
        .expect("config")
        .config;
    let driver = Arc::new(InMemoryDriver::new());
    let registry = Registry::from_config_with_driver(&config, driver.clone()).expect("registry");
    assert_eq!(registry.driver().name(), "inmemory");
    assert!(
        !std::path::Path::new("/nonexistent/registryd-test").exists(),
        "the filesystem section was not used"
    );

    // What is stored goes to the driver given, and the configuration's delete setting holds.
    let repository = registry.content().repository("app".parse().expect("name"));
    let data = b"stored in the binary's own driver";
    let digest = registry::model::Digest::sha256(data);
    let chunks = [Ok::<_, std::convert::Infallible>(
        bytes::Bytes::from_static(data),
    )];
    repository
        .put_blob(&digest, futures_util::stream::iter(chunks))
        .await
        .expect("put blob");
    let blobs = StoragePath::parse("/docker/registry/v2/blobs/sha256").expect("path");
    let stored = driver.list(&blobs).await.expect("list");
    assert_eq!(stored.len(), 1, "{stored:?}");
    repository
        .delete_blob(&digest)
        .await
        .expect("delete enabled");
}
