//! The filesystem driver: every object is a file below a root directory, laid out exactly as
//! registry:2's filesystem driver lays it out, so an existing registry:2 data directory can be
//! served as it is.
//!
//! On request ([`FilesystemDriver::with_direct_io`]), large writes on Linux bypass the page cache
//! (falling back to buffered writes where the filesystem refuses it): see the `output` module.

mod batch_stat;
mod output;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;
use tokio::task::JoinHandle;

use self::output::OutputFile;
use crate::{
    ByteStream, Durability, FileInfo, FileWriter, ObjectVersion, PutMode, StorageDriver,
    StorageError, StoragePath, WalkControl, WalkVisitor,
};

const DRIVER: &str = "filesystem";

/// Size of the chunks a reader yields, each read on a blocking thread.
const READ_CHUNK: usize = 1 << 20;

/// `stat_many` splits its paths over several blocking threads only in batches of at least this
/// many.
const STAT_BATCH_PER_THREAD: usize = 1024;

/// A writer hands its buffered chunks to a blocking thread once they add up to this much.
const WRITE_BATCH: usize = 1 << 20;

/// Temporary files start with this. `~` cannot appear in a [`StoragePath`] segment, so a temporary
/// file never collides with an object and `list` never shows one.
const TEMP_PREFIX: &str = ".tmp~";

/// How often an operation retries when a concurrent delete removes the (empty) directory it has
/// just created for its file.
const DIRECTORY_RACE_RETRIES: usize = 8;

/// A driver that stores objects as files below a root directory.
///
/// `/docker/registry/v2/blobs/...` is the file `<root>/docker/registry/v2/blobs/...`: the same layout
/// as registry:2's filesystem driver. Every file operation runs on tokio's blocking thread pool, in
/// large units (whole small files, 1 MiB chunks of large ones), so the async threads never wait on
/// the disk. Writes of whole objects go to a temporary file in the same directory that is synced and
/// then renamed over the destination, so readers never see a partial object and a crash leaves either
/// the old or the new content. Directories exist only while something lies below them: deleting or
/// moving the last object out of a directory removes the directories it leaves empty, so the driver
/// behaves like object storage, where a "directory" is just a common prefix.
///
/// Symbolic links placed inside the root by an operator are followed; no [`StoragePath`] can name
/// anything outside the root by itself. Entries whose names are not valid path segments (including
/// the driver's own temporary files) are invisible to [`StorageDriver::list`] and
/// [`StorageDriver::walk`].
#[derive(Clone, Debug)]
pub struct FilesystemDriver {
    root: PathBuf,
    direct_io: bool,
    /// How many blocking threads `stat_many` spreads a large batch over: the cores this process
    /// may use, read once (finding out reads cgroup files).
    stat_threads: usize,
}

impl FilesystemDriver {
    /// A driver storing below `root`, which is created (with its parents) if missing.
    ///
    /// This touches the filesystem on the calling thread: call it at startup, not from a task on a
    /// busy runtime.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|error| backend("create root directory", &StoragePath::root(), error))?;
        Ok(FilesystemDriver {
            root,
            direct_io: false,
            stat_threads: std::thread::available_parallelism().map_or(1, usize::from),
        })
    }

    /// With `enabled`, writers write large data with direct I/O (`O_DIRECT`, Linux only),
    /// bypassing the page cache: uploads cost less CPU and leave the cache to data that is read
    /// often, but a blob just uploaded is read from the disk the first time. Writers fall back to
    /// the page cache where the filesystem refuses direct I/O. Off by default.
    pub fn with_direct_io(mut self, enabled: bool) -> Self {
        self.direct_io = enabled;
        self
    }

    /// The directory every object is stored below.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file or directory `path` names. Segments are validated by [`StoragePath`] (no `..`, no
    /// `.`, no separators), so the result always lies below the root.
    fn file_path(&self, path: &StoragePath) -> PathBuf {
        file_below(&self.root, path)
    }

    /// The file for an object `path` and the directory holding it; the root is never an object.
    fn object_paths(&self, path: &StoragePath) -> Result<(PathBuf, PathBuf), StorageError> {
        let file = self.file_path(path);
        match file.parent() {
            Some(directory) if !path.is_root() => {
                let directory = directory.to_path_buf();
                Ok((file, directory))
            }
            _ => Err(StorageError::InvalidPath {
                path: path.to_string(),
                reason: "the root is a directory and cannot hold content",
            }),
        }
    }

    /// Every entry of the directory `path` with what `stat` would say of it, sorted by path.
    async fn list_infos(&self, path: &StoragePath) -> Result<Vec<FileInfo>, StorageError> {
        let directory = self.file_path(path);
        let listed = path.clone();
        let is_root = path.is_root();
        blocking("list", path, move || {
            let mut infos = Vec::new();
            for (child, file, is_real_dir) in read_children(&directory, &listed, is_root)? {
                // A directory's size and time are never used: skip the stat (the directory entry
                // already says it is one), which makes walking many repositories much cheaper.
                if is_real_dir {
                    infos.push(FileInfo {
                        path: child,
                        size: 0,
                        modified: None,
                        is_dir: true,
                    });
                    continue;
                }
                match fs::metadata(&file) {
                    Ok(metadata) => infos.push(file_info(child, &metadata)),
                    // Removed since read_dir, or a dangling symbolic link: nothing to visit.
                    Err(error) if is_missing(&error) => {}
                    Err(error) => return Err(error),
                }
            }
            infos.sort_unstable_by(|a, b| a.path.cmp(&b.path));
            Ok(infos)
        })
        .await
    }
}

