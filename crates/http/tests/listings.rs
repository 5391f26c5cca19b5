//! Listings: tags and the catalog with `n`/`last` pagination and `Link`, and the referrers API.

mod common;

use common::{
    OCI_INDEX, OCI_MANIFEST, Registry, Reply, deletes_enabled, descriptor, manifest_json, sha256,
    sha512,
};
use http::StatusCode;
use serde_json::{Value, json};

/// The `<url>` of a `Link: <url>; rel="next"` header.
fn next_link(reply: &Reply) -> String {
    let link = reply.header("link");
    let url = link
        .strip_suffix("; rel=\"next\"")
        .and_then(|url| url.strip_prefix('<'))
        .and_then(|url| url.strip_suffix('>'))
        .unwrap_or_else(|| panic!("malformed Link header {link:?}"));
    url.to_owned()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect()
}

/// Pushes one image to `repo` and tags it with each of `tags`, in the order given.
async fn push_tags(registry: &Registry, repo: &str, tags: &[&str]) {
    let (manifest, _) = registry.push_image(repo, tags[0], 1).await;
    for tag in &tags[1..] {
        registry
            .push_manifest(repo, tag, OCI_MANIFEST, &manifest)
            .await;
    }
}

#[tokio::test]
async fn tags_list_is_sorted() {
    let registry = Registry::filesystem().await;
    push_tags(
        &registry,
        "repo",
        &["v2", "latest", "v10", "1.0", "Alpha", "alpha"],
    )
    .await;
    let reply = registry.get("/v2/repo/tags/list").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/json");
    assert!(reply.header_opt("link").is_none());
    let json = reply.json();
    assert_eq!(json["name"], "repo");
    assert_eq!(
        strings(&json["tags"]),
        ["1.0", "Alpha", "alpha", "latest", "v10", "v2"]
    );
}

#[tokio::test]
async fn tags_list_pages_with_n_last_and_link() {
    let registry = Registry::filesystem().await;
    push_tags(&registry, "org/repo", &["e", "c", "a", "d", "b"]).await;

    let reply = registry.get("/v2/org/repo/tags/list?n=2").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(strings(&reply.json()["tags"]), ["a", "b"]);
    assert_eq!(
        reply.header("link"),
        "</v2/org/repo/tags/list?n=2&last=b>; rel=\"next\""
    );

    let reply = registry.get(&next_link(&reply)).await;
    assert_eq!(strings(&reply.json()["tags"]), ["c", "d"]);
    let next = next_link(&reply);
    assert_eq!(next, "/v2/org/repo/tags/list?n=2&last=d");

    let reply = registry.get(&next).await;
    assert_eq!(strings(&reply.json()["tags"]), ["e"]);
    assert!(reply.header_opt("link").is_none(), "{reply:?}");
}

#[tokio::test]
async fn tags_list_without_more_pages_has_no_link() {
    let registry = Registry::filesystem().await;
    push_tags(&registry, "repo", &["a", "b", "c"]).await;

    // Exactly n remain.
    let reply = registry.get("/v2/repo/tags/list?n=3").await;
    assert_eq!(strings(&reply.json()["tags"]), ["a", "b", "c"]);
    assert!(reply.header_opt("link").is_none(), "{reply:?}");

    // `last` alone returns everything after it.
    let reply = registry.get("/v2/repo/tags/list?last=a").await;
    assert_eq!(strings(&reply.json()["tags"]), ["b", "c"]);
    assert!(reply.header_opt("link").is_none(), "{reply:?}");

    // A `last` past the end is an empty page.
    let reply = registry.get("/v2/repo/tags/list?n=2&last=c").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(strings(&reply.json()["tags"]), Vec::<String>::new());
    assert!(reply.header_opt("link").is_none(), "{reply:?}");
}

#[tokio::test]
async fn tags_list_with_n_zero_is_empty_without_link() {
    let registry = Registry::filesystem().await;
    push_tags(&registry, "repo", &["a", "b"]).await;
    let reply = registry.get("/v2/repo/tags/list?n=0").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(strings(&reply.json()["tags"]), Vec::<String>::new());
    assert!(reply.header_opt("link").is_none(), "{reply:?}");
}

#[tokio::test]
async fn tags_list_with_a_non_numeric_n_is_400() {
    let registry = Registry::filesystem().await;
    push_tags(&registry, "repo", &["a"]).await;
    registry
        .get("/v2/repo/tags/list?n=many")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID");
}

#[tokio::test]
async fn tags_list_of_an_unknown_repository_is_name_unknown() {
    let registry = Registry::filesystem().await;
    push_tags(&registry, "known", &["a"]).await;
    registry
        .get("/v2/unknown/tags/list")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
}

