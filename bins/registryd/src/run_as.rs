//! `registryd serve --run-as UID:GID`: started as root (as a container starts), give up root
//! before serving wherever the data directory and the files the configuration names allow it.
//!
//! registry:2's image runs as root, so its users bind-mount directories owned by root (and
//! Docker creates a missing bind-mount source owned by root). Refusing those would break the
//! commands people already run; serving them as root always would waste the image's unprivileged
//! user. So, as root:
//!
//! - the data directory is missing or empty: it is created and given to UID:GID, who serves it;
//! - it is owned by another user (a directory of the host's, or a volume made from the image):
//!   its owner serves it, so new files keep the owner the old ones have;
//! - it holds data owned by root (registry:2's): registryd stays root, and says how to change it;
//! - a file the configuration names (certificate, key, htpasswd file, the configuration itself)
//!   cannot be read by the chosen user: registryd stays root, and says which file.
//!
//! Giving up root re-executes registryd as the chosen user and group (no supplementary groups);
//! not started as root, it serves as it is.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use registry::config::{Config, StorageDriverConfig};

/// A numeric user and group, `UID:GID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    /// The user id.
    pub(crate) uid: u32,
    /// The group id.
    pub(crate) gid: u32,
}

impl FromStr for RunAs {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (uid, gid) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?} is not UID:GID (numbers, as 65532:65532)"))?;
        let number = |part: &str| {
            part.parse::<u32>()
                .map_err(|_| format!("{text:?} is not UID:GID (numbers, as 65532:65532)"))
        };
        let run_as = RunAs {
            uid: number(uid)?,
            gid: number(gid)?,
        };
        if run_as.uid == 0 {
            return Err(
                "--run-as 0:... is root itself; leave the option out to run as root".into(),
            );
        }
        Ok(run_as)
    }
}

/// What a root process does about `--run-as`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Serve as `user`, after giving it `chown`, the empty data directory, when set.
    Switch { user: RunAs, chown: Option<PathBuf> },
    /// Stay root, for the reason given (a warning for the log that says how to change it).
    StayRoot(String),
}

/// The user the process runs as (the owner of `/proc/self`, its effective user), when /proc
/// says.
fn effective_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|meta| meta.uid())
}

/// Gives up root as `--run-as` asks, or logs why not. Returns only when the process goes on
/// serving as it is (not root, or staying root); an error when re-executing failed.
pub(crate) fn drop_root(
    config: &Config,
    config_path: Option<&Path>,
    wanted: RunAs,
) -> Result<(), String> {
    if effective_uid() != Some(0) {
        return Ok(());
    }
    match plan(config, config_path, wanted) {
        Plan::StayRoot(reason) => {
            tracing::warn!("serving as root: {reason}");
            Ok(())
        }
        Plan::Switch { user, chown } => {
            if let Some(dir) = chown {
                std::fs::create_dir_all(&dir)
                    .and_then(|()| std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)))
                    .map_err(|error| {
                        format!(
                            "--run-as: cannot give the data directory {} to {}:{}: {error}",
                            dir.display(),
                            user.uid,
                            user.gid
                        )
                    })?;
                tracing::info!(
                    "the data directory {} was empty: now owned by {}:{}",
                    dir.display(),
                    user.uid,
                    user.gid
                );
            }
            tracing::info!("giving up root: serving as {}:{}", user.uid, user.gid);
            let exe = std::env::current_exe()
                .map_err(|error| format!("--run-as: cannot find the registryd binary: {error}"))?;
            let error = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .uid(user.uid)
                .gid(user.gid)
                .exec();
            Err(format!(
                "--run-as: cannot run as {}:{}: {error}",
                user.uid, user.gid
            ))
        }
    }
}

/// Decides, as root, who serves `config` (see the module's documentation).
pub(crate) fn plan(config: &Config, config_path: Option<&Path>, wanted: RunAs) -> Plan {
    let (user, chown) = match &config.storage.driver {
        StorageDriverConfig::InMemory | StorageDriverConfig::S3(_) => (wanted, None),
        StorageDriverConfig::Filesystem(filesystem) => {
            match data_owner(&filesystem.rootdirectory) {
                DataOwner::Missing | DataOwner::EmptyRoot => {
                    (wanted, Some(filesystem.rootdirectory.clone()))
                }
                DataOwner::User(owner) => (owner, None),
                DataOwner::Root => {
                    let dir = filesystem.rootdirectory.display();
                    return Plan::StayRoot(format!(
                        "the data directory {dir} holds data owned by root (as registry:2, \
                         which runs as root, leaves it); `chown -R {uid}:{gid}` it (on the host, \
                         for a bind mount) to serve it as {uid}:{gid}",
                        uid = wanted.uid,
                        gid = wanted.gid
                    ));
                }
            }
        }
    };
    for file in named_files(config, config_path) {
        if let Ok(meta) = std::fs::metadata(&file)
            && !readable_by(&meta, user)
        {
            return Plan::StayRoot(format!(
                "{} cannot be read by {}:{} (mode {:o}, owner {}:{}); make it readable by that \
                 user or group (`chown :{} FILE; chmod g+r FILE`) to serve without root",
                file.display(),
                user.uid,
                user.gid,
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid(),
                user.gid
            ));
        }
    }
    Plan::Switch { user, chown }
}

