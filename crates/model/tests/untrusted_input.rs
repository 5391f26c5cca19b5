//! Property tests over the parsers that read what clients send: manifests and indexes, digests,
//! repository names, tags and references. Every one of them must answer arbitrary input with a
//! value or an error, never a panic, and must not allocate more than its input warrants.
//!
//! Besides arbitrary bytes, the manifest tests generate JSON that is almost a manifest (the right
//! shape with random values, numbers beyond `u64`, duplicate keys, many descriptors), so that the
//! cases reach the descriptor and media-type checks rather than stopping at the first byte.

use proptest::prelude::*;
use registry_model::{
    DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V1_SIGNED, DOCKER_MANIFEST_V2, Digest, DigestAlgorithm,
    Manifest, ManifestError, OCI_EMPTY, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST, OCI_LAYER_TAR_GZIP,
    Reference, ReferenceError, RepositoryName, Tag, parse_manifest,
};

/// JSON text as the generators build it. `Token` is written as it is, so a case can hold numbers
/// that `serde_json::Value` cannot (`18446744073709551616`, `1e400`) and objects can repeat a key.
#[derive(Clone, Debug)]
enum Json {
    Token(String),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn render(&self, out: &mut String) {
        match self {
            Json::Token(token) => out.push_str(token),
            Json::Str(text) => push_string(out, text),
            Json::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    push_string(out, key);
                    out.push(':');
                    value.render(out);
                }
                out.push('}');
            }
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        self.render(&mut out);
        out.into_bytes()
    }
}

fn push_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).expect("a string serializes"));
}

/// Numbers as JSON writes them: mostly sizes a descriptor accepts, and also the ones it must
/// refuse (negative, fractional, beyond `u64`, out of `f64`'s range).
fn number() -> impl Strategy<Value = Json> {
    prop_oneof![
        6 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>()
            .prop_filter("JSON has no infinities or NaN", |n| n.is_finite())
            .prop_map(|n| format!("{n:e}")),
        1 => "-?(0|[1-9][0-9]{0,39})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?",
        1 => prop_oneof![
            Just("18446744073709551615".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("-0".to_owned()),
            Just("2.0".to_owned()),
        ],
    ]
    .prop_map(Json::Token)
}

/// A descriptor's size: a `u64` mostly, any number now and then.
fn size() -> impl Strategy<Value = Json> {
    prop_oneof![
        12 => any::<u64>().prop_map(|n| Json::Token(n.to_string())),
        1 => number(),
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Token("null".to_owned())),
        any::<bool>().prop_map(|b| Json::Token(b.to_string())),
        number(),
        "\\PC{0,16}".prop_map(Json::Str),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::vec(("\\PC{0,8}", inner), 0..5).prop_map(Json::Object),
        ]
    })
}

fn media_type() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(OCI_IMAGE_MANIFEST.to_owned()),
        3 => Just(OCI_IMAGE_INDEX.to_owned()),
        3 => Just(DOCKER_MANIFEST_V2.to_owned()),
        3 => Just(DOCKER_MANIFEST_LIST.to_owned()),
        1 => Just(DOCKER_MANIFEST_V1_SIGNED.to_owned()),
        3 => Just(OCI_LAYER_TAR_GZIP.to_owned()),
        3 => Just(OCI_EMPTY.to_owned()),
        1 => "[a-z]{1,10}/[a-z0-9.+-]{1,30}",
        1 => "\\PC{0,24}",
    ]
}

fn digest_text() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => "sha256:[a-f0-9]{64}",
        4 => "sha512:[a-f0-9]{128}",
        1 => "sha(256|512):[a-fA-F0-9]{60,130}",
        1 => "[a-z0-9]{1,8}([+._-][a-z0-9]{1,4})?:[a-zA-Z0-9=_-]{0,80}",
        1 => "\\PC{0,24}",
    ]
}

/// A field that is usually of the right kind and sometimes any JSON at all.
fn mostly(right: impl Strategy<Value = Json> + 'static) -> impl Strategy<Value = Json> {
    prop_oneof![24 => right.boxed(), 1 => any_json().boxed()]
}

/// Appends `value` under `key` when it is present.
fn fields(entries: Vec<(&'static str, Option<Json>)>, extra: Vec<(String, Json)>) -> Json {
    let mut object: Vec<(String, Json)> = entries
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key.to_owned(), value)))
        .collect();
    object.extend(extra);
    Json::Object(object)
}

