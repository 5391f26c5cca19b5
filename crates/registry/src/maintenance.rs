//! Background upkeep of the store while the registry serves: removing abandoned uploads
//! (registry:2's `storage.maintenance.uploadpurging`).

use std::time::{Duration, SystemTime};

use registry_content::ContentStore;

/// Removal of upload sessions that were started long ago and never finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadPurging {
    /// Sessions started longer ago than this are removed.
    pub age: Duration,
    /// How often to look for them. The first look is after this interval or one minute,
    /// whichever is shorter, so a registry restarted often still purges.
    pub interval: Duration,
    /// Only log what would be removed.
    pub dry_run: bool,
}

/// Purges on `policy`'s schedule until the future is dropped.
pub(crate) async fn purge_uploads_periodically(content: ContentStore, policy: UploadPurging) {
    let mut wait = policy.interval.min(Duration::from_secs(60));
    loop {
        tokio::time::sleep(wait).await;
        wait = policy.interval;
        let cutoff = SystemTime::now()
            .checked_sub(policy.age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        match content.purge_uploads(cutoff, policy.dry_run).await {
            Ok(report) if policy.dry_run => tracing::info!(
                would_purge = report.purged.len(),
                kept = report.kept,
                "upload purging (dry run)"
            ),
            Ok(report) => tracing::info!(
                purged = report.purged.len(),
                kept = report.kept,
                "upload purging"
            ),
            Err(error) => tracing::warn!(%error, "upload purging failed; will retry"),
        }
    }
}
