//! Manifest parsing and validation: from the exact bytes a client pushed to what the registry needs
//! to know (kind, referenced blobs and manifests, subject, artifact type).
//!
//! The distribution spec: "The registry MUST store the manifest in the exact byte representation
//! provided by the client." Nothing here re-serializes a manifest; the parsed [`Manifest`] is a
//! read-only view used to validate the push and to find references.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::descriptor::Descriptor;
use crate::media_type::{
    self, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST,
};

/// The four manifest formats registryd accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// `application/vnd.oci.image.manifest.v1+json`: config plus layers.
    OciImageManifest,
    /// `application/vnd.oci.image.index.v1+json`: a list of manifests.
    OciImageIndex,
    /// `application/vnd.docker.distribution.manifest.v2+json`: Docker's image manifest.
    DockerManifestV2,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`: Docker's index.
    DockerManifestList,
}

impl ManifestKind {
    /// The media type of this kind, as sent in `Content-Type`.
    pub fn media_type(&self) -> &'static str {
        match self {
            ManifestKind::OciImageManifest => OCI_IMAGE_MANIFEST,
            ManifestKind::OciImageIndex => OCI_IMAGE_INDEX,
            ManifestKind::DockerManifestV2 => DOCKER_MANIFEST_V2,
            ManifestKind::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// The kind whose media type is exactly `media_type` (no parameters, exact case), if any.
    pub fn from_media_type(media_type: &str) -> Option<ManifestKind> {
        match media_type {
            OCI_IMAGE_MANIFEST => Some(ManifestKind::OciImageManifest),
            OCI_IMAGE_INDEX => Some(ManifestKind::OciImageIndex),
            DOCKER_MANIFEST_V2 => Some(ManifestKind::DockerManifestV2),
            DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerManifestList),
            _ => None,
        }
    }

    /// Whether this kind lists other manifests (OCI index, Docker manifest list) rather than
    /// describing one image.
    pub fn is_index(&self) -> bool {
        matches!(
            self,
            ManifestKind::OciImageIndex | ManifestKind::DockerManifestList
        )
    }

    /// Whether this is one of the OCI kinds, which may carry `subject` and `artifactType`.
    pub fn is_oci(&self) -> bool {
        matches!(
            self,
            ManifestKind::OciImageManifest | ManifestKind::OciImageIndex
        )
    }
}

impl fmt::Display for ManifestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.media_type())
    }
}

/// What a manifest says, as far as the registry needs it. Produced by [`parse_manifest`] from the
/// exact bytes; it is never serialized back.
///
/// For image manifests `config` is `Some` and `manifests` is empty; for indexes `config` is `None`
/// and `layers` is empty. `subject` and `artifact_type` are only read from the OCI kinds.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Which of the four formats this is.
    pub kind: ManifestKind,
    /// The media type to answer with in `Content-Type`; always `kind.media_type()`.
    pub media_type: &'static str,
    /// The manifest's own `artifactType` field (OCI only), as written.
    pub artifact_type: Option<String>,
    /// The config descriptor of an image manifest; `None` for indexes.
    pub config: Option<Descriptor>,
    /// The layer descriptors of an image manifest, in order; empty for indexes.
    pub layers: Vec<Descriptor>,
    /// The child manifest descriptors of an index, in order; empty for image manifests.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI only), for the referrers API.
    pub subject: Option<Descriptor>,
    /// The manifest's annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The part a descriptor plays in a manifest, as reported by [`Manifest::references`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceRole {
    /// The image config blob.
    Config,
    /// A layer blob.
    Layer,
    /// A child manifest of an index.
    Manifest,
    /// The `subject` manifest (which need not exist yet).
    Subject,
}

impl Manifest {
    /// Everything this manifest references, each with its role, in document order:
    /// config, layers, child manifests, then subject.
    pub fn references(&self) -> impl Iterator<Item = (ReferenceRole, &Descriptor)> {
        let config = self.config.iter().map(|d| (ReferenceRole::Config, d));
        let layers = self.layers.iter().map(|d| (ReferenceRole::Layer, d));
        let manifests = self.manifests.iter().map(|d| (ReferenceRole::Manifest, d));
        let subject = self.subject.iter().map(|d| (ReferenceRole::Subject, d));
        config.chain(layers).chain(manifests).chain(subject)
    }

    /// The `artifactType` to report for this manifest in a referrers list.
    ///
    /// The distribution spec: "If the `artifactType` is empty or missing in a pushed image
    /// manifest, the value of `artifactType` MUST be set to the config descriptor `mediaType`
    /// value." So: the manifest's non-empty `artifactType`, else (image manifests) the config's
    /// media type, else `None`.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .filter(|t| !t.is_empty())
            .or_else(|| self.config.as_ref().map(|c| c.media_type.as_str()))
    }
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ManifestError {
    /// The bytes are not a valid manifest: bad JSON, wrong `schemaVersion`, a missing or malformed
    /// field, an invalid descriptor.
    #[error("invalid manifest: {reason}")]
    Invalid {
        /// What is wrong, in one sentence.
        reason: String,
    },
    /// The manifest's `mediaType` field and the request's `Content-Type` disagree.
    #[error("manifest mediaType {declared:?} does not match Content-Type {content_type:?}")]
    MediaTypeMismatch {
        /// The `mediaType` field of the manifest.
        declared: String,
        /// The request's `Content-Type`, without parameters.
        content_type: String,
    },
    /// The manifest is of a type registryd does not accept (including Docker schema 1).
    #[error(
        "unsupported manifest media type {media_type:?}: registryd accepts OCI image manifests \
         and indexes and Docker schema 2 manifests and manifest lists"
    )]
    UnsupportedMediaType {
        /// The media type that was refused.
        media_type: String,
    },
}

fn invalid(reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        reason: reason.into(),
    }
}

/// The fields registryd reads; everything else is ignored, as the image spec requires of
/// unknown properties. Deserializing straight from the bytes (not from a `Value`) makes
/// duplicate keys an error, so no two parsers can disagree about which value counts.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    // Read only to reject duplicates; its value was checked on the `Value`.
    #[serde(rename = "schemaVersion")]
    _schema_version: Option<IgnoredAny>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// Parses and validates a manifest from its exact bytes.
///
/// `content_type` is the request's `Content-Type` (`None` when absent or when reading back from
/// storage; an empty value counts as absent). Rules:
///
/// - the bytes are a JSON object with `schemaVersion` equal to the integer 2 ("this MUST be `2`");
///   duplicate keys are refused;
/// - the kind comes from the `mediaType` field; if absent, from `content_type` (OCI types only:
///   Docker schema 2 requires the field, and stored bytes must say what they are); if both are
///   absent, it is an OCI index when a `manifests` array is present and an OCI image manifest when
///   `config` (or `layers`) is present;
/// - when the `mediaType` field and `content_type` are both present and differ, the result is
///   [`ManifestError::MediaTypeMismatch`] (the distribution spec: "If a manifest includes a
///   `mediaType` field, clients MUST set the `Content-Type` header to the value specified by the
///   `mediaType` field"). `Content-Type` parameters are ignored ("The registry SHOULD ignore
///   parameters on the `Content-Type` header") and its type is compared case-insensitively;
/// - an unknown media type, or Docker schema 1, is [`ManifestError::UnsupportedMediaType`];
/// - image manifests require `config` and `layers` (which may be empty) and must not have
///   `manifests`; indexes require `manifests` (which may be empty: "While this property MUST be
///   present, the size of the array MAY be zero") and must not have `config` or `layers`. Refusing
///   the mixed shapes closes the manifest/index confusion of CVE-2021-41190, as registry:2 does;
/// - every descriptor is a JSON object with a string `mediaType`, a supported, well-formed
///   `digest` and a non-negative integer `size`.
///
/// Never panics, whatever the input.
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("the manifest is not valid JSON: {e}")))?;
    let Value::Object(object) = &value else {
        return Err(invalid("a manifest must be a JSON object"));
    };
    match object.get("schemaVersion") {
        Some(version) if version.as_u64() == Some(2) => {}
        Some(_) => return Err(invalid("schemaVersion must be the integer 2")),
        None => return Err(invalid("schemaVersion is missing; it must be 2")),
    }
    check_descriptor_shapes(object)?;
    let raw: RawManifest = serde_json::from_slice(bytes).map_err(|e| invalid(format!("{e}")))?;

    let header = content_type
        .map(media_type::essence)
        .filter(|essence| !essence.is_empty());
    let kind = match (raw.media_type.as_deref(), header) {
        (Some(declared), Some(header)) if !declared.eq_ignore_ascii_case(header) => {
            return Err(ManifestError::MediaTypeMismatch {
                declared: declared.to_owned(),
                content_type: header.to_owned(),
            });
        }
        (Some(declared), _) => kind_of(declared)?,
        (None, Some(header)) => {
            let kind =
                ManifestKind::from_media_type(&header.to_ascii_lowercase()).ok_or_else(|| {
                    ManifestError::UnsupportedMediaType {
                        media_type: header.to_owned(),
                    }
                })?;
            if !kind.is_oci() {
                // Only OCI manifests may leave their type to the Content-Type: the bytes alone
                // must say what they are when they are read back.
                return Err(invalid(format!(
                    "a {kind} manifest must declare its mediaType (the schema 2 format requires it)"
                )));
            }
            kind
        }
        (None, None) => infer_kind(&raw)?,
    };

    if kind.is_index() {
        if raw.config.is_some() || raw.layers.is_some() {
            return Err(invalid(format!(
                "an index ({kind}) must not have `config` or `layers`"
            )));
        }
    } else if raw.manifests.is_some() {
        return Err(invalid(format!(
            "an image manifest ({kind}) must not have `manifests`"
        )));
    }

    let (config, layers, manifests) = if kind.is_index() {
        let manifests = raw
            .manifests
            .ok_or_else(|| invalid(format!("an index ({kind}) requires `manifests`")))?;
        (None, Vec::new(), manifests)
    } else {
        let config = raw
            .config
            .ok_or_else(|| invalid(format!("an image manifest ({kind}) requires `config`")))?;
        let layers = raw
            .layers
            .ok_or_else(|| invalid(format!("an image manifest ({kind}) requires `layers`")))?;
        (Some(config), layers, Vec::new())
    };
    let (artifact_type, subject) = if kind.is_oci() {
        (raw.artifact_type, raw.subject)
    } else {
        (None, None)
    };

    Ok(Manifest {
        kind,
        media_type: kind.media_type(),
        artifact_type,
        config,
        layers,
        manifests,
        subject,
        annotations: raw.annotations,
    })
}

fn kind_of(media_type: &str) -> Result<ManifestKind, ManifestError> {
    ManifestKind::from_media_type(media_type).ok_or_else(|| ManifestError::UnsupportedMediaType {
        media_type: media_type.to_owned(),
    })
}

fn infer_kind(raw: &RawManifest) -> Result<ManifestKind, ManifestError> {
    let has_image_fields = raw.config.is_some() || raw.layers.is_some();
    match (raw.manifests.is_some(), has_image_fields) {
        (true, true) => Err(invalid(
            "without a mediaType, a manifest must not have both `manifests` and `config`/`layers`",
        )),
        (true, false) => Ok(ManifestKind::OciImageIndex),
        (false, true) => Ok(ManifestKind::OciImageManifest),
        (false, false) => Err(invalid(
            "cannot tell the manifest type: no mediaType, no Content-Type, \
             and neither `config` nor `manifests`",
        )),
    }
}

/// Descriptors must be JSON objects. serde's derived `Deserialize` would also accept the
/// positional array form (`["type", "sha256:...", 2]`), which no other implementation reads.
fn check_descriptor_shapes(object: &Map<String, Value>) -> Result<(), ManifestError> {
    for field in ["config", "subject"] {
        if let Some(value) = object.get(field).filter(|v| !v.is_null()) {
            check_descriptor_object(field, value)?;
        }
    }
    for field in ["layers", "manifests"] {
        match object.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    check_descriptor_object(field, item)?;
                }
            }
            Some(_) => {
                return Err(invalid(format!(
                    "`{field}` must be an array of descriptors"
                )));
            }
        }
    }
    Ok(())
}

fn check_descriptor_object(field: &str, value: &Value) -> Result<(), ManifestError> {
    let Value::Object(descriptor) = value else {
        return Err(invalid(format!(
            "each descriptor in `{field}` must be a JSON object"
        )));
    };
    match descriptor.get("platform") {
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(_) => Err(invalid(format!(
            "a descriptor's `platform` in `{field}` must be a JSON object"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::media_type::{
        DOCKER_CONTAINER_CONFIG, DOCKER_FOREIGN_LAYER, DOCKER_MANIFEST_V1_SIGNED, EMPTY_JSON,
        OCI_EMPTY,
    };
    use proptest::prelude::*;

    // The fixtures' digests are the sha256 of short labels, so tests can name them.
    const DOCKER_SCHEMA2: &[u8] = include_bytes!("../testdata/docker-schema2.json");
    const DOCKER_MANIFEST_LIST_FIXTURE: &[u8] =
        include_bytes!("../testdata/docker-manifest-list.json");
    const OCI_INDEX: &[u8] = include_bytes!("../testdata/oci-index.json");
    const OCI_ARTIFACT: &[u8] = include_bytes!("../testdata/oci-artifact-with-subject.json");

    fn label(s: &str) -> Digest {
        Digest::sha256(s.as_bytes())
    }

    fn roles_and_digests(manifest: &Manifest) -> Vec<(ReferenceRole, Digest)> {
        manifest
            .references()
            .map(|(role, d)| (role, d.digest.clone()))
            .collect()
    }

    fn image(media_type: Option<&str>) -> String {
        let media_type = media_type
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{media_type}"config":{{"mediaType":"{OCI_EMPTY}","digest":"{}","size":2}},"layers":[]}}"#,
            Digest::sha256(EMPTY_JSON)
        )
    }

    fn reason(result: Result<Manifest, ManifestError>) -> String {
        match result {
            Err(ManifestError::Invalid { reason }) => reason,
            other => panic!("expected ManifestError::Invalid, got {other:?}"),
        }
    }

    #[test]
    fn docker_schema2_manifest_references_config_then_layers() {
        let manifest = parse_manifest(DOCKER_SCHEMA2, Some(DOCKER_MANIFEST_V2)).unwrap();
        assert_eq!(manifest.kind, ManifestKind::DockerManifestV2);
        assert_eq!(manifest.media_type, DOCKER_MANIFEST_V2);
        assert_eq!(
            roles_and_digests(&manifest),
            [
                (ReferenceRole::Config, label("config")),
                (ReferenceRole::Layer, label("layer0")),
                (ReferenceRole::Layer, label("layer1")),
                (ReferenceRole::Layer, label("foreign")),
            ]
        );
        let config = manifest.config.as_ref().unwrap();
        assert_eq!(
            (config.media_type.as_str(), config.size),
            (DOCKER_CONTAINER_CONFIG, 1472)
        );
        let foreign = &manifest.layers[2];
        assert_eq!(foreign.media_type, DOCKER_FOREIGN_LAYER);
        assert_eq!(foreign.urls.as_ref().map(Vec::len), Some(1));
        assert_eq!(manifest.subject, None);
        assert_eq!(
            manifest.effective_artifact_type(),
            Some(DOCKER_CONTAINER_CONFIG)
        );
    }

    #[test]
    fn oci_index_with_platforms_references_its_manifests() {
        let manifest = parse_manifest(OCI_INDEX, None).unwrap();
        assert_eq!(manifest.kind, ManifestKind::OciImageIndex);
        assert!(manifest.kind.is_index());
        assert_eq!(manifest.config, None);
        assert!(manifest.layers.is_empty());
        let expected: Vec<_> = ["amd64", "armv7", "arm64", "windows", "attestation"]
            .into_iter()
            .map(|l| (ReferenceRole::Manifest, label(l)))
            .collect();
        assert_eq!(roles_and_digests(&manifest), expected);

        let armv7 = manifest.manifests[1].platform.as_ref().unwrap();
        assert_eq!(
            (
                armv7.architecture.as_str(),
                armv7.os.as_str(),
                armv7.variant.as_deref()
            ),
            ("arm", "linux", Some("v7"))
        );
        let windows = manifest.manifests[3].platform.as_ref().unwrap();
        assert_eq!(windows.os_version.as_deref(), Some("10.0.20348.2227"));
        assert_eq!(
            windows.os_features.as_deref(),
            Some(&["win32k".to_owned()][..])
        );
        assert_eq!(
            manifest.annotations.as_ref().unwrap()["org.opencontainers.image.ref.name"],
            "3.19"
        );
        assert_eq!(manifest.effective_artifact_type(), None);
    }

    #[test]
    fn docker_manifest_list_references_its_manifests() {
        let manifest =
            parse_manifest(DOCKER_MANIFEST_LIST_FIXTURE, Some(DOCKER_MANIFEST_LIST)).unwrap();
        assert_eq!(manifest.kind, ManifestKind::DockerManifestList);
        assert_eq!(
            roles_and_digests(&manifest),
            [
                (ReferenceRole::Manifest, label("l-amd64")),
                (ReferenceRole::Manifest, label("l-arm64")),
            ]
        );
        let arm64 = manifest.manifests[1].platform.as_ref().unwrap();
        assert_eq!(arm64.features.as_deref(), Some(&["sse4".to_owned()][..]));
    }

    #[test]
    fn artifact_with_subject_reports_subject_and_artifact_type() {
        let manifest = parse_manifest(OCI_ARTIFACT, Some(OCI_IMAGE_MANIFEST)).unwrap();
        assert_eq!(manifest.kind, ManifestKind::OciImageManifest);
        assert_eq!(
            roles_and_digests(&manifest),
            [
                (ReferenceRole::Config, Digest::sha256(EMPTY_JSON)),
                (ReferenceRole::Layer, label("signature")),
                (ReferenceRole::Subject, label("amd64")),
            ]
        );
        assert_eq!(
            manifest.artifact_type.as_deref(),
            Some("application/vnd.cncf.notary.signature")
        );
        assert_eq!(
            manifest.effective_artifact_type(),
            Some("application/vnd.cncf.notary.signature")
        );
        let config = manifest.config.as_ref().unwrap();
        assert_eq!(config.media_type, OCI_EMPTY);
        assert_eq!(config.data.as_deref(), Some("e30="));
        assert_eq!(manifest.subject.as_ref().unwrap().size, 1017);
    }

    #[test]
    fn effective_artifact_type_falls_back_to_config_media_type() {
        let manifest = parse_manifest(image(None).as_bytes(), None).unwrap();
        assert_eq!(manifest.effective_artifact_type(), Some(OCI_EMPTY));
        let empty = image(None).replace(r#""layers""#, r#""artifactType":"","layers""#);
        let manifest = parse_manifest(empty.as_bytes(), None).unwrap();
        assert_eq!(manifest.artifact_type.as_deref(), Some(""));
        assert_eq!(manifest.effective_artifact_type(), Some(OCI_EMPTY));
    }

    #[test]
    fn index_artifact_type_comes_only_from_the_field() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX}","artifactType":"application/x.sbom","manifests":[]}}"#
        );
        let manifest = parse_manifest(index.as_bytes(), None).unwrap();
        assert_eq!(
            manifest.effective_artifact_type(),
            Some("application/x.sbom")
        );
        assert!(manifest.manifests.is_empty());
    }

    #[test]
    fn docker_manifests_ignore_subject_and_artifact_type() {
        let with_subject = String::from_utf8(DOCKER_SCHEMA2.to_vec()).unwrap().replacen(
            r#""layers""#,
            &format!(
                r#""artifactType":"x/y","subject":{{"mediaType":"{OCI_IMAGE_MANIFEST}","digest":"{}","size":1}},"layers""#,
                label("amd64")
            ),
            1,
        );
        let manifest = parse_manifest(with_subject.as_bytes(), None).unwrap();
        assert_eq!(manifest.subject, None);
        assert_eq!(manifest.artifact_type, None);
    }

    #[test]
    fn schema_version_must_be_the_integer_2() {
        let good = image(Some(OCI_IMAGE_MANIFEST));
        for bad in [
            r#""schemaVersion":1"#,
            r#""schemaVersion":"2""#,
            r#""schemaVersion":2.0"#,
            r#""schemaVersion":null"#,
        ] {
            let manifest = good.replace(r#""schemaVersion":2"#, bad);
            assert!(reason(parse_manifest(manifest.as_bytes(), None)).contains("schemaVersion"));
        }
        let missing = good.replace(r#""schemaVersion":2,"#, "");
        assert!(reason(parse_manifest(missing.as_bytes(), None)).contains("missing"));
    }

    #[test]
    fn non_json_and_non_objects_are_invalid() {
        for bytes in [
            &b""[..],
            b"not json",
            b"[]",
            b"2",
            b"\"x\"",
            b"{\"schemaVersion\":2",
            b"\xff",
        ] {
            assert!(matches!(
                parse_manifest(bytes, None),
                Err(ManifestError::Invalid { .. })
            ));
        }
    }

    #[test]
    fn media_type_field_and_content_type_must_agree() {
        let manifest = image(Some(OCI_IMAGE_MANIFEST));
        assert_eq!(
            parse_manifest(manifest.as_bytes(), Some(OCI_IMAGE_INDEX)),
            Err(ManifestError::MediaTypeMismatch {
                declared: OCI_IMAGE_MANIFEST.to_owned(),
                content_type: OCI_IMAGE_INDEX.to_owned(),
            })
        );
        assert!(matches!(
            parse_manifest(manifest.as_bytes(), Some("application/json")),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
    }

    #[test]
    fn content_type_parameters_and_case_are_ignored() {
        let manifest = image(Some(OCI_IMAGE_MANIFEST));
        let with_params = format!("{OCI_IMAGE_MANIFEST}; charset=utf-8");
        assert!(parse_manifest(manifest.as_bytes(), Some(&with_params)).is_ok());
        let upper = OCI_IMAGE_MANIFEST.to_uppercase();
        assert!(parse_manifest(manifest.as_bytes(), Some(&upper)).is_ok());
        assert!(parse_manifest(manifest.as_bytes(), Some("")).is_ok());
    }

    #[test]
    fn kind_comes_from_content_type_when_the_field_is_absent() {
        let manifest = image(None);
        let parsed = parse_manifest(manifest.as_bytes(), Some(OCI_IMAGE_MANIFEST)).unwrap();
        assert_eq!(parsed.kind, ManifestKind::OciImageManifest);
        assert!(matches!(
            parse_manifest(manifest.as_bytes(), Some(DOCKER_MANIFEST_V2)),
            Err(ManifestError::Invalid { .. })
        ));
        assert_eq!(
            parse_manifest(manifest.as_bytes(), Some("application/json; q=1")),
            Err(ManifestError::UnsupportedMediaType {
                media_type: "application/json".to_owned()
            })
        );
    }

    #[test]
    fn kind_is_inferred_when_no_media_type_is_given() {
        let parsed = parse_manifest(image(None).as_bytes(), None).unwrap();
        assert_eq!(parsed.kind, ManifestKind::OciImageManifest);
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            parse_manifest(index, None).unwrap().kind,
            ManifestKind::OciImageIndex
        );
        let neither = br#"{"schemaVersion":2}"#;
        assert!(reason(parse_manifest(neither, None)).contains("cannot tell"));
    }

    #[test]
    fn manifest_with_both_manifests_and_layers_is_rejected() {
        let both = image(None).replace(r#""layers":[]"#, r#""layers":[],"manifests":[]"#);
        assert!(reason(parse_manifest(both.as_bytes(), None)).contains("must not have both"));
        let typed = image(Some(OCI_IMAGE_MANIFEST))
            .replace(r#""layers":[]"#, r#""layers":[],"manifests":[]"#);
        assert!(
            reason(parse_manifest(typed.as_bytes(), None)).contains("must not have `manifests`")
        );
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX}","manifests":[],"layers":[]}}"#
        );
        assert!(
            reason(parse_manifest(index.as_bytes(), None))
                .contains("must not have `config` or `layers`")
        );
    }

    #[test]
    fn schema1_and_unknown_media_types_are_unsupported() {
        for media_type in [
            DOCKER_MANIFEST_V1_SIGNED,
            "application/vnd.example+json",
            "",
        ] {
            let manifest = image(Some(media_type));
            assert_eq!(
                parse_manifest(manifest.as_bytes(), None),
                Err(ManifestError::UnsupportedMediaType {
                    media_type: media_type.to_owned()
                })
            );
        }
    }

    #[test]
    fn image_manifest_requires_config_and_layers() {
        let no_config =
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","layers":[]}}"#);
        assert!(reason(parse_manifest(no_config.as_bytes(), None)).contains("requires `config`"));
        let no_layers = image(Some(OCI_IMAGE_MANIFEST)).replace(r#","layers":[]"#, "");
        assert!(reason(parse_manifest(no_layers.as_bytes(), None)).contains("requires `layers`"));
        let null_layers =
            image(Some(OCI_IMAGE_MANIFEST)).replace(r#""layers":[]"#, r#""layers":null"#);
        assert!(reason(parse_manifest(null_layers.as_bytes(), None)).contains("requires `layers`"));
        let empty_layers =
            parse_manifest(image(Some(OCI_IMAGE_MANIFEST)).as_bytes(), None).unwrap();
        assert!(empty_layers.layers.is_empty());
    }

    #[test]
    fn index_requires_manifests() {
        let index = format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}"}}"#);
        assert!(reason(parse_manifest(index.as_bytes(), None)).contains("requires `manifests`"));
    }

    #[test]
    fn invalid_descriptors_are_rejected() {
        let good = image(Some(OCI_IMAGE_MANIFEST));
        let cases = [
            (r#""size":2"#, r#""size":-2"#),
            (r#""size":2"#, r#""size":2.5"#),
            (r#""size":2"#, r#""size":"2""#),
            (r#""size":2"#, r#""size":18446744073709551616"#),
            (r#","size":2"#, ""),
            (r#""sha256:"#, r#""sha256:A"#),
            (r#""sha256:"#, r#""blake3:"#),
            (&format!(r#""mediaType":"{OCI_EMPTY}","#), ""),
            (&format!(r#""mediaType":"{OCI_EMPTY}""#), r#""mediaType":2"#),
        ];
        for (from, to) in cases {
            let manifest = good.replacen(from, to, 1);
            assert_ne!(manifest, good, "{from} not found");
            assert!(
                matches!(
                    parse_manifest(manifest.as_bytes(), None),
                    Err(ManifestError::Invalid { .. })
                ),
                "{manifest} should be invalid"
            );
        }
    }

    #[test]
    fn descriptors_must_be_objects() {
        let positional = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","config":["{OCI_EMPTY}","{}",2],"layers":[]}}"#,
            Digest::sha256(EMPTY_JSON)
        );
        assert!(reason(parse_manifest(positional.as_bytes(), None)).contains("JSON object"));
        let layers_object =
            image(Some(OCI_IMAGE_MANIFEST)).replace(r#""layers":[]"#, r#""layers":{}"#);
        assert!(reason(parse_manifest(layers_object.as_bytes(), None)).contains("array"));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_IMAGE_MANIFEST}","digest":"{}","size":1,"platform":["amd64","linux"]}}]}}"#,
            label("amd64")
        );
        assert!(reason(parse_manifest(index.as_bytes(), None)).contains("platform"));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let good = image(Some(OCI_IMAGE_MANIFEST));
        let duplicate_layers = good.replace(r#""layers":[]"#, r#""layers":[],"layers":[]"#);
        assert!(reason(parse_manifest(duplicate_layers.as_bytes(), None)).contains("duplicate"));
        let duplicate_version = good.replace(
            r#""schemaVersion":2"#,
            r#""schemaVersion":2,"schemaVersion":2"#,
        );
        assert!(reason(parse_manifest(duplicate_version.as_bytes(), None)).contains("duplicate"));
        let duplicate_digest = good.replacen(
            r#""size":2"#,
            &format!(r#""size":2,"digest":"{}""#, label("x")),
            1,
        );
        assert!(reason(parse_manifest(duplicate_digest.as_bytes(), None)).contains("duplicate"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let extra = image(Some(OCI_IMAGE_MANIFEST))
            .replace(r#""size":2"#, r#""size":2,"x-custom":{"nested":[1,2]}"#);
        let extra = extra.replace(r#""layers""#, r#""future":true,"layers""#);
        assert!(parse_manifest(extra.as_bytes(), None).is_ok());
    }

    #[test]
    fn manifest_kind_media_types_round_trip() {
        for kind in [
            ManifestKind::OciImageManifest,
            ManifestKind::OciImageIndex,
            ManifestKind::DockerManifestV2,
            ManifestKind::DockerManifestList,
        ] {
            assert_eq!(ManifestKind::from_media_type(kind.media_type()), Some(kind));
            assert_eq!(kind.to_string(), kind.media_type());
        }
        assert_eq!(
            ManifestKind::from_media_type(DOCKER_MANIFEST_V1_SIGNED),
            None
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_manifest_never_panics_on_arbitrary_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
            content_type in proptest::option::of("\\PC{0,40}"),
        ) {
            let _ = parse_manifest(&bytes, content_type.as_deref());
        }

        #[test]
        fn parse_manifest_never_panics_on_mutated_manifests(
            fixture in prop_oneof![
                Just(DOCKER_SCHEMA2),
                Just(OCI_INDEX),
                Just(OCI_ARTIFACT),
                Just(DOCKER_MANIFEST_LIST_FIXTURE),
            ],
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = fixture.to_vec();
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let Ok(manifest) = parse_manifest(&bytes, None) {
                prop_assert_eq!(manifest.media_type, manifest.kind.media_type());
            }
        }
    }
}