#[async_trait]
impl StorageDriver for FilesystemDriver {
    fn name(&self) -> &'static str {
        DRIVER
    }

    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError> {
        let file_path = self.file_path(path);
        blocking("read", path, move || Ok(read_whole(&file_path)?.0)).await
    }

    async fn put_content(&self, path: &StoragePath, content: Bytes) -> Result<(), StorageError> {
        let (file_path, directory) = self.object_paths(path)?;
        blocking("write", path, move || {
            place_new_file(&directory, &content, true, |temp| {
                fs::rename(temp, &file_path)
            })?;
            sync_surviving_directory(&directory)
        })
        .await
    }

    async fn get_content_versioned(
        &self,
        path: &StoragePath,
    ) -> Result<(Bytes, ObjectVersion), StorageError> {
        let file_path = self.file_path(path);
        blocking("read", path, move || {
            let (content, metadata) = read_whole(&file_path)?;
            // Objects are replaced by renaming a new file over them, never rewritten in place
            // (appends aside, which change the size), so the open file's identity is the version
            // of exactly the bytes read.
            Ok((content, version_of(&metadata)))
        })
        .await
    }

    /// `Create` links a finished temporary file to the object's name, which fails when a name is
    /// there: atomic without a lock. A volatile write skips the flushes of the file and of its
    /// directory. `Update` renames the temporary file over the object while
    /// holding an exclusive `flock` on the object's directory, which every conditional writer of
    /// the directory takes (in any process on the host), checking the version under it.
    async fn put_content_if(
        &self,
        path: &StoragePath,
        content: Bytes,
        mode: PutMode,
        durability: Durability,
    ) -> Result<ObjectVersion, StorageError> {
        let (file_path, directory) = self.object_paths(path)?;
        let durable = durability == Durability::Durable;
        let outcome = blocking("conditional write", path, move || {
            let (placed, file) =
                place_new_file(&directory, &content, durable, |temp| match mode {
                    PutMode::Create => link_if_absent(temp, &file_path),
                    PutMode::Update(ref expected) => {
                        replace_if_unchanged(temp, &file_path, &directory, expected)
                    }
                })?;
            if let Err(refusal) = placed {
                return Ok(Err(refusal));
            }
            if durable {
                sync_surviving_directory(&directory)?;
            }
            // The object is this very file now, and neither a link nor a rename changes the
            // modification time the version includes.
            Ok(Ok(version_of(&file.metadata()?)))
        })
        .await?;
        outcome.map_err(|refusal| match refusal {
            Refusal::Exists => StorageError::AlreadyExists { path: path.clone() },
            Refusal::Changed => StorageError::Precondition { path: path.clone() },
        })
    }

    async fn reader(
        &self,
        path: &StoragePath,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteStream, StorageError> {
        let file_path = self.file_path(path);
        let opened = blocking("read", path, move || {
            let mut file = File::open(&file_path)?;
            let metadata = file.metadata()?;
            if metadata.is_dir() {
                return Err(io::ErrorKind::NotFound.into());
            }
            let size = metadata.len();
            if offset > size {
                return Ok(OpenedReader::PastEnd);
            }
            let remaining = length.map_or(size - offset, |length| length.min(size - offset));
            if remaining == 0 {
                return Ok(OpenedReader::Empty);
            }
            if offset > 0 {
                file.seek(SeekFrom::Start(offset))?;
            }
            Ok(OpenedReader::Stream { file, remaining })
        })
        .await?;
        match opened {
            OpenedReader::PastEnd => Err(StorageError::InvalidOffset {
                path: path.clone(),
                offset,
            }),
            OpenedReader::Empty => Ok(Box::pin(stream::empty())),
            OpenedReader::Stream { file, remaining } => {
                Ok(read_stream(path.clone(), file, remaining))
            }
        }
    }

    async fn writer(
        &self,
        path: &StoragePath,
        append: bool,
    ) -> Result<Box<dyn FileWriter>, StorageError> {
        let (file_path, directory) = self.object_paths(path)?;
        let (file, temp, size) = if append {
            let target = file_path.clone();
            blocking("open for append", path, move || {
                let file = match OpenOptions::new().append(true).open(&target) {
                    Err(error) if error.kind() == io::ErrorKind::IsADirectory => {
                        return Err(io::ErrorKind::NotFound.into());
                    }
                    opened => opened?,
                };
                let size = file.metadata()?.len();
                Ok((file, None, size))
            })
            .await?
        } else {
            blocking("create", path, move || {
                let (temp, file) = create_temp_file(&directory)?;
                Ok((file, Some(temp), 0))
            })
            .await?
        };
        Ok(Box::new(FilesystemWriter {
            path: path.clone(),
            root: self.root.clone(),
            target: file_path,
            temp,
            file: Some(OutputFile::new(file, size, self.direct_io)),
            in_flight: None,
            buffer: Vec::new(),
            buffered: 0,
            size,
        }))
    }

    async fn stat(&self, path: &StoragePath) -> Result<FileInfo, StorageError> {
        let file_path = self.file_path(path);
        let described = path.clone();
        blocking("stat", path, move || {
            let metadata = fs::metadata(&file_path)?;
            Ok(file_info(described, &metadata))
        })
        .await
    }

    /// One blocking task per core (for batches of at least `STAT_BATCH_PER_THREAD` paths each),
    /// each path looked up relative to its directory (see `batch_stat`): checking whether
    /// thousands of directories changed costs a trip or two to the blocking pool, not thousands,
    /// and the kernel's lookups, which are the whole cost, run on every core.
    async fn stat_many(&self, paths: &[StoragePath]) -> Vec<Result<FileInfo, StorageError>> {
        let per_thread = paths
            .len()
            .div_ceil(self.stat_threads)
            .max(STAT_BATCH_PER_THREAD);
        let batches: Vec<_> = paths
            .chunks(per_thread)
            .map(|chunk| {
                let root = self.root.clone();
                let paths = chunk.to_vec();
                tokio::task::spawn_blocking(move || batch_stat::stat_all(&root, paths))
            })
            .collect();
        let mut stats = Vec::with_capacity(paths.len());
        for (batch, chunk) in batches.into_iter().zip(paths.chunks(per_thread)) {
            match batch.await {
                Ok(answers) => stats.extend(answers),
                Err(join_error) => {
                    let cause = join_error.to_string();
                    let failed = |path| Err(backend("stat", path, io::Error::other(cause.clone())));
                    stats.extend(chunk.iter().map(failed));
                }
            }
        }
        stats
    }

    async fn list(&self, path: &StoragePath) -> Result<Vec<StoragePath>, StorageError> {
        let directory = self.file_path(path);
        let listed = path.clone();
        let is_root = path.is_root();
        blocking("list", path, move || {
            let mut children: Vec<StoragePath> = read_children(&directory, &listed, is_root)?
                .into_iter()
                .map(|(child, _, _)| child)
                .collect();
            children.sort_unstable();
            Ok(children)
        })
        .await
    }

    async fn move_object(
        &self,
        source: &StoragePath,
        destination: &StoragePath,
    ) -> Result<(), StorageError> {
        let (source_file, source_directory) = self.object_paths(source)?;
        let (destination_file, destination_directory) = self.object_paths(destination)?;
        let root = self.root.clone();
        blocking("move", source, move || {
            if fs::metadata(&source_file)?.is_dir() {
                return Err(io::ErrorKind::NotFound.into());
            }
            // Before the rename, so the object never appears at its destination with its old time.
            refresh_modified(&source_file);
            let mut attempt = 0;
            loop {
                match fs::rename(&source_file, &destination_file) {
                    Ok(()) => break,
                    // Either the source went away or the destination's directory is missing (or
                    // was just removed by a concurrent delete that found it empty).
                    Err(error)
                        if error.kind() == io::ErrorKind::NotFound
                            && attempt < DIRECTORY_RACE_RETRIES =>
                    {
                        fs::symlink_metadata(&source_file)?;
                        create_directories_racing_deletes(&destination_directory)?;
                    }
                    Err(error) => return Err(error),
                }
                attempt += 1;
            }
            sync_surviving_directory(&destination_directory)?;
            remove_empty_directories(&root, &source_directory);
            Ok(())
        })
        .await
    }

    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        let file_path = self.file_path(path);
        let root = self.root.clone();
        let is_root = path.is_root();
        blocking("delete", path, move || {
            if is_root {
                // The root itself stays: listing an empty driver is Ok, not NotFound.
                let mut deleted_any = false;
                for entry in fs::read_dir(&root)? {
                    let entry = entry?;
                    remove_entry(&entry.path())?;
                    deleted_any = true;
                }
                return if deleted_any {
                    Ok(())
                } else {
                    Err(io::ErrorKind::NotFound.into())
                };
            }
            remove_entry(&file_path)?;
            if let Some(parent) = file_path.parent() {
                remove_empty_directories(&root, parent);
            }
            Ok(())
        })
        .await
    }

    /// One blocking call per directory (read it and stat every child) rather than the default's
    /// one `list` plus one `stat` per entry.
    async fn walk(
        &self,
        from: &StoragePath,
        visitor: &mut WalkVisitor<'_>,
    ) -> Result<(), StorageError> {
        let mut pending = vec![self.list_infos(from).await?.into_iter()];
        while let Some(children) = pending.last_mut() {
            let Some(info) = children.next() else {
                pending.pop();
                continue;
            };
            match visitor(&info) {
                WalkControl::Stop => return Ok(()),
                WalkControl::Continue if info.is_dir => match self.list_infos(&info.path).await {
                    Ok(grandchildren) => pending.push(grandchildren.into_iter()),
                    Err(StorageError::NotFound { .. }) => {}
                    Err(error) => return Err(error),
                },
                WalkControl::Continue | WalkControl::SkipDir => {}
            }
        }
        Ok(())
    }
}

