//! Upload purging: removing upload sessions that were started long ago and never finished, as
//! registry:2's `storage.maintenance.uploadpurging` does.

use std::time::SystemTime;

use registry_model::RepositoryName;
use registry_storage::{StorageError, StoragePath, WalkControl};

use crate::links::delete_if_exists;
use crate::{ContentError, ContentStore, layout};

/// What a purge found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Upload sessions started before the cutoff (removed unless it was a dry run).
    pub purged: Vec<(RepositoryName, String)>,
    /// Upload sessions left in place because they are recent.
    pub kept: usize,
}

impl ContentStore {
    /// Removes every upload session started before `cutoff`; with `dry_run`, only reports them.
    ///
    /// A session's start is the modification time of its `startedat` file, which is written once
    /// when the session starts. A session without one (a half-created directory) counts as old.
    pub async fn purge_uploads(
        &self,
        cutoff: SystemTime,
        dry_run: bool,
    ) -> Result<PurgeReport, ContentError> {
        let root = layout::repositories_root()?;
        let prefix_len = root.as_str().len() + 1;
        let mut upload_dirs: Vec<StoragePath> = Vec::new();
        let walked = self
            .driver
            .walk(&root, &mut |entry| {
                if !entry.is_dir {
                    return WalkControl::Continue;
                }
                match entry.path.file_name() {
                    Some("_uploads") => {
                        upload_dirs.push(entry.path.clone());
                        WalkControl::SkipDir
                    }
                    Some(other) if other.starts_with('_') => WalkControl::SkipDir,
                    _ => WalkControl::Continue,
                }
            })
            .await;
        match walked {
            Ok(()) | Err(StorageError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        let mut report = PurgeReport::default();
        for uploads in upload_dirs {
            let Some(name) = uploads.parent().and_then(|parent| {
                parent
                    .as_str()
                    .get(prefix_len..)?
                    .parse::<RepositoryName>()
                    .ok()
            }) else {
                continue;
            };
            let sessions = match self.driver.list(&uploads).await {
                Ok(sessions) => sessions,
                Err(StorageError::NotFound { .. }) => continue,
                Err(error) => return Err(error.into()),
            };
            for session in sessions {
                let started = match self.driver.stat(&session.join("startedat")?).await {
                    Ok(info) => info.modified,
                    Err(StorageError::NotFound { .. }) => None,
                    Err(error) => return Err(error.into()),
                };
                if started.is_some_and(|started| started >= cutoff) {
                    report.kept += 1;
                    continue;
                }
                if !dry_run {
                    delete_if_exists(self.driver.as_ref(), &session).await?;
                }
                let id = session.file_name().unwrap_or_default().to_owned();
                report.purged.push((name.clone(), id));
            }
        }
        Ok(report)
    }
}
