//! Crashes of the real binary: registryd is killed with SIGKILL while 20 clients push, then
//! restarted on the same data directory, three times over. After each restart, every blob and
//! manifest acknowledged with a 201 is there with its exact bytes, every acknowledged tag
//! resolves to its manifest, `registryd verify` finds nothing wrong, and every upload that was in
//! flight either resumes from the size it reports or is unknown with its data stored as the blob
//! in its repository. Every server is on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::{REGISTRYD, Reply, Server, exchange, pattern, sha256};

const CLIENTS: usize = 20;
const CHUNK: usize = 48 * 1024;

/// What the clients were told: acknowledged blobs and tags, and uploads still in flight.
#[derive(Default)]
struct Ledger {
    /// Digest -> content of every blob answered 201.
    blobs: BTreeMap<String, Vec<u8>>,
    /// Tag -> (manifest digest, manifest bytes) of every manifest answered 201.
    tags: BTreeMap<String, (String, Vec<u8>)>,
    /// Location -> content of every upload started and not acknowledged.
    in_flight: BTreeMap<String, Vec<u8>>,
    /// Answers a live server should never have given.
    unexpected: Vec<String>,
}

/// One client pushing images until `stop`: each a layer in chunks, a config, and a manifest
/// under a tag of its own. Records every acknowledgement and every upload in flight.
fn push_until_stopped(
    address: SocketAddr,
    client: usize,
    round: usize,
    ledger: &Mutex<Ledger>,
    acknowledged: &AtomicUsize,
    stop: &AtomicBool,
) {
    let mut image = 0;
    while !stop.load(Ordering::SeqCst) {
        let seed = (round * 1_000_000 + client * 1_000 + image) as u64;
        let layer = pattern(seed, CHUNK * 3 + (client * 977) % CHUNK);
        let repository = format!("crash/c{client}");
        let Some(layer_digest) = chunked_upload(address, &repository, &layer, ledger) else {
            return;
        };
        acknowledged.fetch_add(1, Ordering::SeqCst);
        let config = format!("{{\"client\":{client},\"image\":{image},\"round\":{round}}}");
        let config_digest = sha256(config.as_bytes());
        let Ok(reply) = exchange(
            address,
            "POST",
            &format!("/v2/{repository}/blobs/uploads/?digest={config_digest}"),
            &[],
            config.as_bytes(),
        ) else {
            return;
        };
        if !expected(&reply, 201, "config push", ledger) {
            return;
        }
        lock(ledger)
            .blobs
            .insert(config_digest.clone(), config.clone().into_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        let tag = format!("r{round}-i{image}");
        let Ok(reply) = exchange(
            address,
            "PUT",
            &format!("/v2/{repository}/manifests/{tag}"),
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            manifest.as_bytes(),
        ) else {
            return;
        };
        if !expected(&reply, 201, "manifest push", ledger) {
            return;
        }
        lock(ledger).tags.insert(
            format!("{repository}:{tag}"),
            (sha256(manifest.as_bytes()), manifest.into_bytes()),
        );
        acknowledged.fetch_add(1, Ordering::SeqCst);
        image += 1;
    }
}

/// Whether `reply` has the `status` a live server gives; records it when not.
fn expected(reply: &Reply, status: u16, what: &str, ledger: &Mutex<Ledger>) -> bool {
    if reply.status == status {
        return true;
    }
    lock(ledger).unexpected.push(format!(
        "{what}: {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    ));
    false
}

/// Uploads `data` to `repository` in chunks; its digest once acknowledged, `None` when the server
/// went away (the upload then stays in the ledger as in flight).
fn chunked_upload(
    address: SocketAddr,
    repository: &str,
    data: &[u8],
    ledger: &Mutex<Ledger>,
) -> Option<String> {
    let reply = exchange(
        address,
        "POST",
        &format!("/v2/{repository}/blobs/uploads/"),
        &[],
        b"",
    )
    .ok()?;
    if !expected(&reply, 202, "upload start", ledger) {
        return None;
    }
    let location = reply.header("location")?.to_owned();
    lock(ledger)
        .in_flight
        .insert(location.clone(), data.to_vec());
    for (index, chunk) in data.chunks(CHUNK).enumerate() {
        let start = index * CHUNK;
        let range = format!("{start}-{}", start + chunk.len() - 1);
        let reply = exchange(
            address,
            "PATCH",
            &location,
            &[("Content-Range", &range)],
            chunk,
        )
        .ok()?;
        if !expected(&reply, 202, "chunk", ledger) {
            return None;
        }
    }
    let digest = sha256(data);
    let reply = exchange(
        address,
        "PUT",
        &format!("{location}?digest={digest}"),
        &[],
        b"",
    )
    .ok()?;
    if !expected(&reply, 201, "upload completion", ledger) {
        return None;
    }
    let mut ledger = lock(ledger);
    ledger.in_flight.remove(&location);
    ledger.blobs.insert(digest.clone(), data.to_vec());
    Some(digest)
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every acknowledged blob is stored with exactly its bytes, read from the data directory and
/// through the API.
fn check_blobs(server: &Server, ledger: &Ledger) {
    for (digest, content) in &ledger.blobs {
        let hex = digest.trim_start_matches("sha256:");
        let file = server.dir.join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ));
        let stored = std::fs::read(&file)
            .unwrap_or_else(|error| panic!("acknowledged blob {digest}: {error}"));
        assert_eq!(
            sha256(&stored),
            *digest,
            "{} hashes to its digest",
            file.display()
        );
        assert!(stored == *content, "blob {digest} holds what was pushed");
    }
}

/// Every acknowledged tag resolves to its manifest, byte for byte.
fn check_tags(server: &Server, ledger: &Ledger) {
    for (reference, (digest, bytes)) in &ledger.tags {
        let (repository, tag) = reference.split_once(':').expect("name:tag");
        let reply = exchange(
            server.address,
            "GET",
            &format!("/v2/{repository}/manifests/{tag}"),
            &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
            b"",
        )
        .expect("GET manifest");
        assert_eq!(reply.status, 200, "tag {reference} resolves");
        assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
        assert!(reply.body == *bytes, "tag {reference} names its manifest");
    }
}

/// `registryd verify` over the data directory finds nothing wrong.
fn check_verify(server: &Server) {
    let out = Command::new(REGISTRYD)
        .arg("verify")
        .arg(&server.config)
        .output()
        .expect("run registryd verify");
    assert!(
        out.status.success(),
        "registryd verify found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every upload in flight at the kill resumes from the size it reports and completes with the
/// right digest, or is unknown because its completion moved its data into the blob before the
/// kill cut the 201 off. Waits out the leases of requests the kill cut off.
fn resume_in_flight(server: &Server, ledger: &mut Ledger) -> (usize, usize) {
    let (mut resumed, mut unknown) = (0, 0);
    let in_flight = std::mem::take(&mut ledger.in_flight);
    for (location, data) in in_flight {
        let deadline = Instant::now() + Duration::from_secs(30);
        let before = session_files(server, &location);
        let size = loop {
            let reply = exchange(server.address, "GET", &location, &[], b"").expect("status");
            if reply.status == 404 {
                assert_became_blob(server, &location, &reply, &data, &format!("GET; {before}"));
                break None;
            }
            assert_eq!(reply.status, 204, "status of {location}");
            let range = reply.header("range").expect("Range").to_owned();
            let size = match range.as_str() {
                "0-0" => 0,
                range => {
                    let last: usize = range
                        .strip_prefix("0-")
                        .and_then(|last| last.parse().ok())
                        .expect("Range: 0-<last>");
                    last + 1
                }
            };
            assert!(
                size <= data.len(),
                "{location} holds {size} of {} bytes",
                data.len()
            );
            let digest = sha256(&data);
            let range = format!("{size}-{}", data.len().saturating_sub(1));
            let headers: &[(&str, &str)] = if size < data.len() {
                &[("Content-Range", &range)]
            } else {
                &[]
            };
            let reply = exchange(
                server.address,
                "PUT",
                &format!("{location}?digest={digest}"),
                headers,
                &data[size..],
            )
            .expect("resume");
            match reply.status {
                201 => {
                    ledger.blobs.insert(digest, data.clone());
                    break Some(size);
                }
                // Held by a request the kill cut off, until its lease expires.
                409 => {
                    assert!(Instant::now() < deadline, "{location} stayed in use");
                    thread::sleep(Duration::from_millis(200));
                }
                404 => {
                    assert_became_blob(
                        server,
                        &location,
                        &reply,
                        &data,
                        &format!("PUT from {size}; {before}"),
                    );
                    break None;
                }
                status => panic!(
                    "resuming {location} from {size}: {status} {}",
                    String::from_utf8_lossy(&reply.body)
                ),
            }
        };
        match size {
            Some(_) => resumed += 1,
            None => unknown += 1,
        }
    }
    (resumed, unknown)
}

/// `reply`, a 404 about upload `location`, says the upload is unknown, and its `data` is stored as
/// the blob it was to become: an upload unknown after a crash is one whose completion was cut
/// short after its data moved, never one whose data was lost.
fn assert_became_blob(server: &Server, location: &str, reply: &Reply, data: &[u8], context: &str) {
    let body = String::from_utf8_lossy(&reply.body);
    assert!(body.contains("BLOB_UPLOAD_UNKNOWN"), "{location}: {body}");
    let (repository, _) = upload_session(location);
    let digest = sha256(data);
    let blob = exchange(
        server.address,
        "GET",
        &format!("/v2/{repository}/blobs/{digest}"),
        &[],
        b"",
    )
    .expect("GET blob");
    assert_eq!(
        blob.status, 200,
        "{location} unknown, yet {digest} absent ({context})"
    );
    assert!(blob.body == data, "{digest} holds what {location} uploaded");
}

/// The repository and session id of an upload `location` (absolute, `http://registry/v2/...`,
/// as registry:2 answers).
fn upload_session(location: &str) -> (&str, &str) {
    location
        .find("/v2/")
        .and_then(|at| location[at + 4..].split_once("/blobs/uploads/"))
        .expect("an upload location")
}

/// The files of the upload session at `location` and their sizes, for failure messages.
fn session_files(server: &Server, location: &str) -> String {
    let (repository, id) = upload_session(location);
    let root = server.dir.join(format!(
        "data/docker/registry/v2/repositories/{repository}/_uploads/{id}"
    ));
    let mut found = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(path),
                Ok(meta) => found.push(format!(
                    "{} ({} bytes)",
                    path.strip_prefix(&root).unwrap_or(&path).display(),
                    meta.len()
                )),
                Err(_) => {}
            }
        }
    }
    found.sort();
    format!("session files: [{}]", found.join(", "))
}

#[test]
fn sigkill_during_twenty_concurrent_pushes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::new(dir.path());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for (round, kill_after) in [15usize, 40, 70].into_iter().enumerate() {
        server.start();
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (ledger, acknowledged, stop) =
                    (ledger.clone(), acknowledged.clone(), stop.clone());
                let address = server.address;
                thread::spawn(move || {
                    push_until_stopped(address, client, round, &ledger, &acknowledged, &stop)
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        // The clients move almost in step, so past its count of acknowledgements the kill also
        // waits for uploads to be in flight (all 20 may be pushing manifests at that moment).
        while acknowledged.load(Ordering::SeqCst) < kill_after
            || lock(&ledger).in_flight.len() < CLIENTS / 4
        {
            assert!(Instant::now() < deadline, "the clients stalled");
            thread::sleep(Duration::from_millis(5));
        }
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for client in clients {
            client.join().expect("client thread");
        }

        server.start();
        let mut ledger = lock(&ledger);
        assert_eq!(
            ledger.unexpected,
            Vec::<String>::new(),
            "answers of a live server"
        );
        check_blobs(&server, &ledger);
        check_tags(&server, &ledger);
        check_verify(&server);
        let (resumed, unknown) = resume_in_flight(&server, &mut ledger);
        assert!(
            resumed + unknown > 0,
            "round {round}: the kill caught no upload in flight"
        );
        eprintln!(
            "round {round}: killed after {} acknowledgements; {} blobs and {} tags checked; \
             {resumed} uploads in flight resumed, {unknown} unknown",
            acknowledged.load(Ordering::SeqCst),
            ledger.blobs.len(),
            ledger.tags.len()
        );
        check_blobs(&server, &ledger);
        drop(ledger);
        server.kill();
    }
}