#[tokio::test]
async fn tags_list_of_a_namespace_holding_only_other_repositories_is_name_unknown() {
    let registry = Registry::filesystem().await;
    push_tags(&registry, "org/team/app", &["a"]).await;
    registry
        .get("/v2/org/team/tags/list")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
}

#[tokio::test]
async fn catalog_is_sorted_paged_and_includes_nested_names() {
    let registry = Registry::filesystem().await;
    for (seed, repo) in ["zeta", "alpha", "a/b/c", "mid/one", "beta", "a"]
        .into_iter()
        .enumerate()
    {
        registry
            .push_image(repo, "latest", u8::try_from(seed).expect("small"))
            .await;
    }

    let reply = registry.get("/v2/_catalog").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/json");
    assert!(reply.header_opt("link").is_none());
    assert_eq!(
        strings(&reply.json()["repositories"]),
        ["a", "a/b/c", "alpha", "beta", "mid/one", "zeta"]
    );

    let reply = registry.get("/v2/_catalog?n=2").await;
    assert_eq!(strings(&reply.json()["repositories"]), ["a", "a/b/c"]);
    assert_eq!(
        reply.header("link"),
        "</v2/_catalog?n=2&last=a/b/c>; rel=\"next\""
    );
    let reply = registry.get(&next_link(&reply)).await;
    assert_eq!(strings(&reply.json()["repositories"]), ["alpha", "beta"]);
    let next = next_link(&reply);
    assert_eq!(next, "/v2/_catalog?n=2&last=beta");
    let reply = registry.get(&next).await;
    assert_eq!(strings(&reply.json()["repositories"]), ["mid/one", "zeta"]);
    assert!(reply.header_opt("link").is_none(), "{reply:?}");

    let reply = registry.get("/v2/_catalog?n=3&last=mid/one").await;
    assert_eq!(strings(&reply.json()["repositories"]), ["zeta"]);
    assert!(reply.header_opt("link").is_none(), "{reply:?}");
}

#[tokio::test]
async fn catalog_of_an_empty_registry_is_empty() {
    let registry = Registry::filesystem().await;
    let reply = registry.get("/v2/_catalog").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"repositories": []}));
}

/// Pushes an artifact whose subject is `subject` (`(digest, size)`); returns its digest.
async fn push_referrer(
    registry: &Registry,
    repo: &str,
    subject: (&str, usize),
    artifact_type: Option<&str>,
    config_media_type: &str,
) -> String {
    let empty = registry.push_blob(repo, b"{}").await;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_media_type, &empty, 2),
        "layers": [descriptor("application/vnd.oci.empty.v1+json", &empty, 2)],
        "subject": descriptor(OCI_MANIFEST, subject.0, subject.1),
        "annotations": {"org.example.kind": artifact_type.unwrap_or("none")},
    });
    if let Some(artifact_type) = artifact_type {
        manifest["artifactType"] = json!(artifact_type);
    }
    let bytes = manifest_json(manifest);
    registry
        .push_manifest(repo, &sha256(&bytes), OCI_MANIFEST, &bytes)
        .await
}

#[tokio::test]
async fn referrers_lists_manifests_with_their_artifact_type() {
    let registry = Registry::filesystem().await;
    let (subject, subject_digest) = registry.push_image("repo", "latest", 1).await;
    let empty_type = "application/vnd.oci.empty.v1+json";
    let sbom = push_referrer(
        &registry,
        "repo",
        (&subject_digest, subject.len()),
        Some("application/vnd.example.sbom"),
        empty_type,
    )
    .await;
    let signature = push_referrer(
        &registry,
        "repo",
        (&subject_digest, subject.len()),
        None,
        "application/vnd.example.signature.config",
    )
    .await;

    let reply = registry
        .get(&format!("/v2/repo/referrers/{subject_digest}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.header("content-type"), OCI_INDEX);
    assert!(reply.header_opt("oci-filters-applied").is_none());
    let index = reply.json();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2, "{index}");
    for entry in manifests {
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
        let digest = entry["digest"].as_str().expect("digest");
        let pulled = registry.get(&format!("/v2/repo/manifests/{digest}")).await;
        assert_eq!(entry["size"], pulled.body.len());
        if digest == sbom {
            assert_eq!(entry["artifactType"], "application/vnd.example.sbom");
            assert_eq!(
                entry["annotations"]["org.example.kind"],
                "application/vnd.example.sbom"
            );
        } else {
            assert_eq!(digest, signature);
            // No artifactType: the config's media type stands in for it.
            assert_eq!(
                entry["artifactType"],
                "application/vnd.example.signature.config"
            );
        }
    }
}

#[tokio::test]
async fn referrers_filtered_by_artifact_type_say_so() {
    let registry = Registry::filesystem().await;
    let (subject, subject_digest) = registry.push_image("repo", "latest", 2).await;
    let empty_type = "application/vnd.oci.empty.v1+json";
    let sbom = push_referrer(
        &registry,
        "repo",
        (&subject_digest, subject.len()),
        Some("application/vnd.example.sbom"),
        empty_type,
    )
    .await;
    push_referrer(
        &registry,
        "repo",
        (&subject_digest, subject.len()),
        Some("application/vnd.example.signature"),
        empty_type,
    )
    .await;

    let reply = registry
        .get(&format!(
            "/v2/repo/referrers/{subject_digest}?artifactType=application/vnd.example.sbom"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), OCI_INDEX);
    assert_eq!(reply.header("oci-filters-applied"), "artifactType");
    let manifests = reply.json()["manifests"].clone();
    assert_eq!(manifests.as_array().map(Vec::len), Some(1), "{manifests}");
    assert_eq!(manifests[0]["digest"], sbom.as_str());
    assert_eq!(manifests[0]["artifactType"], "application/vnd.example.sbom");
}

#[tokio::test]
async fn referrers_of_an_unknown_subject_is_an_empty_index() {
    let registry = Registry::filesystem().await;
    registry.push_image("repo", "latest", 3).await;
    let reply = registry
        .get(&format!(
            "/v2/repo/referrers/{}",
            sha256(b"nobody refers to me")
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), OCI_INDEX);
    let index = reply.json();
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(index["manifests"], json!([]));

    // Nor is an unknown repository a 404: the referrers API never answers one.
    let reply = registry
        .get(&format!("/v2/nowhere/referrers/{}", sha256(b"x")))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["manifests"], json!([]));
}

