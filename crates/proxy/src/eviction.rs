//! Keeping a mirror within a size bound: the least recently pulled images are evicted, and
//! garbage collection frees the blobs no remaining image uses.
//!
//! The unit of eviction is a manifest in a mirrored repository (with the tags naming it). Blobs
//! are never deleted here: the collection that follows deletes what no manifest in any
//! repository references any more, so a layer shared with a kept image, or with a repository
//! that is not mirrored, stays. When a pull later needs an evicted image, it is fetched again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use registry_content::{ContentError, GcOptions, GcReport, Page};
use registry_model::{Digest, Reference, RepositoryName, parse_manifest};

use crate::Mirror;

/// How much the mirrored content may take, and how room is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheBound {
    /// The most bytes of blobs (layers, configs, manifests) the mirrored repositories may
    /// reference. Eviction brings them down to nine tenths of it, so that it does not run again
    /// at the next fetch.
    pub max_bytes: u64,
    /// How often to check the bound.
    pub interval: Duration,
    /// The collection that frees the blobs of evicted images (its grace period protects pushes
    /// in progress in repositories that are not mirrored).
    pub collection: GcOptions,
}

/// What making room did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomReport {
    /// Bytes the mirrored repositories referenced before.
    pub bytes_before: u64,
    /// Manifests evicted.
    pub manifests_evicted: u64,
    /// What the collection afterwards deleted.
    pub collected: Option<GcReport>,
}

/// When each cached manifest was last pulled through this process, and how much was fetched
/// since the last look at the whole cache.
#[derive(Debug)]
pub(crate) struct Usage {
    pulled: Mutex<HashMap<(RepositoryName, Digest), SystemTime>>,
    /// Bytes of blobs fetched since the last scan, and what that scan found (so the bound is
    /// checked without walking the cache while it is far from full); unknown before the first.
    fetched: AtomicU64,
    scanned: AtomicU64,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            pulled: Mutex::default(),
            fetched: AtomicU64::new(0),
            scanned: AtomicU64::new(u64::MAX),
        }
    }
}

impl Usage {
    /// Notes that `digest` of `name` was pulled now.
    pub(crate) fn pulled(&self, name: &RepositoryName, digest: &Digest) {
        let mut pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
        pulled.insert((name.clone(), digest.clone()), SystemTime::now());
    }

    /// Notes that `bytes` more were fetched.
    pub(crate) fn fetched(&self, bytes: u64) {
        self.fetched.fetch_add(bytes, Ordering::Relaxed);
    }

    fn last_pulled(&self, name: &RepositoryName, digest: &Digest) -> Option<SystemTime> {
        let pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
        pulled.get(&(name.clone(), digest.clone())).copied()
    }

    fn forget(&self, name: &RepositoryName, digest: &Digest) {
        let mut pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
        pulled.remove(&(name.clone(), digest.clone()));
    }
}

/// A cached manifest, as eviction weighs it.
struct Cached {
    name: RepositoryName,
    digest: Digest,
    /// When it was last pulled (through this process), or else fetched.
    used: Option<SystemTime>,
    /// It and what it references.
    blobs: Vec<Digest>,
}

