//! Writes registry:2's filesystem layout directly, so a benchmark can start a server over
//! thousands of repositories or tags in seconds instead of pushing them through the API. registry:2
//! and registryd read the same layout under `docker/registry/v2/`:
//!
//! - `blobs/sha256/<first two hex>/<hex>/data`: the blob;
//! - `repositories/<name>/_layers/sha256/<hex>/link`: the repository may serve that blob;
//! - `repositories/<name>/_manifests/revisions/sha256/<hex>/link`: a manifest of the repository;
//! - `repositories/<name>/_manifests/tags/<tag>/current/link` and
//!   `.../tags/<tag>/index/sha256/<hex>/link`: a tag and its history.
//!
//! Every link file holds `sha256:<hex>`, as registry:2 writes it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::json;

use crate::Error;
use crate::blob::XorShift;
use crate::client::sha256_digest;

/// Media type of the manifests written.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// What [`populate`] wrote.
#[derive(Clone, Debug)]
pub struct Populated {
    /// Names of the repositories holding one image tagged `latest`, sorted.
    pub repositories: Vec<String>,
    /// The repository holding many tags.
    pub tagged: String,
    /// Its tags, sorted.
    pub tags: Vec<String>,
}

/// Prefix of the repositories written for the catalog.
pub const CATALOG_PREFIX: &str = "catalog/repo-";
/// The repository written with many tags.
pub const TAGGED_REPOSITORY: &str = "bench/tags";

/// Writes, under the storage root `root`, `repositories` repositories (`catalog/repo-00000`, ...)
/// each with the same small image tagged `latest`, and the repository `bench/tags` with `tags`
/// tags (`t-00000`, ...), each on a manifest of its own.
pub fn populate(root: &Path, repositories: usize, tags: usize) -> Result<Populated, Error> {
    let v2 = root.join("docker/registry/v2");
    let mut layer = vec![0u8; 1024];
    XorShift::new(0xca7a_1096).fill(&mut layer);
    let layer_digest = write_blob(&v2, &layer, None)?;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))?;
    let config_digest = write_blob(&v2, &config, None)?;
    let manifest = |annotation: Option<&str>| -> Result<Vec<u8>, Error> {
        let mut value = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer.len(),
            }],
        });
        if let Some(tag) = annotation {
            value["annotations"] = json!({"org.registryd.bench.tag": tag});
        }
        Ok(serde_json::to_vec(&value)?)
    };
    let blobs = [layer_digest.as_str(), config_digest.as_str()];

    let shared = write_blob(&v2, &manifest(None)?, None)?;
    let width = digits(repositories.max(tags));
    let mut names = Vec::with_capacity(repositories);
    for i in 0..repositories {
        let name = format!("{CATALOG_PREFIX}{i:0width$}");
        let repo = v2.join("repositories").join(&name);
        link_layers(&repo, &blobs, None)?;
        link_manifest(&repo, &shared, None)?;
        link_tag(&repo, "latest", &shared, None)?;
        names.push(name);
    }

    let repo = v2.join("repositories").join(TAGGED_REPOSITORY);
    link_layers(&repo, &blobs, None)?;
    let mut tag_names = Vec::with_capacity(tags);
    for i in 0..tags {
        let tag = format!("t-{i:0width$}");
        let digest = write_blob(&v2, &manifest(Some(&tag))?, None)?;
        link_manifest(&repo, &digest, None)?;
        link_tag(&repo, &tag, &digest, None)?;
        tag_names.push(tag);
    }
    Ok(Populated {
        repositories: names,
        tagged: TAGGED_REPOSITORY.to_string(),
        tags: tag_names,
    })
}

