//! Fault injection for tests: [`FaultyDriver`] wraps any driver and fails or stalls the operations
//! a test chooses (the Nth write below some path, every commit, ...), in the spirit of
//! object_store's `ThrottledStore`. Everything else passes through unchanged.
//!
//! ```ignore
//! let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
//! // The second write of any upload's data fails as a full disk does.
//! driver.inject(Fault::fail(Operation::Write).on_path("/_uploads/").nth(2).storage_full());
//! // The next move stops until the test lets it go on.
//! let (fault, stall) = Fault::stall(Operation::Move);
//! driver.inject(fault);
//! // ... start a request, then:
//! stall.reached().await;
//! stall.release();
//! ```
//!
//! Enabled by the crate feature `faults`.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::{
    ByteStream, Durability, FileInfo, FileWriter, ObjectVersion, PutMode, StorageDriver,
    StorageError, StoragePath, WalkVisitor,
};

/// An operation of a driver or of one of its writers, as a fault selects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// [`StorageDriver::get_content`].
    GetContent,
    /// [`StorageDriver::get_content_versioned`].
    GetContentVersioned,
    /// [`StorageDriver::put_content`].
    PutContent,
    /// [`StorageDriver::put_content_if`].
    PutContentIf,
    /// [`StorageDriver::reader`] (opening it).
    Reader,
    /// [`StorageDriver::writer`] (opening it).
    Writer,
    /// [`FileWriter::write`].
    Write,
    /// [`FileWriter::close`].
    Close,
    /// [`FileWriter::commit`].
    Commit,
    /// [`FileWriter::cancel`].
    Cancel,
    /// [`StorageDriver::stat`].
    Stat,
    /// [`StorageDriver::list`].
    List,
    /// [`StorageDriver::move_object`] (matched on its source path).
    Move,
    /// [`StorageDriver::delete`].
    Delete,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::GetContent => "get_content",
            Operation::GetContentVersioned => "get_content_versioned",
            Operation::PutContent => "put_content",
            Operation::PutContentIf => "put_content_if",
            Operation::Reader => "reader",
            Operation::Writer => "writer",
            Operation::Write => "write",
            Operation::Close => "close",
            Operation::Commit => "commit",
            Operation::Cancel => "cancel",
            Operation::Stat => "stat",
            Operation::List => "list",
            Operation::Move => "move_object",
            Operation::Delete => "delete",
        }
    }
}

/// What a fault does to the operation it hits.
#[derive(Clone, Debug)]
enum Effect {
    /// Fail with a backend error of this kind; nothing of the operation happens.
    Fail(io::ErrorKind),
    /// Answer `NotFound`, as if the object had been deleted just before.
    Vanish,
    /// Wait until the test releases it, then carry on.
    Stall(Stall),
}

/// One fault: which operations it hits and what it does to them. Built with [`Fault::fail`] or
/// [`Fault::stall`] and refined with the other methods.
#[derive(Clone, Debug)]
pub struct Fault {
    operation: Operation,
    path_contains: Option<String>,
    nth: usize,
    repeat: bool,
    effect: Effect,
}

impl Fault {
    /// Fails the first `operation` with a backend I/O error.
    pub fn fail(operation: Operation) -> Fault {
        Fault {
            operation,
            path_contains: None,
            nth: 1,
            repeat: false,
            effect: Effect::Fail(io::ErrorKind::Other),
        }
    }

    /// Answers the first `operation` with `NotFound`, as if a concurrent delete had removed the
    /// object just before (between a `stat` and a `reader`, say).
    pub fn vanish(operation: Operation) -> Fault {
        Fault {
            effect: Effect::Vanish,
            ..Fault::fail(operation)
        }
    }

    /// Stops the first `operation` until [`Stall::release`]; the [`Stall`] tells when it got
    /// there.
    pub fn stall(operation: Operation) -> (Fault, Stall) {
        let stall = Stall::default();
        let fault = Fault {
            operation,
            path_contains: None,
            nth: 1,
            repeat: false,
            effect: Effect::Stall(stall.clone()),
        };
        (fault, stall)
    }

