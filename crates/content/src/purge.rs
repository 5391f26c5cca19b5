//! Upload purging: removing upload sessions that were started long ago and never finished, as
//! registry:2's `storage.maintenance.uploadpurging` does.

use std::time::SystemTime;

use registry_model::RepositoryName;
use registry_storage::StorageError;

use crate::lease::{Kind, Lease};
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
    /// A session a request is using is kept, however old. [`ContentError::ReadOnly`] in
    /// read-only mode.
    pub async fn purge_uploads(
        &self,
        cutoff: SystemTime,
        dry_run: bool,
    ) -> Result<PurgeReport, ContentError> {
        if self.is_read_only() && !dry_run {
            return Err(ContentError::ReadOnly);
        }
        let mut report = PurgeReport::default();
        for (name, uploads) in self.repository_folders("_uploads").await? {
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
                    // A request using the session (an upload of many days, however unlikely)
                    // keeps it: the purge takes the session's lease first, as a request would.
                    let lease = session.join(layout::UPLOAD_LEASE)?;
                    let term = self.options.lease_term;
                    match Lease::try_acquire(&self.driver, &lease, term, Kind::Removed).await? {
                        Ok(lease) => {
                            delete_if_exists(self.driver.as_ref(), &session).await?;
                            lease.forget();
                        }
                        Err(_) => {
                            report.kept += 1;
                            continue;
                        }
                    }
                }
                let id = session.file_name().unwrap_or_default().to_owned();
                if !dry_run {
                    crate::uploads::upload_ended("purged");
                }
                report.purged.push((name.clone(), id));
            }
        }
        Ok(report)
    }
}
