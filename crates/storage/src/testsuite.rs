//! The behaviour every [`StorageDriver`] must have, as tests a driver's own test module runs.
//!
//! Enable the `testsuite` feature in the driver crate's dev-dependencies and call [`run_all`] from a
//! test:
//!
//! ```ignore
//! #[tokio::test]
//! async fn passes_the_storage_testsuite() {
//!     let driver = MyDriver::new(/* ... */);
//!     registry_storage::testsuite::run_all(&driver).await;
//! }
//! ```
//!
//! Each test works below its own unique directory, `/registry-storage-testsuite/<test>-<unique>`,
//! removes it when done and checks that nothing is left of it, so the suite can run against a
//! store that holds other data too. [`run_all`] also checks that the root lists the same entries
//! after the suite as before: a driver that keeps empty directories around fails there. A failing
//! check panics with a message that starts with the driver's name. The tests need nothing of the
//! executor beyond polling, so any async runtime can drive them.
//!
//! The list follows CNCF Distribution's storage driver testsuites: offset reads, zero-byte writes
//! then appends, moves that overwrite, deletes that spare siblings sharing a prefix, concurrent
//! readers and writers, and a teardown that fails if anything is left behind.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::join_all;

use crate::{
    ByteStream, Durability, FileInfo, ObjectVersion, PutMode, StorageDriver, StorageError,
    StoragePath, WalkControl,
};

/// The directory every test works below.
const SUITE_DIRECTORY: &str = "registry-storage-testsuite";

const MIB: usize = 1 << 20;

/// Runs every test of the suite, one after the other, then checks that the driver's root lists
/// exactly what it listed before (for a driver that started empty: that it is empty again).
pub async fn run_all(driver: &dyn StorageDriver) {
    let name = driver.name();
    let root = StoragePath::root();
    let before = list_or_empty(driver, &root).await;

    put_then_get_round_trips(driver).await;
    put_replaces_content(driver).await;
    root_cannot_hold_content(driver).await;
    missing_paths_are_not_found(driver).await;
    directory_is_not_an_object(driver).await;
    reader_honours_offset_and_length(driver).await;
    reader_of_empty_object(driver).await;
    zero_byte_write_then_commit(driver).await;
    zero_byte_write_then_append(driver).await;
    writer_close_then_append(driver).await;
    append_to_missing_object_is_not_found(driver).await;
    writer_without_append_replaces_on_commit(driver).await;
    cancel_removes_object(driver).await;
    abandon_leaves_the_object_as_it_was(driver).await;
    cancel_after_close_removes_earlier_content(driver).await;
    large_streamed_write_reads_back(driver).await;
    stat_describes_objects_and_directories(driver).await;
    stat_tells_apart_names_that_extend_each_other(driver).await;
    stat_many_answers_like_stat(driver).await;
    directory_times_follow_their_entries(driver).await;
    list_returns_direct_children_sorted(driver).await;
    list_does_not_leak_sibling_prefix(driver).await;
    move_into_new_directory(driver).await;
    move_replaces_destination(driver).await;
    move_of_missing_source_is_not_found(driver).await;
    delete_removes_object(driver).await;
    delete_object_removes_only_that_object(driver).await;
    delete_removes_directory_tree(driver).await;
    delete_spares_sibling_prefix(driver).await;
    delete_leaves_no_empty_directory(driver).await;
    walk_visits_everything_in_order(driver).await;
    walk_honours_skip_dir_and_stop(driver).await;
    walk_of_missing_directory_is_not_found(driver).await;
    concurrent_readers_and_writers(driver).await;
    concurrent_changes_in_shared_directories(driver).await;
    writes_survive_deletes_of_their_directory(driver).await;
    reader_opened_before_replace_sees_one_version(driver).await;
    put_content_is_atomic_under_concurrent_reads(driver).await;
    create_writes_only_where_nothing_is(driver).await;
    update_replaces_only_the_version_read(driver).await;
    every_write_makes_a_new_version(driver).await;
    concurrent_creates_have_one_winner(driver).await;
    concurrent_updates_have_one_winner(driver).await;
    conditional_increments_lose_no_update(driver).await;

    let after = list_or_empty(driver, &root).await;
    assert_eq!(
        after, before,
        "{name}: the root lists different entries after the testsuite than before: something was \
         left behind"
    );
}

/// Content of 0 bytes, 1 byte and 3 MiB (more than one read chunk) reads back as written, through
/// `get_content`, `reader` and `stat`; names may start with a dot.
pub async fn put_then_get_round_trips(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "put_then_get_round_trips");
    for (relative, size) in [
        ("empty", 0),
        ("one", 1),
        ("large", 3 * MIB + 7),
        (".hidden/a-b_c.d", 1000),
    ] {
        let path = t.path(relative);
        let content = pattern(size, size as u64 + 1);
        t.put(&path, content.clone()).await;
        t.assert_content(&path, &content, "put_content then get_content")
            .await;
        let read = t.read(&path, 0, None).await;
        t.assert_bytes(
            &read,
            &content,
            &format!("put_content then reader of {path}"),
        );
        assert_eq!(
            t.stat(&path).await.size,
            size as u64,
            "{}: size of {path}",
            t.name
        );
    }
    t.finish().await;
}

/// A second `put_content` replaces the first entirely, whether shorter or longer.
pub async fn put_replaces_content(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "put_replaces_content");
    let path = t.path("object");
    for (size, seed) in [(2 * MIB + 3, 1), (10, 2), (MIB + 1, 3), (0, 4), (5, 5)] {
        let content = pattern(size, seed);
        t.put(&path, content.clone()).await;
        t.assert_content(&path, &content, "put_content over an existing object")
            .await;
    }
    t.finish().await;
}

/// The root is a directory: putting content there or opening a writer on it fails.
pub async fn root_cannot_hold_content(driver: &dyn StorageDriver) {
    let name = driver.name();
    let root = StoragePath::root();
    assert!(
        driver
            .put_content(&root, Bytes::from_static(b"x"))
            .await
            .is_err(),
        "{name}: put_content at the root succeeded"
    );
    assert!(
        driver.writer(&root, false).await.is_err(),
        "{name}: opening a writer at the root succeeded"
    );
}

/// Every operation on a path where nothing exists is `NotFound`, including paths below a missing
/// directory and paths below an object.
pub async fn missing_paths_are_not_found(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "missing_paths_are_not_found");
    let object = t.path("object");
    t.put(&object, pattern(10, 1)).await;
    for relative in ["missing", "missing-dir/missing", "object/below"] {
        let path = t.path(relative);
        let name = t.name;
        expect_not_found(name, "get_content", &path, driver.get_content(&path).await);
        expect_not_found(name, "stat", &path, driver.stat(&path).await);
        expect_not_found(name, "reader", &path, driver.reader(&path, 0, None).await);
        expect_not_found(
            name,
            "reader at 5",
            &path,
            driver.reader(&path, 5, Some(1)).await,
        );
        expect_not_found(name, "list", &path, driver.list(&path).await);
        expect_not_found(name, "delete", &path, driver.delete(&path).await);
        expect_not_found(
            name,
            "writer(append)",
            &path,
            driver.writer(&path, true).await,
        );
        let destination = t.path("destination");
        expect_not_found(
            name,
            "move_object from",
            &path,
            driver.move_object(&path, &destination).await,
        );
        expect_not_found(
            name,
            "stat of a move's destination",
            &destination,
            driver.stat(&destination).await,
        );
    }
    t.delete(&object).await;
    t.finish().await;
}