/// What opening a reader found.
enum OpenedReader {
    /// The offset is past the end of the object.
    PastEnd,
    /// Nothing to read: the offset is the size, or the length is 0.
    Empty,
    /// `remaining` bytes to read from `file`, positioned at the offset.
    Stream { file: File, remaining: u64 },
}

/// Streams `remaining` bytes of `file` in [`READ_CHUNK`] chunks, each read on a blocking thread.
///
/// The next chunk is read while the consumer handles the current one, but no blocking thread is
/// held while the consumer is slow: a pool thread is busy only for the read itself, so thousands of
/// slow downloads cannot starve the blocking pool.
fn read_stream(path: StoragePath, file: File, remaining: u64) -> ByteStream {
    struct State {
        path: StoragePath,
        remaining: u64,
        next: Option<JoinHandle<io::Result<ReadChunk>>>,
    }

    let first = read_chunk(file, remaining);
    let state = State {
        path,
        remaining,
        next: Some(first),
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        let pending = state.next.take()?;
        let read = match pending.await {
            Ok(read) => read,
            Err(join_error) => {
                return Some((Err(join_failed("read", &state.path, join_error)), state));
            }
        };
        match read {
            Ok((_, chunk)) if chunk.is_empty() => {
                // The file shrank after the reader was opened. This driver replaces files by
                // renaming and never truncates them, so something else changed it: never end
                // short silently.
                let error = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended before the expected length",
                );
                Some((Err(backend("read", &state.path, error)), state))
            }
            Ok((file, chunk)) => {
                state.remaining = state.remaining.saturating_sub(chunk.len() as u64);
                if let Some(file) = file
                    && state.remaining > 0
                {
                    state.next = Some(read_chunk(file, state.remaining));
                }
                Some((Ok(chunk), state))
            }
            Err(error) => Some((Err(io_error("read", &state.path, error)), state)),
        }
    }))
}

/// A chunk read, and the file if there is more to read.
type ReadChunk = (Option<File>, Bytes);

/// Reads the next chunk of at most [`READ_CHUNK`] and at most `remaining` bytes on a blocking
/// thread. The file comes back while there is more to read; after the last chunk it is closed
/// there too, not on an async thread.
fn read_chunk(file: File, remaining: u64) -> JoinHandle<io::Result<ReadChunk>> {
    let want = usize::try_from(remaining).map_or(READ_CHUNK, |remaining| remaining.min(READ_CHUNK));
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(want);
        (&file).take(want as u64).read_to_end(&mut chunk)?;
        let more = (chunk.len() as u64) < remaining;
        Ok((more.then_some(file), Bytes::from(chunk)))
    })
}

