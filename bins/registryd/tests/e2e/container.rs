//! The container image and the compose files, run the way registry:2 users run theirs: the image
//! is built with `deploy/container/build` from the binary under test (nothing is pulled), started
//! with registry:2's `docker run` line, with TLS and htpasswd from mounted files, and brought up
//! with `deploy/compose/` by docker-compose 1.29 and by Compose v2, nginx in front or not.
//!
//! Every container publishes its port on 127.0.0.1 only, and is removed with its image when the
//! test ends.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{
    Need, e2e_gate, free_port, http_status, https_status, registryd, run, run_input, run_ok,
};
use super::security::{
    DockerTrust, Secrets, SecureSkopeo, assert_ok, assert_refused, oci_image, unique,
};
use super::{Docker, QUICK, SLOW, images, pushed_digest, small_layer, temp_dir};

/// The repository's root, where `deploy/` and `.ci/` are.
fn repository() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).to_path_buf()
}

/// The user the image serves as when the data directory allows it.
const IMAGE_UID: u32 = 65532;

/// How long a container may take to report `healthy` (the image checks every 10 s).
const HEALTHY_WITHIN: Duration = Duration::from_secs(90);

/// An image built for the test; removed when dropped.
struct Image {
    docker: PathBuf,
    tag: String,
}

impl Image {
    /// `deploy/container/build --tag ... --binary <registryd under test>`.
    fn registryd(docker: &Path) -> Image {
        let tag = format!("registryd-e2e:{}", unique("image"));
        let image = Image {
            docker: docker.to_path_buf(),
            tag,
        };
        run_ok(
            Command::new(repository().join("deploy/container/build"))
                .args(["--tag", &image.tag, "--binary"])
                .arg(registryd()),
            SLOW,
        );
        image
    }

    /// `.ci/nginx-image`: the host's nginx as an image.
    fn nginx(docker: &Path) -> Image {
        let tag = format!("registryd-e2e-nginx:{}", unique("nginx"));
        let image = Image {
            docker: docker.to_path_buf(),
            tag,
        };
        run_ok(
            Command::new(repository().join(".ci/nginx-image")).arg(&image.tag),
            SLOW,
        );
        image
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = run(
            Command::new(&self.docker).args(["rmi", "-f", &self.tag]),
            QUICK,
        );
    }
}

/// A container started with `docker run -d`; its log is printed and it is removed when dropped.
struct Container {
    docker: PathBuf,
    id: String,
}

impl Container {
    fn run(docker: &Path, args: &[String]) -> Container {
        let out = run_ok(Command::new(docker).arg("run").args(args), SLOW);
        Container {
            docker: docker.to_path_buf(),
            id: out.stdout.trim().to_owned(),
        }
    }

    fn logs(&self) -> String {
        let out = run(Command::new(&self.docker).args(["logs", &self.id]), QUICK);
        format!("{}{}", out.stdout, out.stderr)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- container {} log\n{}", self.id, self.logs());
        }
        let _ = run(
            Command::new(&self.docker).args(["rm", "-f", "-v", &self.id]),
            QUICK,
        );
    }
}

