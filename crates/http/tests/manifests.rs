//! Manifests: push and pull of the four accepted kinds byte for byte, tags, subjects, size limits,
//! validation and deletes.

mod common;

use common::{
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_LAYER,
    OCI_MANIFEST, Registry, config_blob, content, deletes_enabled, descriptor, manifest_json,
    oci_index, oci_manifest, sha256, sha512,
};
use http::{Method, StatusCode};
use registry_content::{
    ContentOptions, IndexChildren, ManifestValidation, OsArchitecture, UrlPolicy,
};
use registry_http::MAX_TAGS_PER_MANIFEST_PUSH;
use serde_json::json;

/// Pushes a config and a layer to `repo`; returns the OCI image manifest over them.
async fn image_manifest(registry: &Registry, repo: &str, seed: u8) -> Vec<u8> {
    let config = config_blob(seed);
    let config_digest = registry.push_blob(repo, &config).await;
    let layer = content(seed, 1_000);
    let layer_digest = registry.push_blob(repo, &layer).await;
    oci_manifest(
        (OCI_CONFIG, &config_digest, config.len()),
        &[(OCI_LAYER, &layer_digest, layer.len())],
    )
}

/// Asserts GET and HEAD of `/v2/<repo>/manifests/<reference>` answer `bytes` exactly, typed
/// `media_type`, with its digest.
async fn assert_manifest_is(
    registry: &Registry,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) {
    let digest = sha256(bytes);
    let path = format!("/v2/{repo}/manifests/{reference}");
    let reply = registry.get(&path).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.body.as_ref(),
        bytes,
        "GET {path} returns the exact bytes pushed"
    );
    assert_eq!(reply.header("content-type"), media_type);
    assert_eq!(reply.header("content-length"), bytes.len().to_string());
    assert_eq!(reply.header("docker-content-digest"), digest);

    let reply = registry.head(&path).await;
    reply.assert_empty(StatusCode::OK);
    assert_eq!(reply.header("content-type"), media_type);
    assert_eq!(reply.header("content-length"), bytes.len().to_string());
    assert_eq!(reply.header("docker-content-digest"), digest);
}

#[tokio::test]
async fn manifest_put_by_tag_is_201_with_location_and_digest_of_the_exact_bytes() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "library/app", 1).await;
    let digest = sha256(&manifest);

    let reply = registry
        .put_manifest("library/app", "v1.0", OCI_MANIFEST, &manifest)
        .await;
    reply.assert_empty(StatusCode::CREATED);
    assert_eq!(
        reply.location_path(),
        format!("/v2/library/app/manifests/{digest}")
    );
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert!(reply.header_opt("oci-subject").is_none());
}

#[tokio::test]
async fn oci_manifest_is_served_byte_for_byte_by_tag_and_by_digest() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 2).await;
    let digest = registry
        .push_manifest("repo", "latest", OCI_MANIFEST, &manifest)
        .await;
    assert_manifest_is(&registry, "repo", "latest", OCI_MANIFEST, &manifest).await;
    assert_manifest_is(&registry, "repo", &digest, OCI_MANIFEST, &manifest).await;
    // A manifest is also readable through the blob endpoint, as registry:2 serves it.
    let reply = registry.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(reply.body.as_ref(), manifest.as_slice());
}

#[tokio::test]
async fn manifest_put_by_digest_is_201_and_untagged() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 3).await;
    let digest = sha256(&manifest);
    let reply = registry
        .put_manifest("repo", &digest, OCI_MANIFEST, &manifest)
        .await;
    reply.assert_empty(StatusCode::CREATED);
    assert_eq!(
        reply.location_path(),
        format!("/v2/repo/manifests/{digest}")
    );
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert_manifest_is(&registry, "repo", &digest, OCI_MANIFEST, &manifest).await;
    let reply = registry.get("/v2/repo/tags/list").await;
    assert_eq!(reply.json()["tags"], json!([]));
}

