//! A registryd storage driver over Amazon S3 and S3-compatible object storage (MinIO, Ceph RGW,
//! Cloudflare R2, ...), built on the `object_store` crate, in registry:2's layout: a bucket
//! written by registry:2 is served as it is, and the reverse.
//!
//! What S3 lacks, and how the driver makes up for it:
//! - **Directories**: a directory is the prefix of the keys below it; it has no time
//!   ([`FileInfo::modified`] is `None`), so the registry does not cache listings by directory
//!   time on S3.
//! - **Appends**: a resumable writer grows a multipart upload (see the `writer` module); its state
//!   lives in an object beside the key, so any replica can continue an upload another started.
//! - **Renames**: a move is a copy and a delete, as the trait allows.
//! - **Exclusion**: conditional writes are S3's `If-None-Match: *` and `If-Match: <etag>`, which
//!   Amazon S3 (since 2024), MinIO, R2 and moto implement; versions are ETags.
//!
//! ```no_run
//! use registry_storage_s3::{S3Driver, S3Options};
//!
//! let mut options = S3Options::new("registry-bucket", "eu-west-1");
//! options.root_directory = "registry".to_owned();
//! let driver = S3Driver::new(options)?;
//! # Ok::<(), registry_storage_s3::OptionsError>(())
//! ```

mod connector;
mod error;
mod keys;
#[cfg(feature = "moto")]
pub mod moto;
mod options;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};
use object_store::signer::Signer;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode as StorePutMode, PutOptions,
    UpdateVersion,
};
use registry_storage::{
    ByteStream, Durability, FileInfo, FileWriter, ObjectVersion, PutMode, StorageDriver,
    StorageError, StoragePath, WalkControl, WalkVisitor,
};

use crate::error::{DRIVER, from_store};
use crate::keys::{Keys, WRITER_STATE_SUFFIX, object_path};
use crate::writer::{S3Writer, abort_upload, read_state};

pub use options::{DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, OptionsError, S3Options};

/// How many objects a `stat_many` looks up at once.
const STAT_CONCURRENCY: usize = 16;

/// The largest object S3 copies in one request (5 GiB); a larger one is moved by
/// [`S3Driver::copy_through`].
const MAX_COPY_SIZE: u64 = 5 << 30;

/// A [`StorageDriver`] over one S3 bucket, below its root directory.
///
/// Every operation is a few requests to the bucket and nothing is cached, so any number of
/// driver instances (registryd replicas) over one bucket see the same store at once.
#[derive(Debug, Clone)]
pub struct S3Driver {
    inner: Arc<Inner>,
}

/// What the driver and its writers share.
#[derive(Debug)]
pub(crate) struct Inner {
    store: AmazonS3,
    keys: Keys,
    chunk_size: u64,
    redirect: bool,
    redirect_expiry: Duration,
}

impl S3Driver {
    /// A driver for the bucket `options` names. Makes no request: a wrong bucket or key shows in
    /// the first operation (and in the registry's storage health check).
    pub fn new(options: S3Options) -> Result<S3Driver, OptionsError> {
        let store = options.client()?;
        Ok(S3Driver {
            inner: Arc::new(Inner {
                store,
                keys: Keys::new(&options.root_directory),
                chunk_size: options.chunk_size,
                redirect: options.redirect,
                redirect_expiry: options.redirect_expiry(),
            }),
        })
    }

    fn key(&self, path: &StoragePath) -> object_store::path::Path {
        object_path(&self.inner.keys.object(path))
    }

    /// Every key that starts with `prefix` (no delimiter), page by page.
    async fn keys_below(
        &self,
        prefix: &str,
        path: &StoragePath,
    ) -> Result<Vec<object_store::ObjectMeta>, StorageError> {
        let mut objects = Vec::new();
        let mut page_token = None;
        loop {
            let page = self
                .inner
                .store
                .list_paginated(
                    Some(prefix),
                    PaginatedListOptions {
                        page_token,
                        ..PaginatedListOptions::default()
                    },
                )
                .await
                .map_err(|error| from_store("list", path, error))?;
            objects.extend(page.result.objects);
            match page.page_token {
                Some(token) => page_token = Some(token),
                None => return Ok(objects),
            }
        }
    }