/// Waits until `docker inspect` reports the container's HEALTHCHECK `healthy`.
fn wait_healthy(docker: &Path, container: &str) {
    let deadline = Instant::now() + HEALTHY_WITHIN;
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = run(
            Command::new(docker).args([
                "inspect",
                "--format",
                "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                container,
            ]),
            QUICK,
        );
        last = out.stdout.trim().to_owned();
        if last == "running healthy" {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("container {container} not healthy within {HEALTHY_WITHIN:?}: {last}");
}

/// Waits until `check` says the registry answers.
fn wait_answering(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not answer within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A one-layer image loaded into the engine under `tag`; returns its config digest.
fn load_image(docker: &mut Docker<'_>, work: &Path, tag: &str) -> String {
    let archive = work.join("image.tar");
    let layer = small_layer("etc/e2e-image.txt", &format!("pushed as {tag}\n"));
    let written = images::write_docker_archive(&archive, tag, &[layer]);
    docker.forget_on_drop(tag);
    docker.ok(&["load", "-i", &archive.to_string_lossy()], SLOW);
    written.config_digest
}

/// Removes `tag` from the engine, pulls it again and checks it is the image pushed.
fn pull_back(docker: &Docker<'_>, tag: &str, config_digest: &str) {
    docker.ok(&["rmi", tag], QUICK);
    docker.ok(&["pull", tag], SLOW);
    let id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", tag], QUICK);
    assert_eq!(id.trim(), config_digest, "pulled another image than pushed");
}

#[test]
fn image_runs_registry2s_docker_run_line_unprivileged_and_keeps_data_across_restart() {
    let Some(tools) = e2e_gate(
        "image_runs_registry2s_docker_run_line_unprivileged_and_keeps_data_across_restart",
        &[Need::Docker],
    ) else {
        return;
    };
    let started = Instant::now();
    let image = Image::registryd(tools.docker());
    let work = temp_dir("registry-e2e-image-");
    // Missing, as a new host directory is: Docker creates it, owned by root.
    let data = work.path().join("data");
    let addr = free_port();
    let name = unique("registryd-e2e");
    // registry:2's documented command line, the port published on 127.0.0.1 only.
    let container = Container::run(
        tools.docker(),
        &[
            "-d".into(),
            "-p".into(),
            format!("127.0.0.1:{}:5000", addr.port()),
            "--restart=always".into(),
            "--name".into(),
            name.clone(),
            "-v".into(),
            format!("{}:/var/lib/registry", data.display()),
            "-e".into(),
            "REGISTRY_LOG_LEVEL=debug".into(),
            image.tag.clone(),
        ],
    );
    wait_healthy(tools.docker(), &container.id);
    println!("healthy {:?} after the build started", started.elapsed());

    let logs = container.logs();
    assert!(
        logs.contains("DEBUG") && logs.contains("effective configuration"),
        "-e REGISTRY_LOG_LEVEL=debug shows no debug lines in docker logs:\n{logs}"
    );
    assert!(
        logs.contains(&format!("serving as {IMAGE_UID}:{IMAGE_UID}")),
        "the image should give up root for an empty data directory:\n{logs}"
    );

    let mut docker = Docker::new(tools.docker());
    let tag = format!("{addr}/e2e/{}:1", unique("image"));
    let config_digest = load_image(&mut docker, work.path(), &tag);
    let pushed = docker.ok(&["push", &tag], SLOW);
    let digest = pushed_digest(&pushed);
    pull_back(&docker, &tag, &config_digest);

    let tree = std::fs::metadata(data.join("docker")).expect("the registry's tree in the volume");
    assert_eq!(
        tree.uid(),
        IMAGE_UID,
        "the data was written by the unprivileged user"
    );

    docker.ok(&["restart", &name], SLOW);
    wait_answering("the restarted container", || {
        http_status(addr, "/v2/") == Some(200)
    });
    wait_healthy(tools.docker(), &container.id);
    pull_back(&docker, &tag, &config_digest);
    let repushed = docker.ok(&["push", &tag], SLOW);
    assert_eq!(
        pushed_digest(&repushed),
        digest,
        "the manifest survived the restart"
    );
    assert!(
        repushed.contains("Layer already exists"),
        "the layers survived the restart:\n{repushed}"
    );
    println!("done {:?} after the build started", started.elapsed());
}

#[test]
fn image_serves_tls_and_htpasswd_from_mounted_files_to_docker_login() {
    let Some(tools) = e2e_gate(
        "image_serves_tls_and_htpasswd_from_mounted_files_to_docker_login",
        &[Need::Docker],
    ) else {
        return;
    };
    let image = Image::registryd(tools.docker());
    let (user, password) = ("e2e-image", "image s3cret");
    let secrets = Secrets::new("registry-e2e-image-tls-", &[(user, password)], Some(6));
    let addr = free_port();
    let container = Container::run(
        tools.docker(),
        &[
            "-d".into(),
            "-p".into(),
            format!("127.0.0.1:{}:5000", addr.port()),
            "--restart=always".into(),
            "--name".into(),
            unique("registryd-e2e-tls"),
            "-v".into(),
            format!(
                "{}:/var/lib/registry",
                secrets.work.path().join("data").display()
            ),
            "-v".into(),
            format!("{}:/certs:ro", secrets.certs.display()),
            "-v".into(),
            format!("{}:/auth/htpasswd:ro", secrets.htpasswd.display()),
            "-e".into(),
            "REGISTRY_AUTH=htpasswd".into(),
            "-e".into(),
            "REGISTRY_AUTH_HTPASSWD_REALM=Registry Realm".into(),
            "-e".into(),
            "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd".into(),
            "-e".into(),
            "REGISTRY_HTTP_TLS_CERTIFICATE=/certs/server.crt".into(),
            "-e".into(),
            "REGISTRY_HTTP_TLS_KEY=/certs/server.key".into(),
            image.tag.clone(),
        ],
    );
    // The HEALTHCHECK asks over TLS, without credentials (401 is healthy).
    wait_healthy(tools.docker(), &container.id);
    assert_eq!(https_status(addr, &secrets.ca(), "/v2/"), Some(401));

    // A key only root may read keeps registryd root, and the log says why.
    let key_mode = std::fs::metadata(secrets.certs.join("server.key"))
        .expect("server.key")
        .mode();
    if key_mode & 0o004 == 0 {
        let logs = container.logs();
        assert!(
            logs.contains("serving as root") && logs.contains("server.key"),
            "{logs}"
        );
    }

    let registry = format!("localhost:{}", addr.port());
    let _trust = DockerTrust::install(&secrets.ca(), &[registry.clone(), addr.to_string()]);
    let mut docker = Docker::new(tools.docker());
    let login = run_input(
        &mut docker.cmd(&["login", &registry, "-u", user, "--password-stdin"]),
        Some(&format!("{password}\n")),
        QUICK,
    );
    assert_ok("docker login", &login);
    let tag = format!("{registry}/e2e/{}:1", unique("image-tls"));
    let config_digest = load_image(&mut docker, secrets.work.path(), &tag);
    docker.ok(&["push", &tag], SLOW);
    pull_back(&docker, &tag, &config_digest);
    docker.ok(&["logout", &registry], QUICK);
}

/// Which compose runs the files.
#[derive(Clone, Copy, Debug)]
enum Compose {
    /// `docker-compose` 1.x.
    V1,
    /// `docker compose` (v2).
    V2,
}

/// A compose project brought up from a copy of `deploy/compose/<layout>`; `down` when dropped.
struct Project<'a> {
    /// The compose program and its first arguments (`docker compose`).
    program: PathBuf,
    subcommand: Option<&'static str>,
    dir: &'a Path,
    name: String,
    env: Vec<(&'static str, String)>,
}

impl Project<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(self.subcommand)
            .current_dir(self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["-p", &self.name])
            .args(args);
        cmd
    }

    /// The id of the container of `service`.
    fn container(&self, service: &str) -> String {
        let out = run_ok(&mut self.cmd(&["ps", "-q", service]), QUICK);
        out.stdout.trim().to_owned()
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = run(&mut self.cmd(&["logs", "--no-color"]), QUICK);
        }
        let _ = run(&mut self.cmd(&["down", "-v", "--remove-orphans"]), SLOW);
    }
}

