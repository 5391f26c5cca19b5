//! The `StorageDriver` trait: the narrow interface everything in the registry is built on.

use std::fmt;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::{StorageError, StoragePath};

/// A stream of an object's bytes, in chunks, as returned by [`StorageDriver::reader`].
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send + 'static>>;

/// What [`StorageDriver::stat`] knows of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// The path this describes.
    pub path: StoragePath,
    /// Size in bytes of an object; 0 for a directory.
    pub size: u64,
    /// Last modification time, when the driver knows it. For a directory, a driver gives a time
    /// only if it changes whenever an entry is added directly inside the directory or removed from
    /// it (a filesystem directory's mtime); the content layer trusts an unchanged time to mean an
    /// unchanged listing. Drivers without real directories give `None`.
    pub modified: Option<SystemTime>,
    /// Whether the path is a directory (a prefix of other objects) rather than an object.
    pub is_dir: bool,
}

/// One stored version of an object, as [`StorageDriver::get_content_versioned`] and
/// [`StorageDriver::put_content_if`] report it: an opaque tag (an ETag on object storage; on a
/// filesystem, the file's identity, size and time).
///
/// Two reads of an object give the same version exactly when nothing wrote the object in between,
/// with one allowance: a driver whose versions are content hashes (S3's ETag) may give the same
/// version when the same bytes are written again. Versions are meaningful only to the driver that
/// made them and only for the path they were read from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectVersion(String);

impl ObjectVersion {
    /// A version a driver names with `tag`.
    pub fn new(tag: impl Into<String>) -> ObjectVersion {
        ObjectVersion(tag.into())
    }

    /// The driver's tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When [`StorageDriver::put_content_if`] may write: the conditional writes that every exclusion
/// between registry processes is built on (upload sessions, tags, garbage collection). They are
/// object_store's `PutMode::Create` and `PutMode::Update`, S3's `If-None-Match: *` and
/// `If-Match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Create the object only if nothing is stored at the path; else
    /// [`StorageError::AlreadyExists`].
    Create,
    /// Replace the object only if it is still the version given (read with
    /// [`StorageDriver::get_content_versioned`] or returned by an earlier conditional write); else
    /// [`StorageError::Precondition`], also when the object is gone.
    Update(ObjectVersion),
}

/// Whether a conditional write ([`StorageDriver::put_content_if`]) must survive a crash of the
/// machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Durable once the write returns, as [`StorageDriver::put_content`] is.
    Durable,
    /// Atomic and exclusive exactly as a durable write, and seen at once by every reader and
    /// conditional writer, but a crash of the machine (not just of the process) may lose it:
    /// afterwards the object may be missing, hold an earlier version, or be empty. For state that
    /// such a crash ends anyway, such as a lease whose holders all ran there: it spares the
    /// filesystem driver two flushes to disk per write. Drivers whose every write is durable
    /// (object storage) treat it as `Durable`.
    Volatile,
}

/// What [`StorageDriver::walk`] should do after visiting an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkControl {
    /// Go on; descend into the entry if it is a directory.
    Continue,
    /// Do not descend into this directory (same as `Continue` for an object).
    SkipDir,
    /// Stop the walk now.
    Stop,
}

/// The visitor [`StorageDriver::walk`] calls for every entry below the starting path.
pub type WalkVisitor<'a> = dyn FnMut(&FileInfo) -> WalkControl + Send + 'a;

