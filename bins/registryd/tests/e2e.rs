//! End-to-end tests: the real `registryd` binary driven by real clients (the Docker engine,
//! skopeo) and checked against CNCF Distribution (registry:2, Debian's `docker-registry`) over the
//! same storage directory.
//!
//! Gate: with `REGISTRY_E2E` unset each test prints why it skipped and passes; `REGISTRY_E2E=1`
//! runs them and skips a test whose clients are missing; `REGISTRY_E2E=require` (CI) fails it
//! instead. `.ci/e2e-setup` installs the clients and starts dockerd. Run with
//! `REGISTRY_E2E=require cargo test -p registryd --test e2e -- --test-threads=1`.
//! `REGISTRY_E2E_SERVER=/usr/bin/docker-registry` points the suite at another server binary.
//! The TLS and authentication tests (`security`) also need curl and, for docker, root: they
//! install a CA under `/etc/docker/certs.d` for the duration of the test. The image and compose
//! tests (`container`) build the image with `deploy/container/build` from the binary under test
//! and bring up `deploy/compose/` with docker-compose 1.x and Compose v2 (`docker compose`),
//! which `.ci/e2e-setup` installs too.

#[path = "e2e/container.rs"]
mod container;
#[path = "e2e/deploy.rs"]
mod deploy;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/images.rs"]
mod images;
#[path = "e2e/mirror.rs"]
mod mirror;
#[path = "e2e/reverse_proxy.rs"]
mod reverse_proxy;
#[path = "e2e/security.rs"]
mod security;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::{Need, RegistryConfig, Server, e2e_gate, registryd, registryd_tool, run, run_ok};
use images::{AMD64_TAG, MULTI_TAG, Tar, XorShift};
use registry_storage_s3::moto::MotoServer;

const QUICK: Duration = Duration::from_secs(60);
const SLOW: Duration = Duration::from_secs(300);

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir")
}

/// skopeo with the policy check off (these are unsigned local test images) and plain HTTP to
/// our 127.0.0.1 registries.
struct Skopeo<'a> {
    bin: &'a Path,
}

impl Skopeo<'_> {
    fn cmd(&self, verb: &str) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.args(["--insecure-policy", verb]);
        cmd
    }

    /// `skopeo copy [--all]` between any two transports; docker:// ends use plain HTTP.
    fn copy(&self, all: bool, src: &str, dest: &str) {
        let mut cmd = self.cmd("copy");
        if all {
            cmd.arg("--all");
        }
        cmd.args([
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            src,
            dest,
        ]);
        run_ok(&mut cmd, SLOW);
    }

    fn inspect_raw(&self, reference: &str) -> String {
        let mut cmd = self.cmd("inspect");
        cmd.args(["--raw", "--tls-verify=false", reference]);
        run_ok(&mut cmd, QUICK).stdout
    }

    fn inspect_fails(&self, reference: &str) -> bool {
        let mut cmd = self.cmd("inspect");
        cmd.args(["--raw", "--tls-verify=false", reference]);
        !run(&mut cmd, QUICK).status.success()
    }

    fn list_tags(&self, repository: &str) -> Vec<String> {
        let mut cmd = self.cmd("list-tags");
        cmd.args(["--tls-verify=false", repository]);
        let out = run_ok(&mut cmd, QUICK);
        let parsed: serde_json::Value =
            serde_json::from_str(&out.stdout).expect("list-tags prints JSON");
        let mut tags: Vec<String> = parsed["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        tags.sort();
        tags
    }

    fn delete(&self, reference: &str) {
        let mut cmd = self.cmd("delete");
        cmd.args(["--tls-verify=false", reference]);
        run_ok(&mut cmd, QUICK);
    }
}

/// The docker client with a private config directory (no credential helpers of the machine),
/// removing on drop every image reference it was told about.
struct Docker<'a> {
    bin: &'a Path,
    config: tempfile::TempDir,
    cleanup: Vec<String>,
}

