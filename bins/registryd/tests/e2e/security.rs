//! TLS and authentication end to end: `registryd cert` and `registryd htpasswd` make the files,
//! registryd serves HTTPS with htpasswd users (and access rules), and docker, skopeo and curl
//! check the certificate chain and the credentials the way users will.
//!
//! Docker does not verify certificates of loopback registries (127.0.0.0/8 is an insecure
//! registry by default, even named `localhost`), so the docker test covers login, push and pull over
//! TLS, and skopeo and curl check the chain itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use super::harness::{
    Need, Output, RegistryConfig, Server, e2e_gate, registryd, registryd_tool, run, run_input,
    run_ok,
};
use super::images::{self, AMD64_TAG};
use super::{Docker, QUICK, SLOW, small_layer, temp_dir};

/// The realm of every htpasswd server here; clients see it in the challenge.
const REALM: &str = "registryd e2e";

/// A name part no earlier run (or other test) used: the Docker engine's image store outlives
/// the test, and its content is keyed by name.
pub(super) fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{what}-{}-{nanos:08x}", std::process::id())
}

/// What every secured server here is made of: `registryd cert`'s files, a directory holding only
/// the CA (for `--cert-dir`: a `.key` there would be read as a client key) and an htpasswd file
/// `registryd htpasswd` wrote.
pub(super) struct Secrets {
    pub(super) work: tempfile::TempDir,
    pub(super) certs: PathBuf,
    pub(super) ca_dir: PathBuf,
    pub(super) htpasswd: PathBuf,
}

impl Secrets {
    /// Runs `registryd cert --host localhost --host 127.0.0.1` and `registryd htpasswd USER`
    /// (the password on standard input, `-C cost` when given) for each user.
    pub(super) fn new(prefix: &str, users: &[(&str, &str)], cost: Option<u32>) -> Secrets {
        let work = temp_dir(prefix);
        let certs = work.path().join("certs");
        let tool = registryd_tool();
        run_ok(
            Command::new(&tool)
                .args([
                    "cert",
                    "--host",
                    "localhost",
                    "--host",
                    "127.0.0.1",
                    "--out",
                ])
                .arg(&certs),
            QUICK,
        );
        for file in ["ca.crt", "ca.key", "server.crt", "server.key"] {
            assert!(certs.join(file).is_file(), "registryd cert wrote no {file}");
        }
        let ca_dir = work.path().join("ca");
        std::fs::create_dir(&ca_dir).expect("create the CA directory");
        std::fs::copy(certs.join("ca.crt"), ca_dir.join("ca.crt")).expect("copy ca.crt");

        let mut lines = String::new();
        for (user, password) in users {
            let mut cmd = Command::new(&tool);
            cmd.arg("htpasswd");
            if let Some(cost) = cost {
                cmd.args(["-B", "-C", &cost.to_string()]);
            }
            cmd.arg(user);
            let out = run_input(&mut cmd, Some(&format!("{password}\n")), QUICK);
            assert!(out.status.success(), "registryd htpasswd failed: {out:?}");
            let line = out.stdout.trim();
            assert!(
                line.starts_with(&format!("{user}:$2y$")),
                "not a bcrypt htpasswd line: {line}"
            );
            lines.push_str(line);
            lines.push('\n');
        }
        let htpasswd = work.path().join("htpasswd");
        std::fs::write(&htpasswd, lines).expect("write htpasswd");
        Secrets {
            work,
            certs,
            ca_dir,
            htpasswd,
        }
    }

    /// HTTPS (from the YAML) and htpasswd, with `access` rules (YAML list items) when given.
    fn config(&self, access: &str) -> RegistryConfig {
        let mut auth = format!(
            "auth:\n  htpasswd:\n    realm: {REALM}\n    path: {}\n",
            self.htpasswd.display()
        );
        if !access.is_empty() {
            auth.push_str("  access:\n");
            auth.push_str(access);
        }
        RegistryConfig::filesystem(&self.work.path().join("data"))
            .with_tls(&self.certs)
            .with_yaml(&auth)
    }