#[tokio::test]
async fn referrers_by_a_sha512_subject() {
    let registry = Registry::filesystem().await;
    let (subject, _) = registry.push_image("repo", "latest", 4).await;
    let subject_digest = sha512(&subject);
    registry
        .push_manifest("repo", &subject_digest, OCI_MANIFEST, &subject)
        .await;
    let referrer = push_referrer(
        &registry,
        "repo",
        (&subject_digest, subject.len()),
        Some("application/vnd.example.sbom"),
        "application/vnd.oci.empty.v1+json",
    )
    .await;

    let reply = registry
        .get(&format!("/v2/repo/referrers/{subject_digest}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let manifests = reply.json()["manifests"].clone();
    assert_eq!(manifests.as_array().map(Vec::len), Some(1), "{manifests}");
    assert_eq!(manifests[0]["digest"], referrer.as_str());
    // The sha256 of the same subject has no referrers: the subject was named by its sha512.
    let reply = registry
        .get(&format!("/v2/repo/referrers/{}", sha256(&subject)))
        .await;
    assert_eq!(reply.json()["manifests"], json!([]));
}

#[tokio::test]
async fn deleted_referrer_leaves_the_list() {
    let registry = Registry::filesystem_with(deletes_enabled()).await;
    let (subject, subject_digest) = registry.push_image("repo", "latest", 5).await;
    let referrer = push_referrer(
        &registry,
        "repo",
        (&subject_digest, subject.len()),
        Some("application/vnd.example.sbom"),
        "application/vnd.oci.empty.v1+json",
    )
    .await;
    registry
        .delete(&format!("/v2/repo/manifests/{referrer}"))
        .await
        .assert_empty(StatusCode::ACCEPTED);
    let reply = registry
        .get(&format!("/v2/repo/referrers/{subject_digest}"))
        .await;
    assert_eq!(reply.json()["manifests"], json!([]));
}

/// Pushes referrer number `n` of `subject` (`(digest, size)`), of `artifact_type`; returns its
/// digest.
async fn push_numbered_referrer(
    registry: &Registry,
    repo: &str,
    subject: (&str, usize),
    artifact_type: &str,
    n: usize,
) -> String {
    let empty = registry.push_blob(repo, b"{}").await;
    let bytes = manifest_json(json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor("application/vnd.oci.empty.v1+json", &empty, 2),
        "layers": [],
        "subject": descriptor(OCI_MANIFEST, subject.0, subject.1),
        "annotations": {"org.example.n": n.to_string()},
    }));
    registry
        .push_manifest(repo, &sha256(&bytes), OCI_MANIFEST, &bytes)
        .await
}

/// Follows `Link` from `path` to the last page; returns the digests listed on each page.
async fn referrer_pages(registry: &Registry, path: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next {
        let reply = registry.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(reply.header("content-type"), OCI_INDEX);
        let manifests = reply.json()["manifests"].clone();
        let digests = manifests
            .as_array()
            .expect("manifests")
            .iter()
            .map(|entry| entry["digest"].as_str().expect("digest").to_owned())
            .collect();
        pages.push(digests);
        next = reply.header_opt("link").map(|_| next_link(&reply));
        assert!(pages.len() < 100, "paging does not end");
    }
    pages
}