/// A key -> bytes store with directories, the only thing the registry needs from storage.
///
/// Paths are [`StoragePath`]s. A "directory" exists exactly while some object lies below it: drivers
/// over object storage (S3) have no real directories, so no operation may rely on creating or keeping
/// an empty one. The contract is registry:2's driver interface, which can be implemented on object
/// storage: no operation needs an atomic rename across keys, appends may be multipart parts, and
/// listing works by prefix.
///
/// Every driver must pass the conformance tests in `registry_storage::testsuite` (feature
/// `testsuite`).
#[async_trait]
pub trait StorageDriver: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and errors, e.g. `"filesystem"`.
    fn name(&self) -> &'static str;

    /// The whole content of the object at `path`. Meant for small objects (links, manifests).
    ///
    /// `NotFound` when there is no object at `path`.
    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError>;

    /// Stores `content` at `path`, replacing any previous object atomically: a reader sees either
    /// the old content or the new, never a mix or a partial write. Durable once this returns Ok.
    async fn put_content(&self, path: &StoragePath, content: Bytes) -> Result<(), StorageError>;

    /// The whole content of the object at `path` and its version, read together: the version is
    /// the one of exactly these bytes. `NotFound` when there is no object at `path`.
    async fn get_content_versioned(
        &self,
        path: &StoragePath,
    ) -> Result<(Bytes, ObjectVersion), StorageError>;

    /// Stores `content` at `path` as [`StorageDriver::put_content`] does, but only if `mode`'s
    /// condition holds, and returns the new version.
    ///
    /// The check and the write are one atomic step with respect to every other conditional write
    /// of the same path, from this process or any other over the same store: of two writers that
    /// read the same version and both ask to replace it, exactly one succeeds; of two that create
    /// the same absent object, exactly one succeeds. The other gets
    /// [`StorageError::Precondition`] or [`StorageError::AlreadyExists`] and nothing of its
    /// content is stored. Unconditional writes and deletes of the path are not excluded: keep an
    /// object that is written conditionally out of their way. Meant for small objects (leases,
    /// links); kept as `durability` says.
    async fn put_content_if(
        &self,
        path: &StoragePath,
        content: Bytes,
        mode: PutMode,
        durability: Durability,
    ) -> Result<ObjectVersion, StorageError>;

    /// Streams the object at `path` from byte `offset`, at most `length` bytes when given.
    ///
    /// `offset == size` yields an empty stream; `offset > size` is `InvalidOffset`; no object is
    /// `NotFound`. The stream yields chunks of a size the driver picks for throughput.
    async fn reader(
        &self,
        path: &StoragePath,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteStream, StorageError>;

    /// Opens a writer for the object at `path`.
    ///
    /// With `append == false` the object starts empty (any previous content is dropped once the
    /// writer is closed or committed). With `append == true` the writer continues the content a
    /// previous writer left with [`FileWriter::close`]; `NotFound` if there is none. Content written
    /// through a writer is only guaranteed readable with [`StorageDriver::reader`] after `commit`.
    async fn writer(
        &self,
        path: &StoragePath,
        append: bool,
    ) -> Result<Box<dyn FileWriter>, StorageError>;

    /// Size, modification time and kind of `path`; `NotFound` when neither an object nor a
    /// directory exists there.
    async fn stat(&self, path: &StoragePath) -> Result<FileInfo, StorageError>;

    /// [`StorageDriver::stat`] of each of `paths`, in the same order. The default stats one path
    /// after the other; drivers for which a batch is cheaper override it.
    async fn stat_many(&self, paths: &[StoragePath]) -> Vec<Result<FileInfo, StorageError>> {
        let mut infos = Vec::with_capacity(paths.len());
        for path in paths {
            infos.push(self.stat(path).await);
        }
        infos
    }

    /// The direct children of the directory `path` (objects and directories), sorted by path.
    /// `NotFound` when `path` is not a directory (listing the root of an empty driver is `Ok(vec![])`).
    async fn list(&self, path: &StoragePath) -> Result<Vec<StoragePath>, StorageError>;

    /// Moves the object at `source` to `destination`, replacing any object there. Readers of
    /// `destination` see the old object or the whole new one. Not atomic with respect to `source`
    /// on every backend (object storage copies then deletes), so callers must tolerate a crash that
    /// leaves both. `NotFound` when `source` does not exist. The moved object counts as written
    /// at the move: its `modified` time (where the driver keeps one) is the time of the move, as
    /// object storage's copy makes it; garbage collection's grace period relies on that.
    async fn move_object(
        &self,
        source: &StoragePath,
        destination: &StoragePath,
    ) -> Result<(), StorageError>;

    /// Deletes the object at `path`, or the directory at `path` with everything below it.
    /// `NotFound` when nothing exists at `path`. Never touches a sibling that merely shares a
    /// prefix (deleting `/a/b` leaves `/a/bc`).
    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError>;

    /// Deletes the object at `path` if there is one; `Ok` whether or not it was there. Only for
    /// objects written whole ([`StorageDriver::put_content`], [`StorageDriver::put_content_if`]):
    /// what a directory at `path` holds, and an open writer's state, may be left. A driver whose
    /// [`StorageDriver::delete`] has to look before it deletes (object storage lists the prefix
    /// to find a directory's objects) deletes such an object in one request here.
    async fn delete_object(&self, path: &StoragePath) -> Result<(), StorageError> {
        match self.delete(path).await {
            Ok(()) | Err(StorageError::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// A URL a client may fetch the object from directly (a presigned object-storage URL), or
    /// `None` when the driver serves its content only through [`StorageDriver::reader`].
    async fn redirect_url(&self, path: &StoragePath) -> Result<Option<String>, StorageError> {
        let _ = path;
        Ok(None)
    }

    /// Visits every entry below `from` (not `from` itself), depth first with the children of each
    /// directory in sorted order, until the visitor says [`WalkControl::Stop`].
    ///
    /// `NotFound` when `from` is not a directory. The default is built on `list` and `stat`;
    /// drivers with a cheaper recursive listing override it.
    async fn walk(
        &self,
        from: &StoragePath,
        visitor: &mut WalkVisitor<'_>,
    ) -> Result<(), StorageError> {
        let mut pending: Vec<std::vec::IntoIter<StoragePath>> =
            vec![self.list(from).await?.into_iter()];
        while let Some(children) = pending.last_mut() {
            let Some(child) = children.next() else {
                pending.pop();
                continue;
            };
            let info = match self.stat(&child).await {
                Ok(info) => info,
                // Deleted between list and stat: nothing to visit.
                Err(StorageError::NotFound { .. }) => continue,
                Err(error) => return Err(error),
            };
            match visitor(&info) {
                WalkControl::Stop => return Ok(()),
                WalkControl::SkipDir => {}
                WalkControl::Continue if info.is_dir => match self.list(&child).await {
                    Ok(grandchildren) => pending.push(grandchildren.into_iter()),
                    Err(StorageError::NotFound { .. }) => {}
                    Err(error) => return Err(error),
                },
                WalkControl::Continue => {}
            }
        }
        Ok(())
    }
}

/// A writer for one object, opened with [`StorageDriver::writer`].
///
/// Data goes in with `write`; then exactly one of `close` (keep what was written so a later writer
/// can append: the next chunk of a resumable upload), `commit` (the content is final and durable),
/// or `cancel` (remove it). Dropping a writer without any of them may lose what was written since
/// it was opened, but never corrupts what an earlier writer closed.
#[async_trait]
pub trait FileWriter: Send {
    /// Appends `chunk`. Drivers buffer as they see fit; nothing is durable before `close`/`commit`.
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError>;

    /// Total size of the object so far: what earlier writers left plus what this one wrote.
    fn size(&self) -> u64;

    /// Persists what was written so a later `writer(path, append = true)` continues from here.
    async fn close(self: Box<Self>) -> Result<(), StorageError>;

    /// Makes the content final and durable; after this the object is readable at its full size.
    async fn commit(self: Box<Self>) -> Result<(), StorageError>;

    /// Discards the object, including what earlier writers left.
    async fn cancel(self: Box<Self>) -> Result<(), StorageError>;

    /// Stops without making anything this writer wrote readable, and leaves the object at its
    /// path as it was: absent, or the content it had before the writer opened. For a writer
    /// opened with `append == false`, whose content only replaces the object at `commit`; what an
    /// appending writer wrote may already be in place and stays, as after `close`.
    async fn abandon(self: Box<Self>) -> Result<(), StorageError>;
}