/// A directory is not an object: `get_content` and `reader` of it are `NotFound`, and listing an
/// object is `NotFound` (it is not a directory).
pub async fn directory_is_not_an_object(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "directory_is_not_an_object");
    let directory = t.path("directory");
    let object = t.path("directory/object");
    t.put(&object, pattern(100, 1)).await;
    let name = t.name;
    expect_not_found(
        name,
        "get_content",
        &directory,
        driver.get_content(&directory).await,
    );
    expect_not_found(
        name,
        "reader",
        &directory,
        driver.reader(&directory, 0, None).await,
    );
    expect_not_found(name, "list", &object, driver.list(&object).await);
    t.finish().await;
}

/// `reader` from offset 0, 1, the middle, the last byte and the size (empty), with and without a
/// length (clipped at the end); one past the size is `InvalidOffset`.
pub async fn reader_honours_offset_and_length(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "reader_honours_offset_and_length");
    let path = t.path("object");
    let size = 3 * MIB + 123;
    let content = pattern(size, 7);
    t.put(&path, content.clone()).await;
    let middle = size / 2 + 1;
    let reads: [(usize, Option<usize>); 12] = [
        (0, None),
        (1, None),
        (middle, None),
        (size - 1, None),
        (size, None),
        (0, Some(0)),
        (0, Some(1)),
        (middle, Some(10)),
        (middle, Some(MIB + 5)),
        (size - 3, Some(10)),
        (size, Some(10)),
        (7, Some(size * 2)),
    ];
    for (offset, length) in reads {
        let read = t.read(&path, offset as u64, length.map(|l| l as u64)).await;
        let end = length.map_or(size, |length| (offset + length).min(size));
        t.assert_bytes(
            &read,
            &content.slice(offset..end),
            &format!("reader of {path} at offset {offset} with length {length:?}"),
        );
    }
    for length in [None, Some(1)] {
        match driver.reader(&path, size as u64 + 1, length).await {
            Err(StorageError::InvalidOffset { offset, .. }) => assert_eq!(
                offset,
                size as u64 + 1,
                "{}: InvalidOffset names the offset",
                t.name
            ),
            Err(error) => panic!(
                "{}: reader of {path} one past the end: expected InvalidOffset, got {error}",
                t.name
            ),
            Ok(_) => panic!(
                "{}: reader of {path} one past the end: expected InvalidOffset, got a stream",
                t.name
            ),
        }
    }
    t.finish().await;
}

/// An empty object reads as empty at offset 0 and is `InvalidOffset` at 1.
pub async fn reader_of_empty_object(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "reader_of_empty_object");
    let path = t.path("empty");
    t.put(&path, Bytes::new()).await;
    let read = t.read(&path, 0, None).await;
    t.assert_bytes(&read, &Bytes::new(), "reader of an empty object");
    assert!(
        matches!(
            driver.reader(&path, 1, None).await,
            Err(StorageError::InvalidOffset { .. })
        ),
        "{}: reader of an empty object at offset 1 is not InvalidOffset",
        t.name
    );
    t.finish().await;
}

/// A writer that writes nothing (or only an empty chunk) and commits creates an empty object.
pub async fn zero_byte_write_then_commit(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "zero_byte_write_then_commit");
    for (relative, write_empty_chunk) in [("nothing", false), ("empty-chunk", true)] {
        let path = t.path(relative);
        let mut writer = t.writer(&path, false).await;
        if write_empty_chunk {
            t.ok(
                writer.write(Bytes::new()).await,
                "write of an empty chunk",
                &path,
            );
        }
        assert_eq!(writer.size(), 0, "{}: size of an empty writer", t.name);
        t.ok(writer.commit().await, "commit", &path);
        t.assert_content(&path, &Bytes::new(), "zero-byte write then commit")
            .await;
        assert_eq!(t.stat(&path).await.size, 0, "{}: size of {path}", t.name);
    }
    t.finish().await;
}

/// A zero-byte write, closed, can be appended to; the result is what was appended.
pub async fn zero_byte_write_then_append(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "zero_byte_write_then_append");
    let path = t.path("object");
    let writer = t.writer(&path, false).await;
    t.ok(writer.close().await, "close of an empty writer", &path);
    let content = pattern(4096 + 5, 3);
    let mut writer = t.writer(&path, true).await;
    assert_eq!(
        writer.size(),
        0,
        "{}: size when appending to an empty object",
        t.name
    );
    t.ok(writer.write(content.clone()).await, "write", &path);
    assert_eq!(
        writer.size(),
        content.len() as u64,
        "{}: size after write",
        t.name
    );
    t.ok(writer.commit().await, "commit", &path);
    t.assert_content(&path, &content, "zero-byte write, close, append, commit")
        .await;
    t.finish().await;
}

/// Write, close, reopen with append, write more, close, append again, commit: the object is the
/// whole content, and `size` is right at every step.
pub async fn writer_close_then_append(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "writer_close_then_append");
    let path = t.path("upload/data");
    let content = pattern(3 * MIB + 1001, 11);
    let parts = [
        content.slice(..MIB + 17),
        content.slice(MIB + 17..MIB + 18),
        content.slice(MIB + 18..),
    ];
    let mut written = 0;
    for (index, part) in parts.iter().enumerate() {
        let append = index > 0;
        let mut writer = t.writer(&path, append).await;
        assert_eq!(
            writer.size(),
            written as u64,
            "{}: size of a writer opened with append = {append} after {written} bytes",
            t.name
        );
        for piece in part.chunks(65_537) {
            t.ok(writer.write(part.slice_ref(piece)).await, "write", &path);
        }
        written += part.len();
        assert_eq!(
            writer.size(),
            written as u64,
            "{}: size after writing",
            t.name
        );
        if index + 1 < parts.len() {
            t.ok(writer.close().await, "close", &path);
        } else {
            t.ok(writer.commit().await, "commit", &path);
        }
    }
    t.assert_content(&path, &content, "write, close, append, commit")
        .await;
    assert_eq!(
        t.stat(&path).await.size,
        content.len() as u64,
        "{}: size",
        t.name
    );
    t.finish().await;
}

/// Appending where no writer closed anything is `NotFound`.
pub async fn append_to_missing_object_is_not_found(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "append_to_missing_object_is_not_found");
    let path = t.path("missing");
    expect_not_found(
        t.name,
        "writer(append)",
        &path,
        driver.writer(&path, true).await,
    );
    expect_not_found(
        t.name,
        "stat after a failed append",
        &path,
        driver.stat(&path).await,
    );
    t.finish().await;
}

/// A writer without append replaces an existing object once committed.
pub async fn writer_without_append_replaces_on_commit(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "writer_without_append_replaces_on_commit");
    let path = t.path("object");
    t.put(&path, pattern(2 * MIB, 1)).await;
    let content = pattern(1000, 2);
    let mut writer = t.writer(&path, false).await;
    assert_eq!(
        writer.size(),
        0,
        "{}: a writer without append starts empty",
        t.name
    );
    t.ok(writer.write(content.clone()).await, "write", &path);
    t.ok(writer.commit().await, "commit", &path);
    t.assert_content(
        &path,
        &content,
        "writer without append over an existing object",
    )
    .await;
    t.finish().await;
}

/// `cancel` leaves nothing behind: no object, no directory created for it.
pub async fn cancel_removes_object(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "cancel_removes_object");
    let keep = t.path("keep");
    t.put(&keep, pattern(3, 1)).await;
    let path = t.path("new-directory/object");
    let mut writer = t.writer(&path, false).await;
    t.ok(writer.write(pattern(2 * MIB + 9, 2)).await, "write", &path);
    t.ok(writer.cancel().await, "cancel", &path);
    expect_not_found(t.name, "stat after cancel", &path, driver.stat(&path).await);
    assert_eq!(
        t.list(&t.base).await,
        vec![keep],
        "{}: cancel left something in the directory",
        t.name
    );
    t.finish().await;
}