impl<'a> Docker<'a> {
    fn new(bin: &'a Path) -> Self {
        Docker {
            bin,
            config: temp_dir("registry-e2e-docker-config-"),
            cleanup: Vec::new(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.env("DOCKER_CONFIG", self.config.path()).args(args);
        cmd
    }

    fn ok(&self, args: &[&str], timeout: Duration) -> String {
        run_ok(&mut self.cmd(args), timeout).stdout
    }

    fn forget_on_drop(&mut self, reference: &str) {
        self.cleanup.push(reference.to_string());
    }
}

impl Drop for Docker<'_> {
    fn drop(&mut self) {
        for reference in &self.cleanup {
            let _ = run(&mut self.cmd(&["rmi", "-f", reference]), QUICK);
        }
    }
}

/// The root filesystem layer of the docker test image: static busybox as `/bin/busybox` with
/// `sh`, `echo` and `cat` linked to it.
fn busybox_layer(busybox: &Path) -> Vec<u8> {
    let binary = std::fs::read(busybox).expect("read busybox");
    let mut tar = Tar::in_memory();
    tar.dir("bin").file("bin/busybox", 0o755, &binary);
    for applet in ["sh", "echo", "cat"] {
        tar.symlink(&format!("bin/{applet}"), "busybox");
    }
    tar.finish()
}

/// A layer holding `size` incompressible bytes at `path`; returns the layer and the file's sha256.
fn noise_layer(path: &str, size: u64, seed: u64) -> (Vec<u8>, String) {
    let mut rng = XorShift::new(seed);
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let (dir, _) = path.rsplit_once('/').expect("path has a directory");
    let mut tar = Tar::in_memory();
    tar.dir(dir).file_streamed(path, 0o644, size, |buf| {
        rng.fill(buf);
        sha2::Digest::update(&mut hasher, &*buf);
    });
    let layer = tar.finish();
    (layer, hex::encode(sha2::Digest::finalize(hasher)))
}

fn small_layer(path: &str, text: &str) -> Vec<u8> {
    let (dir, _) = path.rsplit_once('/').expect("path has a directory");
    let mut tar = Tar::in_memory();
    tar.dir(dir).file(path, 0o644, text.as_bytes());
    tar.finish()
}

/// The `digest: sha256:... size: N` line `docker push` ends with.
fn pushed_digest(push_output: &str) -> String {
    push_output
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .filter(|d| d.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in docker push output:\n{push_output}"))
        .to_string()
}

#[test]
fn docker_pushes_pulls_and_runs_a_multi_layer_image() {
    let Some(tools) = e2e_gate(
        "docker_pushes_pulls_and_runs_a_multi_layer_image",
        &[Need::Docker, Need::Busybox],
    ) else {
        return;
    };
    let work = temp_dir("registry-e2e-docker-");
    let server = Server::start(
        &registryd(),
        &RegistryConfig::filesystem(&work.path().join("data")),
    );
    let mut docker = Docker::new(tools.docker());
    let repo = format!("{}/e2e/busybox", server.host());
    let tag = format!("{repo}:1");

    let greeting = "hello from the third layer";
    let (noise, noise_sha) = noise_layer("data/noise.bin", 50 << 20, 0x5eed);
    let layers = vec![
        busybox_layer(tools.busybox()),
        noise,
        small_layer("etc/e2e.txt", &format!("{greeting}\n")),
    ];
    let archive_path = work.path().join("image.tar");
    let archive = images::write_docker_archive(&archive_path, &tag, &layers);
    drop(layers);

    docker.forget_on_drop(&tag);
    let loaded = docker.ok(&["load", "-i", &archive_path.to_string_lossy()], SLOW);
    assert!(
        loaded.contains(&tag),
        "docker load did not load {tag}: {loaded}"
    );
    let id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", &tag], QUICK);
    assert_eq!(
        id.trim(),
        archive.config_digest,
        "docker loaded another image"
    );

    let pushed = docker.ok(&["push", &tag], SLOW);
    let digest = pushed_digest(&pushed);

    docker.ok(&["rmi", &tag], QUICK);
    docker.ok(&["pull", &tag], SLOW);
    let hello = docker.ok(&["run", "--rm", &tag, "/bin/sh", "-c", "echo hello"], SLOW);
    assert_eq!(hello.trim(), "hello");
    let files = docker.ok(
        &[
            "run",
            "--rm",
            &tag,
            "/bin/sh",
            "-c",
            "cat /etc/e2e.txt; /bin/busybox sha256sum /data/noise.bin",
        ],
        SLOW,
    );
    assert!(files.contains(greeting), "third layer missing: {files}");
    assert!(
        files.contains(&noise_sha),
        "the 50 MiB layer came back corrupt: {files}"
    );

    let repushed = docker.ok(&["push", &tag], SLOW);
    let existing = repushed.matches("Layer already exists").count();
    assert_eq!(
        existing, archive.layers,
        "every layer should already exist on re-push:\n{repushed}"
    );
    assert_eq!(
        pushed_digest(&repushed),
        digest,
        "re-push changed the manifest"
    );

    docker.ok(&["rmi", &tag], QUICK);
    let by_digest = format!("{repo}@{digest}");
    docker.forget_on_drop(&by_digest);
    docker.ok(&["pull", &by_digest], SLOW);
    let hello = docker.ok(
        &["run", "--rm", &by_digest, "/bin/sh", "-c", "echo hello"],
        SLOW,
    );
    assert_eq!(hello.trim(), "hello");
    let repo_digests = docker.ok(
        &[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &by_digest,
        ],
        QUICK,
    );
    assert!(repo_digests.contains(&by_digest), "{repo_digests}");
}

#[test]
fn skopeo_copies_a_multi_arch_index_lists_tags_and_deletes() {
    let Some(tools) = e2e_gate(
        "skopeo_copies_a_multi_arch_index_lists_tags_and_deletes",
        &[Need::Skopeo],
    ) else {
        return;
    };
    let skopeo = Skopeo {
        bin: tools.skopeo(),
    };
    let work = temp_dir("registry-e2e-skopeo-");
    let server = Server::start(
        &registryd(),
        &RegistryConfig::filesystem(&work.path().join("data")).with_delete(),
    );
    let src = work.path().join("src");
    let layout = images::write_multiarch_layout(&src, "skopeo");
    let src = src.to_string_lossy();
    let repo = format!("docker://{}/e2e/multi", server.host());

    skopeo.copy(
        true,
        &format!("oci:{src}:{MULTI_TAG}"),
        &format!("{repo}:v1"),
    );
    skopeo.copy(
        true,
        &format!("oci:{src}:{MULTI_TAG}"),
        &format!("{repo}:v2"),
    );
    skopeo.copy(
        false,
        &format!("oci:{src}:{AMD64_TAG}"),
        &format!("{repo}:amd64"),
    );

    let back = work.path().join("back");
    skopeo.copy(
        true,
        &format!("{repo}:v1"),
        &format!("oci:{}:v1", back.display()),
    );
    assert_eq!(images::layout_ref(&back, "v1"), layout.index_digest);
    assert_eq!(images::layout_blobs(&back), layout.blobs);

    let index = images::layout_blob(Path::new(&*src), &layout.index_digest);
    let raw = skopeo.inspect_raw(&format!("{repo}:v1"));
    assert_eq!(
        raw.as_bytes(),
        index.as_slice(),
        "the index came back changed"
    );
    let raw = skopeo.inspect_raw(&format!("{repo}@{}", layout.index_digest));
    assert_eq!(raw.as_bytes(), index.as_slice());
    for child in [&layout.amd64_digest, &layout.arm64_digest] {
        let raw = skopeo.inspect_raw(&format!("{repo}@{child}"));
        assert_eq!(raw.as_bytes(), images::layout_blob(Path::new(&*src), child));
    }
    assert_eq!(skopeo.list_tags(&repo), ["amd64", "v1", "v2"]);

    // Deleting by tag deletes the manifest it points to, and with it every tag on that manifest.
    skopeo.delete(&format!("{repo}:v1"));
    assert!(skopeo.inspect_fails(&format!("{repo}:v1")));
    assert!(skopeo.inspect_fails(&format!("{repo}:v2")));
    assert!(skopeo.inspect_fails(&format!("{repo}@{}", layout.index_digest)));
    assert_eq!(skopeo.list_tags(&repo), ["amd64"]);

    skopeo.delete(&format!("{repo}@{}", layout.amd64_digest));
    assert!(skopeo.inspect_fails(&format!("{repo}:amd64")));
    assert!(skopeo.inspect_fails(&format!("{repo}@{}", layout.amd64_digest)));
    // The arm64 manifest was not deleted.
    let raw = skopeo.inspect_raw(&format!("{repo}@{}", layout.arm64_digest));
    assert_eq!(
        raw.as_bytes(),
        images::layout_blob(Path::new(&*src), &layout.arm64_digest)
    );
}

/// What the compatibility tests push: a multi-arch OCI index and a Docker image from an archive.
struct CompatContent {
    layout: images::MultiArchLayout,
    layout_dir: PathBuf,
    archive: PathBuf,
}

fn compat_content(work: &Path) -> CompatContent {
    let layout_dir = work.join("layout");
    let layout = images::write_multiarch_layout(&layout_dir, "compat");
    let archive = work.join("single.tar");
    let (noise, _) = noise_layer("opt/noise.bin", 3 << 20, 7);
    let layers = vec![
        small_layer("etc/one.txt", "one\n"),
        noise,
        small_layer("etc/three.txt", "three\n"),
    ];
    images::write_docker_archive(&archive, "compat/single:1", &layers);
    CompatContent {
        layout,
        layout_dir,
        archive,
    }
}

fn push_compat(skopeo: &Skopeo<'_>, host: &str, content: &CompatContent) {
    let layout = content.layout_dir.display();
    skopeo.copy(
        true,
        &format!("oci:{layout}:{MULTI_TAG}"),
        &format!("docker://{host}/compat/multi:v1"),
    );
    skopeo.copy(
        false,
        &format!("oci:{layout}:{AMD64_TAG}"),
        &format!("docker://{host}/compat/multi:amd64"),
    );
    skopeo.copy(
        false,
        &format!("docker-archive:{}", content.archive.display()),
        &format!("docker://{host}/compat/single:1"),
    );
}

/// Everything a registry serves of the compat content, read back with skopeo.
#[derive(Debug, PartialEq, Eq)]
struct Served {
    tags: BTreeMap<String, Vec<String>>,
    raw: BTreeMap<String, String>,
    /// The multi-arch index copied to an OCI layout: blob digests.
    multi_blobs: Vec<String>,
    /// The Docker image copied with `dir:` (manifest and blobs as stored): file -> sha256.
    single_files: BTreeMap<String, String>,
}

fn read_served(skopeo: &Skopeo<'_>, host: &str, content: &CompatContent, out: &Path) -> Served {
    std::fs::create_dir_all(out).expect("create output dir");
    let multi = format!("docker://{host}/compat/multi");
    let single = format!("docker://{host}/compat/single");
    let mut tags = BTreeMap::new();
    for repo in [&multi, &single] {
        tags.insert(repo.replace(host, "HOST"), skopeo.list_tags(repo));
    }
    let mut raw = BTreeMap::new();
    let layout = &content.layout;
    for reference in [
        "multi:v1".to_string(),
        "multi:amd64".to_string(),
        format!("multi@{}", layout.index_digest),
        format!("multi@{}", layout.amd64_digest),
        format!("multi@{}", layout.arm64_digest),
        "single:1".to_string(),
    ] {
        let text = skopeo.inspect_raw(&format!("docker://{host}/compat/{reference}"));
        raw.insert(reference, text);
    }
    assert_eq!(
        raw["multi:v1"].as_bytes(),
        images::layout_blob(&content.layout_dir, &layout.index_digest)
    );

    let oci = out.join("multi");
    skopeo.copy(
        true,
        &format!("{multi}:v1"),
        &format!("oci:{}:v1", oci.display()),
    );
    assert_eq!(images::layout_ref(&oci, "v1"), layout.index_digest);
    let multi_blobs: Vec<String> = images::layout_blobs(&oci).into_iter().collect();
    assert_eq!(
        multi_blobs,
        layout.blobs.iter().cloned().collect::<Vec<_>>()
    );

    let dir = out.join("single");
    skopeo.copy(
        false,
        &format!("{single}:1"),
        &format!("dir:{}", dir.display()),
    );
    let mut single_files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("read dir: copy") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).expect("read copied file");
        single_files.insert(name, images::digest(&bytes));
    }
    let manifest = std::fs::read(dir.join("manifest.json")).expect("dir: copy has manifest.json");
    assert_eq!(manifest, raw["single:1"].as_bytes());
    Served {
        tags,
        raw,
        multi_blobs,
        single_files,
    }
}