    /// One page of the keys starting with `prefix` (a plain string prefix, not a directory),
    /// those with a further `/` folded into common prefixes; `path` names the listing in errors.
    async fn delimited_page(
        &self,
        prefix: &str,
        page_token: Option<String>,
        path: &StoragePath,
    ) -> Result<PaginatedListResult, StorageError> {
        self.inner
            .store
            .list_paginated(
                Some(prefix),
                PaginatedListOptions {
                    delimiter: Some("/".into()),
                    page_token,
                    ..PaginatedListOptions::default()
                },
            )
            .await
            .map_err(|error| from_store("list", path, error))
    }

    /// What is at `path` when no object is: a directory, an open writer's state, or nothing.
    ///
    /// One listing of the keys that start with the object's key, with `/` as the delimiter,
    /// answers both questions: everything below `path/` comes back as one common prefix, and the
    /// state object `path@writer` sorts among the few siblings whose names extend this one's.
    async fn beside(&self, path: &StoragePath) -> Result<Beside, StorageError> {
        let key = self.inner.keys.object(path);
        let state = self.inner.keys.writer_state(path);
        let mut open_writer = false;
        let mut page_token = None;
        loop {
            let page = self.delimited_page(&key, page_token, path).await?;
            // A common prefix comes back without its trailing delimiter.
            if page
                .result
                .common_prefixes
                .iter()
                .any(|prefix| prefix.as_ref() == key)
            {
                return Ok(Beside::Directory);
            }
            open_writer |= page
                .result
                .objects
                .iter()
                .any(|object| object.location.as_ref() == state);
            match page.page_token {
                Some(token) => page_token = Some(token),
                None if open_writer => return Ok(Beside::OpenWriter),
                None => return Ok(Beside::Nothing),
            }
        }
    }

    /// `stat` of the object at `path` alone: `NotFound` when there is none.
    async fn head(&self, path: &StoragePath) -> Result<FileInfo, StorageError> {
        match self.inner.store.head(&self.key(path)).await {
            Ok(meta) => Ok(FileInfo {
                path: path.clone(),
                size: meta.size,
                modified: Some(meta.last_modified.into()),
                is_dir: false,
            }),
            Err(object_store::Error::NotFound { .. }) => {
                Err(StorageError::NotFound { path: path.clone() })
            }
            Err(error) => Err(from_store("stat", path, error)),
        }
    }

    fn directory(path: &StoragePath) -> FileInfo {
        FileInfo {
            path: path.clone(),
            size: 0,
            modified: None,
            is_dir: true,
        }
    }
}

impl S3Driver {
    /// Copies the object at `source`, of `size` bytes, to `destination` by reading it and
    /// writing it again through this process, one part at a time (a ranged read, then that part
    /// sent): for objects larger than S3's copy limit ([`MAX_COPY_SIZE`]). Nothing appears at
    /// `destination` unless the whole copy does.
    async fn copy_through(
        &self,
        source: &StoragePath,
        size: u64,
        destination: &StoragePath,
    ) -> Result<(), StorageError> {
        let key = self.key(source);
        let mut writer = self.writer(destination, false).await?;
        let mut offset = 0;
        while offset < size {
            let end = size.min(offset + self.inner.chunk_size);
            let written = match self.inner.store.get_range(&key, offset..end).await {
                Ok(part) => writer.write(part).await,
                Err(error) => Err(from_store("read", source, error)),
            };
            if let Err(error) = written {
                // The error that matters is the one being returned.
                let _ = writer.abandon().await;
                return Err(error);
            }
            offset = end;
        }
        writer.commit().await
    }
}

/// What [`S3Driver::beside`] found where no object is.
enum Beside {
    Directory,
    OpenWriter,
    Nothing,
}