/// Copies `deploy/compose/<layout>` to a temporary directory, writes its certificates and users
/// with `registryd cert` and `registryd htpasswd`, brings it up on 127.0.0.1 with `compose`,
/// waits for the registry's HEALTHCHECK, pushes with skopeo checking the certificate and the
/// credentials, and reads the manifest back.
fn compose_layout_pushes_and_pulls(test: &str, compose: Compose, layout: &str, needs: &[Need]) {
    let Some(tools) = e2e_gate(test, needs) else {
        return;
    };
    let docker = tools.docker();
    let image = Image::registryd(docker);
    let nginx = (layout == "nginx").then(|| Image::nginx(docker));
    let (user, password) = ("e2e-compose", "compose s3cret");
    let secrets = Secrets::new("registry-e2e-compose-", &[(user, password)], Some(6));
    let dir = secrets.work.path().join(layout);
    std::fs::create_dir(&dir).expect("project directory");
    let source = repository().join("deploy/compose").join(layout);
    std::fs::copy(
        source.join("docker-compose.yml"),
        dir.join("docker-compose.yml"),
    )
    .expect("copy docker-compose.yml");
    let htpasswd = std::fs::read(&secrets.htpasswd).expect("htpasswd");
    let crt = secrets.certs.join("server.crt");
    let key = secrets.certs.join("server.key");
    if layout == "nginx" {
        // The recipe's auth/ directory: nginx.conf, the certificate and the users.
        let auth = dir.join("auth");
        std::fs::create_dir(&auth).expect("auth directory");
        std::fs::copy(source.join("auth/nginx.conf"), auth.join("nginx.conf"))
            .expect("copy nginx.conf");
        std::fs::copy(&crt, auth.join("domain.crt")).expect("domain.crt");
        std::fs::copy(&key, auth.join("domain.key")).expect("domain.key");
        std::fs::write(auth.join("nginx.htpasswd"), &htpasswd).expect("nginx.htpasswd");
    } else {
        let (certs, auth) = (dir.join("certs"), dir.join("auth"));
        std::fs::create_dir(&certs).expect("certs directory");
        std::fs::create_dir(&auth).expect("auth directory");
        std::fs::copy(&crt, certs.join("server.crt")).expect("server.crt");
        std::fs::copy(&key, certs.join("server.key")).expect("server.key");
        std::fs::write(auth.join("htpasswd"), &htpasswd).expect("htpasswd");
    }

    let addr: SocketAddr = free_port();
    let mut env = vec![
        ("REGISTRYD_IMAGE", image.tag.clone()),
        ("REGISTRY_PUBLISH", format!("127.0.0.1:{}", addr.port())),
    ];
    if let Some(nginx) = &nginx {
        env.push(("NGINX_IMAGE", nginx.tag.clone()));
    }
    let (program, subcommand) = match compose {
        Compose::V1 => (tools.compose_v1().to_path_buf(), None),
        Compose::V2 => (docker.to_path_buf(), Some("compose")),
    };
    let project = Project {
        program,
        subcommand,
        dir: &dir,
        name: unique("e2e").replace('-', ""),
        env,
    };
    run_ok(&mut project.cmd(&["up", "-d"]), SLOW);
    wait_healthy(docker, &project.container("registry"));
    wait_answering("the published port", || {
        https_status(addr, &secrets.ca(), "/v2/") == Some(401)
    });

    let skopeo = SecureSkopeo::new(tools.skopeo());
    let (src, manifest_digest) = oci_image(secrets.work.path(), &unique("compose"));
    let reference = format!("docker://localhost:{}/e2e/compose:1", addr.port());
    let creds = format!("{user}:{password}");
    assert_ok(
        "skopeo copy to the compose project",
        &skopeo.copy(&src, &reference, &creds, &secrets.ca_dir),
    );
    let inspected = skopeo.inspect(&reference, Some(&creds), Some(&secrets.ca_dir));
    assert_ok("skopeo inspect", &inspected);
    assert_eq!(images::digest(inspected.stdout.as_bytes()), manifest_digest);
    assert_refused(
        "skopeo inspect without credentials",
        &skopeo.inspect(&reference, None, Some(&secrets.ca_dir)),
        &["401", "unauthorized", "authentication required"],
    );
}