/// Pushes with `first`, reads everything back, stops it, serves the same root directory with
/// `second` and checks it serves the same bytes and accepts new pushes into the old tree.
fn same_root_served_by_both(skopeo: &Skopeo<'_>, first: &Path, second: &Path) {
    let work = temp_dir("registry-e2e-compat-");
    let config = RegistryConfig::filesystem(&work.path().join("data"));
    same_store_served_by_both(skopeo, &config, first, second);
}

/// The same over an S3 bucket of a local moto, below `rootdirectory: /registry` (as a bucket
/// shared with other data is used).
fn same_bucket_served_by_both(skopeo: &Skopeo<'_>, first: &Path, second: &Path) {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("compat");
    let work = temp_dir("registry-e2e-compat-s3-");
    let driver = format!(
        "  s3:\n{}    rootdirectory: /registry\n",
        moto.config_yaml("compat", 4)
    );
    let config = RegistryConfig::filesystem(&work.path().join("unused")).with_driver(&driver);
    same_store_served_by_both(skopeo, &config, first, second);
}

/// [`same_root_served_by_both`] over the store `config` names.
fn same_store_served_by_both(
    skopeo: &Skopeo<'_>,
    config: &RegistryConfig,
    first: &Path,
    second: &Path,
) {
    let work = temp_dir("registry-e2e-compat-");
    let content = compat_content(work.path());

    let server = Server::start(first, config);
    push_compat(skopeo, &server.host(), &content);
    let before = read_served(
        skopeo,
        &server.host(),
        &content,
        &work.path().join("before"),
    );
    server.stop();

    let server = Server::start(second, config);
    let after = read_served(skopeo, &server.host(), &content, &work.path().join("after"));
    assert_eq!(
        before, after,
        "the second server serves other content from the same root"
    );

    let host = server.host();
    skopeo.copy(
        true,
        &format!("docker://{host}/compat/multi:v1"),
        &format!("docker://{host}/compat/multi:v2"),
    );
    skopeo.copy(
        false,
        &format!("docker://{host}/compat/single:1"),
        &format!("docker://{host}/compat/copied:1"),
    );
    assert_eq!(
        skopeo.inspect_raw(&format!("docker://{host}/compat/multi:v2")),
        before.raw["multi:v1"]
    );
    assert_eq!(
        skopeo.inspect_raw(&format!("docker://{host}/compat/copied:1")),
        before.raw["single:1"]
    );
    server.stop();
}