/// Prefix of the repositories [`populate_garbage`] writes.
pub const GC_PREFIX: &str = "gc/repo-";
/// Blobs [`populate_garbage`] writes for each repository, besides the base layer they share and
/// the blobs no repository links: 5 kept (manifest, config, 3 layers) and 4 garbage (manifest,
/// config, 2 layers).
pub const GC_BLOBS_PER_REPOSITORY: usize = 9;
/// Size of every layer [`populate_garbage`] writes.
const GC_LAYER_SIZE: usize = 1024;
/// Layers of a repository's tagged image, besides the base layer.
const GC_LAYERS: usize = 3;
/// Layers that only a repository's untagged manifest uses.
const GC_GARBAGE_LAYERS: usize = 2;

/// A repository [`populate_garbage`] wrote: an image tagged `latest`, and an older build of it
/// that no tag names any more.
#[derive(Clone, Debug)]
pub struct GcRepository {
    /// Its name, `gc/repo-00000`, ...
    pub name: String,
    /// The manifest tagged `latest`.
    pub tagged: String,
    /// The config and layers of the tagged manifest, except the shared base layer.
    pub kept: Vec<String>,
    /// The untagged manifest: the tagged image's base and first layer, and a config and layers of
    /// its own.
    pub untagged: String,
    /// The config and layers only the untagged manifest uses.
    pub garbage: Vec<String>,
}

/// What [`populate_garbage`] wrote, and so what a collection with `--delete-untagged` keeps and
/// deletes.
#[derive(Clone, Debug)]
pub struct GarbageStore {
    /// The repositories, sorted by name.
    pub repositories: Vec<GcRepository>,
    /// The layer every tagged image starts with.
    pub base_layer: String,
    /// Blobs that no repository links.
    pub unlinked: Vec<String>,
    /// Bytes of blob data written.
    pub bytes: u64,
}

/// Some of what a check of a storage root found, counted, with the first few paths.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// How many.
    pub count: usize,
    /// The first [`Found::EXAMPLES`] of them.
    pub examples: Vec<PathBuf>,
}

impl Found {
    /// How many paths are kept as examples.
    pub const EXAMPLES: usize = 5;

    fn add(&mut self, path: PathBuf) {
        self.count += 1;
        if self.examples.len() < Self::EXAMPLES {
            self.examples.push(path);
        }
    }
}

/// A storage root compared with what [`populate_garbage`] wrote there.
#[derive(Clone, Debug, Default)]
pub struct StoreCheck {
    /// Directories under `blobs/sha256/<two hex>/`, one a blob.
    pub blob_dirs: usize,
    /// Those without a `data` file.
    pub blob_dirs_without_data: Found,
    /// Garbage collection markers (`registryd-gc`) beside blob data.
    pub markers: Found,
    /// Kept content that is gone: blob data, the `latest` tag, revision and layer links.
    pub missing: Found,
    /// Garbage still there: blob data, the untagged manifests' revision links, and the layer links
    /// of what only they use.
    pub remaining: Found,
}

impl GarbageStore {
    /// Blobs written in all.
    pub fn blobs(&self) -> usize {
        self.kept_blobs() + self.garbage_blobs()
    }

    /// Blobs a tag reaches (the base layer, and each repository's tagged manifest, config and
    /// layers).
    pub fn kept_blobs(&self) -> usize {
        1 + self
            .repositories
            .iter()
            .map(|r| 1 + r.kept.len())
            .sum::<usize>()
    }

    /// Blobs no tag reaches: each repository's untagged manifest and what only it uses, and the
    /// blobs no repository links.
    pub fn garbage_blobs(&self) -> usize {
        self.unlinked.len()
            + self
                .repositories
                .iter()
                .map(|r| 1 + r.garbage.len())
                .sum::<usize>()
    }

    /// Layer links only untagged manifests use: what `--delete-untagged` removes.
    pub fn garbage_layer_links(&self) -> usize {
        self.repositories.iter().map(|r| r.garbage.len()).sum()
    }

