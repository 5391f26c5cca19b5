//! Several registryd processes over one S3 bucket (moto, a local S3 on 127.0.0.1), as replicas
//! behind a load balancer: a chunked upload spread over three of them, a tag moved through one
//! and read through the others, a collection in one while the others take pushes, and blob pulls
//! redirected to the bucket.
//!
//! The tests skip when moto cannot be installed here, unless `CI` or `REGISTRY_S3_TESTS=require`
//! is set (see `registry_storage_s3::moto`).

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use common::workload::{self, COLLECTING_EVERY_200MS, MANIFEST_TYPE, call, describe, upload};
use common::{Reply, Server, exchange, pattern, sha256};
use registry_storage::{StorageDriver, StorageError, StoragePath, WalkControl};
use registry_storage_s3::S3Driver;
use registry_storage_s3::moto::MotoServer;

/// registryd processes over one bucket of one moto.
struct Replicas {
    servers: Vec<Server>,
    moto: MotoServer,
    bucket: String,
    _dir: tempfile::TempDir,
}

impl Replicas {
    /// `count` replicas over a new bucket, uploading in 5 MiB parts; `storage[i]` (YAML indented by two spaces) is added to
    /// replica i's `storage` section. `None` when there is no local S3 here (the test skips).
    fn start(count: usize, storage: &[&str]) -> Option<Replicas> {
        let moto = MotoServer::start()?;
        let bucket = "replicas".to_owned();
        moto.create_bucket(&bucket);
        let dir = tempfile::tempdir().expect("tempdir");
        let s3 = format!(
            "  s3:\n{}    chunksize: 5242880\n",
            moto.config_yaml(&bucket, 4)
        );
        let servers = (0..count)
            .map(|number| {
                let extra = storage.get(number).copied().unwrap_or_default();
                let mut server = Server::with_storage_section(
                    dir.path(),
                    &format!("replica{number}"),
                    &format!("{s3}{extra}"),
                )
                .with_log_level("info");
                server.start();
                server
            })
            .collect();
        Some(Replicas {
            servers,
            moto,
            bucket,
            _dir: dir,
        })
    }

    fn addresses(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|server| server.address).collect()
    }

    fn logs(&self) -> String {
        self.servers
            .iter()
            .enumerate()
            .map(|(number, server)| format!("--- replica {number}\n{}\n", server.log()))
            .collect()
    }

    /// Every blob whose data is in the bucket, listed with the S3 driver itself.
    fn stored_blobs(&self) -> BTreeSet<String> {
        let driver = S3Driver::new(self.moto.options(&self.bucket)).expect("s3 driver");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let blobs = StoragePath::parse("/docker/registry/v2/blobs/sha256").expect("path");
        let mut found = BTreeSet::new();
        let walked = runtime.block_on(driver.walk(&blobs, &mut |entry| {
            if !entry.is_dir
                && entry.path.file_name() == Some("data")
                && let Some(hex) = entry
                    .path
                    .parent()
                    .as_ref()
                    .and_then(StoragePath::file_name)
            {
                found.insert(format!("sha256:{hex}"));
            }
            WalkControl::Continue
        }));
        match walked {
            Ok(()) | Err(StorageError::NotFound { .. }) => found,
            Err(error) => panic!("listing the bucket's blobs: {error}"),
        }
    }
}

/// A load balancer that sends each connection to the next of its backends in turn, and counts
/// what each got. The tests' client sends one request per connection, so each request goes to
/// the next replica.
struct RoundRobin {
    address: SocketAddr,
    served: Arc<Vec<AtomicUsize>>,
}

impl RoundRobin {
    fn start(backends: Vec<SocketAddr>) -> RoundRobin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the balancer");
        let address = listener.local_addr().expect("balancer address");
        let served: Arc<Vec<AtomicUsize>> =
            Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let counts = served.clone();
        // Runs until the test process ends.
        thread::spawn(move || {
            for (number, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                let backend = number % backends.len();
                counts[backend].fetch_add(1, Ordering::SeqCst);
                let to = backends[backend];
                thread::spawn(move || relay(client, to));
            }
        });
        RoundRobin { address, served }
    }

    /// How many connections each backend got.
    fn served(&self) -> Vec<usize> {
        self.served
            .iter()
            .map(|count| count.load(Ordering::SeqCst))
            .collect()
    }
}