/// A writer to a file; see [`FilesystemDriver`].
///
/// Without append the content goes to a temporary file that `close` or `commit` renames over the
/// object, so the previous content stays readable until then. With append the content is appended
/// to the object's file in place.
///
/// Chunks are collected, without copying, into batches of [`WRITE_BATCH`] bytes, each written on a
/// blocking thread while the next is received (at most one batch in flight). With direct I/O
/// ([`FilesystemDriver::with_direct_io`]) a writer whose data reaches a full batch writes it with
/// `O_DIRECT`, bypassing the page cache; small objects, appends to objects whose size is not a
/// multiple of 4096 bytes, filesystems without direct I/O and the last few bytes of every object go
/// through the page cache. The details are in the `output` module.
struct FilesystemWriter {
    path: StoragePath,
    root: PathBuf,
    /// The object's file.
    target: PathBuf,
    /// The temporary file written instead of `target`, until it is renamed.
    temp: Option<PathBuf>,
    /// The open file, unless a batch is being written on a blocking thread (`in_flight`), or an
    /// earlier failure lost it.
    file: Option<OutputFile>,
    /// The batch being written; gives the file back when done.
    in_flight: Option<JoinHandle<(OutputFile, io::Result<()>)>>,
    /// Chunks not yet handed to a blocking thread, kept as they came (no copy).
    buffer: Vec<Bytes>,
    /// Bytes in `buffer`.
    buffered: usize,
    /// Total size of the object so far.
    size: u64,
}

impl FilesystemWriter {
    /// The file back from the batch in flight, or the idle file; an error the batch ran into.
    async fn take_file(&mut self) -> Result<OutputFile, StorageError> {
        if let Some(in_flight) = self.in_flight.take() {
            let (file, written) = in_flight
                .await
                .map_err(|join_error| join_failed("write", &self.path, join_error))?;
            written.map_err(|error| io_error("write", &self.path, error))?;
            return Ok(file);
        }
        self.file.take().ok_or_else(|| {
            let error = io::Error::other("an earlier write through this writer failed");
            backend("write", &self.path, error)
        })
    }

    /// Flushes what is buffered and, for a temporary file, renames it over the object; with
    /// `durable`, syncs the file before and its directory after.
    async fn finish(mut self: Box<Self>, durable: bool) -> Result<(), StorageError> {
        let operation = if durable { "commit" } else { "close" };
        let mut file = self.take_file().await?;
        let batch = std::mem::take(&mut self.buffer);
        // From here on the blocking task owns the temporary file and removes it on failure.
        let temp = self.temp.take();
        let target = self.target.clone();
        blocking(operation, &self.path, move || {
            let finished = (|| {
                file.write_last(batch)?;
                if durable {
                    file.sync_all()?;
                }
                drop(file);
                if let Some(temp) = &temp {
                    fs::rename(temp, &target)?;
                }
                match target.parent() {
                    Some(directory) if durable => sync_directory(directory),
                    _ => Ok(()),
                }
            })();
            if finished.is_err()
                && let Some(temp) = &temp
            {
                let _ = fs::remove_file(temp);
            }
            finished
        })
        .await
    }
}

#[async_trait]
impl FileWriter for FilesystemWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.size += chunk.len() as u64;
        self.buffered += chunk.len();
        self.buffer.push(chunk);
        if self.buffered >= WRITE_BATCH {
            // At most one batch in flight: wait for the previous one, then hand this one over and
            // go on receiving the next while it is written.
            let mut file = self.take_file().await?;
            let batch = std::mem::take(&mut self.buffer);
            self.buffered = 0;
            self.in_flight = Some(tokio::task::spawn_blocking(move || {
                let written = file.write_batch(batch);
                (file, written)
            }));
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn close(self: Box<Self>) -> Result<(), StorageError> {
        self.finish(false).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StorageError> {
        self.finish(true).await
    }

    async fn cancel(mut self: Box<Self>) -> Result<(), StorageError> {
        if let Some(in_flight) = self.in_flight.take() {
            // The batch's outcome does not matter: everything is being removed.
            let _ = in_flight.await;
        }
        let file = self.file.take();
        let temp = self.temp.take();
        let target = self.target.clone();
        let root = self.root.clone();
        blocking("cancel", &self.path, move || {
            drop(file);
            for file in temp.iter().chain([&target]) {
                match fs::remove_file(file) {
                    Err(error) if !is_missing(&error) => return Err(error),
                    _ => {}
                }
            }
            if let Some(directory) = target.parent() {
                remove_empty_directories(&root, directory);
            }
            Ok(())
        })
        .await
    }

    async fn abandon(mut self: Box<Self>) -> Result<(), StorageError> {
        if let Some(in_flight) = self.in_flight.take() {
            // The batch's outcome does not matter: nothing it wrote is kept.
            let _ = in_flight.await;
        }
        let file = self.file.take();
        // An appending writer wrote in place, and that stays.
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        let root = self.root.clone();
        blocking("abandon", &self.path, move || {
            drop(file);
            match fs::remove_file(&temp) {
                Err(error) if !is_missing(&error) => return Err(error),
                _ => {}
            }
            if let Some(directory) = temp.parent() {
                remove_empty_directories(&root, directory);
            }
            Ok(())
        })
        .await
    }
}

impl Drop for FilesystemWriter {
    fn drop(&mut self) {
        // Dropped without close, commit or cancel: the temporary file is garbage. Appended bytes
        // stay (removing them could race with a writer opened after this one).
        let Some(temp) = self.temp.take() else {
            return;
        };
        let root = self.root.clone();
        let clean_up = move || {
            let _ = fs::remove_file(&temp);
            if let Some(directory) = temp.parent() {
                remove_empty_directories(&root, directory);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(clean_up)),
            // No runtime, so no async thread to block.
            Err(_) => clean_up(),
        }
    }
}

/// The entries of `directory` whose names are valid path segments, as children of `listed`, with
/// their files and whether the directory entry says it is a directory (not a link to one). A
/// missing root is an empty driver, not an error.
fn read_children(
    directory: &Path,
    listed: &StoragePath,
    is_root: bool,
) -> io::Result<Vec<(StoragePath, PathBuf, bool)>> {
    let entries = match fs::read_dir(directory) {
        Err(error) if is_root && error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries?,
    };
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry?;
        // Temporary files and names no StoragePath can spell are not part of the store.
        let child = entry
            .file_name()
            .to_str()
            .and_then(|name| listed.join(name).ok());
        if let Some(child) = child {
            let is_real_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            children.push((child, entry.path(), is_real_dir));
        }
    }
    Ok(children)
}

fn file_info(path: StoragePath, metadata: &fs::Metadata) -> FileInfo {
    let is_dir = metadata.is_dir();
    FileInfo {
        path,
        size: if is_dir { 0 } else { metadata.len() },
        modified: metadata.modified().ok(),
        is_dir,
    }
}