#[test]
fn registry2_data_is_served_by_registryd() {
    let Some(tools) = e2e_gate(
        "registry2_data_is_served_by_registryd",
        &[Need::Skopeo, Need::Registry2],
    ) else {
        return;
    };
    let skopeo = Skopeo {
        bin: tools.skopeo(),
    };
    same_root_served_by_both(&skopeo, tools.registry2(), &registryd());
}

/// registry:2 writes a store; `registryd garbage-collect --delete-untagged` collects it (a blob
/// nothing links goes, every image stays, index children included); registry:2 serves the result
/// as it served the store before.
#[test]
fn a_registry2_store_collected_by_registryd_is_served_as_before() {
    let Some(tools) = e2e_gate(
        "a_registry2_store_collected_by_registryd_is_served_as_before",
        &[Need::Skopeo, Need::Registry2],
    ) else {
        return;
    };
    let skopeo = Skopeo {
        bin: tools.skopeo(),
    };
    let work = temp_dir("registry-e2e-gc-");
    let root = work.path().join("data");
    let config = RegistryConfig::filesystem(&root);
    let content = compat_content(work.path());
    let server = Server::start(tools.registry2(), &config);
    push_compat(&skopeo, &server.host(), &content);
    let before = read_served(
        &skopeo,
        &server.host(),
        &content,
        &work.path().join("before"),
    );
    server.stop();
    // What an abandoned push leaves: blob data no repository links.
    let stray = "4d".repeat(32);
    let stray_data = root.join(format!("docker/registry/v2/blobs/sha256/4d/{stray}/data"));
    std::fs::create_dir_all(stray_data.parent().expect("blob dir")).expect("blob dir");
    std::fs::write(&stray_data, b"abandoned").expect("stray blob");

    let out = run_ok(
        Command::new(registryd_tool())
            .args([
                "garbage-collect",
                "--delete-untagged",
                "--grace-period",
                "0",
            ])
            .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &root),
        QUICK,
    );
    let printed = &out.stdout;
    assert!(
        printed.contains(&format!("blob deleting: sha256:{stray}")),
        "{printed}"
    );
    assert!(!stray_data.exists(), "the stray blob is deleted");

    let server = Server::start(tools.registry2(), &config);
    let after = read_served(
        &skopeo,
        &server.host(),
        &content,
        &work.path().join("after"),
    );
    assert_eq!(before, after, "registry:2 serves every image as before");
    server.stop();
}

#[test]
fn a_registry2_bucket_is_served_by_registryd() {
    let Some(tools) = e2e_gate(
        "a_registry2_bucket_is_served_by_registryd",
        &[Need::Skopeo, Need::Registry2],
    ) else {
        return;
    };
    let skopeo = Skopeo {
        bin: tools.skopeo(),
    };
    same_bucket_served_by_both(&skopeo, tools.registry2(), &registryd());
}

#[test]
fn a_registryd_bucket_is_served_by_registry2() {
    let Some(tools) = e2e_gate(
        "a_registryd_bucket_is_served_by_registry2",
        &[Need::Skopeo, Need::Registry2],
    ) else {
        return;
    };
    let skopeo = Skopeo {
        bin: tools.skopeo(),
    };
    same_bucket_served_by_both(&skopeo, &registryd(), tools.registry2());
}

#[test]
fn registryd_data_is_served_by_registry2() {
    let Some(tools) = e2e_gate(
        "registryd_data_is_served_by_registry2",
        &[Need::Skopeo, Need::Registry2],
    ) else {
        return;
    };
    let skopeo = Skopeo {
        bin: tools.skopeo(),
    };
    same_root_served_by_both(&skopeo, &registryd(), tools.registry2());
}
