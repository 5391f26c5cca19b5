//! The registry's content on top of any [`StorageDriver`]: blobs (global, content-addressed,
//! deduplicated), upload sessions, manifests, tags, referrers and the catalog, stored in
//! registry:2's layout (`crates/content/src/layout.rs` maps the tree).
//!
//! [`ContentStore`] is the registry as a whole; [`Repository`] is one repository in it and carries
//! the operations of the distribution API. This crate knows nothing of HTTP: `registry-http` turns
//! requests into these calls and [`ContentError`]s into the spec's error codes.
//!
//! Invariants every operation keeps:
//! - A blob's data is written in full and its digest verified before anything links to it, and a
//!   repository sees a blob or manifest only through a link written after the data is in place, so
//!   a crash leaves the old state or the new, never a half-written blob under a digest.
//! - All state lives in the driver; several processes over one store behave as one registry.

mod blobs;
mod cache;
mod catalog;
mod catalog_index;
mod error;
mod gc;
mod hashing;
mod layout;
mod lease;
mod links;
mod listing_cache;
mod manifests;
mod purge;
mod referrers;
mod retention;
mod source;
mod time;
mod uploads;
mod validation;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use registry_model::RepositoryName;
use registry_storage::StorageDriver;

pub use blobs::{Blob, BlobReader, MOUNT_SEARCH_LIMIT};
pub use cache::{CACHE_HITS, CACHE_MISSES};
pub use catalog::{Listing, Page};
pub use error::ContentError;
pub use gc::{DEFAULT_GRACE_PERIOD, GcEvent, GcOptions, GcReport};
pub use manifests::{PushedManifest, StoredManifest};
pub use purge::PurgeReport;
pub use referrers::{MAX_REFERRER_RECORDS_PER_PAGE, ReferrersPage};
pub use retention::{PatternError, RepositoryPattern, RetentionPolicy, TagPattern};
pub use source::ContentSource;
pub use uploads::{UPLOADS_ENDED, UPLOADS_STARTED};
pub use uploads::{UploadId, UploadStatus};
pub use validation::{
    IndexChildren, ManifestValidation, OsArchitecture, UrlPatternError, UrlPolicy,
};
pub use verify::{Problem, ProblemKind, Repair, VerifyEvent, VerifyOptions, VerifyReport};

/// Manifests larger than this are refused by default: 4 MiB, the limit the distribution spec
/// says registries SHOULD accept at least.
pub const DEFAULT_MANIFEST_SIZE_LIMIT: usize = 4 * 1024 * 1024;

/// How a [`ContentStore`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentOptions {
    /// Whether blobs, manifests and tags may be deleted (registry:2's `storage.delete.enabled`).
    pub delete_enabled: bool,
    /// The largest manifest accepted, in bytes.
    pub manifest_size_limit: usize,
    /// How many bytes of manifests to keep in memory by digest (0: none). Only immutable content
    /// is cached: which manifest a tag names and whether a repository holds a manifest are read on
    /// every request.
    pub manifest_cache_bytes: usize,
    /// About how many bytes the catalog's index may take in memory, and as many for the tags of
    /// repositories (0: nothing kept). The index takes about 200 bytes a repository, so the
    /// default of 64 MiB covers some 300,000; a larger catalog is walked on every request. A kept
    /// listing is served only after checking that none of the directories it was read from has
    /// changed since, so it is never out of date. Memory is used only as listings are asked for.
    pub listing_cache_bytes: usize,
    /// How many blob sizes to keep in memory by digest (registry:2's
    /// `storage.cache.blobdescriptorsize`, default 10,000; 0: none). A digest's size never
    /// changes, so a kept size spares a read of the blob's data; whether the repository links the
    /// blob is read on every request.
    pub blob_size_cache_entries: usize,
    /// The term of the leases that give one request at a time an upload session or the tags of
    /// a repository: how long a crashed process keeps others out of what it was changing. A live
    /// holder renews its lease every third of the term.
    pub lease_term: Duration,
    /// What pushed manifests must satisfy beyond their format (registry:2's
    /// `validation.manifests`): the URLs their descriptors may carry and which children of an
    /// index must be in the repository. The default is registry:2's: no URLs, every child.
    pub manifest_validation: ManifestValidation,
}