/// `abandon` of a writer opened without append leaves no trace where nothing was (no object, no
/// directory) and the earlier content where an object was; 6 MiB goes past one part of object
/// storage's multipart uploads.
pub async fn abandon_leaves_the_object_as_it_was(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "abandon_leaves_the_object_as_it_was");
    let keep = t.path("keep");
    let earlier = pattern(MIB + 5, 1);
    t.put(&keep, earlier.clone()).await;
    let new = t.path("new-directory/object");
    for (path, written) in [(&new, 6 * MIB + 9), (&keep, 6 * MIB + 9), (&keep, 10)] {
        let mut writer = t.writer(path, false).await;
        t.ok(writer.write(pattern(written, 2)).await, "write", path);
        t.ok(writer.abandon().await, "abandon", path);
    }
    expect_not_found(t.name, "stat after abandon", &new, driver.stat(&new).await);
    t.assert_content(&keep, &earlier, "an object a writer abandoned replacing")
        .await;
    assert_eq!(
        t.list(&t.base).await,
        vec![keep],
        "{}: abandon left something in the directory",
        t.name
    );
    t.finish().await;
}

/// `cancel` after an earlier writer closed removes the earlier content too.
pub async fn cancel_after_close_removes_earlier_content(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "cancel_after_close_removes_earlier_content");
    let path = t.path("upload/data");
    let mut writer = t.writer(&path, false).await;
    t.ok(writer.write(pattern(MIB + 3, 1)).await, "write", &path);
    t.ok(writer.close().await, "close", &path);
    let mut writer = t.writer(&path, true).await;
    t.ok(writer.write(pattern(10, 2)).await, "write", &path);
    t.ok(writer.cancel().await, "cancel", &path);
    expect_not_found(t.name, "stat after cancel", &path, driver.stat(&path).await);
    expect_not_found(
        t.name,
        "writer(append) after cancel",
        &path,
        driver.writer(&path, true).await,
    );
    expect_not_found(
        t.name,
        "stat of the scratch directory",
        &t.base,
        driver.stat(&t.base).await,
    );
    t.finish().await;
}

/// 20 MiB written in odd-sized chunks (1 byte to over 1 MiB) reads back identical.
pub async fn large_streamed_write_reads_back(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "large_streamed_write_reads_back");
    let path = t.path("large");
    let content = pattern(20 * MIB + 13, 5);
    let sizes = [1, 7, 4093, 65_537, MIB + 11, 333_333, 2, 8191];
    let mut writer = t.writer(&path, false).await;
    let mut offset = 0;
    for size in sizes.iter().cycle() {
        if offset == content.len() {
            break;
        }
        let end = (offset + size).min(content.len());
        t.ok(
            writer.write(content.slice(offset..end)).await,
            "write",
            &path,
        );
        offset = end;
        assert_eq!(
            writer.size(),
            offset as u64,
            "{}: size while streaming",
            t.name
        );
    }
    t.ok(writer.commit().await, "commit", &path);
    assert_eq!(
        t.stat(&path).await.size,
        content.len() as u64,
        "{}: size",
        t.name
    );
    let read = t.read(&path, 0, None).await;
    t.assert_bytes(&read, &content, "20 MiB streamed write read back");
    t.finish().await;
}

/// `stat` of an object gives its size and `is_dir == false`; of a directory, `is_dir == true`.
pub async fn stat_describes_objects_and_directories(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "stat_describes_objects_and_directories");
    let object = t.path("directory/object");
    t.put(&object, pattern(1234, 1)).await;
    let info = t.stat(&object).await;
    assert_eq!(info.path, object, "{}: stat names the path", t.name);
    assert_eq!(info.size, 1234, "{}: stat size of an object", t.name);
    assert!(!info.is_dir, "{}: an object is not a directory", t.name);
    for directory in [t.path("directory"), t.base.clone()] {
        let info = t.stat(&directory).await;
        assert_eq!(info.path, directory, "{}: stat names the path", t.name);
        assert!(info.is_dir, "{}: {directory} is a directory", t.name);
    }
    t.finish().await;
}

/// `stat` of a name that only prefixes others (`name` beside `name-1`, `name0/x` and `name.d`)
/// is `NotFound`; of a directory whose name others extend, a directory; of an object a closed
/// writer left open, its size so far.
pub async fn stat_tells_apart_names_that_extend_each_other(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "stat_tells_apart_names_that_extend_each_other");
    for sibling in ["name-1", "name0/x", "name.d", "dir-1", "dir/x", "dir0"] {
        t.put(&t.path(sibling), pattern(10, 1)).await;
    }
    let name = t.path("name");
    expect_not_found(
        t.name,
        "stat of a name others extend",
        &name,
        driver.stat(&name).await,
    );
    assert!(t.stat(&t.path("dir")).await.is_dir, "{}: dir", t.name);
    let open = t.path("open");
    t.put(&t.path("open-1"), pattern(10, 1)).await;
    let mut writer = t.writer(&open, false).await;
    t.ok(writer.write(pattern(3000, 2)).await, "write", &open);
    t.ok(writer.close().await, "close", &open);
    let info = t.stat(&open).await;
    assert_eq!(
        (info.size, info.is_dir),
        (3000, false),
        "{}: stat of an object a closed writer left",
        t.name
    );
    t.finish().await;
}

/// `stat_many` answers for each path, in order, what `stat` answers, times included: objects,
/// directories and missing paths mixed.
pub async fn stat_many_answers_like_stat(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "stat_many_answers_like_stat");
    let object = t.path("directory/object");
    t.put(&object, pattern(77, 2)).await;
    let paths = [
        t.path("missing"),
        object.clone(),
        t.path("directory"),
        t.path("directory/object/below-an-object"),
        object,
    ];
    let many = driver.stat_many(&paths).await;
    assert_eq!(many.len(), paths.len(), "{}: one answer per path", t.name);
    for (path, answer) in paths.iter().zip(many) {
        match (answer, driver.stat(path).await) {
            (Ok(batched), Ok(single)) => assert_eq!(
                (batched.path, batched.size, batched.is_dir, batched.modified),
                (single.path, single.size, single.is_dir, single.modified),
                "{}: stat_many and stat of {path}",
                t.name
            ),
            (Err(StorageError::NotFound { .. }), Err(StorageError::NotFound { .. })) => {}
            (batched, single) => panic!(
                "{}: stat_many and stat of {path} disagree: {batched:?} and {single:?}",
                t.name
            ),
        }
    }
    t.finish().await;
}

/// A driver that gives directories a modification time changes it when an entry is added to the
/// directory or removed from it (the catalog and tag listings trust an unchanged time). Times are
/// compared a little over a second apart, the coarsest granularity a driver may have.
pub async fn directory_times_follow_their_entries(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "directory_times_follow_their_entries");
    let directory = t.path("directory");
    t.put(&t.path("directory/first"), pattern(3, 3)).await;
    let Some(created) = t.stat(&directory).await.modified else {
        t.finish().await;
        return;
    };
    let second = t.path("directory/second");
    let pause = std::time::Duration::from_millis(1100);
    wait_without_blocking(pause).await;
    t.put(&second, pattern(3, 4)).await;
    let added = t.stat(&directory).await.modified;
    assert!(
        added.is_some_and(|added| added != created),
        "{}: adding an entry left the directory's time at {created:?} (now {added:?})",
        t.name
    );
    wait_without_blocking(pause).await;
    t.delete(&second).await;
    let removed = t.stat(&directory).await.modified;
    assert!(
        removed.is_some_and(|removed| Some(removed) != added),
        "{}: removing an entry left the directory's time at {added:?} (now {removed:?})",
        t.name
    );
    t.finish().await;
}

