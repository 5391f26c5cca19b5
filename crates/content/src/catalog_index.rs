//! The catalog's index: the directories below the repositories root that the catalog reads, each
//! with its subdirectories, whether it is a repository, and its modification time when read.
//!
//! Storage stays the truth. Before every catalog the index checks the times of all its directories
//! in one batched stat, and reads again only the directories whose time moved (or that were read too
//! recently to trust, see [`listing_cache`](crate::listing_cache)): adding or removing a repository
//! adds or removes a directory entry somewhere, which moves the time of the directory holding it,
//! whichever process or registry made the change. A catalog of 10,000 unchanged repositories costs
//! 10,000 stats instead of 10,000 directory reads.
//!
//! Drivers that give directories no time (object storage) get no index. There the catalog is
//! walked (one listing per 1,000 keys on S3) and kept with the version of the *catalog
//! generation*, an object every process rewrites after it added a repository (stored the first
//! manifest of a repository) or may have removed one (any delete of manifests or tags): a kept
//! catalog is served while the generation's version is unchanged, for one small read, by every
//! replica. The generation is read before the walk, so a change during the walk makes the next
//! catalog walk again. A writer that stops between its change and the rewrite (a crash), or a
//! registry:2 writing beside registryd, is caught up with after [`WALKED_MAX_AGE`] at most.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::lock::Mutex;
use registry_model::RepositoryName;
use registry_storage::{
    Durability, ObjectVersion, PutMode, StorageDriver, StorageError, StoragePath, WalkControl,
};

use crate::ContentError;
use crate::layout;
use crate::listing_cache::{ENTRY_OVERHEAD, trusted_time};

/// The folder whose presence makes a directory a repository.
const MANIFESTS: &str = "_manifests";

/// The longest a catalog kept under an unchanged generation is served before it is walked again.
pub(crate) const WALKED_MAX_AGE: Duration = Duration::from_secs(60);

/// The index of one [`ContentStore`](crate::ContentStore), at most about `capacity` bytes.
#[derive(Debug)]
pub(crate) struct CatalogIndex {
    capacity: usize,
    /// One refresh at a time: concurrent catalogs wait and then find the index current.
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// The index, when the driver gives directory times.
    tree: Option<Tree>,
    /// The catalog as last walked without an index, under a catalog generation.
    walked: Option<Walked>,
}

#[derive(Debug)]
struct Walked {
    generation: ObjectVersion,
    names: Arc<[RepositoryName]>,
    read: Instant,
}

#[derive(Debug)]
struct Tree {
    /// Every directory the catalog reads, by its path relative to the repositories root (`""` is
    /// the root itself, `"team"` and `"team/app"` below it).
    directories: BTreeMap<String, Directory>,
    /// The path of each directory, in the order of `directories`, for stat'ing them all.
    paths: Vec<StoragePath>,
    /// The repositories, sorted.
    names: Arc<[RepositoryName]>,
    /// About how many bytes the tree takes.
    bytes: usize,
    /// Whether `directories` changed since `paths`, `names` and `bytes` were derived from it.
    reshaped: bool,
}

#[derive(Debug)]
struct Directory {
    path: StoragePath,
    /// The directory's time when its entries were read, if old enough to trust; `None` makes the
    /// next refresh read it again.
    trusted: Option<SystemTime>,
    /// Whether it holds a `_manifests` folder.
    is_repository: bool,
    /// Its subdirectories that may hold repositories (names not starting with `_`), as relative
    /// paths.
    children: Vec<String>,
}