/// The whole file at `file_path` and what `fstat` says of it, read through one open file; a
/// directory is `NotFound` (it is not an object).
fn read_whole(file_path: &Path) -> io::Result<(Bytes, fs::Metadata)> {
    let mut file = File::open(file_path)?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(io::ErrorKind::NotFound.into());
    }
    let mut content = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut content)?;
    Ok((Bytes::from(content), metadata))
}

/// Why a conditional write placed nothing.
enum Refusal {
    /// `Create` found an object.
    Exists,
    /// `Update` found the object changed or gone.
    Changed,
}

/// Gives the finished `temp` the name `target` too, unless `target` exists: `link(2)` never
/// replaces a name, so this is create-if-absent, atomic across processes.
fn link_if_absent(temp: &Path, target: &Path) -> io::Result<Result<(), Refusal>> {
    match fs::hard_link(temp, target) {
        Ok(()) => Ok(Ok(())),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(Err(Refusal::Exists)),
        Err(error) => Err(error),
    }
}

/// Renames the finished `temp` over `target` if `target` is still the version `expected`, holding
/// the lock of `directory` (see [`lock_directory`]) from the check to the rename.
fn replace_if_unchanged(
    temp: &Path,
    target: &Path,
    directory: &Path,
    expected: &ObjectVersion,
) -> io::Result<Result<(), Refusal>> {
    let _lock = lock_directory(directory)?;
    let current = match fs::metadata(target) {
        Ok(metadata) if metadata.is_file() => version_of(&metadata),
        Ok(_) => return Ok(Err(Refusal::Changed)),
        Err(error) if is_missing(&error) => return Ok(Err(Refusal::Changed)),
        Err(error) => return Err(error),
    };
    if &current != expected {
        return Ok(Err(Refusal::Changed));
    }
    fs::rename(temp, target)?;
    Ok(Ok(()))
}

/// An exclusive `flock` on `directory`, released when the returned file is dropped (or the
/// process dies: a crash never leaves the lock held).
///
/// The caller's temporary file keeps the directory from being removed as empty, but a delete of
/// the whole tree can still remove it and another writer recreate it between the open and the
/// lock; a lock on the removed directory would exclude nobody, so the lock is taken again until
/// the directory locked is the one at the path.
fn lock_directory(directory: &Path) -> io::Result<File> {
    for _ in 0..DIRECTORY_RACE_RETRIES {
        let opened = File::open(directory)?;
        opened.lock()?;
        if same_file(&opened.metadata()?, &fs::metadata(directory)?) {
            return Ok(opened);
        }
    }
    Err(io::Error::other(format!(
        "{} was replaced again and again while being locked",
        directory.display()
    )))
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.created().ok() == b.created().ok()
}

/// The version of the file `metadata` describes: which file it is (a replacement is a new file,
/// renamed over the old), how large, and when last written (appends in place change both).
#[cfg(unix)]
fn version_of(metadata: &fs::Metadata) -> ObjectVersion {
    use std::os::unix::fs::MetadataExt;
    ObjectVersion::new(format!(
        "{:x}-{:x}-{:x}-{:x}.{:09}",
        metadata.dev(),
        metadata.ino(),
        metadata.size(),
        metadata.mtime(),
        metadata.mtime_nsec()
    ))
}

#[cfg(not(unix))]
fn version_of(metadata: &fs::Metadata) -> ObjectVersion {
    let written = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |elapsed| elapsed.as_nanos());
    ObjectVersion::new(format!("{:x}-{written:x}", metadata.len()))
}

/// A name for a temporary entry that no other thread or process on the host picks at the same
/// time (and no [`StoragePath`] can name).
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "{TEMP_PREFIX}{:x}-{:x}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a new, uniquely named temporary file in `directory`, creating the directory if needed.
fn create_temp_file(directory: &Path) -> io::Result<(PathBuf, File)> {
    let mut attempt = 0;
    loop {
        let temp = directory.join(temp_name());
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(error) if attempt < DIRECTORY_RACE_RETRIES => match error.kind() {
                // Missing, or removed as empty by a concurrent delete since we created it.
                io::ErrorKind::NotFound => create_directories_racing_deletes(directory)?,
                // Another process picked the same name.
                io::ErrorKind::AlreadyExists => {}
                io::ErrorKind::NotADirectory => {
                    return Err(io::Error::other(format!(
                        "a parent of {} is an object, not a directory",
                        temp.display()
                    )));
                }
                _ => return Err(error),
            },
            Err(error) => return Err(error),
        }
        attempt += 1;
    }
}

/// Writes `content` to a new temporary file in `directory` (flushed when `durable`) and hands its
/// path to `place`, which gives it the object's name; the temporary name is removed afterwards if
/// `place` left it. Returns what `place` answered and the file, which is the object if placed.
///
/// A delete of the directory's tree (garbage collection removing a link directory) can remove the
/// temporary file before it is placed. That delete came first, so the write starts again with a
/// new file rather than failing with the `NotFound` of a path the caller never asked to read.
fn place_new_file<T>(
    directory: &Path,
    content: &[u8],
    durable: bool,
    place: impl Fn(&Path) -> io::Result<T>,
) -> io::Result<(T, File)> {
    let mut attempt = 0;
    loop {
        let (temp, mut file) = create_temp_file(directory)?;
        let placed = (|| {
            file.write_all(content)?;
            if durable {
                file.sync_all()?;
            }
            place(&temp)
        })();
        // After a link, or when nothing was placed, the temporary name is garbage (best effort:
        // the error or the object that matters is already decided); after a rename it is gone.
        let _ = fs::remove_file(&temp);
        match placed {
            Err(error)
                if error.kind() == io::ErrorKind::NotFound && attempt < DIRECTORY_RACE_RETRIES =>
            {
                attempt += 1;
            }
            placed => return placed.map(|placed| (placed, file)),
        }
    }
}

/// [`sync_directory`] after placing an object in `directory`: when a delete of the tree removed
/// the directory since, it came after the write and there is nothing left to make durable.
fn sync_surviving_directory(directory: &Path) -> io::Result<()> {
    match sync_directory(directory) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        synced => synced,
    }
}

