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

use std::path::{Path, PathBuf};

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
    let layer_digest = write_blob(&v2, &layer)?;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))?;
    let config_digest = write_blob(&v2, &config)?;
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

    let shared = write_blob(&v2, &manifest(None)?)?;
    let width = digits(repositories.max(tags));
    let mut names = Vec::with_capacity(repositories);
    for i in 0..repositories {
        let name = format!("{CATALOG_PREFIX}{i:0width$}");
        let repo = v2.join("repositories").join(&name);
        link_layers(&repo, &blobs)?;
        link_manifest(&repo, &shared)?;
        link_tag(&repo, "latest", &shared)?;
        names.push(name);
    }

    let repo = v2.join("repositories").join(TAGGED_REPOSITORY);
    link_layers(&repo, &blobs)?;
    let mut tag_names = Vec::with_capacity(tags);
    for i in 0..tags {
        let tag = format!("t-{i:0width$}");
        let digest = write_blob(&v2, &manifest(Some(&tag))?)?;
        link_manifest(&repo, &digest)?;
        link_tag(&repo, &tag, &digest)?;
        tag_names.push(tag);
    }
    Ok(Populated {
        repositories: names,
        tagged: TAGGED_REPOSITORY.to_string(),
        tags: tag_names,
    })
}

fn digits(n: usize) -> usize {
    n.max(1).to_string().len().max(5)
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Writes `data` as a blob; returns its digest.
fn write_blob(v2: &Path, data: &[u8]) -> Result<String, Error> {
    let digest = sha256_digest(data);
    let hex = hex(&digest);
    let dir = v2.join("blobs/sha256").join(&hex[..2]).join(hex);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("data"), data)?;
    Ok(digest)
}

fn write_link(dir: PathBuf, digest: &str) -> Result<(), Error> {
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("link"), digest)?;
    Ok(())
}

fn link_layers(repo: &Path, digests: &[&str]) -> Result<(), Error> {
    for digest in digests {
        write_link(repo.join("_layers/sha256").join(hex(digest)), digest)?;
    }
    Ok(())
}

fn link_manifest(repo: &Path, digest: &str) -> Result<(), Error> {
    write_link(
        repo.join("_manifests/revisions/sha256").join(hex(digest)),
        digest,
    )
}

fn link_tag(repo: &Path, tag: &str, digest: &str) -> Result<(), Error> {
    let dir = repo.join("_manifests/tags").join(tag);
    write_link(dir.join("current"), digest)?;
    write_link(dir.join("index/sha256").join(hex(digest)), digest)
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
}