#[tokio::test]
async fn manifest_put_by_a_digest_it_does_not_have_is_digest_invalid() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 4).await;
    let wrong = sha256(b"not the manifest");
    registry
        .put_manifest("repo", &wrong, OCI_MANIFEST, &manifest)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    registry
        .get(&format!("/v2/repo/manifests/{}", sha256(&manifest)))
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn unknown_manifest_is_404_manifest_unknown() {
    let registry = Registry::filesystem().await;
    registry.push_image("repo", "present", 5).await;
    registry
        .get("/v2/repo/manifests/absent")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    registry
        .get(&format!("/v2/repo/manifests/{}", sha256(b"absent")))
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    registry
        .head("/v2/repo/manifests/absent")
        .await
        .assert_empty(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn manifest_with_if_none_match_is_304() {
    let registry = Registry::filesystem().await;
    let (_, digest) = registry.push_image("repo", "latest", 6).await;
    let reply = registry
        .get_with(
            "/v2/repo/manifests/latest",
            &[("if-none-match", &format!("\"{digest}\""))],
        )
        .await;
    reply.assert_empty(StatusCode::NOT_MODIFIED);
    assert_eq!(reply.header("docker-content-digest"), digest);
}

#[tokio::test]
async fn oci_index_with_existing_children_is_accepted() {
    let registry = Registry::filesystem().await;
    let (amd64, amd64_digest) = registry.push_image("repo", "amd64", 7).await;
    let (arm64, arm64_digest) = registry.push_image("repo", "arm64", 8).await;
    let index = oci_index(&[
        (OCI_MANIFEST, &amd64_digest, amd64.len()),
        (OCI_MANIFEST, &arm64_digest, arm64.len()),
    ]);
    let reply = registry
        .put_manifest("repo", "multi", OCI_INDEX, &index)
        .await;
    reply.assert_empty(StatusCode::CREATED);
    assert_eq!(reply.header("docker-content-digest"), sha256(&index));
    assert_manifest_is(&registry, "repo", "multi", OCI_INDEX, &index).await;
    assert_manifest_is(&registry, "repo", &sha256(&index), OCI_INDEX, &index).await;
}

#[tokio::test]
async fn index_with_an_absent_child_is_manifest_blob_unknown() {
    let registry = Registry::filesystem().await;
    let (present, present_digest) = registry.push_image("repo", "present", 9).await;
    let absent = sha256(b"a manifest never pushed");
    let index = oci_index(&[
        (OCI_MANIFEST, &present_digest, present.len()),
        (OCI_MANIFEST, &absent, 500),
    ]);
    let reply = registry
        .put_manifest("repo", "multi", OCI_INDEX, &index)
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        reply.json()["errors"][0]["detail"]["digest"],
        absent.as_str()
    );
    registry
        .get("/v2/repo/manifests/multi")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn index_child_in_another_repository_is_manifest_blob_unknown() {
    let registry = Registry::filesystem().await;
    let (other, other_digest) = registry.push_image("other", "latest", 10).await;
    let index = oci_index(&[(OCI_MANIFEST, &other_digest, other.len())]);
    registry
        .put_manifest("repo", "multi", OCI_INDEX, &index)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn docker_schema2_manifest_is_accepted_and_served_with_its_type() {
    let registry = Registry::filesystem().await;
    let config = config_blob(11);
    let config_digest = registry.push_blob("repo", &config).await;
    let layer = content(11, 2_000);
    let layer_digest = registry.push_blob("repo", &layer).await;
    let manifest = manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &config_digest, config.len()),
        "layers": [descriptor(DOCKER_LAYER, &layer_digest, layer.len())],
    }));
    let digest = registry
        .push_manifest("repo", "docker", DOCKER_MANIFEST, &manifest)
        .await;
    assert_eq!(digest, sha256(&manifest));
    assert_manifest_is(&registry, "repo", "docker", DOCKER_MANIFEST, &manifest).await;
    assert_manifest_is(&registry, "repo", &digest, DOCKER_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn docker_manifest_list_is_accepted_and_served_with_its_type() {
    let registry = Registry::filesystem().await;
    let config = config_blob(12);
    let config_digest = registry.push_blob("repo", &config).await;
    let child = manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &config_digest, config.len()),
        "layers": [],
    }));
    let child_digest = registry
        .push_manifest("repo", &sha256(&child), DOCKER_MANIFEST, &child)
        .await;
    let list = manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [{
            "mediaType": DOCKER_MANIFEST,
            "digest": child_digest,
            "size": child.len(),
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        }],
    }));
    let reply = registry
        .put_manifest("repo", "list", DOCKER_LIST, &list)
        .await;
    reply.assert_empty(StatusCode::CREATED);
    assert_manifest_is(&registry, "repo", "list", DOCKER_LIST, &list).await;
}

