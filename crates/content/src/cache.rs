//! Bounded in-process caches: manifests and blob sizes by digest, and tag snapshots
//! ([`TagSnapshot`](crate::listing_cache::TagSnapshot)).
//!
//! What a digest names never changes, so a cached manifest or blob size is never stale. Whether a repository
//! (still) holds the manifest, and which manifest a tag names, are not cached: they are read from
//! storage on every request, so a deleted manifest or a moved tag is seen at once, by every
//! process sharing the store. A tag snapshot is checked against storage before every use.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use registry_model::Digest;

/// The counter of cache lookups that found their value, by `cache`.
pub const CACHE_HITS: &str = "registry_cache_hits_total";
/// The counter of cache lookups that did not, by `cache`.
pub const CACHE_MISSES: &str = "registry_cache_misses_total";

/// Manifests (media type and bytes) by digest; none larger than an eighth of the capacity, so
/// one large index cannot flush everything else.
pub(crate) type ManifestCache = BoundedCache<Digest, (String, Bytes)>;

/// The sizes of stored blobs by digest, for answering a blob request after its link is read
/// without a second storage request for the data's size (a digest's size never changes).
pub(crate) type BlobSizeCache = BoundedCache<Digest, u64>;

/// What one entry of the blob size cache counts for: the digest's text and the map's overhead.
pub(crate) const BLOB_SIZE_ENTRY: usize = 128;

/// A map holding at most `capacity` bytes of values (as their inserters count them); the oldest
/// entries go first.
#[derive(Debug)]
pub(crate) struct BoundedCache<K, V> {
    /// Its hits and misses in the metrics.
    hits: metrics::Counter,
    misses: metrics::Counter,
    capacity: usize,
    /// Values larger than this are not kept.
    largest: usize,
    state: Mutex<State<K, V>>,
}

#[derive(Debug)]
struct State<K, V> {
    /// Each value with its size.
    entries: HashMap<K, (V, usize)>,
    /// Insertion order, for eviction.
    order: VecDeque<K>,
    bytes: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> BoundedCache<K, V> {
    /// A cache of at most `capacity` bytes (0 disables it) keeping no value larger than
    /// `capacity / share`.
    pub(crate) fn new(capacity: usize, share: usize) -> Self {
        BoundedCache {
            hits: metrics::Counter::noop(),
            misses: metrics::Counter::noop(),
            capacity,
            largest: capacity / share.max(1),
            state: Mutex::new(State {
                entries: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    /// The cache named `name` in the metrics (`registry_cache_hits_total` and
    /// `registry_cache_misses_total`, label `cache`), registered with the recorder installed now.
    pub(crate) fn named(mut self, name: &'static str) -> Self {
        self.hits = metrics::counter!(CACHE_HITS, "cache" => name);
        self.misses = metrics::counter!(CACHE_MISSES, "cache" => name);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value for `key`, if held.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let value = self.lock().entries.get(key).map(|(value, _)| value.clone());
        if value.is_some() {
            self.hits.increment(1);
        } else {
            self.misses.increment(1);
        }
        value
    }

    /// Holds `value`, of `size` bytes, for `key` in place of any earlier value, evicting the
    /// oldest entries to make room; a value larger than the cache's share is not kept.
    pub(crate) fn insert(&self, key: K, value: V, size: usize) {
        let mut state = self.lock();
        state.remove(&key);
        if self.capacity == 0 || size > self.largest {
            return;
        }
        // `order` holds each key once, oldest first: evicting is a pop, not a search.
        while state.bytes + size > self.capacity {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            if let Some((_, evicted)) = state.entries.remove(&oldest) {
                state.bytes -= evicted;
            }
        }
        state.bytes += size;
        state.order.push_back(key.clone());
        state.entries.insert(key, (value, size));
    }

    /// Drops the value for `key`, if held.
    pub(crate) fn remove(&self, key: &K) {
        self.lock().remove(key);
    }
}

impl<K: Eq + Hash, V> State<K, V> {
    fn remove(&mut self, key: &K) {
        if let Some((_, size)) = self.entries.remove(key) {
            self.bytes -= size;
            self.order.retain(|held| held != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_entries_are_evicted_to_stay_within_capacity() {
        let cache = BoundedCache::new(80, 1);
        for n in 0..10u8 {
            cache.insert(n, vec![n; 10], 10);
        }
        assert!(cache.get(&0).is_none());
        assert!(cache.get(&1).is_none());
        for n in 2..10 {
            assert_eq!(cache.get(&n).map(|value| value[0]), Some(n));
        }
        assert!(cache.lock().bytes <= 80);
    }

    #[test]
    fn an_insert_replaces_the_earlier_value_and_its_size() {
        let cache = BoundedCache::new(80, 1);
        cache.insert("key", 1, 30);
        cache.insert("key", 2, 50);
        assert_eq!(cache.get(&"key"), Some(2));
        assert_eq!(cache.lock().bytes, 50);
        cache.remove(&"key");
        assert_eq!(cache.get(&"key"), None);
        assert_eq!(cache.lock().bytes, 0);
    }

    #[test]
    fn a_replaced_entry_is_evicted_as_the_newest() {
        let cache = BoundedCache::new(30, 1);
        cache.insert("a", 1, 10);
        cache.insert("b", 2, 10);
        cache.insert("a", 3, 10);
        cache.insert("c", 4, 10);
        cache.insert("d", 5, 10);
        assert_eq!(cache.get(&"b"), None, "the oldest goes first");
        assert_eq!(cache.get(&"a"), Some(3), "replacing made it new");
        assert_eq!(cache.lock().bytes, 30);
        assert_eq!(cache.lock().order.len(), 3, "each key held once");
    }

    #[test]
    fn values_above_the_share_are_not_cached() {
        let manifests = ManifestCache::new(80, 8);
        let digest = Digest::sha256(b"large");
        manifests.insert(digest.clone(), ("type".to_owned(), Bytes::new()), 11);
        assert!(manifests.get(&digest).is_none());
        let disabled = BoundedCache::new(0, 1);
        disabled.insert(2, (), 0);
        assert!(disabled.get(&2).is_none());
    }
}
