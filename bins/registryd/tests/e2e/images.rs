//! Test images made from scratch, so no test needs a network or `docker build`: a small tar
//! writer, gzip with stored (uncompressed) deflate blocks, a `docker save`-style archive and an
//! OCI image layout holding a multi-architecture index.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use serde_json::json;
use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of some bytes.
pub(crate) fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The hex part of a `sha256:<hex>` digest.
pub(crate) fn hex_of(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"))
}

/// A fast deterministic generator of incompressible bytes (xorshift64*).
pub(crate) struct XorShift(u64);

impl XorShift {
    /// A generator; equal seeds give equal streams.
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    /// Fills `buf` with pseudo-random bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A minimal ustar writer: directories, regular files and symlinks, owned by root, mtime 0, so
/// the same input always gives the same bytes (and digest).
pub(crate) struct Tar<W: Write> {
    out: W,
}

impl Tar<Vec<u8>> {
    /// A tar archive built in memory.
    pub(crate) fn in_memory() -> Self {
        Tar { out: Vec::new() }
    }
}

impl<W: Write> Tar<W> {
    /// A tar archive written to `out`.
    pub(crate) fn new(out: W) -> Self {
        Tar { out }
    }

    /// Adds a directory (`path` without a trailing slash).
    pub(crate) fn dir(&mut self, path: &str) -> &mut Self {
        self.header(&format!("{path}/"), 0o755, 0, b'5', "");
        self
    }

    /// Adds a regular file.
    pub(crate) fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.header(path, mode, data.len() as u64, b'0', "");
        self.out.write_all(data).expect("write tar data");
        self.pad(data.len() as u64);
        self
    }

    /// Adds a regular file of `size` bytes, written by `fill` in chunks of at most 1 MiB.
    pub(crate) fn file_streamed(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        mut fill: impl FnMut(&mut [u8]),
    ) -> &mut Self {
        self.header(path, mode, size, b'0', "");
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            fill(&mut buf[..n]);
            self.out.write_all(&buf[..n]).expect("write tar data");
            left -= n as u64;
        }
        self.pad(size);
        self
    }

    /// Adds a symbolic link.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.header(path, 0o777, 0, b'2', target);
        self
    }

    /// Writes the end-of-archive marker and returns the writer.
    pub(crate) fn finish(mut self) -> W {
        self.out.write_all(&[0u8; 1024]).expect("write tar trailer");
        self.out
    }

    fn header(&mut self, path: &str, mode: u32, size: u64, kind: u8, link: &str) {
        assert!(
            path.len() < 100 && link.len() < 100,
            "tar name too long: {path}"
        );
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
        put(&mut h, 157, link.as_bytes());
        put(&mut h, 257, b"ustar\x0000");
        put(&mut h, 265, b"root");
        put(&mut h, 297, b"root");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
        self.out.write_all(&h).expect("write tar header");
    }

    fn pad(&mut self, size: u64) {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out
                .write_all(&[0u8; 512][..512 - rem])
                .expect("write tar padding");
        }
    }
}

/// Wraps `data` in a gzip stream of stored deflate blocks: a valid gzip file (clients see the
/// magic and keep it as is) without a compression library.
pub(crate) fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 32);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut blocks = data.chunks(0xffff).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        let len = u16::try_from(block.len()).expect("block fits u16");
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *entry = c;
    }
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// An image configuration (OCI and Docker share this shape) for layers with these
/// uncompressed digests.
fn image_config(arch: &str, diff_ids: &[String], label: &str) -> Vec<u8> {
    let history: Vec<_> = diff_ids
        .iter()
        .enumerate()
        .map(|(i, _)| json!({"created_by": format!("registryd e2e layer {i}")}))
        .collect();
    serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Cmd": ["/bin/sh"],
            "Env": ["PATH=/bin"],
            "Labels": {"org.registryd.e2e": label},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .expect("serialize config")
}

/// What [`write_docker_archive`] wrote.
pub(crate) struct DockerArchive {
    /// Digest of the image configuration (the image id `docker load` reports).
    pub(crate) config_digest: String,
    /// Number of layers.
    pub(crate) layers: usize,
}

/// Writes a `docker save`-style archive (`manifest.json`, the config, one uncompressed
/// `layer.tar` per layer) that `docker load` and skopeo's `docker-archive:` both read.
pub(crate) fn write_docker_archive(
    path: &Path,
    repo_tag: &str,
    layers: &[Vec<u8>],
) -> DockerArchive {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let config = image_config("amd64", &diff_ids, repo_tag);
    let config_digest = digest(&config);
    let config_name = format!("{}.json", hex_of(&config_digest));
    let layer_names: Vec<String> = diff_ids
        .iter()
        .map(|d| format!("{}/layer.tar", hex_of(d)))
        .collect();
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": layer_names,
    }]))
    .expect("serialize manifest.json");

    let file = std::fs::File::create(path).expect("create docker archive");
    let mut tar = Tar::new(std::io::BufWriter::new(file));
    tar.file("manifest.json", 0o644, &manifest);
    tar.file(&config_name, 0o644, &config);
    for (name, layer) in layer_names.iter().zip(layers) {
        let dir = name.trim_end_matches("/layer.tar");
        tar.dir(dir).file(name, 0o644, layer);
    }
    tar.finish().flush().expect("flush docker archive");
    DockerArchive {
        config_digest,
        layers: layers.len(),
    }
}

