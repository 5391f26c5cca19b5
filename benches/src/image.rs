//! Images for the benchmarks: a small image pushed through the API (for manifest and blob
//! load), and a `docker save`-style archive of a multi-layer image made from scratch (for
//! `docker load`, then `docker push` and `docker pull`), without a network or `docker build`.
//! The tar writer is a trimmed copy of the one in registryd's end-to-end tests.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use serde_json::json;

use crate::Error;
use crate::blob::XorShift;
use crate::client::{RegistryClient, sha256_digest};

/// Media type of the pushed manifest.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// What Docker sends when it resolves a tag (abridged).
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
                          application/vnd.docker.distribution.manifest.v2+json, \
                          application/vnd.oci.image.index.v1+json";

/// What [`push_small_image`] pushed.
#[derive(Clone, Debug)]
pub struct SmallImage {
    /// The manifest's digest.
    pub manifest: String,
    /// The layer's digest.
    pub layer: String,
}

/// Pushes a config blob, one layer of `layer_size` pseudo-random bytes (which differ with
/// `seed`) and an OCI manifest tagged `tag` to `name`.
pub async fn push_small_image(
    client: &RegistryClient,
    name: &str,
    tag: &str,
    layer_size: usize,
    seed: u64,
) -> Result<SmallImage, Error> {
    let mut layer = vec![0u8; layer_size];
    XorShift::new(seed).fill(&mut layer);
    let layer = Bytes::from(layer);
    let layer_size = layer.len();
    let layer_digest = client.upload_bytes(name, layer).await?;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))?;
    let config_size = config.len();
    let config_digest = client.upload_bytes(name, Bytes::from(config)).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_size,
        }],
    }))?;
    let expected = sha256_digest(&manifest);
    let digest = client
        .put_manifest(name, tag, MANIFEST_TYPE, Bytes::from(manifest))
        .await?;
    if digest != expected {
        return Err(format!("manifest digest {digest}, expected {expected}").into());
    }
    Ok(SmallImage {
        manifest: digest,
        layer: layer_digest,
    })
}

/// Writes a `docker save`-style archive to `path`: `manifest.json`, the image configuration and
/// `layers` uncompressed layers, each a tar holding one file of `layer_size` pseudo-random bytes
/// (`seed` makes them differ from any earlier run's). Returns the configuration's digest (the
/// image id `docker load` reports).
pub fn write_docker_archive(
    path: &Path,
    repo_tag: &str,
    layers: usize,
    layer_size: u64,
    seed: u64,
) -> Result<String, Error> {
    let mut layer_tars = Vec::with_capacity(layers);
    for i in 0..layers {
        let mut rng = XorShift::new(seed.wrapping_add(i as u64));
        let mut tar = Tar::new(Vec::new());
        tar.dir("data")?;
        tar.file_streamed(&format!("data/layer-{i}.bin"), layer_size, |buf| {
            rng.fill(buf)
        })?;
        layer_tars.push(tar.finish()?);
    }
    let diff_ids: Vec<String> = layer_tars.iter().map(|l| sha256_digest(l)).collect();
    let history: Vec<_> = (0..layers)
        .map(|i| json!({"created_by": format!("registry-bench layer {i}")}))
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))?;
    let config_digest = sha256_digest(&config);
    let hex_of = |d: &str| d.trim_start_matches("sha256:").to_string();
    let config_name = format!("{}.json", hex_of(&config_digest));
    let layer_names: Vec<String> = diff_ids
        .iter()
        .map(|d| format!("{}/layer.tar", hex_of(d)))
        .collect();
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": layer_names,
    }]))?;
    let file = std::fs::File::create(path)?;
    let mut tar = Tar::new(std::io::BufWriter::new(file));
    tar.file("manifest.json", &manifest)?;
    tar.file(&config_name, &config)?;
    for (name, layer) in layer_names.iter().zip(&layer_tars) {
        tar.dir(name.trim_end_matches("/layer.tar"))?;
        tar.file(name, layer)?;
    }
    tar.finish()?.flush()?;
    Ok(config_digest)
}

/// A minimal ustar writer: directories and regular files, owned by root, mtime 0.
struct Tar<W: Write> {
    out: W,
}

impl<W: Write> Tar<W> {
    fn new(out: W) -> Self {
        Tar { out }
    }

    fn dir(&mut self, path: &str) -> Result<(), Error> {
        self.header(&format!("{path}/"), 0o755, 0, b'5')
    }

    fn file(&mut self, path: &str, data: &[u8]) -> Result<(), Error> {
        self.header(path, 0o644, data.len() as u64, b'0')?;
        self.out.write_all(data)?;
        self.pad(data.len() as u64)
    }

    fn file_streamed(
        &mut self,
        path: &str,
        size: u64,
        mut fill: impl FnMut(&mut [u8]),
    ) -> Result<(), Error> {
        self.header(path, 0o644, size, b'0')?;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            fill(&mut buf[..n]);
            self.out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        self.pad(size)
    }

    fn finish(mut self) -> Result<W, Error> {
        self.out.write_all(&[0u8; 1024])?;
        Ok(self.out)
    }

    fn header(&mut self, path: &str, mode: u32, size: u64, kind: u8) -> Result<(), Error> {
        if path.len() >= 100 {
            return Err(format!("tar name too long: {path}").into());
        }
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, bytes: &[u8]| {
            h[at..at + bytes.len()].copy_from_slice(bytes);
        };
        put(&mut h, 0, path.as_bytes());
        put(&mut h, 100, format!("{mode:07o}\0").as_bytes());
        put(&mut h, 108, b"0000000\0");
        put(&mut h, 116, b"0000000\0");
        put(&mut h, 124, format!("{size:011o}\0").as_bytes());
        put(&mut h, 136, b"00000000000\0");
        put(&mut h, 148, b"        ");
        h[156] = kind;
        put(&mut h, 257, b"ustar\x0000");
        put(&mut h, 265, b"root");
        put(&mut h, 297, b"root");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
        self.out.write_all(&h)?;
        Ok(())
    }

    fn pad(&mut self, size: u64) -> Result<(), Error> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_entries_are_padded_to_blocks() {
        let mut tar = Tar::new(Vec::new());
        tar.dir("d").expect("dir");
        tar.file("d/f", b"hello").expect("file");
        let out = tar.finish().expect("finish");
        assert_eq!(out.len(), 512 + 512 + 512 + 1024);
        assert_eq!(&out[512..515], b"d/f");
        assert_eq!(&out[1024..1029], b"hello");
    }
}
