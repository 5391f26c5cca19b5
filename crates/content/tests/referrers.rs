//! The referrers of a subject in pages: digest order, where the next page starts, and the bounds
//! on what one page reads and returns.

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use registry_content::{
    ContentOptions, ContentStore, MAX_REFERRER_RECORDS_PER_PAGE, Page, ReferrersPage, Repository,
};
use registry_model::{Digest, Reference, media_type};
use registry_storage::{InMemoryDriver, StorageDriver};
use support::InFlightDriver;

const SBOM: &str = "application/vnd.example.sbom";
const SIGNATURE: &str = "application/vnd.example.signature";

fn repository(driver: Arc<dyn StorageDriver>, options: ContentOptions) -> Repository {
    ContentStore::new(driver, options).repository("app".parse().expect("name"))
}

async fn push_empty_config(repository: &Repository) -> Digest {
    let digest = Digest::sha256(media_type::EMPTY_JSON);
    let body = stream::iter([Ok::<_, Infallible>(Bytes::from_static(
        media_type::EMPTY_JSON,
    ))]);
    repository.put_blob(&digest, body).await.expect("config");
    digest
}

/// Pushes referrer number `n` of `subject`, of `artifact_type`, with an annotation of
/// `padding` bytes; returns its digest.
async fn push_referrer(
    repository: &Repository,
    subject: &Digest,
    artifact_type: &str,
    n: usize,
    padding: usize,
) -> Digest {
    let empty = Digest::sha256(media_type::EMPTY_JSON);
    let manifest = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"{artifact_type}","config":{{"mediaType":"{}","digest":"{empty}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{subject}","size":10}},"annotations":{{"n":"{n}","padding":"{}"}}}}"#,
        media_type::OCI_IMAGE_MANIFEST,
        media_type::OCI_EMPTY,
        media_type::OCI_IMAGE_MANIFEST,
        "x".repeat(padding),
    ));
    let digest = Digest::sha256(&manifest);
    repository
        .put_manifest(&Reference::Digest(digest.clone()), None, manifest, &[])
        .await
        .expect("push referrer");
    digest
}

async fn page(
    repository: &Repository,
    subject: &Digest,
    artifact_type: Option<&str>,
    n: Option<usize>,
    last: Option<&Digest>,
) -> ReferrersPage {
    let page = Page {
        n,
        last: last.map(|digest| digest.to_string()),
    };
    repository
        .referrers(subject, artifact_type, &page)
        .await
        .expect("referrers")
}

/// Every referrer, page after page from where each page says the next starts.
async fn all_pages(
    repository: &Repository,
    subject: &Digest,
    artifact_type: Option<&str>,
    n: Option<usize>,
) -> Vec<ReferrersPage> {
    let mut pages = Vec::new();
    let mut last = None;
    loop {
        let found = page(repository, subject, artifact_type, n, last.as_ref()).await;
        last = found.resume_after.clone();
        pages.push(found);
        if last.is_none() {
            return pages;
        }
        assert!(pages.len() < 1_000, "paging does not end");
    }
}

fn digests(pages: &[ReferrersPage]) -> Vec<Digest> {
    pages
        .iter()
        .flat_map(|page| page.descriptors.iter().map(|d| d.digest.clone()))
        .collect()
}