    pub(super) fn ca(&self) -> PathBuf {
        self.certs.join("ca.crt")
    }
}

/// The CA installed in `/etc/docker/certs.d/HOST:PORT/ca.crt` for each host, removed on drop
/// (the directories too, when this made them).
pub(super) struct DockerTrust {
    installed: Vec<(PathBuf, bool)>,
}

impl DockerTrust {
    pub(super) fn install(ca: &Path, hosts: &[String]) -> DockerTrust {
        let mut trust = DockerTrust {
            installed: Vec::new(),
        };
        for host in hosts {
            let dir = Path::new("/etc/docker/certs.d").join(host);
            let made = !dir.exists();
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
                panic!(
                    "cannot create {} (the docker TLS test needs root): {e}",
                    dir.display()
                )
            });
            trust.installed.push((dir.clone(), made));
            std::fs::copy(ca, dir.join("ca.crt"))
                .unwrap_or_else(|e| panic!("cannot install the CA in {}: {e}", dir.display()));
            println!("installed {}", dir.join("ca.crt").display());
        }
        trust
    }
}

impl Drop for DockerTrust {
    fn drop(&mut self) {
        for (dir, made) in &self.installed {
            let _ = std::fs::remove_file(dir.join("ca.crt"));
            if *made {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// skopeo with a private, empty credential store (so that only `--creds` counts) and the
/// signature policy check off (the images are unsigned test images).
pub(super) struct SecureSkopeo<'a> {
    bin: &'a Path,
    home: tempfile::TempDir,
}

impl<'a> SecureSkopeo<'a> {
    pub(super) fn new(bin: &'a Path) -> Self {
        SecureSkopeo {
            bin,
            home: temp_dir("registry-e2e-skopeo-home-"),
        }
    }

    fn cmd(&self, verb: &str) -> Command {
        let home = self.home.path();
        let mut cmd = Command::new(self.bin);
        cmd.env("REGISTRY_AUTH_FILE", home.join("auth.json"))
            .env("DOCKER_CONFIG", home.join("docker"))
            .env("XDG_RUNTIME_DIR", home)
            .env("HOME", home)
            .args(["--insecure-policy", verb]);
        cmd
    }

    /// `skopeo copy` of `src` to `dest` as `creds` (USER:PASS), the destination's certificate
    /// checked against the CA in `ca_dir`.
    pub(super) fn copy(&self, src: &str, dest: &str, creds: &str, ca_dir: &Path) -> Output {
        let mut cmd = self.cmd("copy");
        cmd.args([
            "--dest-creds",
            creds,
            "--dest-tls-verify=true",
            "--dest-cert-dir",
        ])
        .arg(ca_dir)
        .args([src, dest]);
        run(&mut cmd, SLOW)
    }

    /// `skopeo inspect --raw` with `--tls-verify=true`, `--creds` and `--cert-dir` when given.
    pub(super) fn inspect(
        &self,
        reference: &str,
        creds: Option<&str>,
        ca_dir: Option<&Path>,
    ) -> Output {
        let mut cmd = self.cmd("inspect");
        cmd.args(["--raw", "--tls-verify=true"]);
        if let Some(creds) = creds {
            cmd.args(["--creds", creds]);
        }
        if let Some(ca_dir) = ca_dir {
            cmd.arg("--cert-dir").arg(ca_dir);
        }
        cmd.arg(reference);
        run(&mut cmd, QUICK)
    }

    fn delete(&self, reference: &str, creds: &str, ca_dir: &Path) -> Output {
        let mut cmd = self.cmd("delete");
        cmd.args(["--creds", creds, "--tls-verify=true", "--cert-dir"])
            .arg(ca_dir)
            .arg(reference);
        run(&mut cmd, QUICK)
    }
}

pub(super) fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

/// Asserts that the command failed and that its output says one of `words` (case-insensitive).
pub(super) fn assert_refused(what: &str, out: &Output, words: &[&str]) {
    let text = format!("{}\n{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        !out.status.success(),
        "{what} should have failed but succeeded:\n{text}"
    );
    assert!(
        words.iter().any(|w| text.contains(w)),
        "{what} failed, but its output mentions none of {words:?}:\n{text}"
    );
}

/// A small single-layer OCI image (the linux/amd64 manifest of the harness's layout) and its
/// `oci:` reference for skopeo.
pub(super) fn oci_image(work: &Path, salt: &str) -> (String, String) {
    let layout = work.join("layout");
    let written = images::write_multiarch_layout(&layout, salt);
    (
        format!("oci:{}:{AMD64_TAG}", layout.display()),
        written.amd64_digest,
    )
}

#[test]
fn docker_logs_in_pushes_and_pulls_over_tls_and_is_refused_after_logout() {
    let Some(tools) = e2e_gate(
        "docker_logs_in_pushes_and_pulls_over_tls_and_is_refused_after_logout",
        &[Need::Docker],
    ) else {
        return;
    };
    let (user, password) = ("e2e-docker", "correct horse battery staple");
    let secrets = Secrets::new("registry-e2e-docker-tls-", &[(user, password)], None);
    let server = Server::start(&registryd(), &secrets.config(""));
    let registry = server.localhost();
    let _trust = DockerTrust::install(&secrets.ca(), &[registry.clone(), server.host()]);
    let mut docker = Docker::new(tools.docker());

    let wrong = run_input(
        &mut docker.cmd(&["login", &registry, "-u", user, "--password-stdin"]),
        Some("not the password\n"),
        QUICK,
    );
    assert_refused(
        "docker login with a wrong password",
        &wrong,
        &["unauthorized", "401", "incorrect"],
    );
    let login = run_input(
        &mut docker.cmd(&["login", &registry, "-u", user, "--password-stdin"]),
        Some(&format!("{password}\n")),
        QUICK,
    );
    assert_ok("docker login", &login);
    assert!(
        login.stdout.contains("Login Succeeded"),
        "docker login: {login:?}"
    );

    let repo = format!("{registry}/e2e-sec/{}", unique("docker-tls"));
    let tag = format!("{repo}:1");
    let archive_path = secrets.work.path().join("image.tar");
    let layer = small_layer("etc/e2e-tls.txt", &format!("pushed over TLS to {repo}\n"));
    let archive = images::write_docker_archive(&archive_path, &tag, &[layer]);
    docker.forget_on_drop(&tag);
    docker.ok(&["load", "-i", &archive_path.to_string_lossy()], SLOW);
    let pushed = docker.ok(&["push", &tag], SLOW);
    let digest = super::pushed_digest(&pushed);
    docker.ok(&["rmi", &tag], QUICK);
    docker.ok(&["pull", &tag], SLOW);
    let id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", &tag], QUICK);
    assert_eq!(id.trim(), archive.config_digest, "pulled another image");
    let repo_digests = docker.ok(
        &[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &tag,
        ],
        QUICK,
    );
    assert!(
        repo_digests.contains(&digest),
        "pulled {repo_digests}, pushed {digest}"
    );

    docker.ok(&["logout", &registry], QUICK);
    let again = format!("{repo}:after-logout");
    docker.forget_on_drop(&again);
    docker.ok(&["tag", &tag, &again], QUICK);
    let refused = run(&mut docker.cmd(&["push", &again]), SLOW);
    assert_refused(
        "docker push after docker logout",
        &refused,
        &[
            "unauthorized",
            "authentication required",
            "no basic auth credentials",
        ],
    );
    server.stop();
}

#[test]
fn skopeo_checks_the_certificate_chain_and_needs_credentials() {
    let Some(tools) = e2e_gate(
        "skopeo_checks_the_certificate_chain_and_needs_credentials",
        &[Need::Skopeo],
    ) else {
        return;
    };
    let (user, password) = ("e2e-skopeo", "s3cret-skopeo");
    let creds = format!("{user}:{password}");
    let secrets = Secrets::new("registry-e2e-skopeo-tls-", &[(user, password)], Some(6));
    let server = Server::start(&registryd(), &secrets.config(""));
    let skopeo = SecureSkopeo::new(tools.skopeo());
    let (src, manifest_digest) = oci_image(secrets.work.path(), &unique("skopeo-tls"));
    let reference = format!("docker://{}/e2e-sec/skopeo-tls:1", server.localhost());

    let copied = skopeo.copy(&src, &reference, &creds, &secrets.ca_dir);
    assert_ok("skopeo copy with --dest-creds and --dest-cert-dir", &copied);

    let inspected = skopeo.inspect(&reference, Some(&creds), Some(&secrets.ca_dir));
    assert_ok("skopeo inspect with --creds and --cert-dir", &inspected);
    assert_eq!(
        images::digest(inspected.stdout.as_bytes()),
        manifest_digest,
        "skopeo inspect --raw returned another manifest"
    );

    let anonymous = skopeo.inspect(&reference, None, Some(&secrets.ca_dir));
    assert_refused(
        "skopeo inspect without --creds",
        &anonymous,
        &["401", "unauthorized", "authentication required"],
    );

    let untrusted = skopeo.inspect(&reference, Some(&creds), None);
    assert_refused(
        "skopeo inspect --tls-verify=true without the CA",
        &untrusted,
        &["certificate", "x509"],
    );
    server.stop();
}

#[test]
fn curl_sees_the_basic_challenge_and_needs_the_ca_and_https() {
    let Some(tools) = e2e_gate(
        "curl_sees_the_basic_challenge_and_needs_the_ca_and_https",
        &[Need::Curl],
    ) else {
        return;
    };
    let (user, password) = ("e2e-curl", "s3cret-curl");
    let secrets = Secrets::new("registry-e2e-curl-tls-", &[(user, password)], Some(6));
    let server = Server::start(&registryd(), &secrets.config(""));
    let https = format!("https://{}/v2/", server.localhost());
    let curl = |args: &[&str]| -> Output {
        let mut cmd = Command::new(tools.curl());
        // -q: no ~/.curlrc; and no CA bundle from the environment.
        cmd.env_remove("CURL_CA_BUNDLE")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .args(["-q", "-sS", "--max-time", "20"])
            .args(args);
        run(&mut cmd, QUICK)
    };
    let ca = secrets.ca().to_string_lossy().into_owned();

    let challenge = curl(&["-i", "--cacert", &ca, &https]);
    assert_ok("curl --cacert", &challenge);
    let head = challenge.stdout.to_lowercase();
    assert!(
        head.lines().next().is_some_and(|l| l.contains(" 401")),
        "expected 401: {head}"
    );
    let expected = format!("www-authenticate: basic realm=\"{}\"", REALM.to_lowercase());
    assert!(head.contains(&expected), "no {expected:?} in {head}");

    let creds = format!("{user}:{password}");
    let authorized = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        &ca,
        "-u",
        &creds,
        &https,
    ]);
    assert_ok("curl -u", &authorized);
    assert_eq!(authorized.stdout.trim(), "200");

    let wrong = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        &ca,
        "-u",
        &format!("{user}:wrong"),
        &https,
    ]);
    assert_eq!(wrong.stdout.trim(), "401", "a wrong password: {wrong:?}");

    let untrusted = curl(&["-u", &creds, &https]);
    assert_eq!(
        untrusted.status.code(),
        Some(60),
        "curl without --cacert must fail to verify the certificate (exit code 60): {untrusted:?}"
    );

    let plain = curl(&["-i", &format!("http://{}/v2/", server.localhost())]);
    assert_ok("curl http:// to the TLS port", &plain);
    assert!(
        plain
            .stdout
            .lines()
            .next()
            .is_some_and(|l| l.contains(" 400")),
        "expected 400: {}",
        plain.stdout
    );
    assert!(
        plain.stdout.contains("https://"),
        "the 400 should say to use https: {}",
        plain.stdout
    );
    server.stop();
}