/// `list` returns the direct children, objects and directories, sorted by path, including names
/// that start with a dot; listing an empty driver's root is not an error.
pub async fn list_returns_direct_children_sorted(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "list_returns_direct_children_sorted");
    for relative in [
        "a/b/c",
        "a/b/d/e",
        "a/bc",
        "a/b.x",
        "a/.hidden",
        "a/z",
        "a/A",
    ] {
        t.put(&t.path(relative), pattern(5, 1)).await;
    }
    let expected: Vec<StoragePath> = ["a/.hidden", "a/A", "a/b", "a/b.x", "a/bc", "a/z"]
        .iter()
        .map(|relative| t.path(relative))
        .collect();
    assert_eq!(
        t.list(&t.path("a")).await,
        expected,
        "{}: list of a directory",
        t.name
    );
    assert_eq!(
        t.list(&t.path("a/b")).await,
        vec![t.path("a/b/c"), t.path("a/b/d")],
        "{}: list of a subdirectory",
        t.name
    );
    assert_eq!(
        t.list(&t.base).await,
        vec![t.path("a")],
        "{}: list of the parent",
        t.name
    );
    let root = t.list(&StoragePath::root()).await;
    let suite = suite_directory();
    assert!(
        root.contains(&suite),
        "{}: list of the root lacks {suite}",
        t.name
    );
    let mut sorted = root.clone();
    sorted.sort();
    assert_eq!(root, sorted, "{}: list of the root is not sorted", t.name);
    t.finish().await;
}

/// Listing `/a/b` never shows `/a/bc` or what lies below it.
pub async fn list_does_not_leak_sibling_prefix(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "list_does_not_leak_sibling_prefix");
    t.put(&t.path("a/b/x"), pattern(1, 1)).await;
    t.put(&t.path("a/bc/y"), pattern(1, 2)).await;
    t.put(&t.path("a/bcd"), pattern(1, 3)).await;
    assert_eq!(
        t.list(&t.path("a/b")).await,
        vec![t.path("a/b/x")],
        "{}: list of a/b shows a sibling",
        t.name
    );
    assert_eq!(
        t.list(&t.path("a/bc")).await,
        vec![t.path("a/bc/y")],
        "{}: list of a/bc shows a sibling",
        t.name
    );
    t.finish().await;
}

/// Moving into a directory that does not exist yet works; the source is gone afterwards, and so is
/// the directory it leaves empty.
pub async fn move_into_new_directory(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "move_into_new_directory");
    let source = t.path("source/object");
    let destination = t.path("destination/deep/object");
    let content = pattern(MIB + 77, 3);
    t.put(&source, content.clone()).await;
    t.ok(
        driver.move_object(&source, &destination).await,
        "move_object",
        &source,
    );
    t.assert_content(&destination, &content, "move_object into a new directory")
        .await;
    expect_not_found(
        t.name,
        "get_content of a moved source",
        &source,
        driver.get_content(&source).await,
    );
    assert_eq!(
        t.list(&t.base).await,
        vec![t.path("destination")],
        "{}: the source's directory is still listed after moving its only object out",
        t.name
    );
    t.finish().await;
}

/// Moving onto an existing object replaces it.
pub async fn move_replaces_destination(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "move_replaces_destination");
    let source = t.path("source");
    let destination = t.path("destination");
    let content = pattern(500, 1);
    t.put(&source, content.clone()).await;
    t.put(&destination, pattern(2 * MIB, 2)).await;
    t.ok(
        driver.move_object(&source, &destination).await,
        "move_object",
        &source,
    );
    t.assert_content(
        &destination,
        &content,
        "move_object over an existing object",
    )
    .await;
    expect_not_found(
        t.name,
        "stat of a moved source",
        &source,
        driver.stat(&source).await,
    );
    t.finish().await;
}

/// Moving a missing object is `NotFound` and leaves the destination as it was.
pub async fn move_of_missing_source_is_not_found(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "move_of_missing_source_is_not_found");
    let source = t.path("missing");
    let destination = t.path("destination");
    let content = pattern(50, 1);
    t.put(&destination, content.clone()).await;
    expect_not_found(
        t.name,
        "move_object",
        &source,
        driver.move_object(&source, &destination).await,
    );
    t.assert_content(&destination, &content, "destination of a failed move")
        .await;
    t.finish().await;
}

/// Deleting an object removes it and nothing else; deleting it again is `NotFound`.
pub async fn delete_removes_object(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "delete_removes_object");
    let gone = t.path("gone");
    let kept = t.path("kept");
    t.put(&gone, pattern(10, 1)).await;
    t.put(&kept, pattern(10, 2)).await;
    t.delete(&gone).await;
    expect_not_found(
        t.name,
        "stat of a deleted object",
        &gone,
        driver.stat(&gone).await,
    );
    expect_not_found(t.name, "a second delete", &gone, driver.delete(&gone).await);
    t.assert_content(&kept, &pattern(10, 2), "a sibling of a deleted object")
        .await;
    t.finish().await;
}

/// `delete_object` removes an object written whole (and the directory it leaves empty), is `Ok`
/// when nothing is there, and leaves siblings alone, including one whose name extends the
/// object's (`gone` beside `gone-not`).
pub async fn delete_object_removes_only_that_object(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "delete_object_removes_only_that_object");
    let gone = t.path("inner/gone");
    let created = t.path("inner/created");
    let kept = t.path("inner/gone-not");
    t.put(&gone, pattern(10, 1)).await;
    t.put(&kept, pattern(10, 2)).await;
    let result = driver
        .put_content_if(
            &created,
            pattern(10, 3),
            PutMode::Create,
            Durability::Durable,
        )
        .await;
    t.ok(result, "put_content_if(Create)", &created);
    for path in [&gone, &created] {
        t.ok(driver.delete_object(path).await, "delete_object", path);
        expect_not_found(
            t.name,
            "stat of an object removed by delete_object",
            path,
            driver.stat(path).await,
        );
        t.ok(
            driver.delete_object(path).await,
            "a second delete_object",
            path,
        );
    }
    t.assert_content(&kept, &pattern(10, 2), "a sibling of a deleted object")
        .await;
    t.delete(&kept).await;
    let inner = t.path("inner");
    expect_not_found(
        t.name,
        "stat of the directory its objects were deleted from",
        &inner,
        driver.stat(&inner).await,
    );
    t.finish().await;
}

/// Deleting a directory removes everything below it, at any depth.
pub async fn delete_removes_directory_tree(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "delete_removes_directory_tree");
    let tree = ["tree/a", "tree/b/c", "tree/b/d/e", "tree/b/d/f"];
    for relative in tree {
        t.put(&t.path(relative), pattern(100, 1)).await;
    }
    let kept = t.path("kept");
    t.put(&kept, pattern(1, 1)).await;
    t.delete(&t.path("tree")).await;
    for relative in tree.iter().chain(&["tree", "tree/b", "tree/b/d"]) {
        let path = t.path(relative);
        expect_not_found(
            t.name,
            "stat after deleting the tree",
            &path,
            driver.stat(&path).await,
        );
    }
    assert_eq!(
        t.list(&t.base).await,
        vec![kept],
        "{}: list after deleting a tree",
        t.name
    );
    t.finish().await;
}