    /// Garbage paths in all: garbage blobs, untagged revision links and garbage layer links
    /// (what [`StoreCheck::remaining`] counts before a collection).
    pub fn garbage_paths(&self) -> usize {
        self.garbage_blobs() + self.repositories.len() + self.garbage_layer_links()
    }

    /// Compares the storage root `root` with what was written: after a collection with
    /// `--delete-untagged`, nothing may be missing and nothing may remain.
    pub fn check(&self, root: &Path) -> Result<StoreCheck, Error> {
        let v2 = root.join("docker/registry/v2");
        let mut check = StoreCheck::default();
        for prefix in read_dir_sorted(&v2.join("blobs/sha256"))? {
            for dir in read_dir_sorted(&prefix)? {
                check.blob_dirs += 1;
                if !dir.join("data").is_file() {
                    check.blob_dirs_without_data.add(dir.clone());
                }
                let marker = dir.join("registryd-gc");
                if marker.exists() {
                    check.markers.add(marker);
                }
            }
        }
        let data = |digest: &str| blob_dir(&v2, digest).join("data");
        let expect =
            |check: &mut StoreCheck, path: PathBuf, kept: bool| match (kept, path.is_file()) {
                (true, false) => check.missing.add(path),
                (false, true) => check.remaining.add(path),
                _ => {}
            };
        expect(&mut check, data(&self.base_layer), true);
        for digest in &self.unlinked {
            expect(&mut check, data(digest), false);
        }
        for repository in &self.repositories {
            let repo = v2.join("repositories").join(&repository.name);
            let revision = |digest: &str| {
                repo.join("_manifests/revisions/sha256")
                    .join(hex(digest))
                    .join("link")
            };
            let layer = |digest: &str| repo.join("_layers/sha256").join(hex(digest)).join("link");
            expect(
                &mut check,
                repo.join("_manifests/tags/latest/current/link"),
                true,
            );
            expect(&mut check, revision(&repository.tagged), true);
            expect(&mut check, data(&repository.tagged), true);
            expect(&mut check, layer(&self.base_layer), true);
            for digest in &repository.kept {
                expect(&mut check, layer(digest), true);
                expect(&mut check, data(digest), true);
            }
            expect(&mut check, revision(&repository.untagged), false);
            expect(&mut check, data(&repository.untagged), false);
            for digest in &repository.garbage {
                expect(&mut check, layer(digest), false);
                expect(&mut check, data(digest), false);
            }
        }
        Ok(check)
    }
}

