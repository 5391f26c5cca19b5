//! registryd behind nginx, set up as registry:2's nginx recipe sets it up: the `Location` URLs it
//! answers with point at nginx (from `Host`, or from `X-Forwarded-Proto` and `X-Forwarded-Host`
//! where a proxy terminating TLS sets them), and skopeo pushes and pulls through it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{Need, RegistryConfig, Server, e2e_gate, free_port, http_status, registryd};
use super::{Skopeo, images, small_layer, temp_dir};

/// nginx on 127.0.0.1 in front of a registry, with its own prefix directory; stopped when
/// dropped.
struct Nginx {
    child: Child,
    /// Where clients send requests.
    plain: SocketAddr,
    /// A second server block that presents itself as `https://registry.example.com`, as a proxy
    /// terminating TLS there would.
    tls_terminated: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(binary: &Path, registry: &str) -> Nginx {
        let dir = temp_dir("registry-e2e-nginx-");
        let (plain, tls_terminated) = (free_port(), free_port());
        let prefix = dir.path().display();
        // The recipe's proxy settings: the client's Host passed on, the scheme it used, no limit
        // on bodies and no buffering of uploads.
        let location = format!(
            "location /v2/ {{
                proxy_pass http://{registry};
                proxy_set_header X-Real-IP $remote_addr;
                proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                proxy_read_timeout 900;
                proxy_request_buffering off;
                proxy_http_version 1.1;"
        );
        let config = format!(
            "user root;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 0;
    chunked_transfer_encoding on;
    server {{
        listen {plain};
        {location}
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
    server {{
        listen {tls_terminated};
        {location}
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host registry.example.com;
        }}
    }}
}}
"
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).expect("write nginx.conf");
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx {
            child,
            plain,
            tls_terminated,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_status(plain, "/v2/") != Some(200) {
            assert!(
                Instant::now() < deadline,
                "nginx did not answer within 30 s:\n{}",
                std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `Location` of a new upload started through `address`, the request naming `host`.
fn upload_location(address: SocketAddr, host: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to nginx");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "POST /v2/e2e/proxied/blobs/uploads/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let reader = BufReader::new(stream);
    let mut status = String::new();
    let mut location = None;
    for line in reader.lines() {
        let line = line.expect("read");
        if line.is_empty() {
            break;
        }
        if status.is_empty() {
            status = line.clone();
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("location")
        {
            location = Some(value.trim().to_owned());
        }
    }
    assert!(
        status.contains(" 202 "),
        "upload start through nginx: {status}"
    );
    location.expect("a Location header")
}

#[test]
fn behind_nginx_locations_point_at_nginx_and_skopeo_pushes_and_pulls() {
    let Some(tools) = e2e_gate(
        "behind_nginx_locations_point_at_nginx_and_skopeo_pushes_and_pulls",
        &[Need::Nginx, Need::Skopeo],
    ) else {
        return;
    };
    let work = temp_dir("registry-e2e-proxied-");
    let server = Server::start(
        &registryd(),
        &RegistryConfig::filesystem(&work.path().join("data")),
    );
    let nginx = Nginx::start(tools.nginx(), &server.host());

    let host = nginx.plain.to_string();
    let location = upload_location(nginx.plain, &host);
    assert!(
        location.starts_with(&format!("http://{host}/v2/e2e/proxied/blobs/uploads/")),
        "a client of nginx is sent back to nginx, not to the registry behind it: {location}"
    );
    let location = upload_location(nginx.tls_terminated, "127.0.0.1");
    assert!(
        location.starts_with("https://registry.example.com/v2/e2e/proxied/blobs/uploads/"),
        "the scheme and host the proxy says the client used: {location}"
    );

    // A real client follows those Locations through nginx.
    let skopeo = Skopeo {
        bin: tools.skopeo(),
    };
    let archive = work.path().join("image.tar");
    let tag = format!("{host}/e2e/proxied:1");
    images::write_docker_archive(
        &archive,
        &tag,
        &[small_layer("etc/proxied.txt", "through nginx\n")],
    );
    skopeo.copy(
        false,
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{tag}"),
    );
    let manifest = skopeo.inspect_raw(&format!("docker://{tag}"));
    assert!(manifest.contains("schemaVersion"), "{manifest}");
    let log = std::fs::read_to_string(nginx.dir.path().join("access.log")).unwrap_or_default();
    assert!(
        log.contains("PATCH /v2/e2e/proxied/blobs/uploads/")
            || log.contains("PUT /v2/e2e/proxied/blobs/uploads/"),
        "the upload went through nginx:\n{log}"
    );
}
