//! `parse_manifest` over arbitrary bytes, with and without each manifest `Content-Type`. Whatever
//! it accepts must be consistent: the media type matches the kind, and indexes have no config.

use registry_model::{ManifestKind, parse_manifest};

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
];

fn main() {
    afl::fuzz!(|data: &[u8]| {
        // The first byte picks the Content-Type, the rest is the manifest.
        let Some((&selector, bytes)) = data.split_first() else {
            return;
        };
        let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
        if let Ok(manifest) = parse_manifest(bytes, content_type) {
            assert_eq!(manifest.media_type, manifest.kind.media_type());
            let index = matches!(
                manifest.kind,
                ManifestKind::OciImageIndex | ManifestKind::DockerManifestList
            );
            assert_eq!(manifest.config.is_none(), index);
        }
    });
}