/// Creates `directory` and any missing parents, syncing each parent that gained an entry so the
/// new directories survive a crash.
fn create_directories(directory: &Path) -> io::Result<()> {
    match fs::create_dir(directory) {
        Ok(()) => sync_parent(directory),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            if fs::metadata(directory)?.is_dir() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "{} is an object, so it cannot hold other objects",
                    directory.display()
                )))
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let Some(parent) = directory.parent() else {
                return Err(error);
            };
            create_directories(parent)?;
            match fs::create_dir(directory) {
                Ok(()) => sync_parent(directory),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(error) => Err(error),
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
            Err(io::Error::other(format!(
                "a parent of {} is an object, not a directory",
                directory.display()
            )))
        }
        Err(error) => Err(error),
    }
}

/// [`create_directories`] for a caller that retries: a concurrent delete may remove a directory
/// it has just created (found empty) before the subdirectory is made, which the retry handles.
fn create_directories_racing_deletes(directory: &Path) -> io::Result<()> {
    match create_directories(directory) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        created => created,
    }
}

fn sync_parent(directory: &Path) -> io::Result<()> {
    match directory.parent() {
        Some(parent) => sync_directory(parent),
        None => Ok(()),
    }
}

/// Marks the object at `file` as written now, as object storage's copy does when it moves an
/// object: garbage collection's grace period counts from the move (a blob completing an upload
/// whose last byte came long ago must not look old). Best effort: without ownership of the file
/// (a data directory written by another user) the time stays, and the move stands.
fn refresh_modified(file: &Path) {
    let _ = File::open(file).and_then(|opened| opened.set_modified(SystemTime::now()));
}

/// Makes the entries of `directory` (a rename, a new file) durable.
fn sync_directory(directory: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(directory)?.sync_all()
    } else {
        Ok(())
    }
}

/// Removes the file or the whole directory tree at `path` (a symbolic link itself, not its target).
///
/// A tree is first renamed to a temporary name beside it, which takes it away from every path at
/// once: a writer adding to it meanwhile finds its directory gone and starts again in a new one
/// (see [`place_new_file`]), rather than both racing entry by entry. A crash before the removal
/// ends leaves the renamed tree, which no listing shows.
fn remove_entry(path: &Path) -> io::Result<()> {
    if !fs::symlink_metadata(path)?.is_dir() {
        return fs::remove_file(path);
    }
    let doomed = path.with_file_name(temp_name());
    fs::rename(path, &doomed)?;
    let mut attempt = 0;
    loop {
        match fs::remove_dir_all(&doomed) {
            // A writer that found the directory just before the rename added a file after the
            // removal emptied it; nobody can find it any more, so this ends.
            Err(error)
                if error.kind() == io::ErrorKind::DirectoryNotEmpty
                    && attempt < DIRECTORY_RACE_RETRIES => {}
            removed => return removed,
        }
        attempt += 1;
    }
}

/// Removes `directory` and then each parent while they are empty, stopping below `root`.
fn remove_empty_directories(root: &Path, directory: &Path) {
    let mut current = directory;
    while current != root && current.starts_with(root) {
        // Not empty (or already gone): the directories above are not empty either.
        if fs::remove_dir(current).is_err() {
            return;
        }
        match current.parent() {
            Some(parent) => current = parent,
            None => return,
        }
    }
}

/// The file or directory `path` names below `root`; see [`FilesystemDriver::file_path`].
fn file_below(root: &Path, path: &StoragePath) -> PathBuf {
    let mut file = root.to_path_buf();
    for segment in path.segments() {
        file.push(segment);
    }
    file
}

fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Runs `work` on tokio's blocking pool and converts its error for `operation` on `path`.
async fn blocking<T, F>(
    operation: &'static str,
    path: &StoragePath,
    work: F,
) -> Result<T, StorageError>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|error| io_error(operation, path, error)),
        Err(join_error) => Err(join_failed(operation, path, join_error)),
    }
}

/// `NotFound` for a missing file (or a path through an object, which cannot exist either),
/// `Backend` for anything else.
fn io_error(operation: &'static str, path: &StoragePath, error: io::Error) -> StorageError {
    if is_missing(&error) {
        StorageError::NotFound { path: path.clone() }
    } else {
        backend(operation, path, error)
    }
}

fn backend(operation: &'static str, path: &StoragePath, error: io::Error) -> StorageError {
    StorageError::Backend {
        driver: DRIVER,
        operation,
        path: path.clone(),
        source: Box::new(error),
    }
}

fn join_failed(
    operation: &'static str,
    path: &StoragePath,
    error: tokio::task::JoinError,
) -> StorageError {
    StorageError::Backend {
        driver: DRIVER,
        operation,
        path: path.clone(),
        source: Box::new(error),
    }
}