#[test]
fn compose_v1_runs_registryd_alone_with_tls_and_htpasswd() {
    compose_layout_pushes_and_pulls(
        "compose_v1_runs_registryd_alone_with_tls_and_htpasswd",
        Compose::V1,
        "registryd",
        &[Need::Docker, Need::ComposeV1, Need::Skopeo],
    );
}

#[test]
fn compose_v2_runs_registryd_alone_with_tls_and_htpasswd() {
    compose_layout_pushes_and_pulls(
        "compose_v2_runs_registryd_alone_with_tls_and_htpasswd",
        Compose::V2,
        "registryd",
        &[Need::Docker, Need::ComposeV2, Need::Skopeo],
    );
}

#[test]
fn compose_v1_runs_registryd_behind_nginx_doing_tls_and_basic_auth() {
    compose_layout_pushes_and_pulls(
        "compose_v1_runs_registryd_behind_nginx_doing_tls_and_basic_auth",
        Compose::V1,
        "nginx",
        &[Need::Docker, Need::ComposeV1, Need::Skopeo, Need::Nginx],
    );
}

#[test]
fn compose_v2_runs_registryd_behind_nginx_doing_tls_and_basic_auth() {
    compose_layout_pushes_and_pulls(
        "compose_v2_runs_registryd_behind_nginx_doing_tls_and_basic_auth",
        Compose::V2,
        "nginx",
        &[Need::Docker, Need::ComposeV2, Need::Skopeo, Need::Nginx],
    );
}
