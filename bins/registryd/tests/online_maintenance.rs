//! Maintenance while registryd serves, with the real binary over HTTP on 127.0.0.1: garbage
//! collection inside one of two processes serving one data directory while 20 clients push,
//! retag, delete and mount through both; and read-only mode switched by SIGHUP.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::workload::{self, COLLECTING_EVERY_200MS, call, describe, upload};
use common::{Reply, Server};

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
        &format!("{delete}{COLLECTING_EVERY_200MS}"),
    )
    .with_log_level("info");
    let mut serving = Server::with_storage(dir.path(), "serving", delete);
    collecting.start();
    serving.start();
    let servers = [collecting.address, serving.address];

    let ledger = workload::push_while_collecting(
        &servers,
        20,
        || collecting.log().matches("garbage collection done").count(),
        3,
        || {
            format!(
                "--- collecting server\n{}\n--- serving server\n{}",
                collecting.log(),
                serving.log()
            )
        },
    );
    let referenced = workload::assert_tags_pull_back(&ledger, &servers);
    workload::await_only_referenced_blobs(&referenced, || stored_blobs(&dir.path().join("data")));
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
