//! The in-memory driver: a sorted map from path to content, for tests and throwaway registries.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream;

use crate::{
    ByteStream, Durability, FileInfo, FileWriter, ObjectVersion, PutMode, StorageDriver,
    StorageError, StoragePath,
};

const DRIVER: &str = "inmemory";

/// Size of the chunks a reader yields (slices of the stored content, not copies).
const READ_CHUNK: usize = 1 << 20;

/// A driver that keeps every object in memory; everything is lost when the last clone is dropped.
///
/// Objects live in a map from path to content; directories are implied by the paths below them,
/// exactly like prefixes on object storage. Clones share the same objects. Reads hand out slices
/// of the stored [`Bytes`] without copying. The lock is never held across an `await`.
#[derive(Clone, Default)]
pub struct InMemoryDriver {
    objects: Arc<RwLock<Objects>>,
}

type Objects = BTreeMap<String, Object>;

#[derive(Clone)]
struct Object {
    content: Bytes,
    modified: SystemTime,
    /// Unique among every object this process stores: a new number for every write.
    version: u64,
}

impl Object {
    fn new(content: Bytes) -> Object {
        static VERSIONS: AtomicU64 = AtomicU64::new(1);
        Object {
            content,
            modified: SystemTime::now(),
            version: VERSIONS.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn version(&self) -> ObjectVersion {
        ObjectVersion::new(self.version.to_string())
    }
}

impl InMemoryDriver {
    /// An empty driver.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Objects> {
        // The lock guards no invariant a panicking holder could break halfway: every update is a
        // single map operation.
        self.objects.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Objects> {
        write_objects(&self.objects)
    }

    fn object(&self, path: &StoragePath) -> Result<Object, StorageError> {
        self.read()
            .get(path.as_str())
            .cloned()
            .ok_or_else(|| not_found(path))
    }
}

impl fmt::Debug for InMemoryDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryDriver")
            .field("objects", &self.read().len())
            .finish()
    }
}