/// Copies bytes both ways between `client` and a new connection to `backend` until both close.
fn relay(client: TcpStream, backend: SocketAddr) {
    let Ok(server) = TcpStream::connect(backend) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        let mut buffer = [0u8; 64 * 1024];
        while let Ok(read) = from.read(&mut buffer) {
            if read == 0 || to.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    };
    let (Ok(client_side), Ok(server_side)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = thread::spawn(move || pipe(client_side, server_side));
    pipe(server, client);
    let _ = upstream.join();
}

/// The path and query of a `Location` header, absolute or not.
fn location_path(reply: &Reply) -> String {
    let location = reply.header("location").expect("a Location header");
    match location.split_once("://") {
        Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_owned(),
        None => location.to_owned(),
    }
}

#[test]
fn a_chunked_upload_whose_requests_land_on_three_replicas_completes() {
    // 4 MiB PATCHes in 5 MiB parts: the second and third PATCH each send a part of the multipart
    // upload from another replica than the one that holds the part before.
    let Some(replicas) = Replicas::start(3, &[]) else {
        return;
    };
    let balancer = RoundRobin::start(replicas.addresses());
    let data = pattern(11, 12 << 20);
    let digest = sha256(&data);

    // POST, PATCH, PATCH, PATCH, PUT: replicas 0, 1, 2, 0, 1.
    let started = call(
        balancer.address,
        "POST",
        "/v2/spread/app/blobs/uploads/",
        b"",
    );
    assert_eq!(started.status, 202, "{}", describe("POST", &started));
    let mut location = location_path(&started);
    let mut offset = 0;
    for chunk in data.chunks(4 << 20) {
        let range = format!("{offset}-{}", offset + chunk.len() - 1);
        let reply = exchange(
            balancer.address,
            "PATCH",
            &location,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
            chunk,
        )
        .expect("PATCH");
        assert_eq!(reply.status, 202, "{}", describe("PATCH", &reply));
        assert_eq!(
            reply.header("range"),
            Some(&*format!("0-{}", offset + chunk.len() - 1))
        );
        location = location_path(&reply);
        offset += chunk.len();
    }
    let separator = if location.contains('?') { '&' } else { '?' };
    let finished = call(
        balancer.address,
        "PUT",
        &format!("{location}{separator}digest={digest}"),
        b"",
    );
    assert_eq!(
        finished.status,
        201,
        "{}\n{}",
        describe("PUT", &finished),
        replicas.logs()
    );
    assert_eq!(balancer.served(), [2, 2, 1]);

    for (number, address) in replicas.addresses().into_iter().enumerate() {
        let pulled = exchange(
            address,
            "GET",
            &format!("/v2/spread/app/blobs/{digest}"),
            &[],
            b"",
        )
        .expect("GET");
        // Redirected to the bucket: follow it as a client does.
        assert_eq!(
            pulled.status,
            307,
            "replica {number}: {}",
            describe("GET", &pulled)
        );
        let url = pulled.header("location").expect("Location");
        let content = fetch(url);
        assert_eq!(content.status, 200, "replica {number}: presigned GET");
        assert!(content.body == data, "replica {number}: the blob's bytes");
    }
}

/// GET of an absolute `http://host:port/...` URL, with that `Host` (a presigned URL signs it).
fn fetch(url: &str) -> Reply {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let address: SocketAddr = host.parse().expect("host:port");
    exchange(address, "GET", target, &[("Host", host)], b"").expect("GET the URL")
}

#[test]
fn a_tag_moved_through_one_replica_is_served_by_every_replica_at_once() {
    let Some(replicas) = Replicas::start(3, &[]) else {
        return;
    };
    let servers = replicas.addresses();
    let layer = pattern(5, 4096);
    let layer_digest = upload(servers[0], "moving/app", &layer).expect("layer");
    for round in 0..6 {
        let config = format!("{{\"round\":{round}}}").into_bytes();
        let config_digest = upload(servers[round % 3], "moving/app", &config).expect("config");
        let manifest = workload::manifest_of(
            &(config_digest, config),
            &[(layer_digest.clone(), layer.clone())],
        );
        let digest = sha256(&manifest);
        let through = servers[(round + 1) % 3];
        let pushed = exchange(
            through,
            "PUT",
            "/v2/moving/app/manifests/latest",
            &[("Content-Type", MANIFEST_TYPE)],
            &manifest,
        )
        .expect("PUT");
        assert_eq!(pushed.status, 201, "{}", describe("PUT", &pushed));
        // Every replica, including the two that served the previous `latest` a moment ago
        // (and may cache it), answers the new one.
        for (number, server) in servers.iter().enumerate() {
            let pulled = call(*server, "GET", "/v2/moving/app/manifests/latest", b"");
            assert_eq!(pulled.status, 200, "round {round}, replica {number}");
            assert_eq!(
                pulled.header("docker-content-digest"),
                Some(digest.as_str()),
                "round {round}, replica {number}: a stale tag"
            );
            assert_eq!(pulled.body, manifest, "round {round}, replica {number}");
            let head = call(*server, "HEAD", "/v2/moving/app/manifests/latest", b"");
            assert_eq!(
                head.header("docker-content-digest"),
                Some(digest.as_str()),
                "round {round}, replica {number}: a stale tag on HEAD"
            );
        }
    }
}

#[test]
fn a_repository_pushed_or_emptied_through_one_replica_is_in_every_catalog_at_once() {
    let delete = "  delete:\n    enabled: true\n";
    let Some(replicas) = Replicas::start(3, &[delete, delete, delete]) else {
        return;
    };
    let servers = replicas.addresses();
    let catalogs = || -> Vec<String> {
        servers
            .iter()
            .map(|server| {
                let reply = call(*server, "GET", "/v2/_catalog", b"");
                assert_eq!(reply.status, 200, "{}", describe("catalog", &reply));
                String::from_utf8_lossy(&reply.body).into_owned()
            })
            .collect()
    };
    let mut expected: Vec<String> = Vec::new();
    for round in 0..4 {
        // Every replica reads (and may keep) the catalog, then one of them adds a repository.
        let listed = format!(r#"{{"repositories":[{}]}}"#, expected.join(","));
        assert_eq!(catalogs(), vec![listed; 3], "round {round}");
        let repository = format!("catalog/r{round}");
        let through = servers[round % 3];
        let config = format!("{{\"round\":{round}}}").into_bytes();
        let config_digest = upload(through, &repository, &config).expect("config");
        let manifest = workload::manifest_of(
            &(config_digest.clone(), config.clone()),
            &[(config_digest, config)],
        );
        let pushed = exchange(
            through,
            "PUT",
            &format!("/v2/{repository}/manifests/v1"),
            &[("Content-Type", MANIFEST_TYPE)],
            &manifest,
        )
        .expect("PUT");
        assert_eq!(pushed.status, 201, "{}", describe("PUT", &pushed));
        expected.push(format!("\"{repository}\""));
    }
    let listed = format!(r#"{{"repositories":[{}]}}"#, expected.join(","));
    assert_eq!(catalogs(), vec![listed; 3]);

    // Deleting the only manifest of a repository through one replica empties it for all.
    let digest = sha256(&{
        let reply = call(servers[0], "GET", "/v2/catalog/r0/manifests/v1", b"");
        reply.body
    });
    let deleted = call(
        servers[1],
        "DELETE",
        &format!("/v2/catalog/r0/manifests/{digest}"),
        b"",
    );
    assert_eq!(deleted.status, 202, "{}", describe("DELETE", &deleted));
    expected.remove(0);
    let listed = format!(r#"{{"repositories":[{}]}}"#, expected.join(","));
    assert_eq!(catalogs(), vec![listed; 3]);
}

#[test]
fn three_replicas_one_collecting_while_the_others_take_pushes_lose_nothing_acknowledged() {
    let delete = "  delete:\n    enabled: true\n  redirect:\n    disable: true\n";
    let collecting = format!("{delete}{COLLECTING_EVERY_200MS}");
    let Some(replicas) = Replicas::start(3, &[&collecting, delete, delete]) else {
        return;
    };
    let servers = replicas.addresses();
    let collector = &replicas.servers[0];
    let ledger = workload::push_while_collecting(
        &servers,
        4,
        || collector.log().matches("garbage collection done").count(),
        3,
        || replicas.logs(),
    );
    let referenced = workload::assert_tags_pull_back(&ledger, &servers);
    workload::await_only_referenced_blobs(&referenced, || replicas.stored_blobs());
}