fn string_map() -> impl Strategy<Value = Json> {
    prop::collection::vec(("\\PC{0,12}", "\\PC{0,12}".prop_map(Json::Str)), 0..4)
        .prop_map(Json::Object)
}

fn platform() -> impl Strategy<Value = Json> {
    (
        prop::option::weighted(0.95, mostly("[a-z0-9]{0,8}".prop_map(Json::Str))),
        prop::option::weighted(0.95, mostly("[a-z]{0,8}".prop_map(Json::Str))),
        prop::option::weighted(0.3, mostly("\\PC{0,8}".prop_map(Json::Str))),
        prop::option::weighted(0.1, any_json()),
    )
        .prop_map(|(architecture, os, variant, features)| {
            fields(
                vec![
                    ("architecture", architecture),
                    ("os", os),
                    ("variant", variant),
                    ("os.features", features),
                ],
                Vec::new(),
            )
        })
}

/// An object shaped like a descriptor, each field present or not, valid or not.
fn descriptor() -> impl Strategy<Value = Json> {
    (
        prop::option::weighted(0.98, mostly(media_type().prop_map(Json::Str))),
        prop::option::weighted(0.98, mostly(digest_text().prop_map(Json::Str))),
        prop::option::weighted(0.98, mostly(size())),
        prop::option::weighted(0.2, mostly(platform())),
        prop::option::weighted(0.1, mostly(string_map())),
        prop::option::weighted(
            0.1,
            mostly(
                prop::collection::vec("\\PC{0,16}".prop_map(Json::Str), 0..3).prop_map(Json::Array),
            ),
        ),
        prop::option::weighted(0.1, mostly("\\PC{0,16}".prop_map(Json::Str))),
    )
        .prop_map(
            |(media_type, digest, size, platform, annotations, urls, artifact_type)| {
                fields(
                    vec![
                        ("mediaType", media_type),
                        ("digest", digest),
                        ("size", size),
                        ("platform", platform),
                        ("annotations", annotations),
                        ("urls", urls),
                        ("artifactType", artifact_type),
                    ],
                    Vec::new(),
                )
            },
        )
}

fn descriptors() -> impl Strategy<Value = Json> {
    prop::collection::vec(mostly(descriptor()), 0..6).prop_map(Json::Array)
}

/// The media types of image manifests, or of indexes, mostly, and sometimes any other.
fn manifest_media_type(index: bool) -> impl Strategy<Value = Json> {
    let kinds = if index {
        [OCI_IMAGE_INDEX, DOCKER_MANIFEST_LIST]
    } else {
        [OCI_IMAGE_MANIFEST, DOCKER_MANIFEST_V2]
    };
    prop_oneof![
        4 => prop::sample::select(kinds.to_vec()).prop_map(|kind| Json::Str(kind.to_owned())),
        1 => media_type().prop_map(Json::Str),
    ]
}

/// JSON that is almost a manifest: an image manifest or an index, with every field it may have
/// present or not, mostly of the right kind, now and then a field of the other shape, and
/// unknown and repeated keys.
fn almost_a_manifest() -> impl Strategy<Value = Json> {
    any::<bool>()
        .prop_flat_map(|index| {
            let (image_fields, index_fields) = if index { (0.05, 0.95) } else { (0.95, 0.05) };
            (
                prop::option::weighted(
                    0.95,
                    prop_oneof![12 => Just(Json::Token("2".to_owned())), 1 => any_json()],
                ),
                prop::option::weighted(0.7, mostly(manifest_media_type(index))),
                prop::option::weighted(0.1, mostly("\\PC{0,16}".prop_map(Json::Str))),
                prop::option::weighted(image_fields, mostly(descriptor())),
                prop::option::weighted(image_fields, mostly(descriptors())),
                prop::option::weighted(index_fields, mostly(descriptors())),
                prop::option::weighted(0.2, mostly(descriptor())),
                prop::option::weighted(0.2, mostly(string_map())),
                prop::collection::vec(
                    (
                        prop_oneof![
                            1 => Just("schemaVersion".to_owned()),
                            1 => Just("mediaType".to_owned()),
                            1 => Just("layers".to_owned()),
                            12 => "[a-zA-Z]{1,12}",
                        ],
                        any_json(),
                    ),
                    0..2,
                ),
            )
        })
        .prop_map(
            |(
                schema_version,
                media_type,
                artifact_type,
                config,
                layers,
                manifests,
                subject,
                annotations,
                extra,
            )| {
                fields(
                    vec![
                        ("schemaVersion", schema_version),
                        ("mediaType", media_type),
                        ("artifactType", artifact_type),
                        ("config", config),
                        ("layers", layers),
                        ("manifests", manifests),
                        ("subject", subject),
                        ("annotations", annotations),
                    ],
                    extra,
                )
            },
        )
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        media_type(),
        media_type()
            .prop_map(|media_type| format!("{} ; charset=utf-8", media_type.to_uppercase())),
    ])
}

