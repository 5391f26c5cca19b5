//! The commands that work on a store directly: `registryd verify` (exit codes, output by storage
//! path, `--repair`, the configuration read as `serve` reads it) and `registryd garbage-collect`
//! (what it keeps and deletes, its output, `--dry-run`, the grace period). The stores are written
//! by hand in registry:2's layout, as registry:2 2.8 writes them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

const REGISTRYD: &str = env!("CARGO_BIN_EXE_registryd");

fn registryd() -> Command {
    let mut command = Command::new(REGISTRYD);
    // The tests' own environment must not configure the runs.
    for (key, _) in std::env::vars() {
        if key.starts_with("REGISTRY_") {
            command.env_remove(key);
        }
    }
    command
}

fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run registryd");
    (
        status.code(),
        String::from_utf8(stdout).expect("stdout is UTF-8"),
        String::from_utf8(stderr).expect("stderr is UTF-8"),
    )
}

/// A registry:2 data directory under a temporary directory, with a config file naming it.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        let store = Store {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::create_dir_all(store.data()).expect("data dir");
        std::fs::write(
            store.config(),
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
                store.data().display()
            ),
        )
        .expect("config");
        store
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn v2(&self) -> PathBuf {
        self.data().join("docker/registry/v2")
    }

    /// Stores `content` as a blob and returns its hex digest.
    fn blob(&self, content: &[u8]) -> String {
        let hex = hex::encode(Sha256::digest(content));
        let dir = self.blob_dir(&hex);
        std::fs::create_dir_all(&dir).expect("blob dir");
        std::fs::write(dir.join("data"), content).expect("blob data");
        hex
    }

    fn blob_dir(&self, hex: &str) -> PathBuf {
        self.v2().join(format!("blobs/sha256/{}/{hex}", &hex[..2]))
    }

    /// Links the blob `hex` into the repository `name` and returns the link's directory.
    fn layer_link(&self, name: &str, hex: &str) -> PathBuf {
        let dir = self
            .v2()
            .join(format!("repositories/{name}/_layers/sha256/{hex}"));
        std::fs::create_dir_all(&dir).expect("link dir");
        std::fs::write(dir.join("link"), format!("sha256:{hex}")).expect("link");
        dir
    }

    /// Stores `manifest` and links it into the repository `name` as registry:2 does, tagged
    /// `tag` when given; returns its hex digest.
    fn manifest(&self, name: &str, manifest: &str, tag: Option<&str>) -> String {
        let hex = self.blob(manifest.as_bytes());
        let manifests = self.v2().join(format!("repositories/{name}/_manifests"));
        let mut links = vec![manifests.join(format!("revisions/sha256/{hex}"))];
        if let Some(tag) = tag {
            links.push(manifests.join(format!("tags/{tag}/current")));
            links.push(manifests.join(format!("tags/{tag}/index/sha256/{hex}")));
        }
        for dir in links {
            std::fs::create_dir_all(&dir).expect("link dir");
            std::fs::write(dir.join("link"), format!("sha256:{hex}")).expect("link");
        }
        hex
    }

    fn verify(&self, extra: &[&str]) -> (Option<i32>, String, String) {
        run(registryd().arg("verify").arg(self.config()).args(extra))
    }

    fn garbage_collect(&self, extra: &[&str]) -> (Option<i32>, String, String) {
        run(registryd()
            .arg("garbage-collect")
            .arg(self.config())
            .args(extra))
    }
}

/// An OCI image manifest naming the blobs `config` and `layers` (hex digests, sizes made up).
fn image_manifest(config: &str, layers: &[&str]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|hex| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{hex}","size":5}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config}","size":2}},"layers":[{}]}}"#,
        layers.join(",")
    )
}

/// A registry:2 store with a tagged image, an untagged one and a blob nothing uses; returns the
/// hex digests (tagged manifest, its layer, untagged manifest, its layer, the stray blob).
fn store_with_garbage(store: &Store) -> [String; 5] {
    let config = store.blob(b"{}");
    store.layer_link("team/app", &config);
    let layer = store.blob(b"kept layer");
    store.layer_link("team/app", &layer);
    let tagged = store.manifest("team/app", &image_manifest(&config, &[&layer]), Some("v1"));
    let old_layer = store.blob(b"old layer");
    store.layer_link("team/app", &old_layer);
    let untagged = store.manifest("team/app", &image_manifest(&config, &[&old_layer]), None);
    let stray = store.blob(b"uploaded, never linked");
    [tagged, layer, untagged, old_layer, stray]
}

