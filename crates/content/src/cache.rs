//! A bounded in-process cache of manifests by digest.
//!
//! What a digest names never changes, so a cached manifest is never stale. Whether a repository
//! (still) holds the manifest, and which manifest a tag names, are not cached: they are read from
//! storage on every request, so a deleted manifest or a moved tag is seen at once, by every
//! process sharing the store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use registry_model::Digest;

/// Manifests by digest, at most `capacity` bytes of them; the oldest entries go first.
#[derive(Debug)]
pub(crate) struct ManifestCache {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Digest, (String, Bytes)>,
    /// Insertion order, for eviction.
    order: VecDeque<Digest>,
    bytes: usize,
}

impl ManifestCache {
    /// A cache holding at most `capacity` bytes of manifests (0 disables it).
    pub(crate) fn new(capacity: usize) -> ManifestCache {
        ManifestCache {
            capacity,
            state: Mutex::new(State::default()),
        }
    }

    /// The media type and bytes of the manifest `digest`, when cached.
    pub(crate) fn get(&self, digest: &Digest) -> Option<(String, Bytes)> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.entries.get(digest).cloned()
    }

    /// Remembers the manifest `digest`. Manifests larger than an eighth of the capacity are not
    /// kept, so one large index cannot flush everything else.
    pub(crate) fn insert(&self, digest: &Digest, media_type: &str, bytes: &Bytes) {
        if self.capacity == 0 || bytes.len() > self.capacity / 8 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.entries.contains_key(digest) {
            return;
        }
        while state.bytes + bytes.len() > self.capacity {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            if let Some((_, evicted)) = state.entries.remove(&oldest) {
                state.bytes -= evicted.len();
            }
        }
        state.bytes += bytes.len();
        state.order.push_back(digest.clone());
        state
            .entries
            .insert(digest.clone(), (media_type.to_owned(), bytes.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::sha256(&[n])
    }

    #[test]
    fn oldest_entries_are_evicted_to_stay_within_capacity() {
        let cache = ManifestCache::new(80);
        for n in 0..10 {
            cache.insert(&digest(n), "type", &Bytes::from(vec![n; 10]));
        }
        assert!(cache.get(&digest(0)).is_none());
        assert!(cache.get(&digest(1)).is_none());
        for n in 2..10 {
            assert_eq!(cache.get(&digest(n)).map(|(_, b)| b[0]), Some(n));
        }
        let state = cache.state.lock().expect("lock");
        assert!(state.bytes <= 80);
    }

    #[test]
    fn large_manifests_are_not_cached() {
        let cache = ManifestCache::new(80);
        cache.insert(&digest(1), "type", &Bytes::from(vec![0; 11]));
        assert!(cache.get(&digest(1)).is_none());
        let disabled = ManifestCache::new(0);
        disabled.insert(&digest(2), "type", &Bytes::new());
        assert!(disabled.get(&digest(2)).is_none());
    }
}
