//! `registryd garbage-collect`: registry:2's command of that name, over the store a configuration
//! names. Prints what it marks and deletes as registry:2 does, then the totals.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use registry::content::{GcEvent, GcOptions, GcReport};

use crate::verify::human_bytes;

/// Arguments of `registryd garbage-collect`.
#[derive(Debug, clap::Args)]
pub(crate) struct GcArgs {
    /// The configuration file; else $REGISTRY_CONFIGURATION_PATH; else the built-in default.
    config: Option<PathBuf>,
    /// Print what would be deleted; delete nothing.
    #[arg(short = 'd', long)]
    dry_run: bool,
    /// Also delete manifests that no tag reaches (an index a tag reaches keeps its children, and
    /// a kept manifest its referrers).
    #[arg(short = 'm', long)]
    delete_untagged: bool,
    /// Keep whatever was pushed, linked or mounted within this long, in seconds: a push in
    /// progress has uploaded its layers but not yet its manifest. 0 is safe only when nothing
    /// pushes meanwhile. [default: storage.maintenance.gc.graceperiod, else 3600]
    #[arg(long, value_name = "SECONDS")]
    grace_period: Option<u64>,
}

/// Collects garbage in the store the configuration names.
pub(crate) fn run(args: GcArgs) -> Result<(), String> {
    let (content, config) = crate::stored_content(args.config, "collect")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    // The retention policies and grace period are the configuration's; the flags are
    // registry:2's and decide alone whether to delete and what to do with untagged manifests.
    let configured = registry::gc_options(&config).map_err(|error| error.to_string())?;
    if !configured.retention.is_empty() {
        println!(
            "applying {} retention policies (storage.maintenance.gc.retention)",
            configured.retention.len()
        );
    }
    let options = GcOptions {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
        grace_period: args
            .grace_period
            .map_or(configured.grace_period, Duration::from_secs),
        retention: configured.retention,
    };
    let started = Instant::now();
    let report = runtime
        .block_on(content.collect_garbage(&options, |event| {
            if let Some(line) = event_line(event, options.dry_run) {
                println!("{line}");
            }
        }))
        .map_err(|error| format!("collection stopped: {error}"))?;
    println!(
        "{}",
        summary(&report, options.dry_run, started.elapsed().as_secs_f64())
    );
    Ok(())
}

/// One line of output per event, in registry:2's words where it has them.
fn event_line(event: &GcEvent, dry_run: bool) -> Option<String> {
    let deleting = if dry_run {
        "eligible for deletion"
    } else {
        "deleting"
    };
    Some(match event {
        GcEvent::MarkManifest { repository, digest } => {
            format!("{repository}: marking manifest {digest}")
        }
        GcEvent::DeleteTag {
            repository,
            tag,
            digest,
        } => format!("{repository}: tag {deleting} by retention: {tag} ({digest})"),
        GcEvent::DeleteManifest { repository, digest } => {
            format!("{repository}: manifest {deleting}: {digest}")
        }
        GcEvent::DeleteLayerLink { repository, digest } => {
            format!("{repository}: layer link {deleting}: {digest}")
        }
        GcEvent::DeleteBlob { digest, size } => {
            format!("blob {deleting}: {digest} ({})", human_bytes(*size))
        }
        GcEvent::SkipRepository { repository } => {
            format!("{repository}: busy throughout, left as it is")
        }
        _ => return None,
    })
}

fn summary(report: &GcReport, dry_run: bool, seconds: f64) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    format!(
        "{} repositories, {} manifests and {} blobs marked; {verb} {} tags, {} manifests, {} layer \
         links and {} blobs, freeing {} ({} bytes), in {seconds:.1} s",
        report.repositories,
        report.manifests_marked,
        report.blobs_marked,
        report.tags_deleted,
        report.manifests_deleted,
        report.layer_links_deleted,
        report.blobs_deleted,
        human_bytes(report.bytes_freed),
        report.bytes_freed,
    )
}
