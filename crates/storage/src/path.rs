//! The validated path type every driver is addressed with.

use std::fmt;

use crate::StorageError;

/// A path inside a storage driver: `/` followed by segments separated by `/`.
///
/// Each segment is one or more of `[A-Za-z0-9._-]` and is neither `.` nor `..`; there are no empty
/// segments and no trailing slash (the root, `/`, is the only path ending in one). These are the
/// paths registry:2's drivers accept, so a driver can map a `StoragePath` to a file name or an
/// object key without any escaping, and no path can name anything outside the driver's root.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoragePath(String);

impl StoragePath {
    /// The root of the driver, `/`.
    pub fn root() -> StoragePath {
        StoragePath("/".to_owned())
    }

    /// Validates `path` as a storage path.
    pub fn parse(path: &str) -> Result<StoragePath, StorageError> {
        if path == "/" {
            return Ok(StoragePath::root());
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Err(invalid(path, "a storage path must start with '/'"));
        };
        for segment in rest.split('/') {
            check_segment(segment).map_err(|reason| invalid(path, reason))?;
        }
        Ok(StoragePath(path.to_owned()))
    }

    /// This path with one more segment appended. `segment` must be a single valid segment.
    pub fn join(&self, segment: &str) -> Result<StoragePath, StorageError> {
        check_segment(segment).map_err(|reason| invalid(segment, reason))?;
        let mut joined = String::with_capacity(self.0.len() + 1 + segment.len());
        joined.push_str(&self.0);
        if !self.is_root() {
            joined.push('/');
        }
        joined.push_str(segment);
        Ok(StoragePath(joined))
    }

    /// This path with every `/`-separated segment of `relative` appended in turn.
    pub fn join_all(&self, relative: &str) -> Result<StoragePath, StorageError> {
        relative
            .split('/')
            .try_fold(self.clone(), |path, segment| path.join(segment))
    }

    /// The path as a string, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root path `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path without its last segment; `None` for the root.
    pub fn parent(&self) -> Option<StoragePath> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            StoragePath::root()
        } else {
            StoragePath(self.0[..cut].to_owned())
        })
    }

    /// The last segment; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            return None;
        }
        self.0.rsplit('/').next()
    }

    /// The segments after the root, in order (none for the root).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|segment| !segment.is_empty())
    }

    /// Whether `self` is `ancestor` or lies below it.
    pub fn starts_with(&self, ancestor: &StoragePath) -> bool {
        ancestor.is_root()
            || self.0 == ancestor.0
            || (self.0.starts_with(&ancestor.0) && self.0.as_bytes()[ancestor.0.len()] == b'/')
    }
}

fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("empty path segment");
    }
    if segment == "." || segment == ".." {
        return Err("'.' and '..' are not allowed as path segments");
    }
    if !segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("a path segment may only hold [A-Za-z0-9._-]");
    }
    Ok(())
}

fn invalid(path: &str, reason: &'static str) -> StorageError {
    StorageError::InvalidPath {
        path: path.to_owned(),
        reason,
    }
}

