//! Docker's mirror path: the engine configured with `registry-mirrors` pulls `busybox`, which
//! reaches a registryd pull-through cache as `library/busybox`, which fetches it from a local
//! upstream registryd; the second pull is served from the cache with the upstream stopped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{Need, RegistryConfig, Server, e2e_gate, registryd, run, run_ok};
use super::{Docker, QUICK, SLOW, busybox_layer, images, temp_dir};

const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// The engine's `registry-mirrors` set to one URL for the life of the value; the engine's
/// previous `daemon.json` (or its absence) is restored when dropped. Both changes are applied
/// with SIGHUP, which reloads the mirrors without restarting the engine or its containers.
struct EngineMirror {
    original: Option<Vec<u8>>,
    docker: PathBuf,
    url: String,
}

impl EngineMirror {
    fn set(docker: &Path, url: &str) -> EngineMirror {
        let original = std::fs::read(DAEMON_JSON).ok();
        let mut config: serde_json::Map<String, serde_json::Value> = original
            .as_deref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or_default();
        config.insert("registry-mirrors".into(), serde_json::json!([url]));
        std::fs::create_dir_all("/etc/docker").unwrap_or_else(|e| {
            panic!("cannot create /etc/docker (the mirror test needs root): {e}")
        });
        std::fs::write(
            DAEMON_JSON,
            serde_json::to_vec_pretty(&config).expect("JSON"),
        )
        .unwrap_or_else(|e| panic!("cannot write {DAEMON_JSON} (the mirror test needs root): {e}"));
        let engine = EngineMirror {
            original,
            docker: docker.to_path_buf(),
            url: url.to_owned(),
        };
        engine.reload_until(|mirrors| mirrors.contains(url));
        engine
    }

    /// Sends SIGHUP to dockerd and waits until `docker info` lists mirrors satisfying `done`.
    fn reload_until(&self, done: impl Fn(&str) -> bool) {
        let pid = dockerd_pid().expect("dockerd runs (.ci/e2e-setup starts it)");
        run_ok(Command::new("kill").args(["-HUP", &pid.to_string()]), QUICK);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = run(
                Command::new(&self.docker).args([
                    "info",
                    "--format",
                    "{{json .RegistryConfig.Mirrors}}",
                ]),
                QUICK,
            );
            let mirrors = info.stdout;
            if done(&mirrors) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not reload its mirrors within 30 s: {mirrors}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for EngineMirror {
    fn drop(&mut self) {
        // A missing file leaves the engine's settings as they were on reload, so the mirror is
        // taken out explicitly first, and the file removed afterwards.
        let restored = match &self.original {
            Some(bytes) => bytes.clone(),
            None => br#"{"registry-mirrors": []}"#.to_vec(),
        };
        if std::fs::write(DAEMON_JSON, restored).is_ok() && dockerd_pid().is_some() {
            self.reload_until(|mirrors| !mirrors.contains(&self.url));
        }
        if self.original.is_none() {
            let _ = std::fs::remove_file(DAEMON_JSON);
        }
    }
}

/// The process id of `dockerd`, from `/proc`.
fn dockerd_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "dockerd").then_some(pid)
        })
}

#[test]
fn docker_pulls_busybox_through_the_mirror_and_again_with_the_upstream_down() {
    let Some(tools) = e2e_gate(
        "docker_pulls_busybox_through_the_mirror_and_again_with_the_upstream_down",
        &[Need::Docker, Need::Busybox],
    ) else {
        return;
    };
    let work = temp_dir("registry-e2e-mirror-");
    let upstream = Server::start(
        &registryd(),
        &RegistryConfig::filesystem(&work.path().join("upstream")),
    );
    let mut docker = Docker::new(tools.docker());

    // The upstream holds library/busybox:latest, pushed by docker from a local archive.
    let upstream_tag = format!("{}/library/busybox:latest", upstream.host());
    let archive_path = work.path().join("busybox.tar");
    let archive = images::write_docker_archive(
        &archive_path,
        &upstream_tag,
        &[busybox_layer(tools.busybox())],
    );
    docker.forget_on_drop(&upstream_tag);
    docker.ok(&["load", "-i", &archive_path.to_string_lossy()], SLOW);
    docker.ok(&["push", &upstream_tag], SLOW);
    docker.ok(&["rmi", &upstream_tag], QUICK);

    let mirror_root = work.path().join("mirror");
    let mirror = Server::start(
        &registryd(),
        &RegistryConfig::filesystem(&mirror_root).with_yaml(&format!(
            "proxy:\n  remoteurl: http://{}\n",
            upstream.host()
        )),
    );
    let _engine = EngineMirror::set(tools.docker(), &format!("http://{}", mirror.host()));

    // Nothing called busybox may be in the engine already, or it would not pull.
    let _ = run(&mut docker.cmd(&["rmi", "-f", "busybox:latest"]), QUICK);
    docker.forget_on_drop("busybox:latest");
    docker.ok(&["pull", "busybox:latest"], SLOW);
    let id = docker.ok(
        &["image", "inspect", "--format", "{{.Id}}", "busybox:latest"],
        QUICK,
    );
    assert_eq!(id.trim(), archive.config_digest, "pulled another image");
    assert!(
        mirror_root
            .join("docker/registry/v2/repositories/library/busybox/_manifests/tags/latest")
            .is_dir(),
        "the pull reached the mirror as library/busybox and was cached there"
    );

    upstream.stop();
    docker.ok(&["rmi", "busybox:latest"], QUICK);
    docker.ok(&["pull", "busybox:latest"], SLOW);
    let hello = docker.ok(
        &[
            "run",
            "--rm",
            "busybox:latest",
            "/bin/sh",
            "-c",
            "echo hello",
        ],
        SLOW,
    );
    assert_eq!(hello.trim(), "hello");
    assert!(
        mirror.log_text().contains("serving the cached manifest"),
        "the second pull was answered from the cache while the upstream was down:\n{}",
        mirror.log_text()
    );
}