    /// Only operations on paths containing `fragment` count.
    pub fn on_path(mut self, fragment: &str) -> Fault {
        self.path_contains = Some(fragment.to_owned());
        self
    }

    /// Hits the `n`th matching operation (1 is the first) instead of the first.
    pub fn nth(mut self, n: usize) -> Fault {
        self.nth = n.max(1);
        self
    }

    /// Hits every matching operation from the `nth` on, not just that one, until
    /// [`FaultyDriver::clear`].
    pub fn repeatedly(mut self) -> Fault {
        self.repeat = true;
        self
    }

    /// Fails as a full disk does (`ErrorKind::StorageFull`, ENOSPC).
    pub fn storage_full(mut self) -> Fault {
        self.effect = Effect::Fail(io::ErrorKind::StorageFull);
        self
    }
}

/// The handle of a stalling fault: wait for the operation to arrive, then let it go on.
#[derive(Clone, Debug, Default)]
pub struct Stall {
    shared: Arc<StallState>,
}

#[derive(Debug, Default)]
struct StallState {
    reached: AtomicBool,
    reached_changed: Notify,
    released: AtomicBool,
    released_changed: Notify,
}

impl Stall {
    /// Waits until an operation is stopped by this fault.
    pub async fn reached(&self) {
        loop {
            let changed = self.shared.reached_changed.notified();
            if self.shared.reached.load(Ordering::SeqCst) {
                return;
            }
            changed.await;
        }
    }

    /// Whether an operation was stopped by this fault.
    pub fn was_reached(&self) -> bool {
        self.shared.reached.load(Ordering::SeqCst)
    }

    /// Lets the stopped operation (and any later one this fault stops) go on.
    pub fn release(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
        self.shared.released_changed.notify_waiters();
    }

    async fn hold(&self) {
        self.shared.reached.store(true, Ordering::SeqCst);
        self.shared.reached_changed.notify_waiters();
        loop {
            let changed = self.shared.released_changed.notified();
            if self.shared.released.load(Ordering::SeqCst) {
                return;
            }
            changed.await;
        }
    }
}

/// A fault and how many matching operations it has seen.
#[derive(Debug)]
struct Armed {
    fault: Fault,
    seen: usize,
}

type Faults = Arc<Mutex<Vec<Armed>>>;

/// A driver that passes everything to another, except the operations hit by the faults injected
/// with [`FaultyDriver::inject`]. Passes the driver testsuite while no fault is injected.
pub struct FaultyDriver {
    inner: Arc<dyn StorageDriver>,
    faults: Faults,
}

impl fmt::Debug for FaultyDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyDriver")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl FaultyDriver {
    /// `inner`, with no fault yet.
    pub fn new(inner: Arc<dyn StorageDriver>) -> FaultyDriver {
        FaultyDriver {
            inner,
            faults: Arc::default(),
        }
    }

    /// Arms `fault`; it counts only operations started from now on.
    pub fn inject(&self, fault: Fault) {
        lock(&self.faults).push(Armed { fault, seen: 0 });
    }

    /// Disarms every fault (stalled operations stay stalled until released).
    pub fn clear(&self) {
        lock(&self.faults).clear();
    }

    async fn check(&self, operation: Operation, path: &StoragePath) -> Result<(), StorageError> {
        check(&self.faults, operation, path).await
    }
}

fn lock(faults: &Mutex<Vec<Armed>>) -> std::sync::MutexGuard<'_, Vec<Armed>> {
    faults.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts `operation` on `path` against every fault and applies the first that hits it.