/// Deleting `/a/b` leaves `/a/bc` and `/a/b.c`, objects and directories alike.
pub async fn delete_spares_sibling_prefix(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "delete_spares_sibling_prefix");
    for relative in ["a/b", "a/bc", "a/b.c/x", "a/bcd/y"] {
        t.put(&t.path(relative), pattern(10, 1)).await;
    }
    t.delete(&t.path("a/b")).await;
    assert_eq!(
        t.list(&t.path("a")).await,
        vec![t.path("a/b.c"), t.path("a/bc"), t.path("a/bcd")],
        "{}: deleting a/b touched a sibling",
        t.name
    );
    t.delete(&t.path("a/bc")).await;
    assert_eq!(
        t.list(&t.path("a")).await,
        vec![t.path("a/b.c"), t.path("a/bcd")],
        "{}: deleting the object a/bc touched the directory a/bcd",
        t.name
    );
    t.finish().await;
}

/// Deleting the last object below some directories leaves none of them visible.
pub async fn delete_leaves_no_empty_directory(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "delete_leaves_no_empty_directory");
    let deep = t.path("p/q/r/object");
    let kept = t.path("kept");
    t.put(&deep, pattern(10, 1)).await;
    t.put(&kept, pattern(10, 2)).await;
    t.delete(&deep).await;
    assert_eq!(
        t.list(&t.base).await,
        vec![kept.clone()],
        "{}: an empty directory is still listed after deleting the only object below it",
        t.name
    );
    for relative in ["p", "p/q", "p/q/r"] {
        let path = t.path(relative);
        expect_not_found(
            t.name,
            "stat of an emptied directory",
            &path,
            driver.stat(&path).await,
        );
    }
    t.delete(&kept).await;
    expect_not_found(
        t.name,
        "stat of an emptied directory",
        &t.base,
        driver.stat(&t.base).await,
    );
    t.finish().await;
}

/// `walk` visits every object and directory below the start, depth first, children in sorted
/// order, with what `stat` says of each.
pub async fn walk_visits_everything_in_order(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "walk_visits_everything_in_order");
    for (relative, size) in [
        ("a/x", 1),
        ("a/b/y", 2),
        ("a/b.c", 3),
        ("c", 4),
        ("a/b/d/z", 5),
    ] {
        t.put(&t.path(relative), pattern(size, 1)).await;
    }
    let visited = t.walk(&t.base, |_| WalkControl::Continue).await;
    let expected: Vec<(StoragePath, bool, u64)> = [
        ("a", true, 0),
        ("a/b", true, 0),
        ("a/b/d", true, 0),
        ("a/b/d/z", false, 5),
        ("a/b/y", false, 2),
        ("a/b.c", false, 3),
        ("a/x", false, 1),
        ("c", false, 4),
    ]
    .iter()
    .map(|&(relative, is_dir, size)| (t.path(relative), is_dir, size))
    .collect();
    let seen: Vec<(StoragePath, bool, u64)> = visited
        .iter()
        .map(|info| {
            (
                info.path.clone(),
                info.is_dir,
                if info.is_dir { 0 } else { info.size },
            )
        })
        .collect();
    assert_eq!(seen, expected, "{}: walk order and entries", t.name);
    let below_a = t.walk(&t.path("a/b"), |_| WalkControl::Continue).await;
    let paths: Vec<StoragePath> = below_a.into_iter().map(|info| info.path).collect();
    assert_eq!(
        paths,
        vec![t.path("a/b/d"), t.path("a/b/d/z"), t.path("a/b/y")],
        "{}: walk from a subdirectory",
        t.name
    );
    t.finish().await;
}

/// `SkipDir` keeps the walk out of a directory; `Stop` ends it at once.
pub async fn walk_honours_skip_dir_and_stop(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "walk_honours_skip_dir_and_stop");
    for relative in ["a/x", "b/y", "b/z", "c/w"] {
        t.put(&t.path(relative), pattern(1, 1)).await;
    }
    let skip = t.path("b");
    let visited = t
        .walk(&t.base, |info| {
            if info.path == skip {
                WalkControl::SkipDir
            } else {
                WalkControl::Continue
            }
        })
        .await;
    let paths: Vec<StoragePath> = visited.into_iter().map(|info| info.path).collect();
    let expected: Vec<StoragePath> = ["a", "a/x", "b", "c", "c/w"]
        .iter()
        .map(|relative| t.path(relative))
        .collect();
    assert_eq!(paths, expected, "{}: walk with SkipDir on b", t.name);

    let stop = t.path("b/y");
    let visited = t
        .walk(&t.base, |info| {
            if info.path == stop {
                WalkControl::Stop
            } else {
                WalkControl::Continue
            }
        })
        .await;
    let paths: Vec<StoragePath> = visited.into_iter().map(|info| info.path).collect();
    let expected: Vec<StoragePath> = ["a", "a/x", "b", "b/y"]
        .iter()
        .map(|relative| t.path(relative))
        .collect();
    assert_eq!(paths, expected, "{}: walk with Stop at b/y", t.name);
    t.finish().await;
}

/// Walking from a missing path or from an object is `NotFound`.
pub async fn walk_of_missing_directory_is_not_found(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "walk_of_missing_directory_is_not_found");
    let object = t.path("object");
    t.put(&object, pattern(1, 1)).await;
    for path in [t.path("missing"), object] {
        let mut visitor = |_: &FileInfo| WalkControl::Continue;
        expect_not_found(
            t.name,
            "walk",
            &path,
            driver.walk(&path, &mut visitor).await,
        );
    }
    t.finish().await;
}

/// 16 tasks at once, each writing its own object (half with `put_content`, half through a
/// writer), reading it back and reading a shared object, all succeed with the right content.
pub async fn concurrent_readers_and_writers(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "concurrent_readers_and_writers");
    let shared = t.path("shared");
    let shared_content = pattern(2 * MIB + 1, 99);
    t.put(&shared, shared_content.clone()).await;
    let tasks = (0..16u64).map(|task| {
        let t = &t;
        let shared = &shared;
        let shared_content = &shared_content;
        async move {
            let path = t.path(&format!("task-{task}/object"));
            let content = pattern(256 * 1024 + task as usize * 65_537, task);
            if task % 2 == 0 {
                t.put(&path, content.clone()).await;
            } else {
                let mut writer = t.writer(&path, false).await;
                for piece in content.chunks(100_003) {
                    t.ok(writer.write(content.slice_ref(piece)).await, "write", &path);
                    yield_now().await;
                }
                t.ok(writer.commit().await, "commit", &path);
            }
            let read = t.read(&path, 0, None).await;
            t.assert_bytes(
                &read,
                &content,
                &format!("task {task} reading back its object"),
            );
            let read = t.read(shared, task * 1000, None).await;
            t.assert_bytes(
                &read,
                &shared_content.slice(task as usize * 1000..),
                &format!("task {task} reading the shared object"),
            );
            t.delete(&path).await;
        }
    });
    join_all(tasks).await;
    assert_eq!(
        t.list(&t.base).await,
        vec![shared],
        "{}: after the tasks",
        t.name
    );
    t.finish().await;
}