#[test]
fn access_rules_separate_anonymous_reader_and_ci() {
    let Some(tools) = e2e_gate(
        "access_rules_separate_anonymous_reader_and_ci",
        &[Need::Skopeo],
    ) else {
        return;
    };
    let (ci, reader) = (("ci", "ci-s3cret"), ("reader", "reader-s3cret"));
    let ci_creds = format!("{}:{}", ci.0, ci.1);
    let reader_creds = format!("{}:{}", reader.0, reader.1);
    let secrets = Secrets::new("registry-e2e-access-", &[ci, reader], Some(5));
    let rules = "    - { users: [anonymous], repositories: [\"public/*\"], actions: [pull] }\n\
                 \x20   - { users: [ci], repositories: [\"team/*\", \"public/*\"], actions: [pull, push] }\n\
                 \x20   - { users: [reader], repositories: [\"team/*\"], actions: [pull] }\n";
    // TLS from REGISTRY_HTTP_TLS_* here; delete enabled, so that a refused delete is the rules'.
    let mut config = secrets.config(rules).with_delete();
    config.tls = None;
    let config = config.with_tls_from_env(&secrets.certs);
    let server = Server::start(&registryd(), &config);
    let skopeo = SecureSkopeo::new(tools.skopeo());
    let (src, manifest_digest) = oci_image(secrets.work.path(), &unique("access"));
    let host = server.localhost();
    let team = format!("docker://{host}/team/app:1");
    let public = format!("docker://{host}/public/tool:1");
    let ca_dir = secrets.ca_dir.as_path();

    assert_ok(
        "ci pushes team/app",
        &skopeo.copy(&src, &team, &ci_creds, ca_dir),
    );
    assert_ok(
        "ci pushes public/tool",
        &skopeo.copy(&src, &public, &ci_creds, ca_dir),
    );

    assert_refused(
        "anonymous inspect of team/app",
        &skopeo.inspect(&team, None, Some(ca_dir)),
        &["401", "unauthorized", "authentication required"],
    );

    let reader_team = skopeo.inspect(&team, Some(&reader_creds), Some(ca_dir));
    assert_ok("reader inspects team/app", &reader_team);
    assert_eq!(
        images::digest(reader_team.stdout.as_bytes()),
        manifest_digest
    );
    assert_refused(
        "reader pushes to team/app",
        &skopeo.copy(
            &src,
            &format!("docker://{host}/team/app:reader"),
            &reader_creds,
            ca_dir,
        ),
        &["denied", "403", "unauthorized"],
    );
    assert_refused(
        "reader pushes to public/tool",
        &skopeo.copy(
            &src,
            &format!("docker://{host}/public/tool:reader"),
            &reader_creds,
            ca_dir,
        ),
        &["denied", "403", "unauthorized"],
    );

    assert_refused(
        "ci deletes team/app:1",
        &skopeo.delete(&team, &ci_creds, ca_dir),
        &["denied", "403", "unauthorized"],
    );
    assert_ok(
        "team/app:1 is still there after the refused delete",
        &skopeo.inspect(&team, Some(&reader_creds), Some(ca_dir)),
    );

    // Last, so that a failure here leaves the checks above run: skopeo (containers/image) sends
    // `Authorization: Basic Og==` (an empty user and password) when it has no credentials, and
    // that must count as anonymous.
    let anonymous_public = skopeo.inspect(&public, None, Some(ca_dir));
    assert_ok("anonymous inspect of public/tool", &anonymous_public);
    assert_eq!(
        images::digest(anonymous_public.stdout.as_bytes()),
        manifest_digest
    );
    server.stop();
}