async fn check(
    faults: &Mutex<Vec<Armed>>,
    operation: Operation,
    path: &StoragePath,
) -> Result<(), StorageError> {
    let effect = {
        let mut faults = lock(faults);
        let mut hit = None;
        for armed in faults.iter_mut() {
            let fault = &armed.fault;
            let matches = fault.operation == operation
                && fault
                    .path_contains
                    .as_deref()
                    .is_none_or(|fragment| path.as_str().contains(fragment));
            if !matches {
                continue;
            }
            armed.seen += 1;
            let hits = armed.seen == fault.nth || (fault.repeat && armed.seen > fault.nth);
            if hits && hit.is_none() {
                hit = Some(fault.effect.clone());
            }
        }
        hit
    };
    match effect {
        None => Ok(()),
        Some(Effect::Stall(stall)) => {
            stall.hold().await;
            Ok(())
        }
        Some(Effect::Vanish) => Err(StorageError::NotFound { path: path.clone() }),
        Some(Effect::Fail(kind)) => Err(StorageError::Backend {
            driver: "faulty",
            operation: operation.name(),
            path: path.clone(),
            source: Box::new(io::Error::new(kind, "injected fault")),
        }),
    }
}

#[async_trait]
impl StorageDriver for FaultyDriver {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn get_content(&self, path: &StoragePath) -> Result<Bytes, StorageError> {
        self.check(Operation::GetContent, path).await?;
        self.inner.get_content(path).await
    }

    async fn put_content(&self, path: &StoragePath, content: Bytes) -> Result<(), StorageError> {
        self.check(Operation::PutContent, path).await?;
        self.inner.put_content(path, content).await
    }

    async fn get_content_versioned(
        &self,
        path: &StoragePath,
    ) -> Result<(Bytes, ObjectVersion), StorageError> {
        self.check(Operation::GetContentVersioned, path).await?;
        self.inner.get_content_versioned(path).await
    }

    async fn put_content_if(
        &self,
        path: &StoragePath,
        content: Bytes,
        mode: PutMode,
        durability: Durability,
    ) -> Result<ObjectVersion, StorageError> {
        self.check(Operation::PutContentIf, path).await?;
        self.inner
            .put_content_if(path, content, mode, durability)
            .await
    }

    async fn reader(
        &self,
        path: &StoragePath,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteStream, StorageError> {
        self.check(Operation::Reader, path).await?;
        self.inner.reader(path, offset, length).await
    }

    async fn writer(
        &self,
        path: &StoragePath,
        append: bool,
    ) -> Result<Box<dyn FileWriter>, StorageError> {
        self.check(Operation::Writer, path).await?;
        let inner = self.inner.writer(path, append).await?;
        Ok(Box::new(FaultyWriter {
            inner,
            faults: Arc::clone(&self.faults),
            path: path.clone(),
        }))
    }

    async fn stat(&self, path: &StoragePath) -> Result<FileInfo, StorageError> {
        self.check(Operation::Stat, path).await?;
        self.inner.stat(path).await
    }

    async fn stat_many(&self, paths: &[StoragePath]) -> Vec<Result<FileInfo, StorageError>> {
        let mut stats = Vec::with_capacity(paths.len());
        for path in paths {
            stats.push(self.stat(path).await);
        }
        stats
    }

    async fn list(&self, path: &StoragePath) -> Result<Vec<StoragePath>, StorageError> {
        self.check(Operation::List, path).await?;
        self.inner.list(path).await
    }

    async fn move_object(
        &self,
        source: &StoragePath,
        destination: &StoragePath,
    ) -> Result<(), StorageError> {
        self.check(Operation::Move, source).await?;
        self.inner.move_object(source, destination).await
    }

    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        self.check(Operation::Delete, path).await?;
        self.inner.delete(path).await
    }

    async fn delete_object(&self, path: &StoragePath) -> Result<(), StorageError> {
        self.check(Operation::Delete, path).await?;
        self.inner.delete_object(path).await
    }

    async fn redirect_url(&self, path: &StoragePath) -> Result<Option<String>, StorageError> {
        self.inner.redirect_url(path).await
    }

    async fn walk(
        &self,
        from: &StoragePath,
        visitor: &mut WalkVisitor<'_>,
    ) -> Result<(), StorageError> {
        self.check(Operation::List, from).await?;
        self.inner.walk(from, visitor).await
    }
}