#[tokio::test]
async fn manifest_with_subject_is_accepted_before_its_subject_with_oci_subject() {
    let registry = Registry::filesystem().await;
    let subject = image_manifest(&registry, "repo", 13).await;
    let subject_digest = sha256(&subject);
    let empty = registry.push_blob("repo", b"{}").await;
    let referrer = manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": descriptor("application/vnd.oci.empty.v1+json", &empty, 2),
        "layers": [descriptor("application/vnd.oci.empty.v1+json", &empty, 2)],
        "subject": descriptor(OCI_MANIFEST, &subject_digest, subject.len()),
    }));

    // The subject does not exist yet.
    let reply = registry
        .put_manifest("repo", &sha256(&referrer), OCI_MANIFEST, &referrer)
        .await;
    reply.assert_empty(StatusCode::CREATED);
    assert_eq!(reply.header("oci-subject"), subject_digest);
    assert_eq!(reply.header("docker-content-digest"), sha256(&referrer));

    registry
        .push_manifest("repo", "latest", OCI_MANIFEST, &subject)
        .await;
    let reply = registry
        .get(&format!("/v2/repo/referrers/{subject_digest}"))
        .await;
    assert_eq!(reply.json()["manifests"][0]["digest"], sha256(&referrer));
}

#[tokio::test]
async fn push_by_digest_with_several_tags_answers_oci_tag_and_tags_resolve() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 14).await;
    let digest = sha256(&manifest);
    let reply = registry
        .send(
            Method::PUT,
            &format!("/v2/repo/manifests/{digest}?tag=a&tag=b"),
            &[("content-type", OCI_MANIFEST)],
            manifest.clone(),
        )
        .await;
    reply.assert_empty(StatusCode::CREATED);
    assert_eq!(reply.header("docker-content-digest"), digest);
    let mut tags: Vec<&str> = reply.header("oci-tag").split(", ").collect();
    tags.sort_unstable();
    assert_eq!(tags, ["a", "b"]);

    for tag in ["a", "b"] {
        assert_manifest_is(&registry, "repo", tag, OCI_MANIFEST, &manifest).await;
    }
    let reply = registry.get("/v2/repo/tags/list").await;
    assert_eq!(reply.json()["tags"], json!(["a", "b"]));
}

#[tokio::test]
async fn push_with_an_invalid_extra_tag_is_tag_invalid() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 15).await;
    let digest = sha256(&manifest);
    registry
        .send(
            Method::PUT,
            &format!("/v2/repo/manifests/{digest}?tag=ok&tag=-bad"),
            &[("content-type", OCI_MANIFEST)],
            manifest,
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "TAG_INVALID");
    registry
        .get("/v2/repo/manifests/ok")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn a_push_with_as_many_tags_as_allowed_sets_them_all() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 16).await;
    let digest = sha256(&manifest);
    let tags: Vec<String> = (0..MAX_TAGS_PER_MANIFEST_PUSH)
        .map(|n| format!("t{n:03}"))
        .collect();
    let query: Vec<String> = tags.iter().map(|tag| format!("tag={tag}")).collect();
    let reply = registry
        .send(
            Method::PUT,
            &format!("/v2/repo/manifests/{digest}?{}", query.join("&")),
            &[("content-type", OCI_MANIFEST)],
            manifest,
        )
        .await;
    reply.assert_empty(StatusCode::CREATED);
    let answered: Vec<&str> = reply.header("oci-tag").split(", ").collect();
    assert_eq!(answered, tags);
    let reply = registry.get("/v2/repo/tags/list").await;
    assert_eq!(reply.json()["tags"], json!(tags));
}

