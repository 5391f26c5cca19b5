//! Media types registryd knows by name, and small predicates over them.
//!
//! Comparisons here are exact: pass the bare type (no `; charset=...` parameters), for example
//! through [`essence`].

/// OCI image manifest.
pub const OCI_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration.
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI empty descriptor's media type; its content is [`EMPTY_JSON`].
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd-compressed tar.
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer, uncompressed tar (deprecated by the image spec).
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer, gzip-compressed tar (deprecated by the image spec).
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer, zstd-compressed tar (deprecated by the image spec).
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (the Docker counterpart of an OCI index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker container image configuration.
pub const DOCKER_CONTAINER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign layer: content served from elsewhere (its `urls`), not pushed to registries.
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker signed schema 1 manifest. Recognised only so it can be refused by name: registryd does
/// not accept schema 1 manifests.
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The content of the OCI empty descriptor: the two bytes `{}`.
///
/// The image spec's guidance: "The blob payload is the most minimal content that is still a valid
/// JSON object: `{}` (`size` of 2)."
pub const EMPTY_JSON: &[u8] = b"{}";
/// The sha256 digest of [`EMPTY_JSON`]: "The blob digest of `{}` is
/// `sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a`."
pub const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Whether blobs of this media type are, by their type, not pushed to registries: the OCI
/// `nondistributable` layer types and the Docker foreign layer.
///
/// A registry may accept a manifest that references such a layer without holding the blob.
pub fn is_non_distributable(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_LAYER_NONDISTRIBUTABLE_TAR
            | OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP
            | OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD
            | DOCKER_FOREIGN_LAYER
    )
}

/// Whether this is one of the four manifest media types registryd accepts: OCI image manifest,
/// OCI image index, Docker manifest v2 and Docker manifest list.
pub fn is_manifest(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_IMAGE_MANIFEST | OCI_IMAGE_INDEX | DOCKER_MANIFEST_V2 | DOCKER_MANIFEST_LIST
    )
}

/// The bare `type/subtype` of a `Content-Type` value: parameters (`; charset=utf-8`) and
/// surrounding whitespace removed. The distribution spec: "The registry SHOULD ignore parameters
/// on the `Content-Type` header." Case is kept as given.
pub fn essence(content_type: &str) -> &str {
    content_type
        .split_once(';')
        .map_or(content_type, |(essence, _)| essence)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn empty_json_digest_is_the_sha256_of_empty_json() {
        assert_eq!(Digest::sha256(EMPTY_JSON).as_str(), EMPTY_JSON_DIGEST);
        assert_eq!(EMPTY_JSON.len(), 2);
    }

    #[test]
    fn only_the_four_manifest_types_are_manifests() {
        for media_type in [
            OCI_IMAGE_MANIFEST,
            OCI_IMAGE_INDEX,
            DOCKER_MANIFEST_V2,
            DOCKER_MANIFEST_LIST,
        ] {
            assert!(is_manifest(media_type));
        }
        for media_type in [
            DOCKER_MANIFEST_V1_SIGNED,
            OCI_IMAGE_CONFIG,
            OCI_EMPTY,
            OCI_LAYER_TAR_GZIP,
            "application/json",
            "",
        ] {
            assert!(!is_manifest(media_type));
        }
    }

    #[test]
    fn nondistributable_and_foreign_layers_are_non_distributable() {
        for media_type in [
            OCI_LAYER_NONDISTRIBUTABLE_TAR,
            OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP,
            OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD,
            DOCKER_FOREIGN_LAYER,
        ] {
            assert!(is_non_distributable(media_type));
        }
        for media_type in [
            OCI_LAYER_TAR,
            OCI_LAYER_TAR_GZIP,
            OCI_LAYER_TAR_ZSTD,
            DOCKER_LAYER_TAR_GZIP,
        ] {
            assert!(!is_non_distributable(media_type));
        }
    }

    #[test]
    fn essence_drops_parameters_and_whitespace() {
        assert_eq!(
            essence("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
            OCI_IMAGE_MANIFEST
        );
        assert_eq!(essence("  application/json  "), "application/json");
        assert_eq!(essence(""), "");
        assert_eq!(essence(";a=b"), "");
    }
}