#[tokio::test]
async fn referrers_are_paged_with_a_link_to_the_next_page() {
    let registry = Registry::filesystem().await;
    let (subject, subject_digest) = registry.push_image("repo", "latest", 6).await;
    let mut pushed = Vec::new();
    for n in 0..5 {
        pushed.push(
            push_numbered_referrer(
                &registry,
                "repo",
                (&subject_digest, subject.len()),
                "application/vnd.example.sbom",
                n,
            )
            .await,
        );
    }
    pushed.sort();

    let path = format!("/v2/repo/referrers/{subject_digest}?n=2");
    let first = registry.get(&path).await;
    assert_eq!(
        next_link(&first),
        format!("/v2/repo/referrers/{subject_digest}?n=2&last={}", pushed[1])
    );
    let pages = referrer_pages(&registry, &path).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(pages.concat(), pushed);

    let all = referrer_pages(&registry, &format!("/v2/repo/referrers/{subject_digest}")).await;
    assert_eq!(all, [pushed], "one page when all fit");
}

#[tokio::test]
async fn referrer_pages_keep_the_artifact_type_filter() {
    let registry = Registry::filesystem().await;
    let (subject, subject_digest) = registry.push_image("repo", "latest", 7).await;
    let sbom = "application/vnd.example.sbom+json";
    let mut sboms = Vec::new();
    for n in 0..8 {
        let artifact_type = if n % 2 == 0 {
            sbom
        } else {
            "application/vnd.example.signature"
        };
        let digest = push_numbered_referrer(
            &registry,
            "repo",
            (&subject_digest, subject.len()),
            artifact_type,
            n,
        )
        .await;
        if artifact_type == sbom {
            sboms.push(digest);
        }
    }
    sboms.sort();

    let path = format!(
        "/v2/repo/referrers/{subject_digest}?artifactType=application/vnd.example.sbom%2Bjson&n=1"
    );
    let first = registry.get(&path).await;
    assert_eq!(first.header("oci-filters-applied"), "artifactType");
    assert!(
        next_link(&first).ends_with("&artifactType=application/vnd.example.sbom%2Bjson"),
        "{first:?}"
    );
    let pages = referrer_pages(&registry, &path).await;
    assert!(pages.iter().all(|page| page.len() <= 1), "{pages:?}");
    assert_eq!(pages.concat(), sboms);
}

#[tokio::test]
async fn referrer_pages_are_capped_at_max_referrers() {
    let registry = Registry::in_memory_with_http(registry_http::HttpOptions {
        max_referrers: 3,
        ..registry_http::HttpOptions::default()
    })
    .await;
    let (subject, subject_digest) = registry.push_image("repo", "latest", 8).await;
    let mut pushed = Vec::new();
    for n in 0..5 {
        pushed.push(
            push_numbered_referrer(
                &registry,
                "repo",
                (&subject_digest, subject.len()),
                "application/vnd.example.sbom",
                n,
            )
            .await,
        );
    }
    pushed.sort();

    for query in ["", "?n=100"] {
        let reply = registry
            .get(&format!("/v2/repo/referrers/{subject_digest}{query}"))
            .await;
        assert_eq!(reply.json()["manifests"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            next_link(&reply),
            format!("/v2/repo/referrers/{subject_digest}?n=3&last={}", pushed[2])
        );
    }
    let pages = referrer_pages(&registry, &format!("/v2/repo/referrers/{subject_digest}")).await;
    assert_eq!(pages.concat(), pushed);
}

#[tokio::test]
async fn catalog_pages_are_capped_at_max_entries_with_a_link_to_the_rest() {
    let registry = Registry::in_memory_with_http(registry_http::HttpOptions {
        catalog_max_entries: 2,
        max_tags: 2,
        ..registry_http::HttpOptions::default()
    })
    .await;
    for (seed, repository) in ["a", "b", "c"].into_iter().enumerate() {
        for tag in ["t1", "t2", "t3"] {
            registry.push_image(repository, tag, seed as u8).await;
        }
    }
    let reply = registry.get("/v2/_catalog").await;
    assert_eq!(reply.json()["repositories"], serde_json::json!(["a", "b"]));
    assert_eq!(
        reply.header("link"),
        "</v2/_catalog?n=2&last=b>; rel=\"next\""
    );
    let reply = registry.get("/v2/_catalog?n=100").await;
    assert_eq!(reply.json()["repositories"], serde_json::json!(["a", "b"]));

    // Tags: all without n (as registry:2 2.8 clients expect), capped with n.
    let reply = registry.get("/v2/a/tags/list").await;
    assert_eq!(reply.json()["tags"], serde_json::json!(["t1", "t2", "t3"]));
    let reply = registry.get("/v2/a/tags/list?n=100").await;
    assert_eq!(reply.json()["tags"], serde_json::json!(["t1", "t2"]));
}