#[async_trait]
impl StorageDriver for S3Driver {
    fn name(&self) -> &'static str {
        DRIVER
    }

    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError> {
        Ok(self.get_content_versioned(path).await?.0)
    }

    async fn put_content(&self, path: &StoragePath, content: Bytes) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(root_is_a_directory());
        }
        self.inner
            .store
            .put(&self.key(path), content.into())
            .await
            .map_err(|error| from_store("write", path, error))?;
        Ok(())
    }

    async fn get_content_versioned(
        &self,
        path: &StoragePath,
    ) -> Result<(Bytes, ObjectVersion), StorageError> {
        if path.is_root() {
            return Err(StorageError::NotFound { path: path.clone() });
        }
        let result = self
            .inner
            .store
            .get(&self.key(path))
            .await
            .map_err(|error| from_store("read", path, error))?;
        let version = version_of(path, result.meta.e_tag.clone())?;
        let content = result
            .bytes()
            .await
            .map_err(|error| from_store("read", path, error))?;
        Ok((content, version))
    }

    async fn put_content_if(
        &self,
        path: &StoragePath,
        content: Bytes,
        mode: PutMode,
        _durability: Durability,
    ) -> Result<ObjectVersion, StorageError> {
        if path.is_root() {
            return Err(root_is_a_directory());
        }
        let mode = match mode {
            PutMode::Create => StorePutMode::Create,
            PutMode::Update(version) => StorePutMode::Update(UpdateVersion {
                e_tag: Some(version.as_str().to_owned()),
                version: None,
            }),
        };
        let written = self
            .inner
            .store
            .put_opts(
                &self.key(path),
                content.into(),
                PutOptions {
                    mode,
                    ..PutOptions::default()
                },
            )
            .await
            .map_err(|error| match error {
                // Updating an object that is gone: S3 answers 404, the trait says Precondition.
                object_store::Error::NotFound { .. } => {
                    StorageError::Precondition { path: path.clone() }
                }
                error => from_store("conditional write", path, error),
            })?;
        version_of(path, written.e_tag)
    }

    async fn reader(
        &self,
        path: &StoragePath,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteStream, StorageError> {
        if path.is_root() {
            return Err(StorageError::NotFound { path: path.clone() });
        }
        if length == Some(0) {
            let size = self.stat_object(path).await?;
            return empty_or_invalid(path, offset, size);
        }
        let range = match (offset, length) {
            (0, None) => None,
            (offset, None) => Some(GetRange::Offset(offset)),
            (offset, Some(length)) => {
                Some(GetRange::Bounded(offset..offset.saturating_add(length)))
            }
        };
        let options = GetOptions {
            range,
            ..GetOptions::default()
        };
        let result = match self.inner.store.get_opts(&self.key(path), options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::NotFound { path: path.clone() });
            }
            Err(error) if offset > 0 => {
                // S3 refuses a range that starts at or past the end; tell which it was.
                let size = self.stat_object(path).await?;
                if offset >= size {
                    return empty_or_invalid(path, offset, size);
                }
                return Err(from_store("read", path, error));
            }
            Err(error) => return Err(from_store("read", path, error)),
        };
        let stream_path = path.clone();
        Ok(Box::pin(result.into_stream().map_err(move |error| {
            from_store("read", &stream_path, error)
        })))
    }

    async fn writer(
        &self,
        path: &StoragePath,
        append: bool,
    ) -> Result<Box<dyn FileWriter>, StorageError> {
        if path.is_root() {
            return Err(root_is_a_directory());
        }
        let inner = Arc::clone(&self.inner);
        Ok(if append {
            Box::new(S3Writer::append(inner, path.clone()).await?)
        } else {
            Box::new(S3Writer::new(inner, path.clone()))
        })
    }

    async fn stat(&self, path: &StoragePath) -> Result<FileInfo, StorageError> {
        if path.is_root() {
            return Ok(Self::directory(path));
        }
        match self.head(path).await {
            Err(StorageError::NotFound { .. }) => {}
            found => return found,
        }
        match self.beside(path).await? {
            Beside::Directory => Ok(Self::directory(path)),
            Beside::OpenWriter => match read_state(&self.inner, path, false).await? {
                Some((state, _, modified)) => Ok(FileInfo {
                    path: path.clone(),
                    size: state.size(),
                    modified: Some(modified),
                    is_dir: false,
                }),
                // Committed or cancelled since the listing.
                None => self.head(path).await,
            },
            Beside::Nothing => Err(StorageError::NotFound { path: path.clone() }),
        }
    }

    async fn stat_many(&self, paths: &[StoragePath]) -> Vec<Result<FileInfo, StorageError>> {
        // Owned paths: a closure over borrowed ones is not `Send` enough for async_trait.
        futures_util::stream::iter(paths.iter().cloned())
            .map(|path| async move { self.stat(&path).await })
            .buffered(STAT_CONCURRENCY)
            .collect()
            .await
    }

    async fn list(&self, path: &StoragePath) -> Result<Vec<StoragePath>, StorageError> {
        let prefix = self.inner.keys.children(path);
        let mut children = Vec::new();
        let mut page_token = None;
        loop {
            let page = self.delimited_page(&prefix, page_token, path).await?;
            let keys = page
                .result
                .common_prefixes
                .iter()
                .map(|prefix| prefix.as_ref().to_owned())
                .chain(
                    page.result
                        .objects
                        .iter()
                        .map(|object| object.location.as_ref().to_owned()),
                );
            children.extend(keys.filter_map(|key| self.inner.keys.path_of(&key)));
            match page.page_token {
                Some(token) => page_token = Some(token),
                None => break,
            }
        }
        // A listing is relative to `path`: keep only its direct children (a key the driver
        // cannot name is left out), once each (an object and its writer state name one path).
        children.retain(|child| child.parent().as_ref() == Some(path));
        children.sort();
        children.dedup();
        if children.is_empty() && !path.is_root() {
            return Err(StorageError::NotFound { path: path.clone() });
        }
        Ok(children)
    }

    async fn move_object(
        &self,
        source: &StoragePath,
        destination: &StoragePath,
    ) -> Result<(), StorageError> {
        if source.is_root() || destination.is_root() {
            return Err(root_is_a_directory());
        }
        if let Err(error) = self
            .inner
            .store
            .copy(&self.key(source), &self.key(destination))
            .await
        {
            let refused = from_store("copy", source, error);
            if matches!(refused, StorageError::NotFound { .. }) {
                return Err(refused);
            }
            let size = self.head(source).await?.size;
            if size <= MAX_COPY_SIZE {
                return Err(refused);
            }
            // Larger than S3 copies in one request: registry:2 copies such an object part by
            // part on the server; object_store has no copy of parts, so it goes through here.
            self.copy_through(source, size, destination).await?;
        }
        match self.inner.store.delete(&self.key(source)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(from_store("delete", source, error)),
        }
    }

    /// One `DELETE` of the object's key, which S3 answers alike whether or not it was there.
    async fn delete_object(&self, path: &StoragePath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(root_is_a_directory());
        }
        match self.inner.store.delete(&self.key(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(from_store("delete", path, error)),
        }
    }

    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        let mut doomed: Vec<object_store::path::Path> = Vec::new();
        let mut open_writer = false;
        if path.is_root() {
            let below = self
                .keys_below(&self.inner.keys.children(path), path)
                .await?;
            doomed.extend(below.into_iter().map(|object| object.location));
        } else {
            // The object, its writer state and everything below it as a directory; a sibling
            // that merely shares the prefix (`/a/bc` beside `/a/b`) is left alone.
            let key = self.inner.keys.object(path);
            let state = self.inner.keys.writer_state(path);
            let directory = self.inner.keys.children(path);
            for object in self.keys_below(&key, path).await? {
                let location = object.location.as_ref();
                if location == key || location.starts_with(&directory) {
                    doomed.push(object.location);
                } else if location == state {
                    open_writer = true;
                    doomed.push(object.location);
                }
            }
        }
        if doomed.is_empty() {
            return Err(StorageError::NotFound { path: path.clone() });
        }
        // Open writers below a directory (uploads in progress) have multipart uploads to abort.
        for location in &doomed {
            let Some(below) = location.as_ref().strip_suffix(WRITER_STATE_SUFFIX) else {
                continue;
            };
            let Some(object) = self.inner.keys.path_of(below) else {
                continue;
            };
            if (object != *path || open_writer)
                && let Some((state, _, _)) = read_state(&self.inner, &object, false).await?
            {
                abort_upload(&self.inner, &object, &state).await;
            }
        }
        let locations = futures_util::stream::iter(doomed.into_iter().map(Ok)).boxed();
        let mut deleted = self.inner.store.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(from_store("delete", path, error)),
            }
        }
        Ok(())
    }

    async fn redirect_url(&self, path: &StoragePath) -> Result<Option<String>, StorageError> {
        if !self.inner.redirect || path.is_root() {
            return Ok(None);
        }
        let url = self
            .inner
            .store
            .signed_url(
                http::Method::GET,
                &self.key(path),
                self.inner.redirect_expiry,
            )
            .await
            .map_err(|error| from_store("presign", path, error))?;
        Ok(Some(url.to_string()))
    }

    async fn walk(
        &self,
        from: &StoragePath,
        visitor: &mut WalkVisitor<'_>,
    ) -> Result<(), StorageError> {
        // One listing of every key below `from` (S3 lists ~1,000 keys per request), then the
        // depth-first, sorted order the trait promises, with the directories the keys imply.
        let objects = self
            .keys_below(&self.inner.keys.children(from), from)
            .await?;
        if objects.is_empty() && !from.is_root() {
            return Err(StorageError::NotFound { path: from.clone() });
        }
        let mut entries: std::collections::BTreeMap<Vec<String>, FileInfo> =
            std::collections::BTreeMap::new();
        let depth = segments(from).len();
        for object in objects {
            let key = object.location.as_ref();
            let Some(path) = self.inner.keys.path_of(key) else {
                continue;
            };
            let info = if key.ends_with(WRITER_STATE_SUFFIX) {
                match read_state(&self.inner, &path, false).await? {
                    Some((state, _, modified)) => FileInfo {
                        path: path.clone(),
                        size: state.size(),
                        modified: Some(modified),
                        is_dir: false,
                    },
                    None => continue,
                }
            } else {
                FileInfo {
                    path: path.clone(),
                    size: object.size,
                    modified: Some(object.last_modified.into()),
                    is_dir: false,
                }
            };
            let mut directory = path.parent();
            while let Some(parent) = directory {
                if segments(&parent).len() <= depth {
                    break;
                }
                entries
                    .entry(segments(&parent))
                    .or_insert_with(|| Self::directory(&parent));
                directory = parent.parent();
            }
            entries.entry(segments(&path)).or_insert(info);
        }
        let mut skipped: Option<Vec<String>> = None;
        for (segments, info) in &entries {
            if let Some(skipped) = &skipped
                && segments.starts_with(skipped)
            {
                continue;
            }
            match visitor(info) {
                WalkControl::Stop => return Ok(()),
                WalkControl::SkipDir if info.is_dir => skipped = Some(segments.clone()),
                WalkControl::SkipDir | WalkControl::Continue => {}
            }
        }
        Ok(())
    }
}