/// Who owns a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataOwner {
    /// It does not exist yet (or cannot be looked at: serving will say why).
    Missing,
    /// It exists, owned by root, and is empty.
    EmptyRoot,
    /// It holds data owned by root.
    Root,
    /// It is owned by this user and group, and so is the registry's tree in it, if any.
    User(RunAs),
}

fn data_owner(dir: &Path) -> DataOwner {
    let Ok(meta) = std::fs::metadata(dir) else {
        return DataOwner::Missing;
    };
    // The tree registry:2 and registryd write: its owner is who wrote the data, should the top
    // directory have been given to someone else alone.
    let tree = std::fs::metadata(dir.join("docker"))
        .ok()
        .map(|tree| tree.uid());
    if meta.uid() != 0 && tree.is_none_or(|uid| uid == meta.uid()) {
        return DataOwner::User(RunAs {
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
    let empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none());
    if meta.uid() == 0 && empty {
        DataOwner::EmptyRoot
    } else {
        DataOwner::Root
    }
}

/// The files serving `config` reads: the configuration itself, TLS certificates and keys, the
/// authentication files.
fn named_files(config: &Config, config_path: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = config_path.map(Path::to_path_buf).into_iter().collect();
    files.extend(
        config
            .named_paths()
            .into_iter()
            .filter(|(key, _)| key != "storage.filesystem.rootdirectory")
            .map(|(_, path)| path.to_path_buf()),
    );
    files
}

/// Whether `user` may read a file with this owner and mode (the permission bits alone: the
/// check a kernel makes, short of ACLs and capabilities).
fn readable_by(meta: &std::fs::Metadata, user: RunAs) -> bool {
    let mode = meta.mode();
    if meta.uid() == user.uid {
        mode & 0o400 != 0
    } else if meta.gid() == user.gid {
        mode & 0o040 != 0
    } else {
        mode & 0o004 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANTED: RunAs = RunAs {
        uid: 65532,
        gid: 65532,
    };

    fn filesystem_config(root: &Path, extra: &str) -> Config {
        let yaml = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n{extra}",
            root.display()
        );
        Config::from_yaml(&yaml, Vec::new())
            .expect("valid test config")
            .config
    }

    #[test]
    fn run_as_parses_numeric_user_and_group_and_refuses_root() {
        assert_eq!(
            "65532:65533".parse::<RunAs>(),
            Ok(RunAs {
                uid: 65532,
                gid: 65533
            })
        );
        assert!("registry".parse::<RunAs>().is_err());
        assert!("1:x".parse::<RunAs>().is_err());
        assert!("0:0".parse::<RunAs>().is_err());
    }

    #[test]
    fn missing_data_directory_is_created_for_the_wanted_user() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("data");
        assert_eq!(
            plan(&filesystem_config(&root, ""), None, WANTED),
            Plan::Switch {
                user: WANTED,
                chown: Some(root)
            }
        );
    }

    #[test]
    fn inmemory_storage_needs_no_directory() {
        let config = Config::from_yaml("version: 0.1\nstorage:\n  inmemory: {}\n", Vec::new())
            .expect("valid")
            .config;
        assert_eq!(
            plan(&config, None, WANTED),
            Plan::Switch {
                user: WANTED,
                chown: None
            }
        );
    }

    #[test]
    fn a_directory_owned_by_a_user_is_served_by_that_user() {
        // The test runs as some user; a directory it makes is that user's.
        let dir = tempfile::tempdir().expect("temp dir");
        let meta = std::fs::metadata(dir.path()).expect("stat");
        if meta.uid() == 0 {
            // As root the directory is root's: the other branch, tested below.
            let empty = data_owner(dir.path());
            assert_eq!(empty, DataOwner::EmptyRoot);
            std::fs::write(dir.path().join("file"), b"registry:2 data").expect("write");
            assert_eq!(data_owner(dir.path()), DataOwner::Root);
            let config = filesystem_config(dir.path(), "");
            assert!(matches!(plan(&config, None, WANTED), Plan::StayRoot(_)));
        } else {
            assert_eq!(
                data_owner(dir.path()),
                DataOwner::User(RunAs {
                    uid: meta.uid(),
                    gid: meta.gid()
                })
            );
        }
    }

    #[test]
    fn a_key_only_its_owner_reads_keeps_root() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("server.key");
        std::fs::write(&key, b"key").expect("write key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let meta = std::fs::metadata(&key).expect("stat");
        let owner = RunAs {
            uid: meta.uid(),
            gid: meta.gid(),
        };
        let stranger = RunAs {
            uid: meta.uid().wrapping_add(1).max(1),
            gid: meta.gid().wrapping_add(1),
        };
        assert!(readable_by(&meta, owner));
        assert!(!readable_by(&meta, stranger));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let meta = std::fs::metadata(&key).expect("stat");
        let same_group = RunAs {
            uid: stranger.uid,
            gid: meta.gid(),
        };
        assert!(readable_by(&meta, same_group));

        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let extra = format!(
            "http:\n  tls:\n    certificate: {}\n    key: {}\n",
            key.display(),
            key.display()
        );
        let config = filesystem_config(&dir.path().join("data"), &extra);
        match plan(&config, None, stranger) {
            Plan::StayRoot(reason) => assert!(reason.contains("server.key"), "{reason}"),
            other => panic!("expected to stay root, got {other:?}"),
        }
    }
}