/// 8 tasks at once, each 12 times putting, writing, moving and deleting its own objects in
/// directories the tasks share, so directories come and go under each other's feet: every
/// operation succeeds and nothing is left.
pub async fn concurrent_changes_in_shared_directories(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "concurrent_changes_in_shared_directories");
    let tasks = (0..8u64).map(|task| {
        let t = &t;
        async move {
            for round in 0..12u64 {
                let content = pattern(1000 + task as usize, task * 100 + round);
                let put = t.path(&format!("shared/deep/put-{task}"));
                t.put(&put, content.clone()).await;
                yield_now().await;
                let written = t.path(&format!("shared/deep/written-{task}"));
                let mut writer = t.writer(&written, false).await;
                t.ok(writer.write(content.clone()).await, "write", &written);
                t.ok(writer.commit().await, "commit", &written);
                yield_now().await;
                let moved = t.path(&format!("moved/deep/{task}"));
                t.ok(driver.move_object(&put, &moved).await, "move_object", &put);
                t.assert_content(&moved, &content, "a moved object").await;
                t.delete(&moved).await;
                yield_now().await;
                t.assert_content(&written, &content, "a committed object")
                    .await;
                t.delete(&written).await;
            }
        }
    });
    join_all(tasks).await;
    expect_not_found(
        t.name,
        "stat after the tasks",
        &t.base,
        driver.stat(&t.base).await,
    );
    t.finish().await;
}

/// 3 tasks write objects (`put_content`, and `put_content_if` creating new names) into a
/// directory that another task deletes whenever a write has finished since its last delete, so
/// deletes overlap the other tasks' writes: every write succeeds, because a delete of the tree
/// comes wholly before or after each write. Garbage collection deletes a repository's link
/// directories while uploads write links into them.
pub async fn writes_survive_deletes_of_their_directory(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "writes_survive_deletes_of_their_directory");
    let swept = t.path("swept");
    let writing = AtomicBool::new(true);
    let writes_done = AtomicU64::new(0);
    let deleter = async {
        let mut deletes = 0u64;
        let mut seen = 0;
        while writing.load(Ordering::Relaxed) {
            let done = writes_done.load(Ordering::Relaxed);
            if done != seen {
                seen = done;
                match driver.delete(&swept).await {
                    Ok(()) | Err(StorageError::NotFound { .. }) => deletes += 1,
                    Err(error) => panic!("{}: delete {swept}: {error}", t.name),
                }
            }
            yield_now().await;
        }
        deletes
    };
    let writers = (0..3u64).map(|task| {
        let (t, writes_done) = (&t, &writes_done);
        async move {
            let path = t.path(&format!("swept/{task}/link"));
            for round in 0..16u64 {
                let content = pattern(100 + task as usize, 5000 + task * 100 + round);
                t.put(&path, content.clone()).await;
                writes_done.fetch_add(1, Ordering::Relaxed);
                let created = t.path(&format!("swept/{task}/created-{round}"));
                let result = driver
                    .put_content_if(&created, content, PutMode::Create, Durability::Durable)
                    .await;
                t.ok(result, "put_content_if(Create)", &created);
                writes_done.fetch_add(1, Ordering::Relaxed);
                yield_now().await;
            }
        }
    });
    let writes = async {
        join_all(writers).await;
        writing.store(false, Ordering::Relaxed);
    };
    let (deletes, ()) = futures_util::future::join(deleter, writes).await;
    assert!(deletes > 0, "{}: the directory was never deleted", t.name);
    t.finish().await;
}

/// A reader opened before `put_content` replaces the object yields the old content or the new one,
/// entirely, never a mix.
pub async fn reader_opened_before_replace_sees_one_version(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "reader_opened_before_replace_sees_one_version");
    let path = t.path("object");
    let old = pattern(3 * MIB + 5, 1);
    let new = pattern(2 * MIB + 11, 2);
    t.put(&path, old.clone()).await;
    let mut stream = t.ok(driver.reader(&path, 0, None).await, "reader", &path);
    let mut read = Vec::new();
    if let Some(chunk) = stream.next().await {
        read.extend_from_slice(&t.ok(chunk, "reading a chunk of", &path));
    }
    t.put(&path, new.clone()).await;
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&t.ok(chunk, "reading a chunk of", &path));
    }
    assert!(
        read == old || read == new,
        "{}: a reader opened before a replace read {} bytes that are neither the old content \
         ({} bytes) nor the new ({} bytes)",
        t.name,
        read.len(),
        old.len(),
        new.len()
    );
    t.finish().await;
}

/// While one task replaces an object again and again with `put_content`, readers (`get_content`
/// and `reader`) always see one whole version.
pub async fn put_content_is_atomic_under_concurrent_reads(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "put_content_is_atomic_under_concurrent_reads");
    let path = t.path("object");
    // Version v is MIB + v * 4099 bytes, every one of them v: a mix of two versions or a partial
    // write has either a byte that differs from the first or the wrong length.
    let version = |v: u8| Bytes::from(vec![v; MIB + usize::from(v) * 4099]);
    t.put(&path, version(0)).await;
    let replacing = AtomicBool::new(true);
    let replace = async {
        for v in 1..=24 {
            t.put(&path, version(v)).await;
            yield_now().await;
        }
        replacing.store(false, Ordering::SeqCst);
    };
    let check = |read: &[u8], how: &str| {
        let v = read.first().copied().unwrap_or(u8::MAX);
        let whole = read.len() == MIB + usize::from(v) * 4099 && read.iter().all(|&b| b == v);
        assert!(
            whole,
            "{}: {how} during replacements saw {} bytes that are not one whole version",
            t.name,
            read.len()
        );
    };
    let read = async {
        let mut reads = 0;
        while replacing.load(Ordering::SeqCst) || reads < 4 {
            let content = t.get(&path).await;
            check(&content, "get_content");
            let streamed = t.read(&path, 0, None).await;
            check(&streamed, "reader");
            reads += 1;
            yield_now().await;
        }
    };
    futures_util::future::join(replace, read).await;
    t.finish().await;
}

/// `put_content_if` with [`PutMode::Create`] stores the object when nothing is at the path
/// (creating its directories), returns the version `get_content_versioned` then reads, and
/// refuses with `AlreadyExists`, storing nothing, when an object is there.
pub async fn create_writes_only_where_nothing_is(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "create_writes_only_where_nothing_is");
    let path = t.path("new/directory/object");
    let first = pattern(100, 1);
    let version = t.ok(
        driver
            .put_content_if(&path, first.clone(), PutMode::Create, Durability::Durable)
            .await,
        "put_content_if(Create) of an absent object",
        &path,
    );
    assert_eq!(
        t.get_versioned(&path).await,
        (first.clone(), version),
        "{}: content and version read after a create",
        t.name
    );
    let refused = driver
        .put_content_if(&path, pattern(50, 2), PutMode::Create, Durability::Durable)
        .await;
    assert!(
        matches!(refused, Err(StorageError::AlreadyExists { .. })),
        "{}: put_content_if(Create) over an object answered {refused:?}, not AlreadyExists",
        t.name
    );
    t.assert_content(&path, &first, "an object after a refused create")
        .await;
    assert_eq!(
        t.list(&t.path("new/directory")).await,
        vec![path.clone()],
        "{}: a refused create leaves nothing beside the object",
        t.name
    );
    expect_not_found(
        t.name,
        "get_content_versioned",
        &t.path("missing"),
        driver.get_content_versioned(&t.path("missing")).await,
    );
    t.finish().await;
}