impl Mirror {
    /// Evicts the least recently pulled manifests of mirrored repositories until the blobs they
    /// reference take at most nine tenths of `bound`, then collects garbage to free them. Does
    /// nothing (and reads nothing) while what was fetched since the last look cannot have
    /// reached the bound.
    pub async fn make_room(&self, bound: &CacheBound) -> Result<RoomReport, ContentError> {
        if self.store.is_read_only() {
            return Err(ContentError::ReadOnly);
        }
        let usage = &self.usage;
        let fetched = usage.fetched.load(Ordering::Relaxed);
        if usage
            .scanned
            .load(Ordering::Relaxed)
            .saturating_add(fetched)
            <= bound.max_bytes
        {
            return Ok(RoomReport::default());
        }
        let cached = self.cached_manifests().await?;
        let mut sizes: HashMap<Digest, u64> = HashMap::new();
        let mut users: HashMap<Digest, usize> = HashMap::new();
        for manifest in &cached {
            for digest in &manifest.blobs {
                *users.entry(digest.clone()).or_default() += 1;
                if !sizes.contains_key(digest)
                    && let Some(size) = self.store.stored_size(digest).await?
                {
                    sizes.insert(digest.clone(), size);
                }
            }
        }
        let mut total: u64 = sizes.values().sum();
        let bytes_before = total;
        usage.fetched.fetch_sub(fetched, Ordering::Relaxed);
        let target = bound.max_bytes / 10 * 9;
        let mut evicted = Vec::new();
        if total > bound.max_bytes {
            let mut order: Vec<&Cached> = cached.iter().collect();
            order.sort_by_key(|manifest| manifest.used);
            for manifest in order {
                if total <= target {
                    break;
                }
                for digest in &manifest.blobs {
                    if let Some(count) = users.get_mut(digest) {
                        *count -= 1;
                        if *count == 0 {
                            total -= sizes.get(digest).copied().unwrap_or(0);
                        }
                    }
                }
                evicted.push(manifest);
            }
        }
        usage.scanned.store(total, Ordering::Relaxed);
        if evicted.is_empty() {
            return Ok(RoomReport {
                bytes_before,
                ..RoomReport::default()
            });
        }
        for manifest in &evicted {
            let repository = self.store.repository(manifest.name.clone());
            match repository.evict_manifest(&manifest.digest).await {
                Ok(()) | Err(ContentError::ManifestUnknown { .. }) => {}
                Err(error) => return Err(error),
            }
            usage.forget(&manifest.name, &manifest.digest);
            tracing::info!(
                repository = %manifest.name,
                digest = %manifest.digest,
                "evicted from the mirror's cache (least recently pulled)"
            );
        }
        let collected = self.store.collect_garbage(&bound.collection, |_| {}).await;
        let collected = match collected {
            Ok(report) => Some(report),
            // Another collection will free the space.
            Err(ContentError::CollectionRunning) => None,
            Err(error) => return Err(error),
        };
        Ok(RoomReport {
            bytes_before,
            manifests_evicted: evicted.len() as u64,
            collected,
        })
    }

    /// Every manifest of the mirrored repositories, with what it references.
    async fn cached_manifests(&self) -> Result<Vec<Cached>, ContentError> {
        let everything = Page {
            n: None,
            last: None,
        };
        let listing = self.store.catalog(&everything).await?;
        let mut cached = Vec::new();
        for name in listing.items().filter(|name| self.mirrored(name).is_some()) {
            let repository = self.store.repository(name.clone());
            for (digest, linked) in repository.manifest_links().await? {
                let stored = match repository
                    .manifest(&Reference::Digest(digest.clone()))
                    .await
                {
                    Ok(stored) => stored,
                    // Evicted or deleted meanwhile, or its bytes collected: nothing to weigh.
                    Err(ContentError::ManifestUnknown { .. }) => continue,
                    Err(error) => return Err(error),
                };
                let mut blobs = vec![digest.clone()];
                if let Ok(manifest) = parse_manifest(&stored.bytes, Some(&stored.media_type)) {
                    blobs.extend(
                        manifest
                            .config
                            .iter()
                            .chain(&manifest.layers)
                            .map(|descriptor| descriptor.digest.clone()),
                    );
                }
                let used = self.usage.last_pulled(name, &digest).max(linked);
                cached.push(Cached {
                    name: name.clone(),
                    digest,
                    used,
                    blobs,
                });
            }
        }
        Ok(cached)
    }
}

/// Checks `bound` on its interval until the future is dropped, logging what each round evicts.
pub async fn keep_within(mirror: std::sync::Arc<Mirror>, bound: CacheBound) {
    loop {
        // A schedule, not a wait for something: the bound is looked at once per interval.
        tokio::time::sleep(bound.interval).await;
        match mirror.make_room(&bound).await {
            Ok(report) if report.manifests_evicted > 0 => tracing::info!(
                bytes_before = report.bytes_before,
                max_bytes = bound.max_bytes,
                manifests_evicted = report.manifests_evicted,
                bytes_freed = report.collected.as_ref().map_or(0, |gc| gc.bytes_freed),
                "the mirror's cache was over its bound: made room"
            ),
            Ok(_) => {}
            Err(ContentError::ReadOnly) => {}
            Err(error) => {
                tracing::warn!(%error, "making room in the mirror's cache failed; will retry")
            }
        }
    }
}
