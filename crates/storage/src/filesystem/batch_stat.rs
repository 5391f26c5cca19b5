//! Stat'ing many paths at once, as the catalog's index does before every catalog (one stat per
//! directory below the repositories root).
//!
//! On Linux each path's directory is opened once (`O_PATH`) for all the consecutive paths inside
//! it, and each path is stat'ed by its last name relative to that directory (`fstatat`), so the
//! kernel looks up one name per path instead of walking the whole path from `/` every time, and
//! no full file path is built: for 10,000 repositories that is most of the work. Elsewhere, and
//! for any path whose directory cannot be opened, it is a plain `stat` of the whole path, which
//! also gives the right error.

use std::fs;
use std::path::Path;

use super::{file_below, file_info, io_error};
use crate::{FileInfo, StorageError, StoragePath};

/// `stat` of each of `paths` below `root`, in order.
pub(super) fn stat_all(
    root: &Path,
    paths: Vec<StoragePath>,
) -> Vec<Result<FileInfo, StorageError>> {
    let mut parent = relative::OpenParent::default();
    paths
        .into_iter()
        .map(|path| {
            let path = match parent.stat(root, path) {
                Ok(info) => return Ok(info),
                Err(path) => path,
            };
            match fs::metadata(file_below(root, &path)) {
                Ok(metadata) => Ok(file_info(path, &metadata)),
                Err(error) => Err(io_error("stat", &path, error)),
            }
        })
        .collect()
}

#[cfg(target_os = "linux")]
mod relative {
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, open, statat};

    use super::file_below;
    use crate::{FileInfo, StoragePath};

    /// The parent directory opened last (as a storage path), reused while consecutive paths lie
    /// in it.
    #[derive(Default)]
    pub(super) struct OpenParent {
        open: Option<(String, Option<OwnedFd>)>,
    }

    impl OpenParent {
        /// What `stat` says of `path`, looked up relative to its open directory; the path back
        /// when that does not work (the caller then stats the whole path and reports its error).
        pub(super) fn stat(
            &mut self,
            root: &Path,
            path: StoragePath,
        ) -> Result<FileInfo, StoragePath> {
            let Some(slash) = path.as_str().rfind('/') else {
                return Err(path);
            };
            let (directory, name) = (&path.as_str()[..slash], &path.as_str()[slash + 1..]);
            if path.is_root() || name.is_empty() {
                return Err(path);
            }
            let reuse = matches!(&self.open, Some((open, _)) if open == directory);
            if !reuse {
                let opened = StoragePath::parse(if directory.is_empty() { "/" } else { directory })
                    .ok()
                    .and_then(|parent| {
                        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                        open(file_below(root, &parent), flags, Mode::empty()).ok()
                    });
                self.open = Some((directory.to_owned(), opened));
            }
            let Some((_, Some(fd))) = &self.open else {
                return Err(path);
            };
            match statat(fd, name, AtFlags::empty()) {
                Ok(stat) => Ok(describe(path, &stat)),
                Err(_) => Err(path),
            }
        }
    }

    fn describe(path: StoragePath, stat: &Stat) -> FileInfo {
        let is_dir = FileType::from_raw_mode(stat.st_mode).is_dir();
        FileInfo {
            path,
            size: if is_dir {
                0
            } else {
                u64::try_from(stat.st_size).unwrap_or(0)
            },
            modified: modified(stat.st_mtime, stat.st_mtime_nsec),
            is_dir,
        }
    }

    /// The time `seconds` and `nanos` after the epoch, as `std::fs::Metadata::modified` gives it.
    fn modified(seconds: i64, nanos: impl TryInto<u32>) -> Option<SystemTime> {
        let nanos: u32 = nanos.try_into().ok()?;
        match u64::try_from(seconds) {
            Ok(seconds) => UNIX_EPOCH.checked_add(Duration::new(seconds, nanos)),
            Err(_) => UNIX_EPOCH
                .checked_sub(Duration::from_secs(seconds.unsigned_abs()))?
                .checked_add(Duration::from_nanos(u64::from(nanos))),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod relative {
    use std::path::Path;

    use crate::{FileInfo, StoragePath};

    /// No relative lookups: every path is stat'ed whole.
    #[derive(Default)]
    pub(super) struct OpenParent;

    impl OpenParent {
        pub(super) fn stat(
            &mut self,
            _root: &Path,
            path: StoragePath,
        ) -> Result<FileInfo, StoragePath> {
            Err(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_a_whole_path_stat_does() {
        let root = tempfile::tempdir().expect("temporary directory");
        let base = root.path();
        fs::create_dir_all(base.join("a")).expect("a");
        fs::create_dir_all(base.join("b")).expect("b");
        fs::write(base.join("a/file"), b"twelve bytes").expect("a/file");
        fs::write(base.join("b/file"), b"").expect("b/file");
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("a"), base.join("link")).expect("link");
        let relatives = [
            "a/file",
            "a",
            "a/file",
            "b/file",
            "missing/file",
            "a/missing",
            "link/file",
            "a/file/below",
            "b",
        ];
        let paths = relatives
            .iter()
            .map(|relative| StoragePath::parse(&format!("/{relative}")).expect("storage path"))
            .collect();
        let answers = stat_all(base, paths);
        assert_eq!(answers.len(), relatives.len());
        for (relative, answer) in relatives.iter().zip(answers) {
            match (answer, fs::metadata(base.join(relative))) {
                (Ok(info), Ok(metadata)) => {
                    let expected = file_info(info.path.clone(), &metadata);
                    assert_eq!(info, expected, "{relative}");
                }
                (Err(StorageError::NotFound { .. }), Err(_)) => {}
                (answer, metadata) => panic!("{relative}: {answer:?} but {metadata:?}"),
            }
        }
    }
}