/// A writer of a [`FaultyDriver`]: its operations count against the same faults.
struct FaultyWriter {
    inner: Box<dyn FileWriter>,
    faults: Faults,
    path: StoragePath,
}

impl FaultyWriter {
    /// Closes or commits the inner writer unless a fault fails the operation. A failed one still
    /// closes the inner writer before it answers, as a real driver's failed close or commit has
    /// finished its I/O by then: nothing of the writer lands after the error is returned.
    async fn end(self: Box<Self>, operation: Operation) -> Result<(), StorageError> {
        if let Err(error) = check(&self.faults, operation, &self.path).await {
            let _ = self.inner.close().await;
            return Err(error);
        }
        match operation {
            Operation::Commit => self.inner.commit().await,
            _ => self.inner.close().await,
        }
    }
}

#[async_trait]
impl FileWriter for FaultyWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        check(&self.faults, Operation::Write, &self.path).await?;
        self.inner.write(chunk).await
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn close(self: Box<Self>) -> Result<(), StorageError> {
        self.end(Operation::Close).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StorageError> {
        self.end(Operation::Commit).await
    }

    async fn cancel(self: Box<Self>) -> Result<(), StorageError> {
        check(&self.faults, Operation::Cancel, &self.path).await?;
        self.inner.cancel().await
    }

    async fn abandon(self: Box<Self>) -> Result<(), StorageError> {
        check(&self.faults, Operation::Cancel, &self.path).await?;
        self.inner.abandon().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryDriver, testsuite};

    fn path(path: &str) -> StoragePath {
        StoragePath::parse(path).expect("valid path")
    }

    #[tokio::test]
    async fn without_faults_it_passes_the_testsuite() {
        testsuite::run_all(&FaultyDriver::new(Arc::new(InMemoryDriver::new()))).await;
    }

    #[tokio::test]
    async fn only_the_nth_matching_operation_fails() {
        let driver = FaultyDriver::new(Arc::new(InMemoryDriver::new()));
        driver.inject(Fault::fail(Operation::PutContent).on_path("/b/").nth(2));
        let content = Bytes::from_static(b"x");
        for (target, fails) in [
            ("/a/1", false),
            ("/b/1", false),
            ("/a/2", false),
            ("/b/2", true),
        ] {
            let outcome = driver.put_content(&path(target), content.clone()).await;
            assert_eq!(outcome.is_err(), fails, "put_content {target}: {outcome:?}");
        }
        assert!(driver.put_content(&path("/b/3"), content).await.is_ok());
        assert!(driver.stat(&path("/b/2")).await.is_err(), "nothing stored");
    }

    #[tokio::test]
    async fn a_repeated_full_disk_fails_writes_until_cleared() {
        let driver = FaultyDriver::new(Arc::new(InMemoryDriver::new()));
        driver.inject(Fault::fail(Operation::Write).storage_full().repeatedly());
        let mut writer = driver.writer(&path("/a"), false).await.expect("writer");
        for _ in 0..2 {
            let error = writer
                .write(Bytes::from_static(b"x"))
                .await
                .expect_err("full");
            assert!(error.is_storage_full(), "{error}");
        }
        driver.clear();
        writer.write(Bytes::from_static(b"x")).await.expect("write");
    }

    #[tokio::test]
    async fn a_stalled_operation_waits_for_its_release() {
        let driver = Arc::new(FaultyDriver::new(Arc::new(InMemoryDriver::new())));
        let (fault, stall) = Fault::stall(Operation::PutContent);
        driver.inject(fault);
        let put = tokio::spawn({
            let driver = Arc::clone(&driver);
            async move {
                driver
                    .put_content(&path("/a"), Bytes::from_static(b"x"))
                    .await
            }
        });
        stall.reached().await;
        assert!(driver.stat(&path("/a")).await.is_err(), "not written yet");
        stall.release();
        put.await.expect("join").expect("put");
        assert!(driver.stat(&path("/a")).await.is_ok());
    }
}
