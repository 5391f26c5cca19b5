//! [`Flights`]: one upstream request at a time per key (a manifest, a tag), so that concurrent
//! pulls of the same thing make one request and the others use its answer.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::OwnedMutexGuard;

/// A turnstile per key. [`Flights::board`] waits until no one else holds the key; the holder
/// asks upstream and notes what came of it with [`Boarded::landed`]; the next holder sees when
/// and what in [`Boarded::last`], and uses the answer instead of asking again when it came after
/// its own arrival. Keys no one holds or waits for are forgotten, so the map holds only what is
/// in flight.
#[derive(Debug)]
pub(crate) struct Flights<K, V> {
    keys: Mutex<HashMap<K, Turnstile<V>>>,
}

type Turnstile<V> = Arc<tokio::sync::Mutex<Option<(Instant, V)>>>;

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            keys: Mutex::new(HashMap::new()),
        }
    }
}

/// The hold on one key of [`Flights`]; released when dropped.
pub(crate) struct Boarded<'a, K: Eq + Hash + Clone, V> {
    flights: &'a Flights<K, V>,
    key: K,
    guard: Option<OwnedMutexGuard<Option<(Instant, V)>>>,
}

impl<K: Eq + Hash + Clone, V> Flights<K, V> {
    /// Waits until this caller alone holds `key`.
    pub(crate) async fn board(&self, key: K) -> Boarded<'_, K, V> {
        let turnstile = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(keys.entry(key.clone()).or_default())
        };
        let guard = turnstile.lock_owned().await;
        Boarded {
            flights: self,
            key,
            guard: Some(guard),
        }
    }

    /// How many keys are held or waited for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl<K: Eq + Hash + Clone, V> Boarded<'_, K, V> {
    /// When the last request under this key ended and what came of it, if one did while anyone
    /// was waiting for the key.
    pub(crate) fn last(&self) -> Option<&(Instant, V)> {
        self.guard.as_ref().and_then(|guard| guard.as_ref())
    }

    /// Notes that a request ended now with `outcome`, for those waiting.
    pub(crate) fn landed(&mut self, outcome: V) {
        if let Some(guard) = &mut self.guard {
            **guard = Some((Instant::now(), outcome));
        }
    }
}

impl<K: Eq + Hash + Clone, V> Drop for Boarded<'_, K, V> {
    fn drop(&mut self) {
        self.guard = None;
        let mut keys = self.flights.keys.lock().unwrap_or_else(|e| e.into_inner());
        // Clones are made only under this lock: one reference left means no one else holds or
        // waits for the key.
        if keys
            .get(&self.key)
            .is_some_and(|turnstile| Arc::strong_count(turnstile) == 1)
        {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn the_second_holder_sees_what_the_first_one_was_answered_and_when() {
        let flights = Flights::default();
        let arrived = Instant::now();
        {
            let mut first = flights.board("tag").await;
            assert_eq!(first.last(), None);
            let waiting = flights.board("tag");
            tokio::pin!(waiting);
            // The key is held: the second caller waits.
            assert!((&mut waiting).now_or_never().is_none());
            first.landed("answer");
            drop(first);
            let second = waiting.await;
            let (ended, answer) = second.last().expect("the first one landed");
            assert!(*ended >= arrived);
            assert_eq!(*answer, "answer");
        }
        assert_eq!(flights.len(), 0, "keys no one holds are forgotten");
    }

    #[tokio::test]
    async fn different_keys_do_not_wait_for_each_other() {
        let flights = Flights::<_, ()>::default();
        let _a = flights.board("a").await;
        let b = tokio::time::timeout(Duration::from_secs(5), flights.board("b")).await;
        assert!(b.is_ok());
        assert_eq!(flights.len(), 2);
    }
}
