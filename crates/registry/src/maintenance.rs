//! Background upkeep of the store while the registry serves: removing abandoned uploads
//! (registry:2's `storage.maintenance.uploadpurging`) and collecting garbage
//! (`storage.maintenance.gc`). Both pause while the store is read-only.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use registry_content::{ContentError, ContentStore, GcEvent, GcOptions};
use registry_events::{Action, ActorRecord, Event, EventSink, RequestRecord, Target};

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
            Err(ContentError::ReadOnly) => {
                tracing::debug!("upload purging paused: the registry is read-only");
            }
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

/// Garbage collection on a schedule while the registry serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GarbageCollection {
    /// How often to collect. The first collection is after this interval or one minute,
    /// whichever is shorter. With several processes over one store, each collects on its own
    /// schedule and a collection finding another running is skipped.
    pub interval: Duration,
    /// What each collection keeps and deletes.
    pub options: GcOptions,
}

/// Collects on `schedule` until the future is dropped, logging what each collection removes.
/// A tag a retention policy removes is a delete like a client's: `events`, when given, gets the
/// same `delete` event (target repository and tag), with no request and no actor.
pub(crate) async fn collect_garbage_periodically(
    content: ContentStore,
    schedule: GarbageCollection,
    events: Option<Arc<dyn EventSink>>,
) {
    let mut wait = schedule.interval.min(Duration::from_secs(60));
    let dry_run = schedule.options.dry_run;
    loop {
        tokio::time::sleep(wait).await;
        wait = schedule.interval;
        let collected = content
            .collect_garbage(&schedule.options, |event| {
                log_event(event, dry_run);
                if let (Some(sink), false) = (&events, dry_run) {
                    emit(sink, event);
                }
            })
            .await;
        match collected {
            Ok(report) => tracing::info!(
                dry_run,
                repositories = report.repositories,
                tags_deleted = report.tags_deleted,
                manifests_deleted = report.manifests_deleted,
                layer_links_deleted = report.layer_links_deleted,
                blobs_deleted = report.blobs_deleted,
                bytes_freed = report.bytes_freed,
                repositories_skipped = report.repositories_skipped,
                "garbage collection done"
            ),
            Err(ContentError::CollectionRunning) => {
                tracing::info!("garbage collection skipped: another one is running over the store")
            }
            Err(ContentError::ReadOnly) => {
                tracing::info!("garbage collection paused: the registry is read-only")
            }
            Err(error) => tracing::warn!(%error, "garbage collection stopped; will retry"),
        }
    }
}

/// Sends the event of a tag removed by retention to `sink`, from a task of its own: the
/// collector's observer cannot wait, and the event must not wait for the collection to end.
fn emit(sink: &Arc<dyn EventSink>, event: &GcEvent) {
    let GcEvent::DeleteTag {
        repository, tag, ..
    } = event
    else {
        return;
    };
    if !sink.wants(Action::Delete) {
        return;
    }
    let target = Target {
        repository: repository.to_string(),
        tag: tag.to_string(),
        ..Target::default()
    };
    let deleted = Event::new(
        Action::Delete,
        target,
        RequestRecord::default(),
        ActorRecord::default(),
    );
    let sink = Arc::clone(sink);
    tokio::spawn(async move { sink.record(vec![deleted]).await });
}

/// Removed tags and manifests are logged at info (with a dry run: what would be), everything
/// else a collection does at debug.
fn log_event(event: &GcEvent, dry_run: bool) {
    match event {
        GcEvent::DeleteTag {
            repository,
            tag,
            digest,
        } => tracing::info!(%repository, %tag, %digest, dry_run, "gc: tag removed by retention"),
        GcEvent::DeleteManifest { repository, digest } => {
            tracing::info!(%repository, %digest, dry_run, "gc: manifest deleted")
        }
        GcEvent::DeleteLayerLink { repository, digest } => {
            tracing::debug!(%repository, %digest, dry_run, "gc: layer link deleted")
        }
        GcEvent::DeleteBlob { digest, size } => {
            tracing::debug!(%digest, size, dry_run, "gc: blob deleted")
        }
        GcEvent::SkipRepository { repository } => {
            tracing::info!(%repository, "gc: repository busy throughout, left as it is")
        }
        _ => {}
    }
}
