//! How storage paths map to object keys: `/docker/registry/v2/...` becomes
//! `<rootdirectory>/docker/registry/v2/...`, exactly as registry:2's S3 driver names them, so one
//! bucket can be served by either.
//!
//! Beside an object whose resumable writer is open (an upload between two `PATCH`es) the driver
//! keeps one more object, the writer's state, at the object's key plus [`WRITER_STATE_SUFFIX`].
//! `@` never occurs in a storage path, so no path can name the state object, and listings show
//! the object the state belongs to instead.

use object_store::path::Path as ObjectPath;
use registry_storage::StoragePath;

/// Appended to an object's key to name the state of its open writer.
pub(crate) const WRITER_STATE_SUFFIX: &str = "@writer";

/// The key prefix of one driver: `rootdirectory` with a trailing `/`, or empty.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys below `root_directory` (leading and trailing slashes ignored, as registry:2 does).
    pub(crate) fn new(root_directory: &str) -> Keys {
        let trimmed = root_directory.trim_matches('/');
        let prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        Keys { prefix }
    }

    /// The key of the object at `path` (not the root).
    pub(crate) fn object(&self, path: &StoragePath) -> String {
        format!("{}{}", self.prefix, &path.as_str()[1..])
    }

    /// The key of the writer state kept beside the object at `path`.
    pub(crate) fn writer_state(&self, path: &StoragePath) -> String {
        format!("{}{WRITER_STATE_SUFFIX}", self.object(path))
    }

    /// The prefix every key below the directory `path` starts with, ending in `/` (or empty for
    /// the root of a bucket without a root directory).
    pub(crate) fn children(&self, path: &StoragePath) -> String {
        if path.is_root() {
            self.prefix.clone()
        } else {
            format!("{}/", self.object(path))
        }
    }

    /// The storage path a listed key names: the object itself for a writer state, `None` for a
    /// key outside this driver's root or one no storage path can name.
    pub(crate) fn path_of(&self, key: &str) -> Option<StoragePath> {
        let relative = key.strip_prefix(&self.prefix)?;
        let relative = relative.strip_suffix('/').unwrap_or(relative);
        let relative = relative
            .strip_suffix(WRITER_STATE_SUFFIX)
            .unwrap_or(relative);
        StoragePath::root().join_all(relative).ok()
    }
}

/// `key` as object_store's path type. Keys are made of storage path characters, which object_store
/// takes as they are.
pub(crate) fn object_path(key: &str) -> ObjectPath {
    ObjectPath::from(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> StoragePath {
        StoragePath::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn keys_follow_registry2_with_and_without_a_root_directory() {
        let bare = Keys::new("");
        let rooted = Keys::new("/registry/");
        let blob = path("/docker/registry/v2/blobs/sha256/ab/abcd/data");
        assert_eq!(
            bare.object(&blob),
            "docker/registry/v2/blobs/sha256/ab/abcd/data"
        );
        assert_eq!(
            rooted.object(&blob),
            "registry/docker/registry/v2/blobs/sha256/ab/abcd/data"
        );
        assert_eq!(bare.children(&StoragePath::root()), "");
        assert_eq!(rooted.children(&StoragePath::root()), "registry/");
        assert_eq!(rooted.children(&path("/docker")), "registry/docker/");
    }

    #[test]
    fn a_writer_state_lists_as_its_object() {
        let keys = Keys::new("root");
        let data = path("/uploads/1/data");
        assert_eq!(keys.writer_state(&data), "root/uploads/1/data@writer");
        assert_eq!(keys.path_of(&keys.writer_state(&data)), Some(data.clone()));
        assert_eq!(keys.path_of("root/uploads/1/data"), Some(data));
        assert_eq!(keys.path_of("root/uploads/"), Some(path("/uploads")));
        assert_eq!(keys.path_of("elsewhere/uploads"), None);
        assert_eq!(keys.path_of("root/bad name"), None);
    }
}