impl fmt::Display for StoragePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StoragePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for StoragePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn path(path: &str) -> StoragePath {
        StoragePath::parse(path).expect("valid path")
    }

    #[test]
    fn root_is_a_path() {
        let root = StoragePath::root();
        assert_eq!(path("/"), root);
        assert!(root.is_root());
        assert_eq!(root.as_str(), "/");
        assert_eq!(root.parent(), None);
        assert_eq!(root.file_name(), None);
        assert_eq!(root.segments().count(), 0);
    }

    #[test]
    fn registry_paths_parse() {
        for valid in [
            "/docker/registry/v2/blobs/sha256/ab/abcdef/data",
            "/docker/registry/v2/repositories/library/alpine/_manifests/tags/3.20/current/link",
            "/a",
            "/.hidden",
            "/...",
            "/a-b_c.d/E-F",
        ] {
            assert_eq!(path(valid).as_str(), valid);
        }
    }

    #[test]
    fn malformed_paths_are_rejected() {
        for invalid in [
            "", "a", "a/b", "//", "/a/", "/a//b", "/.", "/..", "/a/./b", "/a/../b", "/a b",
            "/a\\b", "/a:b", "/a%2Fb", "/é", "/a\0", "/a\n", "/~",
        ] {
            let error = StoragePath::parse(invalid).expect_err(invalid);
            assert!(
                matches!(&error, StorageError::InvalidPath { path, .. } if path == invalid),
                "{invalid:?}: {error:?}"
            );
        }
    }

    #[test]
    fn join_takes_exactly_one_segment() {
        assert_eq!(StoragePath::root().join("a").expect("join"), path("/a"));
        assert_eq!(path("/a").join("b").expect("join"), path("/a/b"));
        for invalid in ["", ".", "..", "a/b", "/a", "a/"] {
            assert!(path("/a").join(invalid).is_err(), "{invalid:?}");
        }
    }

    #[test]
    fn join_all_appends_every_segment() {
        assert_eq!(
            StoragePath::root().join_all("a/b/c").expect("join_all"),
            path("/a/b/c")
        );
        assert_eq!(path("/a").join_all("b").expect("join_all"), path("/a/b"));
        for invalid in ["", "/b", "b/", "b//c", "b/../c"] {
            assert!(path("/a").join_all(invalid).is_err(), "{invalid:?}");
        }
    }

    #[test]
    fn parent_and_file_name() {
        assert_eq!(path("/a").parent(), Some(StoragePath::root()));
        assert_eq!(path("/a/b/c").parent(), Some(path("/a/b")));
        assert_eq!(path("/a/b/c").file_name(), Some("c"));
        assert_eq!(
            path("/a/b/c").segments().collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
    }

    #[test]
    fn starts_with_respects_segment_boundaries() {
        assert!(path("/a/b").starts_with(&path("/a/b")));
        assert!(path("/a/b/c").starts_with(&path("/a/b")));
        assert!(path("/a/b").starts_with(&StoragePath::root()));
        assert!(StoragePath::root().starts_with(&StoragePath::root()));
        assert!(!path("/a/bc").starts_with(&path("/a/b")));
        assert!(!path("/a/b.c").starts_with(&path("/a/b")));
        assert!(!path("/a").starts_with(&path("/a/b")));
        assert!(!StoragePath::root().starts_with(&path("/a")));
    }

    #[test]
    fn display_and_debug() {
        assert_eq!(path("/a/b").to_string(), "/a/b");
        assert_eq!(format!("{:?}", path("/a/b")), "\"/a/b\"");
    }

    fn segment() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._-]{1,10}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    proptest! {
        #[test]
        fn valid_segments_make_valid_paths(segments in prop::collection::vec(segment(), 1..8)) {
            let text = format!("/{}", segments.join("/"));
            let parsed = StoragePath::parse(&text).expect("valid");
            prop_assert_eq!(parsed.as_str(), text.as_str());
            prop_assert_eq!(parsed.segments().collect::<Vec<_>>(), segments.iter().map(String::as_str).collect::<Vec<_>>());
            let rebuilt = segments.iter().try_fold(StoragePath::root(), |p, s| p.join(s)).expect("join");
            prop_assert_eq!(&rebuilt, &parsed);
            prop_assert_eq!(StoragePath::root().join_all(&segments.join("/")).expect("join_all"), parsed.clone());
            let last = segments.last().expect("one segment at least");
            prop_assert_eq!(parsed.file_name(), Some(last.as_str()));
            let parent = parsed.parent().expect("not the root");
            prop_assert_eq!(parent.join(last).expect("join"), parsed.clone());
            prop_assert!(parsed.starts_with(&parent));
            prop_assert!(!parent.starts_with(&parsed));
        }

        #[test]
        fn parsed_paths_are_always_well_formed(text in "(/[A-Za-z0-9._~ \\\\%-]{0,4}){0,5}[./]{0,3}") {
            if let Ok(parsed) = StoragePath::parse(&text) {
                prop_assert_eq!(parsed.as_str(), text.as_str());
                if !parsed.is_root() {
                    for segment in parsed.segments() {
                        prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                        prop_assert!(segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
                    }
                    prop_assert_eq!(parsed.segments().count(), text.matches('/').count());
                }
            }
        }

        #[test]
        fn a_sibling_sharing_a_prefix_is_not_below(
            base in prop::collection::vec(segment(), 1..4),
            suffix in "[A-Za-z0-9._-]{1,4}",
        ) {
            let path = StoragePath::root().join_all(&base.join("/")).expect("valid");
            let sibling_name = format!("{}{suffix}", path.file_name().expect("named"));
            let sibling = path.parent().expect("parent").join(&sibling_name).expect("valid");
            prop_assert!(!sibling.starts_with(&path));
            prop_assert!(!path.starts_with(&sibling));
        }

        #[test]
        fn ordering_is_the_string_ordering(a in prop::collection::vec(segment(), 1..4), b in prop::collection::vec(segment(), 1..4)) {
            let a = StoragePath::root().join_all(&a.join("/")).expect("valid");
            let b = StoragePath::root().join_all(&b.join("/")).expect("valid");
            prop_assert_eq!(a.cmp(&b), a.as_str().cmp(b.as_str()));
        }
    }
}
