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

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use registry_model::{RepositoryName, Tag};
use registry_storage::{StorageDriver, StoragePath};

use crate::cache::BoundedCache;

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

    /// About how many bytes the snapshot takes.
    pub(crate) fn estimate(&self) -> usize {
        let tags: usize = self.tags.iter().map(|tag| tag.as_str().len()).sum();
        tags + ENTRY_OVERHEAD * self.tags.len() + self.directory.as_str().len()
    }
}

/// The tag snapshots of one [`ContentStore`](crate::ContentStore), by repository: none larger
/// than half the capacity, the oldest dropped first.
pub(crate) type TagCache = BoundedCache<RepositoryName, TagSnapshot>;