#[async_trait]
impl StorageDriver for InMemoryDriver {
    fn name(&self) -> &'static str {
        DRIVER
    }

    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError> {
        Ok(self.object(path)?.content)
    }

    async fn put_content(&self, path: &StoragePath, content: Bytes) -> Result<(), StorageError> {
        check_object_path(path)?;
        store(&self.objects, path, content);
        Ok(())
    }

    async fn get_content_versioned(
        &self,
        path: &StoragePath,
    ) -> Result<(Bytes, ObjectVersion), StorageError> {
        let object = self.object(path)?;
        Ok((object.content.clone(), object.version()))
    }

    async fn put_content_if(
        &self,
        path: &StoragePath,
        content: Bytes,
        mode: PutMode,
        _durability: Durability,
    ) -> Result<ObjectVersion, StorageError> {
        check_object_path(path)?;
        let mut objects = self.write();
        let current = objects.get(path.as_str()).map(Object::version);
        match (mode, current) {
            (PutMode::Create, None) => {}
            (PutMode::Create, Some(_)) => {
                return Err(StorageError::AlreadyExists { path: path.clone() });
            }
            (PutMode::Update(expected), Some(current)) if current == expected => {}
            (PutMode::Update(_), _) => {
                return Err(StorageError::Precondition { path: path.clone() });
            }
        }
        let object = Object::new(content);
        let version = object.version();
        objects.insert(path.as_str().to_owned(), object);
        Ok(version)
    }

    async fn reader(
        &self,
        path: &StoragePath,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteStream, StorageError> {
        let content = self.object(path)?.content;
        let size = content.len() as u64;
        if offset > size {
            return Err(StorageError::InvalidOffset {
                path: path.clone(),
                offset,
            });
        }
        let available = size - offset;
        let take = length.map_or(available, |length| length.min(available));
        // Both fit in usize: they are at most the length of content.
        let start = offset as usize;
        let rest = content.slice(start..start + take as usize);
        Ok(Box::pin(stream::unfold(rest, |mut rest| async move {
            if rest.is_empty() {
                return None;
            }
            let chunk = rest.split_to(rest.len().min(READ_CHUNK));
            Some((Ok(chunk), rest))
        })))
    }

    async fn writer(
        &self,
        path: &StoragePath,
        append: bool,
    ) -> Result<Box<dyn FileWriter>, StorageError> {
        check_object_path(path)?;
        let mut writer = InMemoryWriter {
            objects: Arc::clone(&self.objects),
            path: path.clone(),
            chunks: Vec::new(),
            size: 0,
        };
        if append {
            let earlier = self.object(path)?.content;
            writer.size = earlier.len() as u64;
            writer.chunks.push(earlier);
        }
        Ok(Box::new(writer))
    }

    async fn stat(&self, path: &StoragePath) -> Result<FileInfo, StorageError> {
        let objects = self.read();
        if let Some(object) = objects.get(path.as_str()) {
            return Ok(FileInfo {
                path: path.clone(),
                size: object.content.len() as u64,
                modified: Some(object.modified),
                is_dir: false,
            });
        }
        if path.is_root() || below(&objects, path).next().is_some() {
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
        let objects = self.read();
        let prefix = directory_prefix(path);
        let mut children = Vec::new();
        for key in below(&objects, path) {
            let name = key[prefix.len()..].split('/').next().unwrap_or_default();
            children.push(path.join(name)?);
        }
        drop(objects);
        if children.is_empty() && !path.is_root() {
            return Err(not_found(path));
        }
        // Keys are sorted, but "a/x" sorts after "a.b", so the child "a" can come back twice.
        children.sort_unstable();
        children.dedup();
        Ok(children)
    }

    async fn move_object(
        &self,
        source: &StoragePath,
        destination: &StoragePath,
    ) -> Result<(), StorageError> {
        check_object_path(destination)?;
        let mut objects = self.write();
        let mut object = objects
            .remove(source.as_str())
            .ok_or_else(|| not_found(source))?;
        // Written now at its destination, as object storage's copy makes it.
        object.modified = SystemTime::now();
        objects.insert(destination.as_str().to_owned(), object);
        Ok(())
    }

    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        let mut objects = self.write();
        let deleted = if path.is_root() {
            let any = !objects.is_empty();
            objects.clear();
            any
        } else {
            let object = objects.remove(path.as_str()).is_some();
            // Cut out the keys starting with "<path>/": they sort before "<path>0" ('0' follows '/').
            let prefix = directory_prefix(path);
            let mut tree = objects.split_off(prefix.as_str());
            let mut after = tree.split_off(format!("{}0", path.as_str()).as_str());
            objects.append(&mut after);
            object || !tree.is_empty()
        };
        if deleted {
            Ok(())
        } else {
            Err(not_found(path))
        }
    }
}

/// Collects the chunks written and stores them, joined, on close or commit.
struct InMemoryWriter {
    objects: Arc<RwLock<Objects>>,
    path: StoragePath,
    chunks: Vec<Bytes>,
    size: u64,
}

impl InMemoryWriter {
    fn store(self) {
        let content = match <[Bytes; 1]>::try_from(self.chunks) {
            Ok([only]) => only,
            Err(chunks) => {
                let mut joined = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
                for chunk in chunks {
                    joined.extend_from_slice(&chunk);
                }
                joined.freeze()
            }
        };
        store(&self.objects, &self.path, content);
    }
}

#[async_trait]
impl FileWriter for InMemoryWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if !chunk.is_empty() {
            self.size += chunk.len() as u64;
            self.chunks.push(chunk);
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
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
        write_objects(&self.objects).remove(self.path.as_str());
        Ok(())
    }

    /// Nothing is stored before `close` or `commit`: dropping the chunks is all there is to do.
    async fn abandon(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }
}

fn write_objects(objects: &RwLock<Objects>) -> RwLockWriteGuard<'_, Objects> {
    objects.write().unwrap_or_else(PoisonError::into_inner)
}