/// What every accepted manifest must satisfy, whatever it was parsed from.
fn check_accepted(manifest: &Manifest) -> Result<(), TestCaseError> {
    prop_assert_eq!(manifest.media_type, manifest.kind.media_type());
    if manifest.kind.is_index() {
        prop_assert!(manifest.config.is_none() && manifest.layers.is_empty());
    } else {
        prop_assert!(manifest.config.is_some() && manifest.manifests.is_empty());
    }
    if !manifest.kind.is_oci() {
        prop_assert!(manifest.subject.is_none() && manifest.artifact_type.is_none());
    }
    for (_, descriptor) in manifest.references() {
        let reparsed: Digest = descriptor
            .digest
            .as_str()
            .parse()
            .map_err(|error| TestCaseError::fail(format!("{error}")))?;
        prop_assert_eq!(&reparsed, &descriptor.digest);
    }
    Ok(())
}

fn reason(result: Result<Manifest, ManifestError>) -> String {
    match result {
        Err(ManifestError::Invalid { reason }) => reason,
        other => panic!("expected ManifestError::Invalid, got {other:?}"),
    }
}

fn valid_descriptor(media_type: &str, hex: &str, size: u64) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"sha256:{hex}","size":{size}}}"#)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_the_manifest_parser(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        content_type in content_type(),
    ) {
        if let Ok(manifest) = parse_manifest(&bytes, content_type.as_deref()) {
            check_accepted(&manifest)?;
        }
    }

    #[test]
    fn almost_manifests_are_accepted_consistently_or_refused_without_panic(
        manifest in almost_a_manifest(),
        content_type in content_type(),
    ) {
        if let Ok(manifest) = parse_manifest(&manifest.to_bytes(), content_type.as_deref()) {
            check_accepted(&manifest)?;
        }
    }

    #[test]
    fn well_formed_manifests_keep_every_descriptor_and_size(
        index in any::<bool>(),
        sizes in prop::collection::vec(any::<u64>(), 0..40),
        hex in "[a-f0-9]{64}",
    ) {
        let items: Vec<String> = sizes
            .iter()
            .map(|&size| valid_descriptor(OCI_IMAGE_MANIFEST, &hex, size))
            .collect();
        let bytes = if index {
            format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, items.join(","))
        } else {
            format!(
                r#"{{"schemaVersion":2,"config":{},"layers":[{}]}}"#,
                valid_descriptor(OCI_EMPTY, &hex, 2),
                items.join(",")
            )
        };
        let manifest = parse_manifest(bytes.as_bytes(), None)
            .map_err(|error| TestCaseError::fail(format!("{error}")))?;
        check_accepted(&manifest)?;
        let listed = if index { &manifest.manifests } else { &manifest.layers };
        let parsed: Vec<u64> = listed.iter().map(|descriptor| descriptor.size).collect();
        prop_assert_eq!(parsed, sizes);
    }

    #[test]
    fn arbitrary_strings_never_panic_the_digest_parsers(
        text in "\\PC{0,160}|sha(256|512):[a-fA-F0-9]{0,140}|[a-z0-9+._-]{0,12}:[a-zA-Z0-9=_-]{0,140}",
    ) {
        if let Ok(digest) = text.parse::<Digest>() {
            prop_assert_eq!(digest.as_str(), text.as_str());
            prop_assert_eq!(digest.hex().len(), digest.algorithm().hex_len());
        }
        if let Ok(algorithm) = text.parse::<DigestAlgorithm>() {
            prop_assert_eq!(algorithm.as_str(), text.as_str());
        }
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            if let Ok(digest) = Digest::new(algorithm, &text) {
                prop_assert_eq!(digest.hex(), text.as_str());
            }
        }
    }

    #[test]
    fn arbitrary_strings_never_panic_the_name_tag_and_reference_parsers(
        text in "\\PC{0,300}|[a-zA-Z0-9._/:-]{0,300}",
    ) {
        if let Ok(name) = text.parse::<RepositoryName>() {
            prop_assert_eq!(name.as_str(), text.as_str());
            prop_assert!(text.len() <= registry_model::MAX_REPOSITORY_NAME_LEN);
            for component in name.components() {
                prop_assert!(!component.is_empty() && component != "." && component != "..");
            }
        }
        if let Ok(tag) = text.parse::<Tag>() {
            prop_assert_eq!(tag.as_str(), text.as_str());
            prop_assert!(text.len() <= registry_model::MAX_TAG_LEN && !text.contains(['/', ':']));
        }
        let has_colon = text.contains(':');
        match text.parse::<Reference>() {
            Ok(Reference::Tag(tag)) => prop_assert!(!has_colon && tag.as_str() == text),
            Ok(Reference::Digest(digest)) => prop_assert!(has_colon && digest.as_str() == text),
            Err(ReferenceError::Tag(_)) => prop_assert!(!has_colon),
            Err(ReferenceError::Digest(_)) => prop_assert!(has_colon),
        }
    }
}

