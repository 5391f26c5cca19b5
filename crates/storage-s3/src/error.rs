//! object_store's errors in the terms of [`StorageError`].

use registry_storage::{StorageError, StoragePath};

/// The driver's name in errors and logs.
pub(crate) const DRIVER: &str = "s3";

/// `error`, met while doing `operation` on `path`, as a [`StorageError`]: the object_store
/// outcomes a caller acts on keep their meaning, everything else is `Backend`.
pub(crate) fn from_store(
    operation: &'static str,
    path: &StoragePath,
    error: object_store::Error,
) -> StorageError {
    let path = path.clone();
    match error {
        object_store::Error::NotFound { .. } => StorageError::NotFound { path },
        object_store::Error::AlreadyExists { .. } => StorageError::AlreadyExists { path },
        object_store::Error::Precondition { .. } => StorageError::Precondition { path },
        source => StorageError::Backend {
            driver: DRIVER,
            operation,
            path,
            source: Box::new(source),
        },
    }
}

/// The object at `path` is not what this driver wrote: `reason` says how.
pub(crate) fn corrupt(path: &StoragePath, reason: &'static str) -> StorageError {
    StorageError::Backend {
        driver: DRIVER,
        operation: "read",
        path: path.clone(),
        source: reason.into(),
    }
}
