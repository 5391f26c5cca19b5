//! Maintenance while registryd serves, with the real binary over HTTP on 127.0.0.1: garbage
//! collection inside one of two processes serving one data directory while 20 clients push,
//! retag, delete and mount through both; and read-only mode switched by SIGHUP.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::{Reply, Server, exchange, pattern, sha256};

const CLIENTS: usize = 20;
/// Each client pushes at least this many images, and goes on until enough collections ran.
const ROUNDS: usize = 6;
/// Collections that must finish while the clients push.
const COLLECTIONS: usize = 3;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// An image as pushed: the manifest's digest and bytes, and every blob it references.
#[derive(Clone)]
struct Pushed {
    digest: String,
    manifest: Vec<u8>,
    blobs: Vec<(String, Vec<u8>)>,
}

/// What the clients were told.
#[derive(Default)]
struct Ledger {
    /// (repository, tag) -> the image the tag names, for every tag acknowledged and not deleted.
    tags: BTreeMap<(String, String), Pushed>,
    /// Manifest pushes refused because a collection had removed a layer uploaded just before
    /// (the grace period is 0 here): a client pushes the layer again.
    refused: usize,
    /// Answers that should not happen.
    unexpected: Vec<String>,
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn call(address: SocketAddr, method: &str, target: &str, body: &[u8]) -> Reply {
    let headers: &[(&str, &str)] = if method == "PUT" && target.contains("/manifests/") {
        &[("Content-Type", MANIFEST_TYPE)]
    } else {
        &[]
    };
    exchange(address, method, target, headers, body)
        .unwrap_or_else(|error| panic!("{method} {target}: {error}"))
}

fn describe(what: &str, reply: &Reply) -> String {
    format!(
        "{what}: {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    )
}

/// Uploads `data` as a blob of `repository` in one POST, again when a collection with no grace
/// period deleted the data as the upload completed (404 `BLOB_UPLOAD_UNKNOWN`, as a client is
/// told to start over).
fn upload(address: SocketAddr, repository: &str, data: &[u8]) -> Result<String, String> {
    let digest = sha256(data);
    let mut reply = None;
    for _attempt in 0..5 {
        let answer = call(
            address,
            "POST",
            &format!("/v2/{repository}/blobs/uploads/?digest={digest}"),
            data,
        );
        let lost = answer.status == 404
            && String::from_utf8_lossy(&answer.body).contains("BLOB_UPLOAD_UNKNOWN");
        if answer.status == 201 {
            return Ok(digest);
        }
        reply = Some(answer);
        if !lost {
            break;
        }
    }
    Err(reply.map_or_else(String::new, |reply| describe("blob upload", &reply)))
}

fn manifest_of(config: &(String, Vec<u8>), layers: &[(String, Vec<u8>)]) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|(digest, data)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{}}}"#,
                data.len()
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
        config.0,
        config.1.len(),
        layers.join(",")
    )
    .into_bytes()
}

/// Pushes the manifest under `tags`; `Ok(false)` when refused because a layer went missing.
fn push_manifest(
    address: SocketAddr,
    repository: &str,
    pushed: &Pushed,
    tags: &[String],
) -> Result<bool, String> {
    for tag in tags {
        let reply = call(
            address,
            "PUT",
            &format!("/v2/{repository}/manifests/{tag}"),
            &pushed.manifest,
        );
        match reply.status {
            201 => {}
            400 if String::from_utf8_lossy(&reply.body).contains("MANIFEST_BLOB_UNKNOWN") => {
                return Ok(false);
            }
            _ => return Err(describe("manifest push", &reply)),
        }
    }
    Ok(true)
}

