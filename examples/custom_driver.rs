//! A storage driver written from scratch, checked with the conformance testsuite.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p registry --example custom_driver
//! ```
//!
//! `HashMapDriver` keeps objects in a `HashMap` behind a mutex and implements every method of
//! `StorageDriver` and `FileWriter` by hand (only `walk`, whose default is built on `list` and
//! `stat`, is left as it is). `main` runs `registry_storage::testsuite::run_all` against it, the
//! same call a driver's own `#[tokio::test]` makes, and prints one line. See
//! `docs/storage-drivers.md` for the contract each method has to keep.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use registry_storage::bytes::{Bytes, BytesMut};
use registry_storage::futures_util::stream;
use registry_storage::{
    ByteStream, Durability, FileInfo, FileWriter, ObjectVersion, PutMode, StorageDriver,
    StorageError, StoragePath, async_trait, testsuite,
};

/// Objects by path. Directories are not stored: a directory exists while a key lies below it,
/// exactly like a prefix on object storage.
type Objects = HashMap<StoragePath, Stored>;

/// One object: its content, when it was written, and its version, a number no other write of
/// this process has (what an ETag is to object storage).
#[derive(Clone, Debug)]
struct Stored {
    content: Bytes,
    modified: SystemTime,
    version: u64,
}

impl Stored {
    fn new(content: Bytes) -> Stored {
        static VERSIONS: AtomicU64 = AtomicU64::new(1);
        Stored {
            content,
            modified: SystemTime::now(),
            version: VERSIONS.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn version(&self) -> ObjectVersion {
        ObjectVersion::new(self.version.to_string())
    }
}

/// A small driver over a `HashMap`. Clones share the objects.
#[derive(Clone, Debug, Default)]
struct HashMapDriver {
    objects: Arc<Mutex<Objects>>,
}

impl HashMapDriver {
    /// The lock is only ever held for a few map operations, never across an `.await`.
    fn objects(&self) -> MutexGuard<'_, Objects> {
        lock(&self.objects)
    }
}

fn lock(objects: &Mutex<Objects>) -> MutexGuard<'_, Objects> {
    objects.lock().unwrap_or_else(PoisonError::into_inner)
}

fn not_found(path: &StoragePath) -> StorageError {
    StorageError::NotFound { path: path.clone() }
}

/// The root is always a directory; it never holds content.
fn refuse_root(path: &StoragePath) -> Result<(), StorageError> {
    if path.is_root() {
        return Err(StorageError::InvalidPath {
            path: path.to_string(),
            reason: "the root cannot hold content",
        });
    }
    Ok(())
}

/// Whether `key` lies strictly below the directory `path` (`/a/bc` is not below `/a/b`).
fn is_below(key: &StoragePath, path: &StoragePath) -> bool {
    key != path && key.starts_with(path)
}