#[tokio::test]
async fn a_manifest_with_too_many_tags_is_refused_and_nothing_is_stored() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 17).await;
    let digest = sha256(&manifest);
    let query: Vec<String> = (0..=MAX_TAGS_PER_MANIFEST_PUSH)
        .map(|n| format!("tag=t{n}"))
        .collect();
    let message = registry
        .send(
            Method::PUT,
            &format!("/v2/repo/manifests/{digest}?{}", query.join("&")),
            &[("content-type", OCI_MANIFEST)],
            manifest,
        )
        .await
        .assert_error(StatusCode::URI_TOO_LONG, "TAG_INVALID");
    assert!(
        message.contains(&MAX_TAGS_PER_MANIFEST_PUSH.to_string()),
        "{message}"
    );
    registry
        .get(&format!("/v2/repo/manifests/{digest}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    registry
        .get("/v2/repo/manifests/t0")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    registry
        .get("/v2/repo/tags/list")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
}

/// An OCI index with no children whose annotations bring it to about `size` bytes.
fn index_of_size(size: usize) -> Vec<u8> {
    let value = "v".repeat(1_000);
    let mut annotations = serde_json::Map::new();
    let mut index = Vec::new();
    let mut key = 0;
    while index.len() < size {
        // Each entry adds a little over 1 KB; stop just past the target.
        let missing = size - index.len();
        let batch = (missing / 1_030).max(1);
        for _ in 0..batch {
            annotations.insert(format!("org.example.key.{key:07}"), json!(value));
            key += 1;
        }
        index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
            "annotations": annotations,
        }))
        .expect("json");
    }
    index
}

#[tokio::test]
async fn manifest_of_3_9_mb_is_accepted() {
    let registry = Registry::filesystem().await;
    let index = index_of_size(3_900_000);
    assert!(
        (3_900_000..4 * 1024 * 1024).contains(&index.len()),
        "{}",
        index.len()
    );
    let reply = registry
        .put_manifest("repo", "big", OCI_INDEX, &index)
        .await;
    reply.assert_empty(StatusCode::CREATED);
    assert_eq!(reply.header("docker-content-digest"), sha256(&index));
    let reply = registry.get("/v2/repo/manifests/big").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body.as_ref() == index.as_slice(),
        "served bytes differ"
    );
}

#[tokio::test]
async fn manifest_over_4_mib_is_413() {
    let registry = Registry::filesystem().await;
    let index = index_of_size(4 * 1024 * 1024 + 1);
    assert!(index.len() > 4 * 1024 * 1024);
    registry
        .put_manifest("repo", "huge", OCI_INDEX, &index)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID");
    registry
        .get("/v2/repo/manifests/huge")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn malformed_manifest_json_is_manifest_invalid() {
    let registry = Registry::filesystem().await;
    for body in [
        &b"{\"schemaVersion\": 2, \"mediaType\": "[..],
        b"not json at all",
        b"[]",
        b"{\"schemaVersion\": 1, \"config\": {}, \"layers\": []}",
    ] {
        registry
            .put_manifest("repo", "bad", OCI_MANIFEST, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    }
}

#[tokio::test]
async fn media_type_contradicting_content_type_is_manifest_invalid() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 16).await;
    let message = registry
        .put_manifest("repo", "latest", DOCKER_MANIFEST, &manifest)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    assert!(message.contains("mediaType"), "{message}");
    registry
        .put_manifest("repo", "latest", OCI_INDEX, &manifest)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
}

