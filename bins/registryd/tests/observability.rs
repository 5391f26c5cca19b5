//! The real binary's notifications, logs and debug server, configured as registry:2 users write
//! them: events pushed while the webhook is down survive a SIGKILL of registryd and all arrive
//! once it and the webhook are back; `log.formatter: json` with `log.fields` and
//! `log.reportcaller` writes JSON lines carrying the fields and the source of each event;
//! `http.debug` serves metrics and health. Every server is on 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::{Server, exchange, sha256};

/// How long a test waits for a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// A free port on 127.0.0.1.
fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// A webhook on `address`: every POST body it gets is sent on the returned channel, answered 200.
fn webhook(address: SocketAddr) -> mpsc::Receiver<serde_json::Value> {
    let listener = TcpListener::bind(address).expect("bind webhook");
    let (sender, received) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sender = sender.clone();
            thread::spawn(move || serve_webhook_connection(stream, &sender));
        }
    });
    received
}

/// Reads requests from one keep-alive connection until it closes.
fn serve_webhook_connection(stream: TcpStream, sender: &mpsc::Sender<serde_json::Value>) {
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() && !first {
                break;
            }
            first = false;
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let _ = sender.send(serde_json::from_slice(&body).unwrap_or_default());
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// Pushes a one-layer image tagged `tag` to `repository`; returns the manifest's digest.
fn push_image(server: &Server, repository: &str, tag: &str) -> String {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"tag\":\"{tag}\"}}");
    let layer = format!("the layer of {tag}");
    for blob in [config.as_bytes(), layer.as_bytes()] {
        let reply = exchange(
            server.address,
            "POST",
            &format!("/v2/{repository}/blobs/uploads/?digest={}", sha256(blob)),
            &[],
            blob,
        )
        .expect("blob push");
        assert_eq!(reply.status, 201, "blob push");
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config.as_bytes()), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer.as_bytes()), "size": layer.len()}],
    })
    .to_string();
    let reply = exchange(
        server.address,
        "PUT",
        &format!("/v2/{repository}/manifests/{tag}"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.as_bytes(),
    )
    .expect("manifest push");
    assert_eq!(reply.status, 201, "manifest push");
    sha256(manifest.as_bytes())
}

#[test]
fn events_of_pushes_acknowledged_before_a_sigkill_reach_the_webhook_afterwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = free_address();
    let mut server = Server::new(dir.path());
    let config = std::fs::read_to_string(&server.config).expect("config");
    std::fs::write(
        &server.config,
        format!(
            "{config}notifications:\n  endpoints:\n    - name: ci\n      url: http://{hook}/events\n      timeout: 1s\n      threshold: 3\n      backoff: 50ms\n"
        ),
    )
    .expect("config");

    // The webhook is down: every push is acknowledged, its events wait in the outbox.
    server.start();
    let mut pushed = BTreeMap::new();
    for index in 0..4 {
        let tag = format!("v{index}");
        pushed.insert(tag.clone(), push_image(&server, "app/crash", &tag));
    }
    server.kill();

    // Back up, still without the webhook: one more push, then the webhook comes.
    server.start();
    pushed.insert("v4".to_owned(), push_image(&server, "app/crash", "v4"));
    let received = webhook(hook);
    let deadline = Instant::now() + PATIENCE;
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let all_arrived = |ids: &BTreeMap<String, BTreeSet<String>>| {
        pushed
            .iter()
            .all(|(tag, digest)| ids.contains_key(&format!("push app/crash {digest} {tag}")))
    };
    while !all_arrived(&ids) {
        let left = deadline.saturating_duration_since(Instant::now());
        let envelope = received.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "events missing after {PATIENCE:?}: {ids:#?}\n{}",
                server.log()
            )
        });
        for event in envelope["events"].as_array().into_iter().flatten() {
            let key = format!(
                "{} {} {} {}",
                event["action"].as_str().unwrap_or_default(),
                event["target"]["repository"].as_str().unwrap_or_default(),
                event["target"]["digest"].as_str().unwrap_or_default(),
                event["target"]["tag"].as_str().unwrap_or_default(),
            );
            ids.entry(key)
                .or_default()
                .insert(event["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert!(
        ids.values().all(|ids| ids.len() == 1),
        "duplicates carry the same id: {ids:#?}"
    );
    // 5 manifests and 10 blobs.
    assert_eq!(ids.len(), 15, "{ids:#?}");
}

#[test]
fn json_logs_carry_the_configured_fields_and_callers_and_the_debug_server_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let debug = free_address();
    let mut server = Server::new(dir.path()).with_log_level("info");
    let config = std::fs::read_to_string(&server.config).expect("config");
    let config = config
        .replacen(
            "log:\n",
            "log:\n  formatter: json\n  reportcaller: true\n  fields:\n    service: registry\n    environment: test\n",
            1,
        )
        .replacen("  accesslog:\n    disabled: true\n", "", 1);
    std::fs::write(
        &server.config,
        format!("{config}  debug:\n    addr: {debug}\n    prometheus:\n      enabled: true\n      path: /metrics\n"),
    )
    .expect("config");
    server.start();

    let reply = exchange(
        server.address,
        "GET",
        "/v2/",
        &[("X-Request-Id", "req-42")],
        b"",
    )
    .expect("GET /v2/");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), Some("req-42"));

    let deadline = Instant::now() + PATIENCE;
    let metrics = loop {
        let reply = exchange(debug, "GET", "/metrics", &[], b"").expect("GET /metrics");
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        if text.contains("route=\"base\"") {
            break text;
        }
        assert!(Instant::now() < deadline, "no request metric: {text}");
        // The metric is recorded after the response is sent: poll until it shows.
        thread::sleep(Duration::from_millis(20));
    };
    assert!(
        metrics.contains("registry_http_requests_total"),
        "{metrics}"
    );
    let health = exchange(debug, "GET", "/debug/health", &[], b"").expect("health");
    assert_eq!((health.status, health.body.as_slice()), (200, &b"{}"[..]));
    let ready = exchange(debug, "GET", "/debug/ready", &[], b"").expect("ready");
    assert_eq!(ready.status, 200);

    let access = loop {
        let log = server.log();
        let line = log
            .lines()
            .find(|line| line.contains("registryd::access") && line.contains("req-42"))
            .map(str::to_owned);
        if let Some(line) = line {
            break line;
        }
        assert!(Instant::now() < deadline, "no access line: {log}");
        // Another process writes the log: poll the file until the line is there.
        thread::sleep(Duration::from_millis(20));
    };
    let parsed: serde_json::Value = serde_json::from_str(&access).expect("a JSON line");
    assert_eq!(parsed["service"], "registry");
    assert_eq!(parsed["environment"], "test");
    assert_eq!(parsed["request_id"], "req-42");
    assert_eq!(parsed["status"], 200);
    // log.reportcaller: the source file and line of the event.
    assert!(
        parsed["filename"]
            .as_str()
            .is_some_and(|file| file.ends_with(".rs")),
        "{access}"
    );
    assert!(parsed["line_number"].is_u64(), "{access}");
    for line in server.log().lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "every line is JSON: {line}"
        );
    }
}