#[async_trait]
impl StorageDriver for HashMapDriver {
    fn name(&self) -> &'static str {
        "hashmap"
    }

    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError> {
        let objects = self.objects();
        let stored = objects.get(path).ok_or_else(|| not_found(path))?;
        Ok(stored.content.clone())
    }

    async fn put_content(&self, path: &StoragePath, content: Bytes) -> Result<(), StorageError> {
        refuse_root(path)?;
        // One insert under the lock: readers see the old content or the new, never a mix.
        self.objects().insert(path.clone(), Stored::new(content));
        Ok(())
    }

    async fn get_content_versioned(
        &self,
        path: &StoragePath,
    ) -> Result<(Bytes, ObjectVersion), StorageError> {
        let objects = self.objects();
        let stored = objects.get(path).ok_or_else(|| not_found(path))?;
        Ok((stored.content.clone(), stored.version()))
    }

    async fn put_content_if(
        &self,
        path: &StoragePath,
        content: Bytes,
        mode: PutMode,
        // Nothing here survives the process anyway.
        _durability: Durability,
    ) -> Result<ObjectVersion, StorageError> {
        refuse_root(path)?;
        // The check and the insert under one lock: no other write can come in between.
        let mut objects = self.objects();
        match (&mode, objects.get(path)) {
            (PutMode::Create, None) => {}
            (PutMode::Create, Some(_)) => {
                return Err(StorageError::AlreadyExists { path: path.clone() });
            }
            (PutMode::Update(expected), Some(stored)) if &stored.version() == expected => {}
            (PutMode::Update(_), _) => {
                return Err(StorageError::Precondition { path: path.clone() });
            }
        }
        let stored = Stored::new(content);
        let version = stored.version();
        objects.insert(path.clone(), stored);
        Ok(version)
    }

    async fn reader(
        &self,
        path: &StoragePath,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteStream, StorageError> {
        // A clone of `Bytes` shares the buffer: a later put_content cannot change what this
        // reader yields.
        let content = self.get_content(path).await?;
        let size = content.len() as u64;
        if offset > size {
            return Err(StorageError::InvalidOffset {
                path: path.clone(),
                offset,
            });
        }
        let end = length.map_or(size, |length| size.min(offset.saturating_add(length)));
        let range = content.slice(offset as usize..end as usize);
        // Chunks of 64 KiB, as a streaming backend would yield them.
        let chunks: Vec<Result<Bytes, StorageError>> = (0..range.len())
            .step_by(64 * 1024)
            .map(|start| Ok(range.slice(start..range.len().min(start + 64 * 1024))))
            .collect();
        Ok(Box::pin(stream::iter(chunks)))
    }

    async fn writer(
        &self,
        path: &StoragePath,
        append: bool,
    ) -> Result<Box<dyn FileWriter>, StorageError> {
        refuse_root(path)?;
        let mut content = BytesMut::new();
        if append {
            // Continue what an earlier writer closed; NotFound when there is none.
            content.extend_from_slice(&self.get_content(path).await?);
        }
        Ok(Box::new(HashMapWriter {
            objects: Arc::clone(&self.objects),
            path: path.clone(),
            content,
        }))
    }

    async fn stat(&self, path: &StoragePath) -> Result<FileInfo, StorageError> {
        let objects = self.objects();
        if let Some(stored) = objects.get(path) {
            return Ok(FileInfo {
                path: path.clone(),
                size: stored.content.len() as u64,
                modified: Some(stored.modified),
                is_dir: false,
            });
        }
        if path.is_root() || objects.keys().any(|key| is_below(key, path)) {
            return Ok(FileInfo {
                path: path.clone(),
                size: 0,
                modified: None,
                is_dir: true,
            });
        }
        Err(not_found(path))
    }

    async fn list(&self, path: &StoragePath) -> Result<Vec<StoragePath>, StorageError> {
        let depth = path.segments().count();
        let mut children = BTreeSet::new();
        for key in self.objects().keys().filter(|key| is_below(key, path)) {
            // The segment right below `path` names a child: an object or a directory.
            if let Some(segment) = key.segments().nth(depth) {
                children.insert(path.join(segment)?);
            }
        }
        if children.is_empty() && !path.is_root() {
            return Err(not_found(path));
        }
        // A BTreeSet iterates in order: the list comes out sorted.
        Ok(children.into_iter().collect())
    }

    async fn move_object(
        &self,
        source: &StoragePath,
        destination: &StoragePath,
    ) -> Result<(), StorageError> {
        refuse_root(destination)?;
        let mut objects = self.objects();
        let mut object = objects.remove(source).ok_or_else(|| not_found(source))?;
        // A moved object counts as written at the move (garbage collection's grace period
        // counts from it).
        object.modified = SystemTime::now();
        objects.insert(destination.clone(), object);
        Ok(())
    }

    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        let mut objects = self.objects();
        let before = objects.len();
        // The object itself and everything below it; a sibling sharing a prefix stays.
        objects.retain(|key, _| key != path && !is_below(key, path));
        if objects.len() == before {
            return Err(not_found(path));
        }
        Ok(())
    }

    async fn redirect_url(&self, _path: &StoragePath) -> Result<Option<String>, StorageError> {
        // Nothing to redirect to: clients get the content through `reader`.
        Ok(None)
    }
}

/// Collects what is written; stores it on `close` (so it can be appended to) or `commit`.
struct HashMapWriter {
    objects: Arc<Mutex<Objects>>,
    path: StoragePath,
    content: BytesMut,
}

impl HashMapWriter {
    fn store(self) {
        let content = self.content.freeze();
        lock(&self.objects).insert(self.path, Stored::new(content));
    }
}

#[async_trait]
impl FileWriter for HashMapWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.content.extend_from_slice(&chunk);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.content.len() as u64
    }

    async fn close(self: Box<Self>) -> Result<(), StorageError> {
        (*self).store();
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StorageError> {
        (*self).store();
        Ok(())
    }

    async fn cancel(self: Box<Self>) -> Result<(), StorageError> {
        lock(&self.objects).remove(&self.path);
        Ok(())
    }

    async fn abandon(self: Box<Self>) -> Result<(), StorageError> {
        // Nothing reaches the map before `close` or `commit`.
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let driver = HashMapDriver::default();
    // Panics, naming the driver and the failed check, if the driver breaks the contract.
    testsuite::run_all(&driver).await;
    println!(
        "{}: passed the registry-storage conformance testsuite",
        driver.name()
    );
}