#[tokio::test]
async fn content_type_parameters_are_ignored() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 17).await;
    let content_type = format!("{OCI_MANIFEST}; charset=utf-8");
    let reply = registry
        .put_manifest("repo", "latest", &content_type, &manifest)
        .await;
    reply.assert_empty(StatusCode::CREATED);
}

#[tokio::test]
async fn schema1_manifest_is_refused_as_manifest_invalid() {
    let registry = Registry::filesystem().await;
    let schema1 = br#"{"schemaVersion":1,"name":"repo","tag":"old","fsLayers":[],"history":[]}"#;
    registry
        .put_manifest(
            "repo",
            "old",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1,
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
}

#[tokio::test]
async fn manifest_with_an_absent_layer_is_manifest_blob_unknown() {
    let registry = Registry::filesystem().await;
    let config = config_blob(18);
    let config_digest = registry.push_blob("repo", &config).await;
    let absent = sha256(b"layer never pushed");
    let manifest = oci_manifest(
        (OCI_CONFIG, &config_digest, config.len()),
        &[(OCI_LAYER, &absent, 18)],
    );
    let reply = registry
        .put_manifest("repo", "latest", OCI_MANIFEST, &manifest)
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        reply.json()["errors"][0]["detail"]["digest"],
        absent.as_str()
    );
}

#[tokio::test]
async fn manifest_with_an_absent_config_is_manifest_blob_unknown() {
    let registry = Registry::filesystem().await;
    let layer = content(19, 100);
    let layer_digest = registry.push_blob("repo", &layer).await;
    let absent = sha256(b"config never pushed");
    let manifest = oci_manifest(
        (OCI_CONFIG, &absent, 19),
        &[(OCI_LAYER, &layer_digest, layer.len())],
    );
    registry
        .put_manifest("repo", "latest", OCI_MANIFEST, &manifest)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn manifest_with_a_layer_of_another_repository_is_manifest_blob_unknown() {
    let registry = Registry::filesystem().await;
    let config = config_blob(20);
    let config_digest = registry.push_blob("repo", &config).await;
    let layer = content(20, 100);
    let layer_digest = registry.push_blob("other", &layer).await;
    let manifest = oci_manifest(
        (OCI_CONFIG, &config_digest, config.len()),
        &[(OCI_LAYER, &layer_digest, layer.len())],
    );
    registry
        .put_manifest("repo", "latest", OCI_MANIFEST, &manifest)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn non_distributable_layer_is_accepted_without_its_blob() {
    let registry = Registry::filesystem().await;
    let config = config_blob(21);
    let config_digest = registry.push_blob("repo", &config).await;
    let manifest = oci_manifest(
        (OCI_CONFIG, &config_digest, config.len()),
        &[(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            &sha256(b"licensed layer"),
            14,
        )],
    );
    registry
        .put_manifest("repo", "latest", OCI_MANIFEST, &manifest)
        .await
        .assert_empty(StatusCode::CREATED);
    let docker = manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &config_digest, config.len()),
        "layers": [descriptor(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            &sha256(b"windows base layer"),
            18,
        )],
    }));
    registry
        .put_manifest("repo", "foreign", DOCKER_MANIFEST, &docker)
        .await
        .assert_empty(StatusCode::CREATED);
}

/// An OCI image manifest over a pushed config and one layer that is not pushed but named by
/// `url`.
async fn manifest_with_layer_url(registry: &Registry, repo: &str, seed: u8, url: &str) -> Vec<u8> {
    let config = config_blob(seed);
    let config_digest = registry.push_blob(repo, &config).await;
    let mut layer = descriptor(OCI_LAYER, &sha256(b"elsewhere"), 9);
    layer["urls"] = json!([url]);
    manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config_digest, config.len()),
        "layers": [layer],
    }))
}

