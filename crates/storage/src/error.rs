//! The one error type of every storage driver.

use crate::StoragePath;

/// What went wrong in a storage driver, in terms a caller can act on.
///
/// Drivers keep their detailed errors private and convert them into these variants; anything that
/// is not one of the specific cases is `Backend`, with the driver's name and the underlying error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Nothing exists at the path.
    #[error("{path}: not found")]
    NotFound {
        /// The path that was looked up.
        path: StoragePath,
    },
    /// A conditional write to create an object found one already there
    /// ([`PutMode::Create`](crate::PutMode::Create)).
    #[error("{path}: already exists")]
    AlreadyExists {
        /// The path written.
        path: StoragePath,
    },
    /// A conditional write to replace an object found it changed or gone since the version it was
    /// given ([`PutMode::Update`](crate::PutMode::Update)).
    #[error("{path}: changed since the version read")]
    Precondition {
        /// The path written.
        path: StoragePath,
    },
    /// A string could not be made into a [`StoragePath`].
    #[error("invalid storage path {path:?}: {reason}")]
    InvalidPath {
        /// The rejected string.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A read started past the end of an object.
    #[error("{path}: offset {offset} is past the end of the object")]
    InvalidOffset {
        /// The object read.
        path: StoragePath,
        /// The requested offset.
        offset: u64,
    },
    /// The driver does not support the operation.
    #[error("the {driver} driver does not support {operation}")]
    Unsupported {
        /// The driver's name.
        driver: &'static str,
        /// The operation asked for.
        operation: &'static str,
    },
    /// The backend failed: an I/O error, a network error, a full disk.
    #[error("{driver} driver: {operation} {path}: {source}")]
    Backend {
        /// The driver's name.
        driver: &'static str,
        /// What the driver was doing, e.g. "write".
        operation: &'static str,
        /// The path it was working on.
        path: StoragePath,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl StorageError {
    /// Whether this is [`StorageError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// Whether the backend is out of space (a full disk, an exhausted quota): retrying is
    /// pointless until someone frees some.
    pub fn is_storage_full(&self) -> bool {
        let StorageError::Backend { source, .. } = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            {
                return true;
            }
            cause = error.source();
        }
        false
    }
}