impl Default for ContentOptions {
    fn default() -> Self {
        ContentOptions {
            delete_enabled: false,
            manifest_size_limit: DEFAULT_MANIFEST_SIZE_LIMIT,
            manifest_cache_bytes: 16 * 1024 * 1024,
            listing_cache_bytes: 64 * 1024 * 1024,
            blob_size_cache_entries: 10_000,
            lease_term: lease::DEFAULT_TERM,
            manifest_validation: ManifestValidation::default(),
        }
    }
}

/// The error type of a request body stream handed to the content layer.
pub type BodyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A whole registry's content in one storage driver. Cheap to clone; clones share the driver.
#[derive(Clone, Debug)]
pub struct ContentStore {
    driver: Arc<dyn StorageDriver>,
    options: Arc<ContentOptions>,
    manifests: Arc<cache::ManifestCache>,
    blob_sizes: Arc<cache::BlobSizeCache>,
    catalog_index: Arc<catalog_index::CatalogIndex>,
    tag_cache: Arc<listing_cache::TagCache>,
    read_only: Arc<AtomicBool>,
}

impl ContentStore {
    /// A store over `driver` behaving as `options` say.
    pub fn new(driver: Arc<dyn StorageDriver>, options: ContentOptions) -> ContentStore {
        ContentStore {
            driver,
            manifests: Arc::new(
                cache::ManifestCache::new(options.manifest_cache_bytes, 8).named("manifests"),
            ),
            blob_sizes: Arc::new(
                cache::BlobSizeCache::new(
                    options
                        .blob_size_cache_entries
                        .saturating_mul(cache::BLOB_SIZE_ENTRY),
                    8,
                )
                .named("blob_sizes"),
            ),
            catalog_index: Arc::new(catalog_index::CatalogIndex::new(
                options.listing_cache_bytes,
            )),
            tag_cache: Arc::new(listing_cache::TagCache::new(options.listing_cache_bytes, 2)),
            options: Arc::new(options),
            read_only: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Switches read-only mode (registry:2's `storage.maintenance.readonly`) on or off for this
    /// store and every clone of it. While it is on, the HTTP API refuses every write, and garbage
    /// collection and upload purging do nothing: what is stored stays exactly as it is. It can be
    /// switched at any time; a write already under way finishes.
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::SeqCst);
    }

    /// Whether read-only mode is on (see [`set_read_only`](Self::set_read_only)).
    pub fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::SeqCst)
    }

    /// The driver everything is stored in.
    pub fn driver(&self) -> &Arc<dyn StorageDriver> {
        &self.driver
    }

    /// The options this store was made with.
    pub fn options(&self) -> &ContentOptions {
        &self.options
    }

    /// The repository `name`. It need not exist yet: pushing to it creates it.
    pub fn repository(&self, name: RepositoryName) -> Repository {
        Repository {
            store: self.clone(),
            name,
        }
    }
}

/// One repository of a [`ContentStore`], carrying the operations of the distribution API.
#[derive(Clone, Debug)]
pub struct Repository {
    store: ContentStore,
    name: RepositoryName,
}

impl Repository {
    /// The repository's name.
    pub fn name(&self) -> &RepositoryName {
        &self.name
    }

    fn driver(&self) -> &dyn StorageDriver {
        self.store.driver.as_ref()
    }

    fn ensure_delete_enabled(&self) -> Result<(), ContentError> {
        if self.store.options.delete_enabled {
            Ok(())
        } else {
            Err(ContentError::DeleteDisabled)
        }
    }
}