#[tokio::test]
async fn a_layer_with_urls_is_manifest_invalid_unless_urls_are_allowed() {
    let registry = Registry::filesystem().await;
    let url = "https://example.com/layer.tar.gz";
    let manifest = manifest_with_layer_url(&registry, "repo", 22, url).await;
    let message = registry
        .put_manifest("repo", "latest", OCI_MANIFEST, &manifest)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    assert!(message.contains(url), "{message}");
    registry
        .get(&format!("/v2/repo/manifests/{}", sha256(&manifest)))
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn a_layer_with_allowed_urls_is_accepted_without_its_blob() {
    let urls = UrlPolicy::new(&[r"^https://([^/]+\.)*example\.com/"], &[r"^https://www\."])
        .expect("patterns");
    let registry = Registry::filesystem_with(ContentOptions {
        manifest_validation: ManifestValidation {
            urls,
            ..ManifestValidation::default()
        },
        ..ContentOptions::default()
    })
    .await;
    let manifest =
        manifest_with_layer_url(&registry, "repo", 22, "https://cdn.example.com/l.tar.gz").await;
    registry
        .put_manifest("repo", "latest", OCI_MANIFEST, &manifest)
        .await
        .assert_empty(StatusCode::CREATED);
    assert_manifest_is(&registry, "repo", "latest", OCI_MANIFEST, &manifest).await;

    let denied =
        manifest_with_layer_url(&registry, "repo", 23, "https://www.example.com/l.tar.gz").await;
    registry
        .put_manifest("repo", "denied", OCI_MANIFEST, &denied)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
}

/// An OCI index over `(digest, size, os, architecture)` children.
fn index_of_platforms(children: &[(&str, usize, &str, &str)]) -> Vec<u8> {
    manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children
            .iter()
            .map(|(digest, size, os, architecture)| {
                let mut child = descriptor(OCI_MANIFEST, digest, *size);
                child["platform"] = json!({"os": os, "architecture": architecture});
                child
            })
            .collect::<Vec<_>>(),
    }))
}

fn with_index_children(index_children: IndexChildren) -> ContentOptions {
    ContentOptions {
        manifest_validation: ManifestValidation {
            index_children,
            ..ManifestValidation::default()
        },
        ..ContentOptions::default()
    }
}