/// The storage path of `file` below the data directory, as the output names it.
fn storage_path(store: &Store, file: &Path) -> String {
    let relative = file.strip_prefix(store.data()).expect("below the data dir");
    format!("/{}", relative.display())
}

#[test]
fn clean_store_exits_0_and_prints_the_totals() {
    let store = Store::new();
    let hex = store.blob(b"layer");
    store.layer_link("team/app", &hex);

    let (code, stdout, stderr) = store.verify(&[]);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.starts_with("verified 1 blobs and 1 links, hashed 5 bytes (5 B) in "),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with(": no problems"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(stderr, "", "no progress when stderr is not a terminal");
}

#[test]
fn problems_are_printed_by_path_and_exit_1_leaving_the_store_as_it_was() {
    let store = Store::new();
    let corrupt = store.blob(b"layer");
    store.layer_link("team/app", &corrupt);
    let data = store.blob_dir(&corrupt).join("data");
    std::fs::write(&data, b"layr").expect("corrupt the blob");
    let missing = hex::encode(Sha256::digest(b"never stored"));
    let dangling = store.layer_link("team/app", &missing).join("link");

    let (code, stdout, stderr) = store.verify(&[]);
    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(
        lines[0],
        format!(
            "{}: corrupt blob: content is sha256:{}",
            storage_path(&store, &data),
            hex::encode(Sha256::digest(b"layr"))
        )
    );
    assert_eq!(
        lines[1],
        format!(
            "{}: dangling link: the data of blob sha256:{missing} is missing",
            storage_path(&store, &dangling)
        )
    );
    assert!(lines[2].ends_with(": 2 problems"), "{stdout}");
    assert!(
        data.exists() && dangling.exists(),
        "verify alone changes nothing"
    );
}

#[test]
fn repair_removes_the_dangling_link_only_and_a_second_run_is_clean() {
    let store = Store::new();
    let kept = store.blob(b"layer");
    let good = store.layer_link("team/app", &kept).join("link");
    let missing = hex::encode(Sha256::digest(b"never stored"));
    let dangling = store.layer_link("team/app", &missing);

    let (code, stdout, stderr) = store.verify(&["--repair"]);
    assert_eq!(
        code,
        Some(1),
        "something was wrong: stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "{}: dangling link: the data of blob sha256:{missing} is missing (removed {})",
            storage_path(&store, &dangling.join("link")),
            storage_path(&store, &dangling)
        )),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with(": 1 problem, 1 link removed"),
        "{stdout}"
    );
    assert!(!dangling.exists());
    assert!(good.exists() && store.blob_dir(&kept).join("data").exists());

    let (code, stdout, _) = store.verify(&[]);
    assert_eq!(code, Some(0), "{stdout}");
}

#[test]
fn a_root_directory_that_does_not_exist_exits_2_and_is_not_created() {
    let store = Store::new();
    let nowhere = store.dir.path().join("typo");
    std::fs::write(
        store.config(),
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
            nowhere.display()
        ),
    )
    .expect("config");

    let (code, stdout, stderr) = store.verify(&[]);
    assert_eq!(code, Some(2), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("config key storage.filesystem.rootdirectory"),
        "{stderr}"
    );
    assert!(!nowhere.exists());
}

#[test]
fn an_inmemory_store_cannot_be_verified() {
    let store = Store::new();
    std::fs::write(store.config(), "version: 0.1\nstorage:\n  inmemory: {}\n").expect("config");
    let (code, _, stderr) = store.verify(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("config key storage"), "{stderr}");
}

#[test]
fn configuration_comes_from_the_environment_as_for_serve() {
    let store = Store::new();
    let missing = hex::encode(Sha256::digest(b"never stored"));
    store.layer_link("app", &missing);
    // The file names an empty directory; the environment overrides it with the store.
    let empty = store.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("empty dir");
    std::fs::write(
        store.config(),
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
            empty.display()
        ),
    )
    .expect("config");

    let (code, stdout, stderr) = run(registryd()
        .arg("verify")
        .env("REGISTRY_CONFIGURATION_PATH", store.config())
        .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", store.data()));
    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("dangling link"), "{stdout}");
}

