//! Storage for registryd: the [`StorageDriver`] trait, a key -> bytes store with streaming reads,
//! resumable writers, listing, moves and deletes, and two drivers, [`FilesystemDriver`] and
//! [`InMemoryDriver`].
//!
//! This crate depends on none of the registry's other crates, so the author of a custom driver
//! depends on it alone. Every driver must pass the conformance tests in the `testsuite` module
//! (feature `testsuite`); see `docs/storage-drivers.md`.

mod driver;
mod error;
#[cfg(any(test, feature = "faults"))]
pub mod faults;
mod filesystem;
mod inmemory;
mod metered;
mod path;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use driver::{
    ByteStream, Durability, FileInfo, FileWriter, ObjectVersion, PutMode, StorageDriver,
    WalkControl, WalkVisitor,
};
pub use error::StorageError;
pub use filesystem::FilesystemDriver;
pub use inmemory::InMemoryDriver;
pub use metered::{MeteredDriver, OPERATION_DURATION, OPERATION_ERRORS};
pub use path::StoragePath;

// The crates the traits are written with, re-exported so a custom driver implements them with
// exactly the same versions (`#[registry_storage::async_trait]`, `registry_storage::bytes::Bytes`,
// `registry_storage::futures_util::stream`) without depending on them itself.
#[doc(no_inline)]
pub use async_trait::async_trait;
#[doc(no_inline)]
pub use bytes;
#[doc(no_inline)]
pub use futures_util;