#[tokio::test]
async fn a_sparse_index_is_accepted_and_served_when_no_children_are_required() {
    let registry =
        Registry::filesystem_with(with_index_children(IndexChildren::NoneRequired)).await;
    let (amd64, amd64_digest) = registry.push_image("mirror", "amd64", 30).await;
    let arm64_digest = sha256(b"the arm64 image, not mirrored");
    let index = index_of_platforms(&[
        (&amd64_digest, amd64.len(), "linux", "amd64"),
        (&arm64_digest, 700, "linux", "arm64"),
    ]);
    registry
        .put_manifest("mirror", "latest", OCI_INDEX, &index)
        .await
        .assert_empty(StatusCode::CREATED);
    assert_manifest_is(&registry, "mirror", "latest", OCI_INDEX, &index).await;
    assert_manifest_is(&registry, "mirror", &amd64_digest, OCI_MANIFEST, &amd64).await;
    registry
        .get(&format!("/v2/mirror/manifests/{arm64_digest}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn an_index_needs_only_the_children_of_the_listed_platforms() {
    let linux_amd64 = OsArchitecture {
        os: "linux".to_owned(),
        architecture: "amd64".to_owned(),
    };
    let registry =
        Registry::filesystem_with(with_index_children(IndexChildren::PlatformsRequired(vec![
            linux_amd64,
        ])))
        .await;
    let (amd64, amd64_digest) = registry.push_image("repo", "amd64", 31).await;
    let absent = sha256(b"never pushed");
    let index = index_of_platforms(&[
        (&amd64_digest, amd64.len(), "linux", "amd64"),
        (&absent, 700, "linux", "arm64"),
    ]);
    registry
        .put_manifest("repo", "latest", OCI_INDEX, &index)
        .await
        .assert_empty(StatusCode::CREATED);

    let index = index_of_platforms(&[(&absent, 700, "linux", "amd64")]);
    let reply = registry
        .put_manifest("repo", "broken", OCI_INDEX, &index)
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        reply.json()["errors"][0]["detail"]["digest"],
        absent.as_str()
    );
}

#[tokio::test]
async fn tag_delete_is_202_and_the_digest_still_resolves() {
    let registry = Registry::filesystem_with(deletes_enabled()).await;
    let (manifest, digest) = registry.push_image("repo", "doomed", 23).await;
    registry.push_image("repo", "kept", 24).await;

    registry
        .delete("/v2/repo/manifests/doomed")
        .await
        .assert_empty(StatusCode::ACCEPTED);
    registry
        .get("/v2/repo/manifests/doomed")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    assert_manifest_is(&registry, "repo", &digest, OCI_MANIFEST, &manifest).await;
    let reply = registry.get("/v2/repo/tags/list").await;
    assert_eq!(reply.json()["tags"], json!(["kept"]));
    registry
        .delete("/v2/repo/manifests/doomed")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_delete_by_digest_is_202_and_removes_its_tags() {
    let registry = Registry::filesystem_with(deletes_enabled()).await;
    let (manifest, digest) = registry.push_image("repo", "one", 25).await;
    registry
        .push_manifest("repo", "two", OCI_MANIFEST, &manifest)
        .await;
    registry.push_image("repo", "other", 26).await;

    registry
        .delete(&format!("/v2/repo/manifests/{digest}"))
        .await
        .assert_empty(StatusCode::ACCEPTED);
    registry
        .get(&format!("/v2/repo/manifests/{digest}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    for tag in ["one", "two"] {
        registry
            .get(&format!("/v2/repo/manifests/{tag}"))
            .await
            .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    }
    let reply = registry.get("/v2/repo/tags/list").await;
    assert_eq!(reply.json()["tags"], json!(["other"]));
}

#[tokio::test]
async fn manifest_deletes_are_405_unsupported_when_disabled() {
    let registry = Registry::filesystem().await;
    let (manifest, digest) = registry.push_image("repo", "kept", 27).await;
    registry
        .delete("/v2/repo/manifests/kept")
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    registry
        .delete(&format!("/v2/repo/manifests/{digest}"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    assert_manifest_is(&registry, "repo", "kept", OCI_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn manifest_pushed_by_sha512_digest_is_served_by_that_digest() {
    let registry = Registry::filesystem().await;
    let manifest = image_manifest(&registry, "repo", 28).await;
    let digest = sha512(&manifest);

    let reply = registry
        .put_manifest("repo", &digest, OCI_MANIFEST, &manifest)
        .await;
    reply.assert_empty(StatusCode::CREATED);
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert_eq!(
        reply.location_path(),
        format!("/v2/repo/manifests/{digest}")
    );

    let path = format!("/v2/repo/manifests/{digest}");
    let reply = registry.get(&path).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body.as_ref(), manifest.as_slice());
    assert_eq!(reply.header("content-type"), OCI_MANIFEST);
    assert_eq!(reply.header("docker-content-digest"), digest);
    let reply = registry.head(&path).await;
    reply.assert_empty(StatusCode::OK);
    assert_eq!(reply.header("docker-content-digest"), digest);

    // The wrong sha512 is refused.
    registry
        .put_manifest("repo", &sha512(b"other"), OCI_MANIFEST, &manifest)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn manifest_referencing_sha512_blobs_is_accepted() {
    let registry = Registry::filesystem().await;
    let config = config_blob(29);
    let config_digest = sha512(&config);
    registry
        .send(
            Method::POST,
            &format!("/v2/repo/blobs/uploads/?digest={config_digest}"),
            &[],
            config.clone(),
        )
        .await
        .assert_empty(StatusCode::CREATED);
    let manifest = oci_manifest((OCI_CONFIG, &config_digest, config.len()), &[]);
    registry
        .put_manifest("repo", "latest", OCI_MANIFEST, &manifest)
        .await
        .assert_empty(StatusCode::CREATED);
}

#[tokio::test]
async fn longest_valid_name_and_tag_can_be_pushed_and_pulled() {
    let registry = Registry::filesystem().await;
    // A single 255-byte path component, the longest a filesystem allows.
    let repo = "n".repeat(255);
    let tag = "t".repeat(128);
    let (manifest, digest) = registry.push_image(&repo, &tag, 30).await;
    assert_manifest_is(&registry, &repo, &tag, OCI_MANIFEST, &manifest).await;
    assert_manifest_is(&registry, &repo, &digest, OCI_MANIFEST, &manifest).await;
    let reply = registry.get(&format!("/v2/{repo}/tags/list")).await;
    assert_eq!(reply.json()["tags"], json!([tag]));
    let reply = registry.get("/v2/_catalog").await;
    assert_eq!(reply.json()["repositories"], json!([repo]));
}

#[tokio::test]
async fn image_lifecycle_works_on_the_in_memory_driver() {
    let registry = Registry::in_memory_with(deletes_enabled()).await;
    let (manifest, digest) = registry.push_image("team/app", "v1", 31).await;
    registry
        .push_manifest("team/app", "v2", OCI_MANIFEST, &manifest)
        .await;
    let (other, other_digest) = registry.push_image("team/app", "v3", 32).await;
    let index = oci_index(&[
        (OCI_MANIFEST, &digest, manifest.len()),
        (OCI_MANIFEST, &other_digest, other.len()),
    ]);
    registry
        .push_manifest("team/app", "multi", OCI_INDEX, &index)
        .await;

    assert_manifest_is(&registry, "team/app", "v1", OCI_MANIFEST, &manifest).await;
    assert_manifest_is(&registry, "team/app", "multi", OCI_INDEX, &index).await;
    let reply = registry.get("/v2/team/app/tags/list?n=2").await;
    assert_eq!(reply.json()["tags"], json!(["multi", "v1"]));
    assert_eq!(
        reply.header("link"),
        "</v2/team/app/tags/list?n=2&last=v1>; rel=\"next\""
    );
    let reply = registry.get("/v2/_catalog").await;
    assert_eq!(reply.json()["repositories"], json!(["team/app"]));

    registry
        .delete(&format!("/v2/team/app/manifests/{digest}"))
        .await
        .assert_empty(StatusCode::ACCEPTED);
    let reply = registry.get("/v2/team/app/tags/list").await;
    assert_eq!(reply.json()["tags"], json!(["multi", "v3"]));
    registry
        .get("/v2/team/app/manifests/v1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn image_manifest_with_thousands_of_layers_is_accepted() {
    let registry = Registry::filesystem().await;
    let config = config_blob(40);
    let config_digest = registry.push_blob("repo", &config).await;
    let mut blobs = Vec::new();
    for seed in 0..4 {
        let data = content(40 + seed, 100);
        blobs.push(registry.push_blob("repo", &data).await);
    }
    let layers: Vec<(&str, &str, usize)> = (0..5_000)
        .map(|i| (OCI_LAYER, blobs[i % blobs.len()].as_str(), 100))
        .collect();
    let manifest = oci_manifest((OCI_CONFIG, &config_digest, config.len()), &layers);
    let reply = registry
        .put_manifest("repo", "many", OCI_MANIFEST, &manifest)
        .await;
    reply.assert_empty(StatusCode::CREATED);
    assert_manifest_is(&registry, "repo", "many", OCI_MANIFEST, &manifest).await;
}

#[tokio::test]
/// Docker schema 2 requires `mediaType`; without it the stored bytes could not say what they are.
async fn docker_manifest_without_media_type_is_rejected() {
    let registry = Registry::filesystem().await;
    let config = config_blob(33);
    let config_digest = registry.push_blob("repo", &config).await;
    let manifest = manifest_json(json!({
        "schemaVersion": 2,
        "config": descriptor(DOCKER_CONFIG, &config_digest, config.len()),
        "layers": [],
    }));
    let reply = registry
        .put_manifest("repo", "latest", DOCKER_MANIFEST, &manifest)
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
}