/// `put_content_if` with [`PutMode::Update`] replaces the object only while it is still the
/// version given; a stale version, or an object that is gone, is `Precondition` and stores
/// nothing.
pub async fn update_replaces_only_the_version_read(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "update_replaces_only_the_version_read");
    let path = t.path("object");
    t.put(&path, pattern(10, 1)).await;
    let (_, first) = t.get_versioned(&path).await;
    let second_content = pattern(20, 2);
    let second = t.ok(
        driver
            .put_content_if(
                &path,
                second_content.clone(),
                PutMode::Update(first.clone()),
                Durability::Durable,
            )
            .await,
        "put_content_if(Update) with the current version",
        &path,
    );
    assert_eq!(
        t.get_versioned(&path).await,
        (second_content.clone(), second.clone()),
        "{}: content and version read after an update",
        t.name
    );
    let stale = driver
        .put_content_if(
            &path,
            pattern(30, 3),
            PutMode::Update(first),
            Durability::Durable,
        )
        .await;
    assert!(
        matches!(stale, Err(StorageError::Precondition { .. })),
        "{}: put_content_if(Update) with a replaced version answered {stale:?}, not Precondition",
        t.name
    );
    t.assert_content(&path, &second_content, "an object after a refused update")
        .await;
    t.delete(&path).await;
    let gone = driver
        .put_content_if(
            &path,
            pattern(30, 4),
            PutMode::Update(second),
            Durability::Durable,
        )
        .await;
    assert!(
        matches!(gone, Err(StorageError::Precondition { .. })),
        "{}: put_content_if(Update) of a deleted object answered {gone:?}, not Precondition",
        t.name
    );
    expect_not_found(t.name, "stat", &path, driver.stat(&path).await);
    t.finish().await;
}

/// Every way of writing an object with new content (`put_content`, a writer's commit, an append,
/// a conditional write, a move onto it) gives it a version no earlier read had, so an update
/// based on an earlier read is refused.
pub async fn every_write_makes_a_new_version(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "every_write_makes_a_new_version");
    let path = t.path("object");
    let other = t.path("other");
    let mut seen: Vec<ObjectVersion> = Vec::new();
    let mut remember = |version: ObjectVersion, how: &str| {
        assert!(
            !seen.contains(&version),
            "{}: {how} left the object at a version it had before ({version})",
            t.name
        );
        seen.push(version);
    };
    t.put(&path, pattern(10, 1)).await;
    remember(t.get_versioned(&path).await.1, "put_content");
    t.put(&path, pattern(10, 2)).await;
    remember(
        t.get_versioned(&path).await.1,
        "put_content of as many bytes",
    );
    let mut writer = t.writer(&path, false).await;
    t.ok(writer.write(pattern(12, 3)).await, "write", &path);
    t.ok(writer.close().await, "close", &path);
    remember(t.get_versioned(&path).await.1, "a writer's close");
    let mut writer = t.writer(&path, true).await;
    t.ok(writer.write(pattern(7, 4)).await, "write", &path);
    t.ok(writer.commit().await, "commit", &path);
    remember(t.get_versioned(&path).await.1, "an append");
    let current = t.get_versioned(&path).await.1;
    let updated = t.ok(
        driver
            .put_content_if(
                &path,
                pattern(19, 5),
                PutMode::Update(current),
                Durability::Durable,
            )
            .await,
        "put_content_if(Update)",
        &path,
    );
    remember(updated, "a conditional update");
    t.put(&other, pattern(19, 6)).await;
    t.ok(
        driver.move_object(&other, &path).await,
        "move_object",
        &other,
    );
    let moved = t.get_versioned(&path).await.1;
    remember(moved, "a move onto it");
    let stale = driver
        .put_content_if(
            &path,
            pattern(1, 7),
            PutMode::Update(seen[0].clone()),
            Durability::Durable,
        )
        .await;
    assert!(
        matches!(stale, Err(StorageError::Precondition { .. })),
        "{}: an update based on the first version answered {stale:?}, not Precondition",
        t.name
    );
    t.finish().await;
}

/// 8 tasks create the same absent object at once, durably and then volatilely: exactly one
/// succeeds, the others get `AlreadyExists`, and the object holds the winner's content.
pub async fn concurrent_creates_have_one_winner(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "concurrent_creates_have_one_winner");
    for (round, (durability, object)) in [
        (Durability::Durable, "durable"),
        (Durability::Volatile, "volatile"),
    ]
    .into_iter()
    .enumerate()
    {
        let path = t.path(&format!("contended/{object}"));
        t.assert_one_winner(&path, PutMode::Create, durability, round, "create")
            .await;
    }
    t.finish().await;
}

/// 8 tasks replace the same version of an object at once, durably and then volatilely: exactly
/// one succeeds, the others get `Precondition`, and the object holds the winner's content.
pub async fn concurrent_updates_have_one_winner(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "concurrent_updates_have_one_winner");
    let path = t.path("object");
    t.put(&path, pattern(10, 100)).await;
    for (round, durability) in [Durability::Durable, Durability::Volatile]
        .into_iter()
        .enumerate()
    {
        let (_, read) = t.get_versioned(&path).await;
        t.assert_one_winner(&path, PutMode::Update(read), durability, round, "update")
            .await;
    }
    t.finish().await;
}

/// 4 tasks each add 1 to a counter 10 times by reading it with its version and writing it back
/// with `Update`, retrying when refused: the counter ends at 40. A lost update (two writers both
/// replacing the same version) would leave it lower.
pub async fn conditional_increments_lose_no_update(driver: &dyn StorageDriver) {
    let t = Scratch::new(driver, "conditional_increments_lose_no_update");
    let path = t.path("counter");
    t.ok(
        driver
            .put_content_if(
                &path,
                Bytes::from_static(b"0"),
                PutMode::Create,
                Durability::Durable,
            )
            .await,
        "put_content_if(Create)",
        &path,
    );
    let tasks = (0..4).map(|_| {
        let (t, path) = (&t, &path);
        async move {
            for _ in 0..10 {
                loop {
                    let (content, version) = t.get_versioned(path).await;
                    let count: u64 = std::str::from_utf8(&content)
                        .ok()
                        .and_then(|count| count.parse().ok())
                        .unwrap_or_else(|| panic!("{}: the counter reads {content:?}", t.name));
                    let next = Bytes::from((count + 1).to_string());
                    match driver
                        .put_content_if(path, next, PutMode::Update(version), Durability::Durable)
                        .await
                    {
                        Ok(_) => break,
                        Err(StorageError::Precondition { .. }) => yield_now().await,
                        Err(error) => panic!("{}: incrementing the counter: {error}", t.name),
                    }
                }
            }
        }
    });
    join_all(tasks).await;
    t.assert_content(&path, &Bytes::from_static(b"40"), "the counter")
        .await;
    t.finish().await;
}

/// A unique directory for one test, and helpers that panic with the driver's name on failure.
struct Scratch<'a> {
    driver: &'a dyn StorageDriver,
    name: &'static str,
    base: StoragePath,
}

impl<'a> Scratch<'a> {
    fn new(driver: &'a dyn StorageDriver, test: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let unique = format!(
            "{test}-{:x}-{nanos:x}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let base = suite_directory()
            .join(&unique)
            .unwrap_or_else(|error| panic!("testsuite: scratch directory {unique}: {error}"));
        Scratch {
            driver,
            name: driver.name(),
            base,
        }
    }

    fn path(&self, relative: &str) -> StoragePath {
        self.base
            .join_all(relative)
            .unwrap_or_else(|error| panic!("testsuite: path {relative}: {error}"))
    }

    fn ok<T>(&self, result: Result<T, StorageError>, operation: &str, path: &StoragePath) -> T {
        result.unwrap_or_else(|error| panic!("{}: {operation} {path}: {error}", self.name))
    }

    async fn put(&self, path: &StoragePath, content: Bytes) {
        let result = self.driver.put_content(path, content).await;
        self.ok(result, "put_content", path);
    }

    async fn get(&self, path: &StoragePath) -> Bytes {
        let result = self.driver.get_content(path).await;
        self.ok(result, "get_content", path)
    }

