//! Listings kept between requests: the tags of repositories here, the catalog in
//! [`catalog_index`](crate::catalog_index), and the rule both follow to never serve one late.
//!
//! Storage stays the truth. A kept listing remembers the modification time of the directory it was
//! read from, and is served only after a stat shows that time unchanged: adding or removing a tag
//! adds or removes a directory entry, which moves the time of the directory holding it, whichever
//! process or registry made the change.
//!
//! Directory times are coarse (the kernel stamps them with a clock that ticks every few
//! milliseconds, and another host's clock may be off), so two changes close together can leave the
//! same time. A listing is therefore trusted only when its directory last changed more than
//! [`RACY_WINDOW`] before the listing began to be read (as git treats "racily clean" files): while
//! a directory is being changed, it is read afresh on every request. Drivers that give directories
//! no time (object storage) get nothing kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use registry_model::{RepositoryName, Tag};
use registry_storage::{StorageDriver, StoragePath};

/// How long before a listing began to be read its directory must have last changed for the
/// listing to be kept. Covers coarse directory times and modest clock skew between hosts sharing
/// a store.
pub(crate) const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Roughly what one listed entry costs beside its name, for the memory bounds.
pub(crate) const ENTRY_OVERHEAD: usize = 32;

/// `modified`, the time of a directory stat'ed after `began`, if a listing of the directory read
/// after `began` may be trusted while that time does not move: the directory last changed more
/// than [`RACY_WINDOW`] before `began`.
pub(crate) fn trusted_time(modified: Option<SystemTime>, began: SystemTime) -> Option<SystemTime> {
    let trusted_before = began.checked_sub(RACY_WINDOW)?;
    modified.filter(|modified| *modified < trusted_before)
}

/// The sorted tags of a repository and the time of its tags directory when they were read.
#[derive(Clone, Debug)]
pub(crate) struct TagSnapshot {
    tags: Arc<[Tag]>,
    directory: StoragePath,
    modified: SystemTime,
}

impl TagSnapshot {
    /// A snapshot of `tags`, read from `directory` after `began`; `None` when the directory has no
    /// time, no longer exists, or changed too close to `began` to be trusted.
    pub(crate) async fn take(
        driver: &dyn StorageDriver,
        began: SystemTime,
        tags: Arc<[Tag]>,
        directory: StoragePath,
    ) -> Option<TagSnapshot> {
        let info = driver.stat(&directory).await.ok()?;
        let modified = trusted_time(info.modified, began)?;
        Some(TagSnapshot {
            tags,
            directory,
            modified,
        })
    }

    /// The tags, if the directory they were read from has not changed since.
    pub(crate) async fn current(&self, driver: &dyn StorageDriver) -> Option<Arc<[Tag]>> {
        let info = driver.stat(&self.directory).await.ok()?;
        (info.modified == Some(self.modified)).then(|| Arc::clone(&self.tags))
    }

    fn estimate(&self) -> usize {
        let tags: usize = self.tags.iter().map(|tag| tag.as_str().len()).sum();
        tags + ENTRY_OVERHEAD * self.tags.len() + self.directory.as_str().len()
    }
}

/// The tag snapshots of one [`ContentStore`](crate::ContentStore): as many repositories' as fit
/// in about `capacity` bytes, the oldest dropped first.
#[derive(Debug)]
pub(crate) struct TagCache {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    snapshots: HashMap<RepositoryName, TagSnapshot>,
    /// Insertion order of `snapshots`, for eviction.
    order: VecDeque<RepositoryName>,
    /// Estimated bytes held.
    bytes: usize,
}

impl TagCache {
    /// A cache of about `capacity` bytes (0 disables it).
    pub(crate) fn new(capacity: usize) -> TagCache {
        TagCache {
            capacity,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The snapshot of `repository`, if one is held; check it with [`TagSnapshot::current`].
    pub(crate) fn get(&self, repository: &RepositoryName) -> Option<TagSnapshot> {
        self.lock().snapshots.get(repository).cloned()
    }

    /// Drops the snapshot of `repository`.
    pub(crate) fn forget(&self, repository: &RepositoryName) {
        self.lock().remove(repository);
    }

    /// Holds `snapshot` for `repository`, if it takes at most half the capacity.
    pub(crate) fn insert(&self, repository: &RepositoryName, snapshot: TagSnapshot) {
        let size = snapshot.estimate();
        let mut state = self.lock();
        state.remove(repository);
        if size > self.capacity / 2 {
            return;
        }
        while state.bytes + size > self.capacity {
            let Some(oldest) = state.order.front().cloned() else {
                break;
            };
            state.remove(&oldest);
        }
        state.bytes += size;
        state.order.push_back(repository.clone());
        state.snapshots.insert(repository.clone(), snapshot);
    }
}

impl State {
    fn remove(&mut self, repository: &RepositoryName) {
        if let Some(snapshot) = self.snapshots.remove(repository) {
            self.bytes -= snapshot.estimate();
            self.order.retain(|held| held != repository);
        }
    }
}