/// Writes, under the storage root `root`, `repositories` repositories (`gc/repo-00000`, ...) and
/// `blobs` blobs in all, every file last modified at `written`, for a garbage collection to work
/// on. Each repository holds an image tagged `latest` (a manifest, a config, a base layer every
/// repository shares and 3 layers of its own) and an untagged manifest, an older build of it
/// (the same base and first layer, and a config and 2 layers of its own, linked in the
/// repository as a push links them); the blobs left over (`blobs - 1 - 9 * repositories`) are
/// written with no link at all, like the data of a deleted repository. Layers are 1 KiB.
pub fn populate_garbage(
    root: &Path,
    repositories: usize,
    blobs: usize,
    written: SystemTime,
) -> Result<GarbageStore, Error> {
    let needed = 1 + GC_BLOBS_PER_REPOSITORY * repositories;
    if blobs < needed {
        return Err(format!(
            "{repositories} repositories need at least {needed} blobs \
             ({GC_BLOBS_PER_REPOSITORY} each and a shared base layer)"
        )
        .into());
    }
    let v2 = root.join("docker/registry/v2");
    let written = Some(written);
    let mut bytes = 0u64;
    let mut blob = |data: &[u8]| {
        bytes += data.len() as u64;
        write_blob(&v2, data, written)
    };
    let base_layer = blob(&unique_layer(u64::MAX))?;
    let width = digits(repositories);
    let mut written_repositories = Vec::with_capacity(repositories);
    for i in 0..repositories {
        let name = format!("{GC_PREFIX}{i:0width$}");
        let stamp = |k: u64| ((i as u64) << 8) | k;
        let layers = (0..GC_LAYERS as u64)
            .map(|k| blob(&unique_layer(stamp(k))))
            .collect::<Result<Vec<_>, _>>()?;
        let old_layers = (0..GC_GARBAGE_LAYERS as u64)
            .map(|k| blob(&unique_layer(stamp(0x80 | k))))
            .collect::<Result<Vec<_>, _>>()?;

        let image = [base_layer.as_str()]
            .into_iter()
            .chain(layers.iter().map(String::as_str))
            .collect::<Vec<_>>();
        let config_json = gc_config(&name, "current", &image)?;
        let config = blob(&config_json)?;
        let tagged = blob(&gc_manifest(&config, config_json.len(), &image)?)?;

        let old_image = [base_layer.as_str(), layers[0].as_str()]
            .into_iter()
            .chain(old_layers.iter().map(String::as_str))
            .collect::<Vec<_>>();
        let old_config_json = gc_config(&name, "previous", &old_image)?;
        let old_config = blob(&old_config_json)?;
        let untagged = blob(&gc_manifest(
            &old_config,
            old_config_json.len(),
            &old_image,
        )?)?;

        let repo = v2.join("repositories").join(&name);
        let mut kept = vec![config];
        kept.extend(layers);
        let mut garbage = vec![old_config];
        garbage.extend(old_layers);
        let linked = [base_layer.as_str()]
            .into_iter()
            .chain(kept.iter().map(String::as_str))
            .chain(garbage.iter().map(String::as_str))
            .collect::<Vec<_>>();
        link_layers(&repo, &linked, written)?;
        link_manifest(&repo, &untagged, written)?;
        link_manifest(&repo, &tagged, written)?;
        link_tag(&repo, "latest", &tagged, written)?;
        written_repositories.push(GcRepository {
            name,
            tagged,
            kept,
            untagged,
            garbage,
        });
    }
    let unlinked = (0..(blobs - needed) as u64)
        .map(|k| blob(&unique_layer((1 << 62) | k)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GarbageStore {
        repositories: written_repositories,
        base_layer,
        unlinked,
        bytes,
    })
}

/// A pseudo-random layer that starts with `stamp`, so that no two stamps give the same blob.
fn unique_layer(stamp: u64) -> Vec<u8> {
    let mut layer = vec![0u8; GC_LAYER_SIZE];
    XorShift::new(stamp.wrapping_mul(0x9e37_79b9_7f4a_7c15)).fill(&mut layer);
    layer[..8].copy_from_slice(&stamp.to_le_bytes());
    layer
}

fn gc_config(name: &str, build: &str, layers: &[&str]) -> Result<Vec<u8>, Error> {
    Ok(serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.registryd.bench.repository": name, "org.registryd.bench.build": build}},
        "rootfs": {"type": "layers", "diff_ids": layers},
    }))?)
}

fn gc_manifest(config: &str, config_size: usize, layers: &[&str]) -> Result<Vec<u8>, Error> {
    Ok(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": config_size,
        },
        "layers": layers.iter().map(|digest| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": GC_LAYER_SIZE,
        })).collect::<Vec<_>>(),
    }))?)
}

/// The entries of `dir`, sorted; none when it does not exist.
fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display()).into()),
    };
    let mut paths = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    paths.sort();
    Ok(paths)
}

