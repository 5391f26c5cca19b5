//! Credentials that bcrypt has already accepted, so that a client sending the same `Basic`
//! header with every request pays for bcrypt once.
//!
//! No password is stored: an entry is a digest keyed with a random per-process secret (SHA-256
//! over secret, user and password), which is useless outside this process, together with the
//! hash it was verified against, so that a new hash for the user (a changed password, a reloaded
//! file) invalidates it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// How many users' credentials are kept; beyond it, an arbitrary entry makes room.
pub(super) const CAPACITY: usize = 1024;

/// A keyed digest of a user and a password.
pub(super) type CredentialDigest = [u8; 32];

pub(super) struct CredentialCache {
    key: [u8; 32],
    /// One entry a user: the credential that last passed bcrypt.
    entries: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    digest: CredentialDigest,
    hash: Arc<str>,
}

impl CredentialCache {
    pub(super) fn new() -> CredentialCache {
        // Two random (v4) UUIDs: 244 random bits from the operating system's generator.
        let mut key = [0; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        CredentialCache {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn digest(&self, user: &str, password: &str) -> CredentialDigest {
        // The user's length keeps ("ab", "c") and ("a", "bc") apart.
        Sha256::new()
            .chain_update(self.key)
            .chain_update((user.len() as u64).to_be_bytes())
            .chain_update(user)
            .chain_update(password)
            .finalize()
            .into()
    }

    /// Whether `user` was verified with the credential of `digest` against `hash`, the user's
    /// current hash.
    pub(super) fn contains(&self, user: &str, digest: &CredentialDigest, hash: &Arc<str>) -> bool {
        self.lock().get(user).is_some_and(|cached| {
            (Arc::ptr_eq(&cached.hash, hash) || cached.hash == *hash)
                && bool::from(cached.digest.ct_eq(digest))
        })
    }

    /// Remembers that `user`'s credential of `digest` matched `hash`.
    pub(super) fn insert(&self, user: &str, digest: CredentialDigest, hash: Arc<str>) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(user) {
            let victim = entries.keys().next().cloned();
            if let Some(victim) = victim {
                entries.remove(&victim);
            }
        }
        entries.insert(user.to_owned(), Cached { digest, hash });
    }

    /// Forgets the credentials of users whose hash is no longer `hashes`' (changed or removed).
    pub(super) fn retain_current(&self, hashes: &HashMap<String, Arc<str>>) {
        self.lock()
            .retain(|user, cached| hashes.get(user).is_some_and(|hash| *hash == cached.hash));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Cached>> {
        // Nothing can panic while the lock is held, and the map stays consistent if it did.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_holds_at_most_its_capacity() {
        let cache = CredentialCache::new();
        let hash: Arc<str> = Arc::from("$2y$04$hash");
        for index in 0..CAPACITY + 100 {
            let user = format!("user{index}");
            cache.insert(&user, cache.digest(&user, "pw"), Arc::clone(&hash));
        }
        assert_eq!(cache.len(), CAPACITY);
        let last = format!("user{}", CAPACITY + 99);
        assert!(cache.contains(&last, &cache.digest(&last, "pw"), &hash));
    }

    #[test]
    fn cached_credential_needs_same_password_and_same_hash() {
        let cache = CredentialCache::new();
        let hash: Arc<str> = Arc::from("$2y$04$old");
        cache.insert("alice", cache.digest("alice", "pw"), Arc::clone(&hash));
        assert!(cache.contains("alice", &cache.digest("alice", "pw"), &hash));
        assert!(cache.contains(
            "alice",
            &cache.digest("alice", "pw"),
            &Arc::from("$2y$04$old")
        ));
        assert!(!cache.contains("alice", &cache.digest("alice", "pw2"), &hash));
        assert!(!cache.contains(
            "alice",
            &cache.digest("alice", "pw"),
            &Arc::from("$2y$04$new")
        ));
        assert!(!cache.contains("bob", &cache.digest("bob", "pw"), &hash));
    }

    #[test]
    fn digest_separates_user_from_password_and_processes() {
        let cache = CredentialCache::new();
        assert_ne!(cache.digest("ab", "c"), cache.digest("a", "bc"));
        assert_ne!(
            cache.digest("a", "b"),
            CredentialCache::new().digest("a", "b")
        );
    }

    #[test]
    fn retain_current_drops_changed_and_removed_users() {
        let cache = CredentialCache::new();
        let same: Arc<str> = Arc::from("$2y$04$same");
        cache.insert("kept", cache.digest("kept", "pw"), Arc::clone(&same));
        cache.insert(
            "changed",
            cache.digest("changed", "pw"),
            Arc::from("$2y$04$old"),
        );
        cache.insert(
            "removed",
            cache.digest("removed", "pw"),
            Arc::from("$2y$04$gone"),
        );
        let current = HashMap::from([
            ("kept".to_owned(), Arc::from("$2y$04$same")),
            ("changed".to_owned(), Arc::from("$2y$04$new")),
        ]);
        cache.retain_current(&current);
        assert_eq!(cache.len(), 1);
        assert!(cache.contains("kept", &cache.digest("kept", "pw"), &same));
    }
}