/// serde_json refuses nesting deeper than 128 levels before it recurses further, so a manifest
/// of a few hundred kilobytes of brackets is an error, not a stack overflow.
#[test]
fn deeply_nested_json_is_refused_by_serde_jsons_recursion_limit() {
    let depth = 200_000;
    for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
        for field in ["layers", "config", "annotations", "x-unknown"] {
            let bytes = format!(
                r#"{{"schemaVersion":2,"{field}":{}null{}}}"#,
                open.repeat(depth),
                close.repeat(depth)
            );
            let reason = reason(parse_manifest(bytes.as_bytes(), None));
            assert!(
                reason.contains("recursion limit exceeded"),
                "{field}: {reason}"
            );
        }
    }
}

#[test]
fn nesting_below_the_recursion_limit_in_an_unknown_field_is_ignored() {
    let depth = 100;
    let bytes = format!(
        r#"{{"schemaVersion":2,"manifests":[],"x-unknown":{}null{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let manifest = parse_manifest(bytes.as_bytes(), None).expect("an index with an extra field");
    assert!(manifest.manifests.is_empty());
}

#[test]
fn sizes_and_schema_versions_beyond_u64_or_fractional_are_refused() {
    let hex = "a".repeat(64);
    let config = valid_descriptor(OCI_EMPTY, &hex, 2);
    for size in ["18446744073709551616", "1e400", "-1", "1.5", "2e0", "-0.0"] {
        let bytes = format!(
            r#"{{"schemaVersion":2,"config":{config},"layers":[{{"mediaType":"m/t","digest":"sha256:{hex}","size":{size}}}]}}"#
        );
        assert!(
            parse_manifest(bytes.as_bytes(), None).is_err(),
            "size {size}"
        );
    }
    for version in ["18446744073709551618", "2.0", "2e0", "1e400", "-2", "\"2\""] {
        let bytes = format!(r#"{{"schemaVersion":{version},"manifests":[]}}"#);
        assert!(
            parse_manifest(bytes.as_bytes(), None).is_err(),
            "schemaVersion {version}"
        );
    }
    let largest = format!(
        r#"{{"schemaVersion":2,"config":{config},"layers":[{}]}}"#,
        valid_descriptor(OCI_LAYER_TAR_GZIP, &hex, u64::MAX)
    );
    let manifest = parse_manifest(largest.as_bytes(), None).expect("u64::MAX is a valid size");
    assert_eq!(manifest.layers[0].size, u64::MAX);
}

/// Ten thousand layers (1.3 MB, under the 4 MiB manifest limit) are parsed, each kept once.
#[test]
fn manifest_with_many_descriptors_is_parsed_completely() {
    let hex = "b".repeat(64);
    let layers: Vec<String> = (0..10_000)
        .map(|size| valid_descriptor(OCI_LAYER_TAR_GZIP, &hex, size))
        .collect();
    let bytes = format!(
        r#"{{"schemaVersion":2,"config":{},"layers":[{}]}}"#,
        valid_descriptor(OCI_EMPTY, &hex, 2),
        layers.join(",")
    );
    let manifest = parse_manifest(bytes.as_bytes(), None).expect("a valid manifest");
    assert_eq!(manifest.layers.len(), 10_000);
    assert_eq!(manifest.references().count(), 10_001);
}