#[tokio::test]
async fn referrers_are_paged_in_digest_order_each_page_resuming_after_the_last() {
    let repository = repository(Arc::new(InMemoryDriver::new()), ContentOptions::default());
    push_empty_config(&repository).await;
    let subject = Digest::sha256(b"subject");
    let mut pushed = Vec::new();
    for n in 0..7 {
        pushed.push(push_referrer(&repository, &subject, SBOM, n, 0).await);
    }
    pushed.sort();

    let pages = all_pages(&repository, &subject, None, Some(3)).await;
    let sizes: Vec<usize> = pages.iter().map(|page| page.descriptors.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(pages[0].resume_after.as_ref(), Some(&pushed[2]));
    assert_eq!(digests(&pages), pushed);

    let whole = page(&repository, &subject, None, None, None).await;
    assert_eq!(whole.descriptors.len(), 7);
    assert_eq!(whole.resume_after, None);
    let exact = page(&repository, &subject, None, Some(7), None).await;
    assert_eq!(exact.resume_after, None, "nothing is left after the last");
}

#[tokio::test]
async fn a_filtered_page_holds_only_matching_referrers_and_pages_on() {
    let repository = repository(Arc::new(InMemoryDriver::new()), ContentOptions::default());
    push_empty_config(&repository).await;
    let subject = Digest::sha256(b"subject");
    let mut sboms = Vec::new();
    for n in 0..10 {
        let artifact_type = if n % 3 == 0 { SBOM } else { SIGNATURE };
        let digest = push_referrer(&repository, &subject, artifact_type, n, 0).await;
        if artifact_type == SBOM {
            sboms.push(digest);
        }
    }
    sboms.sort();

    let pages = all_pages(&repository, &subject, Some(SBOM), Some(2)).await;
    assert_eq!(digests(&pages), sboms);
    for found in &pages {
        assert!(found.descriptors.len() <= 2);
        for descriptor in &found.descriptors {
            assert_eq!(descriptor.artifact_type.as_deref(), Some(SBOM));
        }
    }
}

#[tokio::test]
async fn a_page_of_referrers_stays_within_the_manifest_size_limit() {
    let limit = 4 * 1024;
    let options = ContentOptions {
        manifest_size_limit: limit,
        ..ContentOptions::default()
    };
    let repository = repository(Arc::new(InMemoryDriver::new()), options);
    push_empty_config(&repository).await;
    let subject = Digest::sha256(b"subject");
    let mut pushed = Vec::new();
    for n in 0..9 {
        pushed.push(push_referrer(&repository, &subject, SBOM, n, 1_000).await);
    }
    pushed.sort();

    let pages = all_pages(&repository, &subject, None, None).await;
    assert!(pages.len() > 1, "one page of {} bytes", 9 * 1_000);
    for found in &pages {
        let json = serde_json::to_vec(&found.descriptors).expect("json");
        assert!(json.len() < limit, "a page of {} bytes", json.len());
        assert!(!found.descriptors.is_empty());
    }
    assert_eq!(digests(&pages), pushed);
}

#[tokio::test]
async fn referrers_too_large_to_share_a_page_get_one_each() {
    let options = ContentOptions {
        manifest_size_limit: 4 * 1024,
        ..ContentOptions::default()
    };
    let repository = repository(Arc::new(InMemoryDriver::new()), options);
    push_empty_config(&repository).await;
    let subject = Digest::sha256(b"subject");
    let mut pushed = Vec::new();
    for n in 0..3 {
        pushed.push(push_referrer(&repository, &subject, SBOM, n, 3_500).await);
    }
    pushed.sort();

    let pages = all_pages(&repository, &subject, None, None).await;
    let sizes: Vec<usize> = pages.iter().map(|page| page.descriptors.len()).collect();
    assert_eq!(sizes, [1, 1, 1]);
    assert_eq!(digests(&pages), pushed);
}

#[tokio::test]
async fn a_page_reads_a_bounded_number_of_records_however_few_match() {
    let driver = Arc::new(InFlightDriver::new());
    let repository = repository(driver.clone(), ContentOptions::default());
    push_empty_config(&repository).await;
    let subject = Digest::sha256(b"subject");
    let count = MAX_REFERRER_RECORDS_PER_PAGE + 100;
    for n in 0..count {
        push_referrer(&repository, &subject, SIGNATURE, n, 0).await;
    }
    let sbom = push_referrer(&repository, &subject, SBOM, count, 0).await;

    driver.reset();
    let first = page(&repository, &subject, Some(SBOM), Some(10), None).await;
    let operations = driver.started();
    assert!(
        operations <= MAX_REFERRER_RECORDS_PER_PAGE + 10,
        "one page took {operations} storage operations"
    );
    let pages = all_pages(&repository, &subject, Some(SBOM), Some(10)).await;
    assert!(
        pages.len() >= 2,
        "the first page could not look at them all"
    );
    assert_eq!(pages[0], first);
    assert_eq!(digests(&pages), [sbom]);
}