/// One client. Each round it uploads a layer shared by every client, one of its own and a config
/// through one server, pushes the manifest through the other under `r<round>` and moves `latest`
/// to it, deletes every other image by digest, and mounts the shared layer and the config into
/// a second repository where it pushes an image of them. Stops after [`ROUNDS`] once `enough`.
fn client(
    servers: [SocketAddr; 2],
    client: usize,
    ledger: &Mutex<Ledger>,
    enough: &AtomicBool,
) -> Result<(), String> {
    let repository = format!("load/c{client}");
    let mirror = format!("mirror/c{client}");
    for round in (0..).take_while(|round| *round < ROUNDS || !enough.load(Ordering::SeqCst)) {
        let (blobs_to, manifests_to) = (
            servers[(client + round) % 2],
            servers[(client + round + 1) % 2],
        );
        let shared = format!("shared layer of round {round}").into_bytes();
        // An odd round's image is deleted, and the next round pushes its layer again: a blob a
        // collection may be deleting as it is uploaded.
        let layer_round = round - (round + 1) % 2 * usize::from(round > 0);
        let own = pattern(
            (client * 100_000 + layer_round) as u64,
            8 * 1024 + client * 97,
        );
        let config = format!("{{\"client\":{client},\"round\":{round}}}").into_bytes();
        let mut pushed = None;
        // A layer swept between its upload and the manifest (no grace period): push it again.
        for _attempt in 0..5 {
            let layers = vec![
                (upload(blobs_to, &repository, &shared)?, shared.clone()),
                (upload(blobs_to, &repository, &own)?, own.clone()),
            ];
            let config = (upload(blobs_to, &repository, &config)?, config.clone());
            let manifest = manifest_of(&config, &layers);
            let image = Pushed {
                digest: sha256(&manifest),
                manifest,
                blobs: layers.into_iter().chain([config]).collect(),
            };
            let tags = [format!("r{round}"), "latest".to_owned()];
            if push_manifest(manifests_to, &repository, &image, &tags)? {
                let mut ledger = lock(ledger);
                for tag in tags {
                    ledger.tags.insert((repository.clone(), tag), image.clone());
                }
                pushed = Some(image);
                break;
            }
            lock(ledger).refused += 1;
        }
        let Some(image) = pushed else {
            return Err(format!("{repository} round {round}: refused five times"));
        };

        if round % 2 == 1 {
            let reply = call(
                blobs_to,
                "DELETE",
                &format!("/v2/{repository}/manifests/{}", image.digest),
                b"",
            );
            if reply.status != 202 {
                return Err(describe("manifest delete", &reply));
            }
            lock(ledger)
                .tags
                .retain(|(name, _), kept| name != &repository || kept.digest != image.digest);
            continue;
        }

        // Mount the shared layer and the config (the image is tagged, so both stay), and push an
        // image of them in the second repository.
        for (digest, _) in [&image.blobs[0], &image.blobs[2]] {
            let reply = call(
                manifests_to,
                "POST",
                &format!("/v2/{mirror}/blobs/uploads/?mount={digest}&from={repository}"),
                b"",
            );
            if reply.status != 201 {
                return Err(describe("mount", &reply));
            }
        }
        let manifest = manifest_of(&image.blobs[2], &image.blobs[..1]);
        let mounted = Pushed {
            digest: sha256(&manifest),
            manifest,
            blobs: vec![image.blobs[0].clone(), image.blobs[2].clone()],
        };
        let tags = [format!("m{round}")];
        if push_manifest(blobs_to, &mirror, &mounted, &tags)? {
            lock(ledger)
                .tags
                .insert((mirror.clone(), tags[0].clone()), mounted);
        } else {
            lock(ledger).refused += 1;
        }
    }
    Ok(())
}