/// Test data: `length` bytes that repeat nowhere near a block or batch boundary, different for
/// each `seed`, so a block lost, written twice or misplaced shows.
#[cfg(test)]
fn pattern(length: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Component;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::testsuite;

    fn driver() -> (tempfile::TempDir, FilesystemDriver) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let driver = FilesystemDriver::new(directory.path().join("root")).expect("driver");
        (directory, driver)
    }

    fn path(path: &str) -> StoragePath {
        StoragePath::parse(path).expect("valid path")
    }

    /// Every file and directory below `directory`, relative to it. Entries removed while it looks
    /// (by a clean-up running on the blocking pool) are skipped.
    fn tree(directory: &Path) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut pending = vec![directory.to_path_buf()];
        while let Some(current) = pending.pop() {
            let entries = match fs::read_dir(&current) {
                Err(error) if error.kind() == io::ErrorKind::NotFound && current != directory => {
                    continue;
                }
                entries => entries.expect("read_dir"),
            };
            for entry in entries {
                let entry = entry.expect("entry");
                let relative = entry
                    .path()
                    .strip_prefix(directory)
                    .expect("below")
                    .to_owned();
                found.insert(relative.to_string_lossy().into_owned());
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    pending.push(entry.path());
                }
            }
        }
        found
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_testsuite() {
        let (_directory, driver) = driver();
        testsuite::run_all(&driver).await;
        assert_eq!(
            tree(driver.root()),
            BTreeSet::new(),
            "the root is empty again"
        );
    }

    #[tokio::test]
    async fn passes_the_testsuite_on_a_current_thread_runtime() {
        let (_directory, driver) = driver();
        testsuite::run_all(&driver).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_testsuite_with_direct_io() {
        let (_directory, driver) = driver();
        testsuite::run_all(&driver.with_direct_io(true)).await;
    }

    #[tokio::test]
    async fn a_moved_object_counts_as_written_at_the_move() {
        let (_directory, driver) = driver();
        let (source, destination) = (path("/uploads/data"), path("/blobs/data"));
        driver
            .put_content(&source, Bytes::from_static(b"old bytes"))
            .await
            .expect("put");
        let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
        File::open(driver.root().join("uploads/data"))
            .and_then(|file| file.set_modified(two_hours_ago))
            .expect("age the source");
        driver
            .move_object(&source, &destination)
            .await
            .expect("move");
        let modified = driver
            .stat(&destination)
            .await
            .expect("stat")
            .modified
            .expect("a modified time");
        assert!(
            modified > SystemTime::now() - Duration::from_secs(60),
            "the moved object still looks two hours old: {modified:?}"
        );
    }

    #[test]
    fn new_creates_the_root_directory() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let root = directory.path().join("a/b/root");
        let driver = FilesystemDriver::new(&root).expect("driver");
        assert!(root.is_dir());
        assert_eq!(driver.root(), root);
    }

    #[tokio::test]
    async fn objects_are_files_in_the_registry_layout() {
        let (_directory, driver) = driver();
        let link =
            path("/docker/registry/v2/repositories/library/alpine/_manifests/tags/3/current/link");
        driver
            .put_content(&link, Bytes::from_static(b"sha256:abc"))
            .await
            .expect("put");
        let file = driver
            .root()
            .join("docker/registry/v2/repositories/library/alpine/_manifests/tags/3/current/link");
        assert_eq!(fs::read(file).expect("the file exists"), b"sha256:abc");
    }

    #[tokio::test]
    async fn serves_files_written_by_others() {
        let (_directory, driver) = driver();
        fs::create_dir_all(driver.root().join("docker/registry")).expect("mkdir");
        fs::write(driver.root().join("docker/registry/data"), b"hello").expect("write");
        assert_eq!(
            driver
                .get_content(&path("/docker/registry/data"))
                .await
                .expect("get"),
            "hello"
        );
        assert_eq!(
            driver.list(&path("/docker")).await.expect("list"),
            vec![path("/docker/registry")]
        );
    }

    #[tokio::test]
    async fn put_content_leaves_no_temporary_files() {
        let (_directory, driver) = driver();
        for round in 0..5u8 {
            driver
                .put_content(&path("/a/b"), Bytes::from(vec![round; 3 << 20]))
                .await
                .expect("put");
            driver
                .put_content(&path("/a/.c"), Bytes::from(vec![round; 10]))
                .await
                .expect("put");
        }
        assert_eq!(
            tree(driver.root()),
            BTreeSet::from(["a".into(), "a/b".into(), "a/.c".into()])
        );
    }

    #[tokio::test]
    async fn open_writer_is_invisible_until_closed() {
        let (_directory, driver) = driver();
        let object = path("/dir/object");
        driver
            .put_content(&path("/dir/other"), Bytes::from_static(b"x"))
            .await
            .expect("put");
        let mut writer = driver.writer(&object, false).await.expect("writer");
        writer
            .write(Bytes::from(vec![1; 3 << 20]))
            .await
            .expect("write");
        assert_eq!(
            tree(driver.root()).len(),
            3,
            "the temporary file exists on disk"
        );
        assert_eq!(
            driver.list(&path("/dir")).await.expect("list"),
            vec![path("/dir/other")]
        );
        assert!(
            driver
                .stat(&object)
                .await
                .expect_err("not there yet")
                .is_not_found()
        );
        writer.close().await.expect("close");
        assert_eq!(
            driver.list(&path("/dir")).await.expect("list"),
            vec![path("/dir/object"), path("/dir/other")]
        );
        assert_eq!(
            tree(driver.root()).len(),
            3,
            "the temporary file was renamed"
        );
    }

    #[tokio::test]
    async fn dropped_writer_removes_its_temporary_file_and_directory() {
        let (_directory, driver) = driver();
        let mut writer = driver
            .writer(&path("/new/dir/object"), false)
            .await
            .expect("writer");
        writer
            .write(Bytes::from(vec![1; 3 << 20]))
            .await
            .expect("write");
        drop(writer);
        // The clean-up runs on the blocking pool: give it time, without asserting on timing.
        for _ in 0..500 {
            if tree(driver.root()).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("left behind: {:?}", tree(driver.root()));
    }

    #[tokio::test]
    async fn dropped_append_writer_keeps_what_was_closed() {
        let (_directory, driver) = driver();
        let object = path("/upload/data");
        let mut writer = driver.writer(&object, false).await.expect("writer");
        writer
            .write(Bytes::from_static(b"closed"))
            .await
            .expect("write");
        writer.close().await.expect("close");
        let mut writer = driver.writer(&object, true).await.expect("append");
        writer
            .write(Bytes::from_static(b" lost"))
            .await
            .expect("write");
        drop(writer);
        assert_eq!(driver.get_content(&object).await.expect("get"), "closed");
    }

    #[tokio::test]
    async fn delete_of_the_root_empties_it_but_keeps_it() {
        let (_directory, driver) = driver();
        driver
            .put_content(&path("/a/b"), Bytes::from_static(b"x"))
            .await
            .expect("put");
        driver
            .put_content(&path("/c"), Bytes::from_static(b"y"))
            .await
            .expect("put");
        driver.delete(&StoragePath::root()).await.expect("delete");
        assert!(driver.root().is_dir());
        assert_eq!(
            driver.list(&StoragePath::root()).await.expect("list"),
            Vec::<StoragePath>::new()
        );
        assert!(
            driver
                .delete(&StoragePath::root())
                .await
                .expect_err("empty")
                .is_not_found()
        );
    }

    #[tokio::test]
    async fn missing_root_lists_as_empty() {
        let (_directory, driver) = driver();
        fs::remove_dir(driver.root()).expect("remove root");
        assert_eq!(
            driver.list(&StoragePath::root()).await.expect("list"),
            Vec::<StoragePath>::new()
        );
        driver
            .put_content(&path("/a"), Bytes::from_static(b"x"))
            .await
            .expect("put recreates the root");
        assert_eq!(driver.get_content(&path("/a")).await.expect("get"), "x");
    }

    #[tokio::test]
    async fn put_below_an_object_is_a_backend_error() {
        let (_directory, driver) = driver();
        driver
            .put_content(&path("/a"), Bytes::from_static(b"x"))
            .await
            .expect("put");
        let error = driver
            .put_content(&path("/a/b"), Bytes::from_static(b"y"))
            .await
            .expect_err("a is a file");
        assert!(
            matches!(
                error,
                StorageError::Backend {
                    driver: "filesystem",
                    operation: "write",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn reader_yields_chunks_of_at_most_one_mebibyte() {
        let (_directory, driver) = driver();
        let object = path("/large");
        driver
            .put_content(&object, Bytes::from(vec![7; (5 << 20) + 3]))
            .await
            .expect("put");
        let mut stream = driver.reader(&object, 1, None).await.expect("reader");
        let mut sizes = Vec::new();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            sizes.push(chunk.expect("chunk").len());
        }
        assert_eq!(
            sizes,
            vec![
                READ_CHUNK, READ_CHUNK, READ_CHUNK, READ_CHUNK, READ_CHUNK, 2
            ]
        );
    }

    /// Writes `data` in chunks of odd sizes, smaller and larger than a batch.
    async fn write_in_odd_chunks(writer: &mut dyn FileWriter, data: &[u8]) {
        let sizes = [7, 65_537, (1 << 20) + 3, 1, 300_001, 4096];
        let mut at = 0;
        for size in sizes.iter().cycle() {
            if at == data.len() {
                break;
            }
            let end = (at + size).min(data.len());
            writer
                .write(Bytes::copy_from_slice(&data[at..end]))
                .await
                .expect("write");
            at = end;
        }
    }

    async fn assert_content(driver: &FilesystemDriver, object: &StoragePath, expected: &[u8]) {
        let content = driver.get_content(object).await.expect("get");
        assert_eq!(content.len(), expected.len(), "size of {object}");
        assert!(content == expected, "content of {object} differs");
    }

    /// A write of several MiB, not a whole number of blocks, read back after commit.
    async fn check_large_write(driver: &FilesystemDriver) {
        let object = path("/large/write");
        let data = pattern((7 << 20) + 4093, 1);
        let mut writer = driver.writer(&object, false).await.expect("writer");
        write_in_odd_chunks(writer.as_mut(), &data).await;
        assert_eq!(writer.size(), data.len() as u64);
        writer.commit().await.expect("commit");
        assert_content(driver, &object, &data).await;
    }

    /// Written, closed, continued by an append writer from `first` bytes (a whole number of blocks
    /// or not) and committed.
    async fn check_large_append(driver: &FilesystemDriver, first: usize) {
        let object = path(&format!("/large/append-{first}"));
        let data = pattern(first + (5 << 20) + 111, 2);
        let mut writer = driver.writer(&object, false).await.expect("writer");
        write_in_odd_chunks(writer.as_mut(), &data[..first]).await;
        writer.close().await.expect("close");
        assert_content(driver, &object, &data[..first]).await;
        let mut writer = driver.writer(&object, true).await.expect("append");
        assert_eq!(writer.size(), first as u64);
        write_in_odd_chunks(writer.as_mut(), &data[first..]).await;
        assert_eq!(writer.size(), data.len() as u64);
        writer.commit().await.expect("commit");
        assert_content(driver, &object, &data).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_write_in_odd_chunks_reads_back_unchanged() {
        let (_directory, driver) = driver();
        for direct_io in [false, true] {
            check_large_write(&driver.clone().with_direct_io(direct_io)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_append_after_close_reads_back_unchanged() {
        let (_directory, driver) = driver();
        // Continuing at a whole number of blocks (direct I/O again), and in the middle of one
        // (buffered to the end), and after a small first part.
        for direct_io in [false, true] {
            let driver = driver.clone().with_direct_io(direct_io);
            for first in [3 << 20, (2 << 20) + 4099, 10] {
                check_large_append(&driver, first).await;
            }
        }
    }

    /// tmpfs took no direct I/O before Linux 6.6: there the writer falls back to buffered writes;
    /// on newer kernels this checks direct I/O on another filesystem.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_writes_on_tmpfs_read_back_unchanged() {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        let directory = tempfile::tempdir_in(shm).expect("temporary directory in /dev/shm");
        let driver = FilesystemDriver::new(directory.path().join("root"))
            .expect("driver")
            .with_direct_io(true);
        check_large_write(&driver).await;
        for first in [1 << 20, (1 << 20) + 1] {
            check_large_append(&driver, first).await;
        }
    }

    #[test]
    fn traversal_attempts_are_not_paths() {
        for attempt in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc",
            "/a/./b",
            "/.",
            "//etc",
            "/a//b",
            "etc/passwd",
            "/a\\..\\b",
            "/a/b/",
            "/%2e%2e/x",
            "/a\0/b",
            "/~/x",
            "/a b",
        ] {
            assert!(StoragePath::parse(attempt).is_err(), "{attempt:?} parsed");
        }
        assert!(StoragePath::root().join("..").is_err());
        assert!(StoragePath::root().join_all("a/../..").is_err());
    }

    proptest! {
        #[test]
        fn no_path_resolves_outside_the_root(input in "(/[a-zA-Z0-9._~\\\\-]{0,4}){1,6}") {
            let root = PathBuf::from("/srv/registry");
            let driver = FilesystemDriver { root: root.clone(), direct_io: false, stat_threads: 1 };
            if let Ok(parsed) = StoragePath::parse(&input) {
                let file = driver.file_path(&parsed);
                prop_assert!(file.starts_with(&root));
                let below = file.strip_prefix(&root).expect("below the root");
                prop_assert!(below.components().all(|c| matches!(c, Component::Normal(_))));
                prop_assert_eq!(below.components().count(), parsed.segments().count());
            }
        }

        #[test]
        fn temporary_file_names_are_never_paths(name in "[a-z0-9]{1,8}") {
            let temp = format!("{TEMP_PREFIX}{name}");
            prop_assert!(StoragePath::root().join(&temp).is_err());
        }
    }
}