/// The tag of the multi-architecture index in [`write_multiarch_layout`].
pub(crate) const MULTI_TAG: &str = "v1";
/// The tag of the linux/amd64 manifest alone in [`write_multiarch_layout`].
pub(crate) const AMD64_TAG: &str = "amd64";

/// What [`write_multiarch_layout`] wrote.
pub(crate) struct MultiArchLayout {
    /// Digest of the image index (tag [`MULTI_TAG`]).
    pub(crate) index_digest: String,
    /// Digest of the linux/amd64 image manifest (also tag [`AMD64_TAG`]).
    pub(crate) amd64_digest: String,
    /// Digest of the linux/arm64 image manifest.
    pub(crate) arm64_digest: String,
    /// Every blob in the layout: the index, manifests, configs and layers.
    pub(crate) blobs: BTreeSet<String>,
}

/// Writes an OCI image layout holding an image index for linux/amd64 and linux/arm64 (tag
/// [`MULTI_TAG`]) and the amd64 manifest alone (tag [`AMD64_TAG`]). Each image has a layer shared
/// by both architectures and one of its own, as gzip tars; `salt` makes the content unique.
pub(crate) fn write_multiarch_layout(dir: &Path, salt: &str) -> MultiArchLayout {
    let blob_dir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blob_dir).expect("create layout blob dir");
    let mut blobs = BTreeSet::new();
    let mut put = |data: &[u8]| -> (String, usize) {
        let d = digest(data);
        std::fs::write(blob_dir.join(hex_of(&d)), data).expect("write blob");
        blobs.insert(d.clone());
        (d, data.len())
    };

    let mut shared = Tar::in_memory();
    shared.dir("etc").file(
        "etc/e2e-shared.txt",
        0o644,
        format!("shared layer {salt}\n").as_bytes(),
    );
    let shared = shared.finish();

    let mut manifests = Vec::new();
    for (arch, seed) in [("amd64", 1u64), ("arm64", 2u64)] {
        let mut own = Tar::in_memory();
        let mut rng = XorShift::new(seed);
        own.dir("opt")
            .file("opt/arch.txt", 0o644, format!("{arch} {salt}\n").as_bytes())
            .file_streamed("opt/noise.bin", 0o644, 200 * 1024, |b| rng.fill(b));
        let own = own.finish();
        let layers = [&shared, &own];
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
        let (config_digest, config_size) = put(&image_config(arch, &diff_ids, salt));
        let layer_descs: Vec<_> = layers
            .iter()
            .map(|l| {
                let (d, size) = put(&gzip_stored(l));
                json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": size})
            })
            .collect();
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": layer_descs,
        }))
        .expect("serialize manifest");
        let (d, size) = put(&manifest);
        manifests.push((arch, d, size));
    }

    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests.iter().map(|(arch, d, size)| json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d,
            "size": size,
            "platform": {"architecture": arch, "os": "linux"},
        })).collect::<Vec<_>>(),
    }))
    .expect("serialize index");
    let (index_digest, index_size) = put(&index);

    let (_, amd64_digest, amd64_size) = manifests[0].clone();
    let arm64_digest = manifests[1].1.clone();
    let top = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": index_digest,
                "size": index_size,
                "annotations": {"org.opencontainers.image.ref.name": MULTI_TAG},
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": amd64_digest,
                "size": amd64_size,
                "annotations": {"org.opencontainers.image.ref.name": AMD64_TAG},
            },
        ],
    }))
    .expect("serialize index.json");
    std::fs::write(dir.join("index.json"), top).expect("write index.json");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
    MultiArchLayout {
        index_digest,
        amd64_digest,
        arm64_digest,
        blobs,
    }
}

/// The digest `index.json` of an OCI layout gives for `tag`.
pub(crate) fn layout_ref(dir: &Path, tag: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("read index.json"))
            .expect("parse index.json");
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .and_then(|m| m["digest"].as_str())
        .unwrap_or_else(|| panic!("no {tag} in {}/index.json", dir.display()))
        .to_string()
}

/// The blobs of an OCI layout, each checked against its name.
pub(crate) fn layout_blobs(dir: &Path) -> BTreeSet<String> {
    let blob_dir = dir.join("blobs").join("sha256");
    std::fs::read_dir(&blob_dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", blob_dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let d = digest(&std::fs::read(&path).expect("read blob"));
            assert_eq!(
                d,
                format!("sha256:{name}"),
                "blob {} is corrupt",
                path.display()
            );
            d
        })
        .collect()
}

/// Reads one blob of an OCI layout.
pub(crate) fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(dir.join("blobs").join("sha256").join(hex_of(digest))).expect("read blob")
}