#[test]
fn garbage_collect_deletes_what_no_tag_reaches_and_keeps_the_rest() {
    let store = Store::new();
    let [tagged, layer, untagged, old_layer, stray] = store_with_garbage(&store);

    let (code, stdout, stderr) =
        store.garbage_collect(&["--delete-untagged", "--grace-period", "0"]);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    for line in [
        format!("team/app: marking manifest sha256:{tagged}"),
        format!("team/app: manifest deleting: sha256:{untagged}"),
        format!("team/app: layer link deleting: sha256:{old_layer}"),
    ] {
        assert!(
            stdout.lines().any(|printed| printed == line),
            "{line} in\n{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("blob deleting: sha256:{stray} (22 B)")),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with(" s")
            && stdout.contains("deleted 0 tags, 1 manifests, 1 layer links and 3 blobs"),
        "{stdout}"
    );
    for kept in [&tagged, &layer] {
        assert!(store.blob_dir(kept).join("data").exists(), "{kept} kept");
    }
    for deleted in [&untagged, &old_layer, &stray] {
        assert!(
            !store.blob_dir(deleted).join("data").exists(),
            "{deleted} deleted"
        );
    }
    let (code, stdout, _) = store.verify(&[]);
    assert_eq!(
        code,
        Some(0),
        "the collected store verifies clean: {stdout}"
    );
}

#[test]
fn garbage_collect_dry_run_prints_the_same_and_deletes_nothing() {
    let store = Store::new();
    let [_, _, untagged, _, stray] = store_with_garbage(&store);

    let (code, stdout, stderr) =
        store.garbage_collect(&["--dry-run", "--delete-untagged", "--grace-period", "0"]);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains(&format!(
            "team/app: manifest eligible for deletion: sha256:{untagged}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("would delete 0 tags, 1 manifests, 1 layer links and 3 blobs"),
        "{stdout}"
    );
    for hex in [&untagged, &stray] {
        assert!(
            store.blob_dir(hex).join("data").exists(),
            "{hex} still there"
        );
    }
}

#[test]
fn garbage_collect_keeps_what_was_written_within_the_default_grace_period() {
    let store = Store::new();
    let [_, _, untagged, old_layer, stray] = store_with_garbage(&store);

    let (code, stdout, stderr) = store.garbage_collect(&["--delete-untagged"]);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("deleted 0 tags, 0 manifests, 0 layer links and 0 blobs"),
        "{stdout}"
    );
    for hex in [&untagged, &old_layer, &stray] {
        assert!(store.blob_dir(hex).join("data").exists(), "{hex} kept");
    }
}

#[test]
fn garbage_collect_applies_the_retention_policies_of_the_configuration() {
    let store = Store::new();
    let config = store.blob(b"{}");
    store.layer_link("team/app", &config);
    let mut manifests = Vec::new();
    // Tagged an hour apart, in this order: `c` is the newest.
    for (hours_ago, tag) in [(3, "a"), (2, "b"), (1, "c")] {
        let layer = store.blob(format!("layer of {tag}").as_bytes());
        store.layer_link("team/app", &layer);
        let manifest = image_manifest(&config, &[&layer]);
        manifests.push(store.manifest("team/app", &manifest, Some(tag)));
        let link = store
            .data()
            .join(TAGS_OF_APP)
            .join(tag)
            .join("current/link");
        std::fs::File::options()
            .write(true)
            .open(link)
            .and_then(|file| {
                file.set_modified(SystemTime::now() - Duration::from_secs(hours_ago * 3600))
            })
            .expect("tag pushed hours ago");
    }
    let mut yaml = std::fs::read_to_string(store.config()).expect("config");
    yaml.push_str(
        "  maintenance:\n    gc:\n      retention:\n        - repositories: [\"team/*\"]\n          keepnewest: 1\n          keeptags: [a]\n",
    );
    std::fs::write(store.config(), yaml).expect("config with retention");
    let args = ["--delete-untagged", "--grace-period", "0"];

    let (code, stdout, stderr) = store.garbage_collect(&[&["--dry-run"][..], &args].concat());
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    let planned = format!(
        "team/app: tag eligible for deletion by retention: b (sha256:{})",
        manifests[1]
    );
    assert!(
        stdout.lines().any(|line| line == planned),
        "{planned} in\n{stdout}"
    );
    assert!(
        stdout.contains("would delete 1 tags, 1 manifests"),
        "{stdout}"
    );
    assert!(store.data().join(TAGS_OF_APP).join("b").exists());

    let (code, stdout, stderr) = store.garbage_collect(&args);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.starts_with("applying 1 retention policies"),
        "{stdout}"
    );
    assert!(stdout.contains("deleted 1 tags, 1 manifests"), "{stdout}");
    for (tag, manifest) in ["a", "b", "c"].iter().zip(&manifests) {
        let kept = *tag != "b";
        assert_eq!(
            store.data().join(TAGS_OF_APP).join(tag).exists(),
            kept,
            "tag {tag}"
        );
        assert_eq!(
            store.blob_dir(manifest).join("data").exists(),
            kept,
            "manifest of {tag}"
        );
    }
}

const TAGS_OF_APP: &str = "docker/registry/v2/repositories/team/app/_manifests/tags";
