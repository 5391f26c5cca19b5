//! Tokens already verified, so a client's next requests with the same token skip the signature
//! check. Keys never change after start, so a verified token stays valid until it expires.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::Principal;

/// A bounded map from a token's SHA-256 to whom it names and when it expires.
#[derive(Debug)]
pub(crate) struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Verified>>,
    capacity: usize,
    leeway: u64,
}

#[derive(Debug)]
struct Verified {
    principal: Principal,
    /// `exp`, in seconds since the epoch.
    expires_at: u64,
}

impl VerifiedTokens {
    /// An empty cache of at most `capacity` tokens, each kept until `leeway` seconds after its
    /// `exp`, the same leeway verification allows.
    pub(crate) fn new(capacity: usize, leeway: u64) -> VerifiedTokens {
        VerifiedTokens {
            entries: Mutex::new(HashMap::new()),
            capacity,
            leeway,
        }
    }

    /// Whom `token` names, if it was verified and has not expired at `now`.
    pub(crate) fn get(&self, token: &str, now: u64) -> Option<Principal> {
        let key = digest(token);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let verified = entries.get(&key)?;
        if verified.expires_at.saturating_add(self.leeway) < now {
            entries.remove(&key);
            return None;
        }
        Some(verified.principal.clone())
    }

    /// Remembers that `token`, expiring at `expires_at`, names `principal`. When the cache is
    /// full, expired tokens are dropped first, then everything: the cost is one more
    /// verification per client, and memory stays bounded whatever clients send.
    pub(crate) fn insert(&self, token: &str, principal: Principal, expires_at: u64, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity {
            let leeway = self.leeway;
            entries.retain(|_, verified| verified.expires_at.saturating_add(leeway) >= now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            digest(token),
            Verified {
                principal,
                expires_at,
            },
        );
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal {
            name: Some("alice".into()),
            granted: Some(Vec::new()),
        }
    }

    #[test]
    fn cached_token_is_served_until_it_expires() {
        let cache = VerifiedTokens::new(4, 60);
        cache.insert("t", alice(), 1_000, 900);
        assert_eq!(cache.get("t", 1_000), Some(alice()));
        assert_eq!(cache.get("t", 1_060), Some(alice()));
        assert_eq!(cache.get("t", 1_061), None);
        assert_eq!(cache.get("other", 900), None);
    }

    #[test]
    fn cache_stays_within_its_capacity() {
        let cache = VerifiedTokens::new(2, 0);
        cache.insert("a", alice(), 10, 0);
        cache.insert("b", alice(), 1_000, 0);
        // "a" has expired by then and makes room.
        cache.insert("c", alice(), 1_000, 100);
        assert_eq!(cache.get("b", 100), Some(alice()));
        assert_eq!(cache.get("c", 100), Some(alice()));
        cache.insert("d", alice(), 1_000, 100);
        let size = cache
            .entries
            .lock()
            .map(|entries| entries.len())
            .unwrap_or(0);
        assert!(size <= 2, "{size}");
        assert_eq!(cache.get("d", 100), Some(alice()));
    }
}