impl S3Driver {
    /// The size of the object at `path` (not a directory).
    async fn stat_object(&self, path: &StoragePath) -> Result<u64, StorageError> {
        let info = self.stat(path).await?;
        if info.is_dir {
            return Err(StorageError::NotFound { path: path.clone() });
        }
        Ok(info.size)
    }
}

/// The segments of `path`, the order a depth-first walk sorts siblings and their subtrees in.
fn segments(path: &StoragePath) -> Vec<String> {
    path.as_str()
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The answer to a read from `offset` of an object of `size` bytes that asks for nothing more.
fn empty_or_invalid(
    path: &StoragePath,
    offset: u64,
    size: u64,
) -> Result<ByteStream, StorageError> {
    if offset > size {
        return Err(StorageError::InvalidOffset {
            path: path.clone(),
            offset,
        });
    }
    Ok(Box::pin(futures_util::stream::empty()))
}

/// The version an S3 answer names; S3 always sends an ETag.
fn version_of(path: &StoragePath, e_tag: Option<String>) -> Result<ObjectVersion, StorageError> {
    e_tag
        .map(ObjectVersion::new)
        .ok_or_else(|| StorageError::Backend {
            driver: DRIVER,
            operation: "read version",
            path: path.clone(),
            source: "the bucket sent no ETag".into(),
        })
}

fn root_is_a_directory() -> StorageError {
    StorageError::Unsupported {
        driver: DRIVER,
        operation: "content at the root",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moto::MotoServer;

    /// The path S3 takes for objects larger than it copies in one request, exercised on a small
    /// one (moto copies anything, so the refusal that leads here cannot be provoked).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_through_this_process_moves_every_byte_in_parts() {
        let Some(moto) = MotoServer::start() else {
            return;
        };
        moto.create_bucket("copy-through");
        let mut options = moto.options("copy-through");
        options.chunk_size = crate::options::MIN_CHUNK_SIZE;
        let driver = S3Driver::new(options).unwrap_or_else(|error| panic!("{error}"));
        let source = StoragePath::parse("/from/object").unwrap_or_else(|error| panic!("{error}"));
        let destination =
            StoragePath::parse("/to/object").unwrap_or_else(|error| panic!("{error}"));
        let content: Bytes = (0..12 << 20)
            .map(|index: u32| (index % 251) as u8)
            .collect();
        driver
            .put_content(&source, content.clone())
            .await
            .unwrap_or_else(|error| panic!("put: {error}"));
        driver
            .copy_through(&source, content.len() as u64, &destination)
            .await
            .unwrap_or_else(|error| panic!("copy through: {error}"));
        let copied = driver
            .get_content(&destination)
            .await
            .unwrap_or_else(|error| panic!("get: {error}"));
        assert!(
            copied == content,
            "{} bytes of {}",
            copied.len(),
            content.len()
        );
        assert!(
            driver.get_content(&source).await.is_ok(),
            "the source stays"
        );
    }
}