    async fn get_versioned(&self, path: &StoragePath) -> (Bytes, ObjectVersion) {
        let result = self.driver.get_content_versioned(path).await;
        self.ok(result, "get_content_versioned", path)
    }

    /// Writes `path` conditionally with `mode` and `durability` from 8 tasks at once: exactly one may succeed,
    /// the others must be refused, and the object must hold the winner's content.
    ///
    /// Every `round` writes contents no earlier round wrote: a driver whose versions are content
    /// hashes may keep an object's version when the same bytes are written again (see
    /// [`ObjectVersion`]), which would let a second writer of this round pass as well.
    async fn assert_one_winner(
        &self,
        path: &StoragePath,
        mode: PutMode,
        durability: Durability,
        round: usize,
        what: &str,
    ) {
        let attempts = (0..8u64).map(|task| {
            let mode = mode.clone();
            async move {
                yield_now().await;
                let content = pattern(1000 + 8 * round + task as usize, task);
                let outcome = self
                    .driver
                    .put_content_if(path, content.clone(), mode, durability)
                    .await;
                (content, outcome)
            }
        });
        let mut winners = Vec::new();
        for (content, outcome) in join_all(attempts).await {
            match (&mode, outcome) {
                (_, Ok(version)) => winners.push((content, version)),
                (PutMode::Create, Err(StorageError::AlreadyExists { .. }))
                | (PutMode::Update(_), Err(StorageError::Precondition { .. })) => {}
                (_, Err(error)) => panic!("{}: a contended {what} failed: {error}", self.name),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "{}: {} of 8 concurrent conditional {what}s succeeded",
            self.name,
            winners.len()
        );
        assert_eq!(
            self.get_versioned(path).await,
            winners.remove(0),
            "{}: the object after concurrent {what}s is not the winner's",
            self.name
        );
    }

    async fn stat(&self, path: &StoragePath) -> FileInfo {
        let result = self.driver.stat(path).await;
        self.ok(result, "stat", path)
    }

    async fn list(&self, path: &StoragePath) -> Vec<StoragePath> {
        let result = self.driver.list(path).await;
        self.ok(result, "list", path)
    }

    async fn delete(&self, path: &StoragePath) {
        let result = self.driver.delete(path).await;
        self.ok(result, "delete", path);
    }

    async fn writer(&self, path: &StoragePath, append: bool) -> Box<dyn crate::FileWriter> {
        let result = self.driver.writer(path, append).await;
        self.ok(result, "writer", path)
    }

    async fn read(&self, path: &StoragePath, offset: u64, length: Option<u64>) -> Bytes {
        let result = self.driver.reader(path, offset, length).await;
        let stream = self.ok(result, "reader", path);
        self.collect(stream, path).await
    }

    async fn collect(&self, mut stream: ByteStream, path: &StoragePath) -> Bytes {
        let mut read = Vec::new();
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&self.ok(chunk, "reading a chunk of", path));
        }
        Bytes::from(read)
    }

    async fn walk(
        &self,
        from: &StoragePath,
        mut decide: impl FnMut(&FileInfo) -> WalkControl + Send,
    ) -> Vec<FileInfo> {
        let mut visited = Vec::new();
        let mut visitor = |info: &FileInfo| {
            visited.push(info.clone());
            decide(info)
        };
        let result = self.driver.walk(from, &mut visitor).await;
        self.ok(result, "walk", from);
        visited
    }

    async fn assert_content(&self, path: &StoragePath, expected: &Bytes, what: &str) {
        let actual = self.get(path).await;
        self.assert_bytes(&actual, expected, &format!("{what}: get_content of {path}"));
    }

    /// Compares without printing megabytes: the lengths and the first differing offset.
    fn assert_bytes(&self, actual: &[u8], expected: &[u8], what: &str) {
        if actual == expected {
            return;
        }
        let first_difference = actual
            .iter()
            .zip(expected)
            .position(|(a, e)| a != e)
            .unwrap_or(actual.len().min(expected.len()));
        panic!(
            "{}: {what}: read {} bytes, expected {}; first difference at offset {first_difference}",
            self.name,
            actual.len(),
            expected.len()
        );
    }

    /// Removes the scratch directory and checks nothing of it is left.
    async fn finish(self) {
        match self.driver.delete(&self.base).await {
            Ok(()) | Err(StorageError::NotFound { .. }) => {}
            Err(error) => panic!("{}: teardown: delete {}: {error}", self.name, self.base),
        }
        expect_not_found(
            self.name,
            "teardown: stat of the deleted scratch directory",
            &self.base,
            self.driver.stat(&self.base).await,
        );
        let left = list_or_empty(self.driver, &suite_directory()).await;
        assert!(
            !left.contains(&self.base),
            "{}: teardown: {} is still listed after deleting it",
            self.name,
            self.base
        );
    }
}

fn suite_directory() -> StoragePath {
    StoragePath::root()
        .join(SUITE_DIRECTORY)
        .unwrap_or_else(|error| panic!("testsuite: {error}"))
}

async fn list_or_empty(driver: &dyn StorageDriver, path: &StoragePath) -> Vec<StoragePath> {
    match driver.list(path).await {
        Ok(children) => children,
        Err(StorageError::NotFound { .. }) => Vec::new(),
        Err(error) => panic!("{}: list {path}: {error}", driver.name()),
    }
}

fn expect_not_found<T>(
    driver: &str,
    operation: &str,
    path: &StoragePath,
    result: Result<T, StorageError>,
) {
    match result {
        Err(StorageError::NotFound { .. }) => {}
        Err(error) => panic!("{driver}: {operation} {path}: expected NotFound, got {error}"),
        Ok(_) => panic!("{driver}: {operation} {path}: expected NotFound, but it succeeded"),
    }
}

/// `size` bytes that differ from offset to offset and from seed to seed, so a read from the wrong
/// offset or of the wrong object never matches by accident.
fn pattern(size: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut content = Vec::with_capacity(size + 8);
    while content.len() < size {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        content.extend_from_slice(&state.to_le_bytes());
    }
    content.truncate(size);
    Bytes::from(content)
}

/// Lets `duration` pass without blocking the executor's thread, on any executor: a helper thread
/// waits and then wakes the task, so a current-thread runtime goes on running the driver's other
/// tasks meanwhile. Only for what needs the clock itself to move (a directory time's
/// granularity), never to wait for a condition.
async fn wait_without_blocking(duration: std::time::Duration) {
    #[derive(Default)]
    struct Shared {
        passed: bool,
        waker: Option<std::task::Waker>,
    }
    struct Wait {
        shared: std::sync::Arc<std::sync::Mutex<Shared>>,
        duration: Option<std::time::Duration>,
    }
    impl Future for Wait {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let shared = std::sync::Arc::clone(&self.shared);
            let mut state = shared.lock().unwrap_or_else(|poison| poison.into_inner());
            if state.passed {
                return Poll::Ready(());
            }
            state.waker = Some(cx.waker().clone());
            if let Some(duration) = self.duration.take() {
                let shared = std::sync::Arc::clone(&self.shared);
                std::thread::spawn(move || {
                    std::thread::sleep(duration);
                    let mut state = shared.lock().unwrap_or_else(|poison| poison.into_inner());
                    state.passed = true;
                    if let Some(waker) = state.waker.take() {
                        waker.wake();
                    }
                });
            }
            Poll::Pending
        }
    }
    Wait {
        shared: std::sync::Arc::default(),
        duration: Some(duration),
    }
    .await;
}

/// Lets the other futures of a `join` run, on any executor.
async fn yield_now() {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false).await;
}