fn digits(n: usize) -> usize {
    n.max(1).to_string().len().max(5)
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// When the files written were last modified: now, or a time in the past (so that a garbage
/// collection takes them for older than its grace period).
type Written = Option<SystemTime>;

/// Where the data of the blob `digest` (`sha256:<hex>`) is under the storage root `root`.
pub fn blob_data_path(root: &Path, digest: &str) -> PathBuf {
    blob_dir(&root.join("docker/registry/v2"), digest).join("data")
}

/// The directory of the blob `digest`: `blobs/sha256/<first two hex>/<hex>`.
fn blob_dir(v2: &Path, digest: &str) -> PathBuf {
    let hex = hex(digest);
    v2.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Writes `data` as a blob; returns its digest.
fn write_blob(v2: &Path, data: &[u8], written: Written) -> Result<String, Error> {
    let digest = sha256_digest(data);
    let dir = blob_dir(v2, &digest);
    std::fs::create_dir_all(&dir)?;
    write_file(&dir.join("data"), data, written)?;
    Ok(digest)
}

fn write_link(dir: PathBuf, digest: &str, written: Written) -> Result<(), Error> {
    std::fs::create_dir_all(&dir)?;
    write_file(&dir.join("link"), digest.as_bytes(), written)
}

fn write_file(path: &Path, data: &[u8], written: Written) -> Result<(), Error> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(data)?;
    if let Some(time) = written {
        file.set_modified(time)?;
    }
    Ok(())
}

fn link_layers(repo: &Path, digests: &[&str], written: Written) -> Result<(), Error> {
    for digest in digests {
        write_link(
            repo.join("_layers/sha256").join(hex(digest)),
            digest,
            written,
        )?;
    }
    Ok(())
}

fn link_manifest(repo: &Path, digest: &str, written: Written) -> Result<(), Error> {
    write_link(
        repo.join("_manifests/revisions/sha256").join(hex(digest)),
        digest,
        written,
    )
}

fn link_tag(repo: &Path, tag: &str, digest: &str, written: Written) -> Result<(), Error> {
    let dir = repo.join("_manifests/tags").join(tag);
    write_link(dir.join("current"), digest, written)?;
    write_link(dir.join("index/sha256").join(hex(digest)), digest, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_has_links_and_blobs_where_registry2_looks() {
        let root =
            std::env::temp_dir().join(format!("registry-bench-layout-{}", std::process::id()));
        let populated = populate(&root, 3, 2).expect("populate");
        assert_eq!(populated.repositories.len(), 3);
        assert_eq!(populated.tags, ["t-00000", "t-00001"]);
        let v2 = root.join("docker/registry/v2");
        let link = std::fs::read_to_string(
            v2.join("repositories/bench/tags/_manifests/tags/t-00001/current/link"),
        )
        .expect("tag link");
        let hex = link.strip_prefix("sha256:").expect("a sha256 link");
        let blob = v2
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        let manifest = std::fs::read(blob).expect("manifest blob");
        assert_eq!(sha256_digest(&manifest), link);
        assert!(
            v2.join("repositories/catalog/repo-00002/_manifests/tags/latest/current/link")
                .is_file()
        );
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[test]
    fn garbage_is_written_old_beside_what_a_tag_keeps() {
        let root =
            std::env::temp_dir().join(format!("registry-bench-gc-layout-{}", std::process::id()));
        let old = SystemTime::now() - std::time::Duration::from_secs(86_400);
        let store = populate_garbage(&root, 3, 30, old).expect("populate");
        assert_eq!(store.blobs(), 30);
        assert_eq!(store.kept_blobs(), 16);
        assert_eq!(store.garbage_blobs(), 14);
        assert_eq!(store.unlinked.len(), 2);
        assert_eq!(store.garbage_layer_links(), 9);
        let check = store.check(&root).expect("check");
        assert_eq!(check.blob_dirs, 30);
        assert_eq!(check.missing.count, 0);
        assert_eq!(check.remaining.count, store.garbage_paths());
        assert_eq!(check.markers.count, 0);
        let data = blob_data_path(&root, &store.unlinked[0]);
        let modified = std::fs::metadata(&data)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(modified, old);
        assert!(populate_garbage(&root, 3, 27, old).is_err());
        std::fs::remove_dir_all(&root).expect("clean up");
    }
}
