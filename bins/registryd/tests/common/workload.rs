//! A push workload for registries that collect garbage while serving: clients that upload,
//! push, retag, delete and mount through several registryd processes over one store, a ledger of
//! what they were told, and the check that everything acknowledged still pulls back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{Reply, exchange, pattern, sha256};

/// A `storage.maintenance` section that collects every 200 ms with no grace period, untagged
/// manifests included: as many collections as possible race the clients.
pub(crate) const COLLECTING_EVERY_200MS: &str = "  maintenance:\n    gc:\n      enabled: true\n      interval: 200ms\n      graceperiod: 0s\n      deleteuntagged: true\n";

/// Each client pushes at least this many images, and goes on until told it is enough.
const ROUNDS: usize = 6;

pub(crate) const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// An image as pushed: the manifest's digest and bytes, and every blob it references.
#[derive(Clone)]
pub(crate) struct Pushed {
    pub(crate) digest: String,
    pub(crate) manifest: Vec<u8>,
    pub(crate) blobs: Vec<(String, Vec<u8>)>,
}

/// What the clients were told.
#[derive(Default)]
pub(crate) struct Ledger {
    /// (repository, tag) -> the image the tag names, for every tag acknowledged and not deleted.
    pub(crate) tags: BTreeMap<(String, String), Pushed>,
    /// Manifest pushes refused because a collection had removed a layer uploaded just before
    /// (the grace period is 0 here): a client pushes the layer again.
    pub(crate) refused: usize,
    /// Answers that should not happen.
    pub(crate) unexpected: Vec<String>,
}

pub(crate) fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn call(address: SocketAddr, method: &str, target: &str, body: &[u8]) -> Reply {
    let headers: &[(&str, &str)] = if method == "PUT" && target.contains("/manifests/") {
        &[("Content-Type", MANIFEST_TYPE)]
    } else {
        &[]
    };
    exchange(address, method, target, headers, body)
        .unwrap_or_else(|error| panic!("{method} {target}: {error}"))
}

pub(crate) fn describe(what: &str, reply: &Reply) -> String {
    format!(
        "{what}: {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    )
}

/// Uploads `data` as a blob of `repository` in one POST, again when a collection with no grace
/// period deleted the data as the upload completed (404 `BLOB_UPLOAD_UNKNOWN`, as a client is
/// told to start over).
pub(crate) fn upload(address: SocketAddr, repository: &str, data: &[u8]) -> Result<String, String> {
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

pub(crate) fn manifest_of(config: &(String, Vec<u8>), layers: &[(String, Vec<u8>)]) -> Vec<u8> {
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
pub(crate) fn push_manifest(
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
/// through one server, pushes the manifest through the next under `r<round>` and moves `latest`
/// to it, deletes every other image by digest, and mounts the shared layer and the config into
/// a second repository where it pushes an image of them. Stops after [`ROUNDS`] once `enough`.
pub(crate) fn client(
    servers: &[SocketAddr],
    client: usize,
    ledger: &Mutex<Ledger>,
    enough: &AtomicBool,
) -> Result<(), String> {
    let repository = format!("load/c{client}");
    let mirror = format!("mirror/c{client}");
    for round in (0..).take_while(|round| *round < ROUNDS || !enough.load(Ordering::SeqCst)) {
        let (blobs_to, manifests_to) = (
            servers[(client + round) % servers.len()],
            servers[(client + round + 1) % servers.len()],
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

/// Runs `clients` clients through `servers` until `collections()` (the collections finished so
/// far) reaches `wanted` and every client has pushed [`ROUNDS`] images; gives the ledger and the
/// collections that finished meanwhile. Fails on any answer a client should not get.
pub(crate) fn push_while_collecting(
    servers: &[SocketAddr],
    clients: usize,
    collections: impl Fn() -> usize,
    wanted: usize,
    logs: impl Fn() -> String,
) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let enough = Arc::new(AtomicBool::new(false));
    let running: Vec<_> = (0..clients)
        .map(|number| {
            let (ledger, enough, servers) = (ledger.clone(), enough.clone(), servers.to_vec());
            thread::spawn(move || {
                if let Err(problem) = client(&servers, number, &ledger, &enough) {
                    lock(&ledger).unexpected.push(problem);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while collections() < wanted && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let finished = collections();
    enough.store(true, Ordering::SeqCst);
    for client in running {
        client.join().expect("client thread");
    }
    let ledger = std::mem::take(&mut *lock(&ledger));
    assert!(
        ledger.unexpected.is_empty(),
        "unexpected answers: {:?}\n{}",
        ledger.unexpected,
        logs()
    );
    eprintln!(
        "{} tags acknowledged and kept; {} manifest pushes refused for a swept layer and \
         retried; {finished} collections during the pushes",
        ledger.tags.len(),
        ledger.refused
    );
    assert!(
        finished >= wanted,
        "collections finished during the pushes: {finished}"
    );
    ledger
}

/// Checks that every tag of `ledger` pulls byte for byte, through each of `servers` in turn, and
/// gives the digests of every manifest and blob the tags reach.
pub(crate) fn assert_tags_pull_back(ledger: &Ledger, servers: &[SocketAddr]) -> BTreeSet<String> {
    let mut referenced = BTreeSet::new();
    for (number, ((repository, tag), image)) in ledger.tags.iter().enumerate() {
        let server = servers[number % servers.len()];
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
        referenced.insert(image.digest.clone());
        referenced.extend(image.blobs.iter().map(|(digest, _)| digest.clone()));
    }
    referenced
}

/// Waits until `stored()` (the blobs in the store) is exactly `referenced`: the collecting
/// process goes on collecting after the pushes, so soon only what the tags reach is left.
pub(crate) fn await_only_referenced_blobs(
    referenced: &BTreeSet<String>,
    stored: impl Fn() -> BTreeSet<String>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = stored();
        if stored == *referenced {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "60 s after the pushes, {} blobs stored that no tag reaches, {} reached and not stored",
            stored.difference(referenced).count(),
            referenced.difference(&stored).count()
        );
        thread::sleep(Duration::from_millis(50));
    }
}