impl CatalogIndex {
    /// An index of at most about `capacity` bytes (0 disables it).
    pub(crate) fn new(capacity: usize) -> CatalogIndex {
        CatalogIndex {
            capacity,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Every repository, sorted, as storage holds them now (see the module documentation for
    /// drivers without directory times).
    pub(crate) async fn repositories(
        &self,
        driver: &dyn StorageDriver,
    ) -> Result<Arc<[RepositoryName]>, ContentError> {
        let mut held = self.kept.lock().await;
        let began = SystemTime::now();
        let tree = match held.tree.take() {
            Some(mut tree) => {
                tree.refresh(driver, began).await?;
                tree
            }
            None => {
                let generation = read_generation(driver).await?;
                if let Some(walked) = &held.walked
                    && walked.generation == generation
                    && walked.read.elapsed() < WALKED_MAX_AGE
                {
                    return Ok(Arc::clone(&walked.names));
                }
                let read = Instant::now();
                let tree = Tree::read(driver, began).await?;
                let bytes: usize = tree
                    .names
                    .iter()
                    .map(|name| name.as_str().len() + ENTRY_OVERHEAD)
                    .sum();
                held.walked =
                    (!tree.is_worth_keeping() && bytes <= self.capacity).then(|| Walked {
                        generation,
                        names: Arc::clone(&tree.names),
                        read,
                    });
                tree
            }
        };
        let names = Arc::clone(&tree.names);
        if tree.is_worth_keeping() && tree.bytes <= self.capacity {
            held.tree = Some(tree);
        }
        Ok(names)
    }
}

/// Gives the catalog generation a new version, after storing the first manifest of a repository
/// or deleting manifests or tags (see the module documentation).
pub(crate) async fn catalog_changed(driver: &dyn StorageDriver) -> Result<(), StorageError> {
    driver
        .put_content(&layout::catalog_generation()?, unique_content())
        .await
}

/// The catalog generation's version now, creating the object on the first catalog of a store.
async fn read_generation(driver: &dyn StorageDriver) -> Result<ObjectVersion, StorageError> {
    let path = layout::catalog_generation()?;
    loop {
        match driver.get_content_versioned(&path).await {
            Ok((_, version)) => return Ok(version),
            Err(StorageError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        match driver
            .put_content_if(
                &path,
                unique_content(),
                PutMode::Create,
                Durability::Volatile,
            )
            .await
        {
            Ok(version) => return Ok(version),
            // Another process created it meanwhile: read theirs.
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(error) => return Err(error),
        }
    }
}

/// Content (new content: a version may be a content hash) no other write of the generation has had: the time, this process and a counter.
fn unique_content() -> Bytes {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    Bytes::from(format!(
        "{nanos} {} {}\n",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Tree {
    /// Reads every directory below the repositories root.
    async fn read(driver: &dyn StorageDriver, began: SystemTime) -> Result<Tree, ContentError> {
        let root = layout::repositories_root()?;
        let mut tree = Tree {
            directories: BTreeMap::new(),
            paths: Vec::new(),
            names: Arc::new([]),
            bytes: 0,
            reshaped: true,
        };
        tree.directories
            .insert(String::new(), Directory::unread(root));
        tree.read_below(driver, "", began).await?;
        tree.reindex();
        Ok(tree)
    }

    /// Brings the tree up to date with storage: stats every directory and reads again those whose
    /// time moved, that vanished or that were not trusted.
    async fn refresh(
        &mut self,
        driver: &dyn StorageDriver,
        began: SystemTime,
    ) -> Result<(), ContentError> {
        let stats = driver.stat_many(&self.paths).await;
        let mut changed = Vec::new();
        for ((relative, directory), stat) in self.directories.iter_mut().zip(stats) {
            let modified = match stat {
                Ok(info) => info.modified,
                Err(StorageError::NotFound { .. }) => None,
                Err(error) => return Err(error.into()),
            };
            if directory.trusted.is_none() || directory.trusted != modified {
                directory.trusted = trusted_time(modified, began);
                changed.push(relative.clone());
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        // Parents sort before their children, so a vanished subtree is dropped before its
        // directories would be read.
        for relative in changed {
            if self.directories.contains_key(&relative) {
                self.reread(driver, &relative, began).await?;
            }
        }
        self.reindex();
        Ok(())
    }

    /// Reads the entries of the directory `relative` again: new subdirectories are read whole,
    /// vanished ones dropped with everything below them.
    async fn reread(
        &mut self,
        driver: &dyn StorageDriver,
        relative: &str,
        began: SystemTime,
    ) -> Result<(), ContentError> {
        let Some(directory) = self.directories.get(relative) else {
            return Ok(());
        };
        let entries = match driver.list(&directory.path).await {
            Ok(entries) => entries,
            Err(StorageError::NotFound { .. }) if !relative.is_empty() => {
                self.remove_subtree(relative);
                return Ok(());
            }
            Err(StorageError::NotFound { .. }) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let names: Vec<&str> = entries.iter().filter_map(StoragePath::file_name).collect();
        let is_repository = names.contains(&MANIFESTS);
        let children: Vec<String> = names
            .iter()
            .filter(|name| !name.starts_with('_'))
            .map(|name| child_of(relative, name))
            .collect();
        let Some(directory) = self.directories.get_mut(relative) else {
            return Ok(());
        };
        if directory.is_repository != is_repository {
            directory.is_repository = is_repository;
            self.reshaped = true;
        }
        let previous = std::mem::take(&mut directory.children);
        let now: HashSet<&str> = children.iter().map(String::as_str).collect();
        for gone in previous
            .iter()
            .filter(|child| !now.contains(child.as_str()))
        {
            self.remove_subtree(gone);
        }
        let before: HashSet<&str> = previous.iter().map(String::as_str).collect();
        let mut kept = Vec::with_capacity(children.len());
        for child in &children {
            if !before.contains(child.as_str()) {
                let path = directory_path(child)?;
                self.directories
                    .insert(child.clone(), Directory::unread(path));
                self.reshaped = true;
                self.read_below(driver, child, began).await?;
                // An entry that is not a directory (a stray file) reads as nothing: drop it.
                if !self.directories.contains_key(child) {
                    continue;
                }
            }
            kept.push(child.clone());
        }
        if let Some(directory) = self.directories.get_mut(relative) {
            directory.children = kept;
        }
        Ok(())
    }

    /// Walks everything below the directory `relative` (already in the tree, unread), adds it,
    /// then stats what it added and trusts the times old enough. Removes `relative` when it turns
    /// out not to be a directory.
    async fn read_below(
        &mut self,
        driver: &dyn StorageDriver,
        relative: &str,
        began: SystemTime,
    ) -> Result<(), ContentError> {
        let Some(from) = self.directories.get(relative).map(|d| d.path.clone()) else {
            return Ok(());
        };
        let mut found: Vec<(String, Option<String>)> = Vec::new();
        let walked = walk_repository_tree(driver, &from, |entry| match entry {
            TreeEntry::Directory { relative } => {
                found.push((parent_of(relative).to_owned(), Some(relative.to_owned())));
            }
            TreeEntry::Folder {
                repository, name, ..
            } if name == MANIFESTS => found.push((repository.to_owned(), None)),
            TreeEntry::Folder { .. } => {}
        })
        .await;
        match walked {
            Ok(()) => {}
            Err(StorageError::NotFound { .. }) if !relative.is_empty() => {
                self.directories.remove(relative);
                self.reshaped = true;
                return Ok(());
            }
            Err(StorageError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        let mut added = vec![relative.to_owned()];
        self.reshaped |= !found.is_empty();
        for (parent, child) in found {
            match child {
                None => {
                    if let Some(parent) = self.directories.get_mut(&parent) {
                        parent.is_repository = true;
                    }
                }
                Some(child) => {
                    let path = directory_path(&child)?;
                    if let Some(parent) = self.directories.get_mut(&parent) {
                        parent.children.push(child.clone());
                    }
                    self.directories
                        .insert(child.clone(), Directory::unread(path));
                    added.push(child);
                }
            }
        }
        // A driver without directory times (object storage) has none to trust: the first stat
        // says so, and stat'ing every directory (two requests each on S3) would only say it again.
        if let Ok(info) = driver.stat(&from).await
            && info.is_dir
            && info.modified.is_none()
        {
            return Ok(());
        }
        // Stat'ed after the walk: a directory changed since `began` has a time too recent to
        // trust, so it is read again next time.
        let paths: Vec<StoragePath> = added
            .iter()
            .filter_map(|relative| Some(self.directories.get(relative)?.path.clone()))
            .collect();
        let stats = driver.stat_many(&paths).await;
        for (relative, stat) in added.iter().zip(stats) {
            if let Some(directory) = self.directories.get_mut(relative) {
                directory.trusted = trusted_time(stat.ok().and_then(|info| info.modified), began);
            }
        }
        Ok(())
    }

    fn remove_subtree(&mut self, relative: &str) {
        let below = format!("{relative}/");
        let doomed: Vec<String> = self
            .directories
            .range(relative.to_owned()..)
            .map(|(key, _)| key)
            .take_while(|key| key.as_str() == relative || key.starts_with(&below))
            .cloned()
            .collect();
        self.reshaped |= !doomed.is_empty();
        for key in doomed {
            self.directories.remove(&key);
        }
    }

    /// Derives the paths, the repositories and the size from `directories` again, if they changed.
    fn reindex(&mut self) {
        if !self.reshaped {
            return;
        }
        self.paths = self.directories.values().map(|d| d.path.clone()).collect();
        let mut names: Vec<RepositoryName> = self
            .directories
            .iter()
            .filter(|(_, directory)| directory.is_repository)
            .filter_map(|(relative, _)| relative.parse().ok())
            .collect();
        names.sort();
        self.names = names.into();
        self.bytes = self.estimate();
        self.reshaped = false;
    }

    /// Whether keeping the tree saves work next time: not when the driver gives no directory
    /// times (nothing could ever be trusted).
    fn is_worth_keeping(&self) -> bool {
        self.directories
            .values()
            .any(|directory| directory.trusted.is_some())
    }

    fn estimate(&self) -> usize {
        self.directories
            .iter()
            .map(|(relative, directory)| {
                relative.len() * 2
                    + directory.path.as_str().len()
                    + directory.children.iter().map(String::len).sum::<usize>()
                    + ENTRY_OVERHEAD * (2 + directory.children.len())
            })
            .sum()
    }
}

impl Directory {
    fn unread(path: StoragePath) -> Directory {
        Directory {
            path,
            trusted: None,
            is_repository: false,
            children: Vec::new(),
        }
    }
}

/// What [`walk_repository_tree`] meets below the repositories root, by path relative to it.
pub(crate) enum TreeEntry<'a> {
    /// A directory that may hold repositories (a namespace or a repository); the walk enters it.
    Directory { relative: &'a str },
    /// A folder of the repository `repository` whose name starts with `_` (`_manifests`,
    /// `_uploads`, ...); never a repository name, so the walk does not enter it.
    Folder {
        repository: &'a str,
        name: &'a str,
        path: &'a StoragePath,
    },
}

/// Walks the repository tree below `from` (the repositories root or a directory below it),
/// calling `visit` for every directory and repository folder; objects are ignored. `NotFound`
/// when `from` is not a directory.
pub(crate) async fn walk_repository_tree(
    driver: &dyn StorageDriver,
    from: &StoragePath,
    mut visit: impl FnMut(TreeEntry<'_>) + Send,
) -> Result<(), StorageError> {
    let prefix_len = layout::repositories_root()?.as_str().len() + 1;
    driver
        .walk(from, &mut |entry| {
            if !entry.is_dir {
                return WalkControl::Continue;
            }
            let Some(relative) = entry.path.as_str().get(prefix_len..) else {
                return WalkControl::SkipDir;
            };
            match entry.path.file_name() {
                Some(name) if name.starts_with('_') => {
                    visit(TreeEntry::Folder {
                        repository: parent_of(relative),
                        name,
                        path: &entry.path,
                    });
                    WalkControl::SkipDir
                }
                _ => {
                    visit(TreeEntry::Directory { relative });
                    WalkControl::Continue
                }
            }
        })
        .await
}

fn child_of(relative: &str, name: &str) -> String {
    if relative.is_empty() {
        name.to_owned()
    } else {
        format!("{relative}/{name}")
    }
}

fn parent_of(relative: &str) -> &str {
    relative.rsplit_once('/').map_or("", |(parent, _)| parent)
}

fn directory_path(relative: &str) -> Result<StoragePath, StorageError> {
    layout::repositories_root()?.join_all(relative)
}