/// Every blob data file in the store.
fn stored_blobs(data: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let blobs = data.join("docker/registry/v2/blobs/sha256");
    for prefix in std::fs::read_dir(&blobs).into_iter().flatten().flatten() {
        for blob in std::fs::read_dir(prefix.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if blob.path().join("data").is_file() {
                found.insert(format!("sha256:{}", blob.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn two_processes_over_one_directory_one_collecting_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let delete = "  delete:\n    enabled: true\n";
    let mut collecting = Server::with_storage(
        dir.path(),
        "collecting",
        &format!(
            "{delete}  maintenance:\n    gc:\n      enabled: true\n      interval: 200ms\n      graceperiod: 0s\n      deleteuntagged: true\n"
        ),
    )
    .with_log_level("info");
    let mut serving = Server::with_storage(dir.path(), "serving", delete);
    collecting.start();
    serving.start();
    let servers = [collecting.address, serving.address];

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let enough = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|number| {
            let (ledger, enough) = (ledger.clone(), enough.clone());
            thread::spawn(move || {
                if let Err(problem) = client(servers, number, &ledger, &enough) {
                    lock(&ledger).unexpected.push(problem);
                }
            })
        })
        .collect();
    let collected = || collecting.log().matches("garbage collection done").count();
    let deadline = Instant::now() + Duration::from_secs(120);
    while collected() < COLLECTIONS && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let collections = collected();
    enough.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("client thread");
    }
    let ledger = lock(&ledger);
    assert!(
        ledger.unexpected.is_empty(),
        "unexpected answers: {:?}\n--- collecting server\n{}\n--- serving server\n{}",
        ledger.unexpected,
        collecting.log(),
        serving.log()
    );
    eprintln!(
        "{} tags acknowledged and kept; {} manifest pushes refused for a swept layer and \
         retried; {collections} collections during the pushes",
        ledger.tags.len(),
        ledger.refused
    );
    assert!(
        collections >= COLLECTIONS,
        "collections finished during the pushes: {collections}"
    );

    // Every tag acknowledged and not deleted pulls byte for byte through either process.
    let mut referenced = BTreeSet::new();
    for (number, ((repository, tag), image)) in ledger.tags.iter().enumerate() {
        // Through the process that collects and the one that does not, in turn.
        {
            let server = servers[number % 2];
            let reply = call(
                server,
                "GET",
                &format!("/v2/{repository}/manifests/{tag}"),
                b"",
            );
            assert_eq!(reply.status, 200, "{repository}:{tag}");
            assert_eq!(reply.body, image.manifest, "{repository}:{tag}");
            for (digest, data) in &image.blobs {
                let reply = call(
                    server,
                    "GET",
                    &format!("/v2/{repository}/blobs/{digest}"),
                    b"",
                );
                assert_eq!(reply.status, 200, "{digest} of {repository}:{tag}");
                assert!(reply.body == *data, "{digest} of {repository}:{tag}");
            }
        }
        referenced.insert(image.digest.clone());
        referenced.extend(image.blobs.iter().map(|(digest, _)| digest.clone()));
    }

    // The collecting process goes on collecting: soon only what the tags reach is stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = stored_blobs(&dir.path().join("data"));
        if stored == referenced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "60 s after the pushes, {} blobs stored that no tag reaches, {} reached and not stored",
            stored.difference(&referenced).count(),
            referenced.difference(&stored).count()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Rewrites the server's configuration with read-only mode `on`, and tells it with SIGHUP.
fn switch_read_only(server: &Server, on: bool) {
    let config = std::fs::read_to_string(&server.config).expect("config");
    let switched = config.replace(
        &format!("readonly:\n      enabled: {}", !on),
        &format!("readonly:\n      enabled: {on}"),
    );
    assert_ne!(config, switched, "the config names read-only mode");
    std::fs::write(&server.config, switched).expect("config rewritten");
    let pid = server.pid().expect("running").to_string();
    let status = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// The status of an upload start, polled until it is `wanted` (the reload is asynchronous).
fn upload_start_becomes(server: &Server, wanted: u16) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = call(server.address, "POST", "/v2/app/blobs/uploads/", b"");
        if reply.status == wanted {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after 20 s",
            describe("upload start", &reply)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn read_only_mode_refuses_writes_serves_pulls_and_switches_on_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::with_storage(
        dir.path(),
        "config",
        "  delete:\n    enabled: true\n  maintenance:\n    readonly:\n      enabled: false\n",
    );
    server.start();
    let data = b"pushed before read-only mode";
    let digest = upload(server.address, "app", data).expect("upload");

    switch_read_only(&server, true);
    let refused = upload_start_becomes(&server, 405);
    let body = String::from_utf8_lossy(&refused.body);
    assert!(body.contains("\"UNSUPPORTED\""), "{body}");
    assert!(body.contains("read-only"), "{body}");
    for (method, target) in [
        ("PUT", "/v2/app/manifests/latest".to_owned()),
        ("DELETE", format!("/v2/app/blobs/{digest}")),
        (
            "POST",
            format!("/v2/other/blobs/uploads/?mount={digest}&from=app"),
        ),
    ] {
        let reply = call(server.address, method, &target, b"{}");
        assert_eq!(reply.status, 405, "{}", describe(&target, &reply));
    }
    let pulled = call(
        server.address,
        "GET",
        &format!("/v2/app/blobs/{digest}"),
        b"",
    );
    assert_eq!((pulled.status, &pulled.body[..]), (200, &data[..]));
    assert_eq!(call(server.address, "GET", "/v2/_catalog", b"").status, 200);

    switch_read_only(&server, false);
    upload_start_becomes(&server, 202);
    let reply = call(
        server.address,
        "DELETE",
        &format!("/v2/app/blobs/{digest}"),
        b"",
    );
    assert_eq!(reply.status, 202, "{}", describe("delete", &reply));
}

#[test]
fn a_registry_configured_read_only_starts_and_refuses_pushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::with_storage(
        dir.path(),
        "config",
        "  maintenance:\n    readonly:\n      enabled: true\n",
    );
    server.start();
    let reply = call(server.address, "POST", "/v2/app/blobs/uploads/", b"");
    assert_eq!(reply.status, 405, "{}", describe("upload start", &reply));
    assert_eq!(call(server.address, "GET", "/v2/", b"").status, 200);
}