fn store(objects: &RwLock<Objects>, path: &StoragePath, content: Bytes) {
    write_objects(objects).insert(path.as_str().to_owned(), Object::new(content));
}

/// The keys of every object below the directory `path`, in order.
fn below<'a>(objects: &'a Objects, path: &StoragePath) -> impl Iterator<Item = &'a str> + 'a {
    let prefix = directory_prefix(path);
    objects
        .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .map(|(key, _)| key.as_str())
        .take_while(move |key| key.starts_with(&prefix))
}

/// `path` with a trailing `/`: the prefix of every key below it.
fn directory_prefix(path: &StoragePath) -> String {
    if path.is_root() {
        "/".to_owned()
    } else {
        format!("{path}/")
    }
}

fn check_object_path(path: &StoragePath) -> Result<(), StorageError> {
    if path.is_root() {
        return Err(StorageError::InvalidPath {
            path: path.to_string(),
            reason: "the root is a directory and cannot hold content",
        });
    }
    Ok(())
}

fn not_found(path: &StoragePath) -> StorageError {
    StorageError::NotFound { path: path.clone() }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::testsuite;

    fn path(path: &str) -> StoragePath {
        StoragePath::parse(path).expect("valid path")
    }

    #[tokio::test]
    async fn passes_the_testsuite() {
        let driver = InMemoryDriver::new();
        testsuite::run_all(&driver).await;
        assert_eq!(driver.read().len(), 0, "the driver is empty again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_testsuite_on_a_multi_thread_runtime() {
        testsuite::run_all(&InMemoryDriver::default()).await;
    }

    #[tokio::test]
    async fn clones_share_the_objects() {
        let driver = InMemoryDriver::new();
        let clone = driver.clone();
        driver
            .put_content(&path("/a"), Bytes::from_static(b"x"))
            .await
            .expect("put");
        assert_eq!(clone.get_content(&path("/a")).await.expect("get"), "x");
        assert_eq!(format!("{clone:?}"), "InMemoryDriver { objects: 1 }");
    }

    #[tokio::test]
    async fn reader_slices_without_copying() {
        let driver = InMemoryDriver::new();
        let content = Bytes::from(vec![3; (2 << 20) + 5]);
        driver
            .put_content(&path("/a"), content.clone())
            .await
            .expect("put");
        let mut stream = driver.reader(&path("/a"), 5, None).await.expect("reader");
        let first = stream.next().await.expect("a chunk").expect("no error");
        assert_eq!(first.len(), READ_CHUNK);
        assert_eq!(
            first.as_ptr(),
            content[5..].as_ptr(),
            "the chunk points into the stored content"
        );
    }

    #[tokio::test]
    async fn an_object_and_a_directory_may_share_a_path() {
        // Object storage allows both a key `a` and keys below `a/`; so does this driver.
        let driver = InMemoryDriver::new();
        driver
            .put_content(&path("/a"), Bytes::from_static(b"x"))
            .await
            .expect("put");
        driver
            .put_content(&path("/a/b"), Bytes::from_static(b"y"))
            .await
            .expect("put");
        assert!(!driver.stat(&path("/a")).await.expect("stat").is_dir);
        assert_eq!(
            driver.list(&path("/a")).await.expect("list"),
            vec![path("/a/b")]
        );
        driver.delete(&path("/a")).await.expect("delete");
        assert_eq!(
            driver.list(&StoragePath::root()).await.expect("list"),
            Vec::<StoragePath>::new()
        );
    }

    #[tokio::test]
    async fn delete_of_the_root_empties_the_driver() {
        let driver = InMemoryDriver::new();
        assert!(
            driver
                .delete(&StoragePath::root())
                .await
                .expect_err("empty")
                .is_not_found()
        );
        driver
            .put_content(&path("/a/b"), Bytes::from_static(b"x"))
            .await
            .expect("put");
        driver.delete(&StoragePath::root()).await.expect("delete");
        assert_eq!(driver.read().len(), 0);
        assert!(
            driver
                .stat(&StoragePath::root())
                .await
                .expect("stat")
                .is_dir
        );
    }
}
