//! Content descriptors: the `{mediaType, digest, size, ...}` objects manifests use to point at
//! blobs and other manifests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// A reference to content by media type, digest and size, as in the image spec's descriptor.md.
///
/// Deserializing validates what the registry relies on: `mediaType` is a string, `digest` is a
/// supported, well-formed [`Digest`], and `size` is a non-negative integer that fits in a `u64`
/// ("The size MUST NOT be negative"; a fractional or negative size is an error). Unknown fields
/// are ignored. Optional fields are omitted when serializing if they are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size of the referenced content in bytes.
    pub size: u64,
    /// URIs the content may also be downloaded from (used by non-distributable layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The content itself, base64-encoded (not decoded or checked here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The type of an artifact when the descriptor points at an artifact manifest
    /// (used in referrers lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The platform a manifest in an index is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with just the three required fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            data: None,
            artifact_type: None,
            platform: None,
        }
    }
}

/// The platform an image in an index runs on, as in the image spec's image-index.md.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, in `GOARCH` terms (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system, in `GOOS` terms (`linux`, `windows`, ...).
    pub os: String,
    /// Operating system version, e.g. `10.0.14393.1066` on Windows.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required operating system features, e.g. `win32k`.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant, e.g. `v7` for `arm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Required CPU features (reserved by the image spec; found in Docker manifest lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_serializes_without_absent_optional_fields() {
        let descriptor = Descriptor::new(crate::media_type::OCI_EMPTY, Digest::sha256(b"{}"), 2);
        let json = serde_json::to_string(&descriptor).unwrap();
        assert_eq!(
            json,
            r#"{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}"#
        );
        assert_eq!(
            serde_json::from_str::<Descriptor>(&json).unwrap(),
            descriptor
        );
    }

    #[test]
    fn descriptor_round_trips_artifact_type_and_dotted_platform_fields() {
        let json = r#"{"mediaType":"m/t","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"artifactType":"a/b","platform":{"architecture":"amd64","os":"windows","os.version":"10.0","os.features":["win32k"]}}"#;
        let descriptor: Descriptor = serde_json::from_str(json).unwrap();
        assert_eq!(descriptor.artifact_type.as_deref(), Some("a/b"));
        let platform = descriptor.platform.as_ref().unwrap();
        assert_eq!(platform.os_version.as_deref(), Some("10.0"));
        assert_eq!(serde_json::to_string(&descriptor).unwrap(), json);
    }

    #[test]
    fn negative_or_fractional_size_is_a_parse_error() {
        for size in ["-1", "1.5", "1e3", "\"1\""] {
            let json = format!(
                r#"{{"mediaType":"m/t","digest":"{}","size":{size}}}"#,
                Digest::sha256(b"")
            );
            assert!(serde_json::from_str::<Descriptor>(&json).is_err(), "{size}");
        }
    }
}
