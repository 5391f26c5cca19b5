//! Garbage collection benchmark (issue 10): collecting a store of 10,000 repositories and 100,000
//! blobs must take little memory (peak RSS at most 64 MiB), and uploads while a collection runs
//! must lose at most 20 % of their throughput.
//!
//! `cargo build --release -p registryd -p registry-bench && target/release/gc`:
//!
//! 1. writes a storage root in registry:2's layout (`layout::populate_garbage`): each repository
//!    with an image tagged `latest` and an untagged older build, and blobs no repository links,
//!    every file dated a day back so that it is older than the collector's grace period;
//! 2. runs `registryd garbage-collect CONFIG --delete-untagged`, first with `--dry-run`, then for
//!    real, then again over the collected store (nothing left to delete), each as a child process
//!    whose peak resident memory is `VmHWM` from `/proc/PID/status`, polled every 10 ms (a rise in
//!    the last 10 ms before it exits is missed); after each, compares the root with what was
//!    written, and fails if anything a tag reaches is gone, or garbage is left after the real
//!    run;
//! 3. starts `registryd serve` over a root populated again, and pushes distinct 1 MiB blobs from
//!    16 concurrent POST + PUT loops three times: alone for `--seconds`, for exactly as long as
//!    one `registryd garbage-collect --delete-untagged` (default grace period) takes over the same
//!    root, and alone again; the loss is against the mean of the two runs alone. Every pushed blob
//!    must still be stored afterwards;
//! 4. prints a Markdown report and exits 1 when the collector's peak RSS exceeds the limit or the
//!    loss exceeds the target (unless `--no-fail`), or when a check of the store failed.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use registry_bench::blob::XorShift;
use registry_bench::client::RegistryClient;
use registry_bench::layout::{self, GarbageStore, StoreCheck};
use registry_bench::procfs::Memory;
use registry_bench::server::{RegistryProcess, Settings};
use registry_bench::{Error, human_bytes, machine, parse_size};

/// How far back every file written is dated: well past the default grace period of one hour.
const AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// How often a running collector's `VmHWM` is read.
const POLL: Duration = Duration::from_millis(10);
/// The repository the upload loops push to.
const UPLOAD_REPO: &str = "bench/gc-upload";

struct Options {
    server: PathBuf,
    repositories: usize,
    blobs: usize,
    seconds: Duration,
    concurrency: usize,
    push_size: usize,
    limit: u64,
    max_loss: f64,
    uploads: bool,
    fail: bool,
}

/// Garbage collection of a large store: the collector's peak memory, and what a collection
/// costs uploads running beside it.
///
/// A quick run: gc --repositories 200 --blobs 2000 --seconds 3
#[derive(Debug, Parser)]
#[command(name = "gc")]
struct Args {
    /// The registryd binary, run as `PATH garbage-collect CONFIG ...` and `PATH serve CONFIG`
    /// [env: REGISTRYD_BIN; default: registryd next to this executable].
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Repositories written.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    repositories: usize,
    /// Blobs written in all, at least 9 a repository and one more.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    blobs: usize,
    /// Each upload period alone, before and after the collection, in seconds.
    #[arg(long, value_name = "S", default_value = "15", value_parser = parse_seconds)]
    seconds: Duration,
    /// Concurrent POST + PUT loops.
    #[arg(long, value_name = "N", default_value_t = 16)]
    concurrency: usize,
    /// Size of each pushed blob.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = size)]
    push_size: u64,
    /// Fail when a collection's peak RSS exceeds this.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = size)]
    limit: u64,
    /// Fail when uploads during collections lose more throughput, in percent.
    #[arg(long, value_name = "PERCENT", default_value_t = 20.0)]
    max_loss: f64,
    /// Measure the collections only (steps 1 and 2).
    #[arg(long)]
    no_uploads: bool,
    /// Report figures past their targets, but exit 0 for them (a damaged store still exits 1).
    #[arg(long)]
    no_fail: bool,
}

/// A size as [`parse_size`] reads it.
fn size(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// A number of seconds.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("not a number of seconds: {text:?}"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("not a usable number of seconds: {text:?}"))
}

fn parse_args() -> Result<Options, Error> {
    let args = Args::parse();
    let options = Options {
        server: match args.server {
            Some(path) => path,
            None => registry_bench::server::default_registryd()?,
        },
        repositories: args.repositories,
        blobs: args.blobs,
        seconds: args.seconds,
        concurrency: args.concurrency,
        push_size: usize::try_from(args.push_size)?,
        limit: args.limit,
        max_loss: args.max_loss,
        uploads: !args.no_uploads,
        fail: !args.no_fail,
    };
    if options.concurrency == 0 || options.push_size < 8 || options.seconds.is_zero() {
        return Err(
            "--concurrency, --push-size (8 bytes at least) and --seconds must be positive".into(),
        );
    }
    Ok(options)
}

// ---------------------------------------------------------------------------------------------
// One collection

/// The totals line `registryd garbage-collect` ends with: "R repositories, M manifests and B blobs
/// marked; deleted t tags, m manifests, l layer links and b blobs, freeing 1.0 MiB (N bytes), in
/// S s" (`would delete` with `--dry-run`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    repositories: u64,
    manifests_marked: u64,
    blobs_marked: u64,
    tags_deleted: u64,
    manifests_deleted: u64,
    layer_links_deleted: u64,
    blobs_deleted: u64,
    bytes_freed: u64,
}

impl Totals {
    fn parse(line: &str) -> Option<Totals> {
        let (marked, deleted) = line.split_once("; ")?;
        let marked: Vec<&str> = marked.split_whitespace().collect();
        let deleted = deleted
            .strip_prefix("deleted ")
            .or_else(|| deleted.strip_prefix("would delete "))?;
        let (counts, freed) = deleted.split_once(", freeing ")?;
        let counts: Vec<&str> = counts.split_whitespace().collect();
        let number = |words: &[&str], i: usize| words.get(i)?.parse().ok();
        let bytes = freed.split_once('(')?.1.split_once(" bytes)")?.0;
        let totals = Totals {
            repositories: number(&marked, 0)?,
            manifests_marked: number(&marked, 2)?,
            blobs_marked: number(&marked, 5)?,
            tags_deleted: number(&counts, 0)?,
            manifests_deleted: number(&counts, 2)?,
            layer_links_deleted: number(&counts, 4)?,
            blobs_deleted: number(&counts, 8)?,
            bytes_freed: bytes.parse().ok()?,
        };
        let shape = marked.get(1) == Some(&"repositories,")
            && marked.get(3..5) == Some(&["manifests", "and"][..])
            && marked.get(6..8) == Some(&["blobs", "marked"][..])
            && counts.get(1) == Some(&"tags,")
            && counts.get(9) == Some(&"blobs");
        shape.then_some(totals)
    }
}

/// One run of `registryd garbage-collect`.
#[derive(Debug)]
struct Collection {
    /// From spawning the process to seeing it exit (polled every 10 ms).
    wall: Duration,
    /// The largest `VmHWM` read while it ran.
    peak_rss: u64,
    status: ExitStatus,
    /// Lines it printed on stdout (one per manifest marked, and per thing deleted).
    lines: usize,
    /// Its last line on stdout.
    last: String,
    /// Lines on stdout that are neither an event nor the totals, the first few.
    unexpected: Vec<String>,
    stderr: String,
}

impl Collection {
    fn totals(&self) -> Option<Totals> {
        Totals::parse(&self.last)
    }

    fn succeeded(&self) -> Result<Totals, Error> {
        let totals = self.totals();
        match totals {
            Some(totals) if self.status.success() => Ok(totals),
            _ => Err(format!(
                "registryd garbage-collect exited with {}; its last line: {:?}\n--- stderr\n{}",
                self.status, self.last, self.stderr
            )
            .into()),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{:.2} s, peak RSS {}, {} lines of output",
            self.wall.as_secs_f64(),
            human_bytes(self.peak_rss),
            self.lines
        )
    }
}

/// Whether a line of the collector's output is one of its events.
fn is_event(line: &str) -> bool {
    [
        ": marking manifest ",
        " deleting: ",
        " eligible for deletion: ",
        "busy throughout, left as it is",
    ]
    .iter()
    .any(|pattern| line.contains(pattern))
}

/// Runs `binary garbage-collect config args...` to its end, reading its peak RSS meanwhile.
fn collect(binary: &Path, config: &Path, args: &[&str]) -> Result<Collection, Error> {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("garbage-collect")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let reader = std::thread::spawn(move || {
        let mut lines = 0;
        let mut last = String::new();
        let mut unexpected = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines += 1;
            if !is_event(&line) && Totals::parse(&line).is_none() && unexpected.len() < 10 {
                unexpected.push(line.clone());
            }
            last = line;
        }
        (lines, last, unexpected)
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let pid = child.id();
    let mut peak_rss = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        // Fails only once the process has exited: the next try_wait sees it.
        if let Ok(memory) = Memory::of_pid(pid) {
            peak_rss = peak_rss.max(memory.peak_rss);
        }
        std::thread::sleep(POLL);
    };
    let wall = started.elapsed();
    let (lines, last, unexpected) = reader
        .join()
        .map_err(|_| "the thread reading the collector's output panicked")?;
    let stderr = errors
        .join()
        .map_err(|_| "the thread reading the collector's errors panicked")?;
    Ok(Collection {
        wall,
        peak_rss,
        status,
        lines,
        last,
        unexpected,
        stderr,
    })
}

// ---------------------------------------------------------------------------------------------
// The store

/// A directory removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Result<TempDir, Error> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "registry-bench-{label}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a registry:2 configuration for the collector, over the storage root `root`.
fn write_config(path: &Path, root: &Path) -> Result<(), Error> {
    let yaml = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
         delete:\n    enabled: true\n",
        root.display()
    );
    std::fs::write(path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

/// Populates `root` and flushes it (`sync`), so that writeback does not run during what is timed;
/// returns what was written and the time it took, `sync` included.
fn populate(options: &Options, root: &Path) -> Result<(GarbageStore, Duration), Error> {
    let started = Instant::now();
    let store = layout::populate_garbage(
        root,
        options.repositories,
        options.blobs,
        SystemTime::now() - AGE,
    )?;
    let synced = Command::new("sync").status()?;
    if !synced.success() {
        return Err(format!("sync exited with {synced}").into());
    }
    Ok((store, started.elapsed()))
}

/// What went wrong in checks of the store and of the collector's totals.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            let problem = problem();
            println!("FAIL: {problem}");
            self.0.push(problem);
        }
    }
}

fn examples(found: &layout::Found) -> String {
    found
        .examples
        .iter()
        .map(|p| format!("\n    {}", p.display()))
        .collect()
}

/// Checks the root against what was written: nothing kept is missing; the garbage is all there
/// (`collected` false) or all gone (`collected` true).
fn check_store(
    store: &GarbageStore,
    root: &Path,
    step: &str,
    collected: bool,
    problems: &mut Problems,
) -> Result<StoreCheck, Error> {
    let check = store.check(root)?;
    problems.check(check.missing.count == 0, || {
        format!(
            "after {step}: {} paths a tag reaches are gone (the collector deleted reachable \
             content), e.g.{}",
            check.missing.count,
            examples(&check.missing)
        )
    });
    let (want_remaining, want_dirs) = if collected {
        (0, store.kept_blobs())
    } else {
        (store.garbage_paths(), store.blobs())
    };
    problems.check(check.remaining.count == want_remaining, || {
        format!(
            "after {step}: {} garbage paths remain, want {want_remaining}, e.g.{}",
            check.remaining.count,
            examples(&check.remaining)
        )
    });
    problems.check(check.blob_dirs == want_dirs, || {
        format!(
            "after {step}: {} blob directories, want {want_dirs}",
            check.blob_dirs
        )
    });
    problems.check(check.blob_dirs_without_data.count == 0, || {
        format!(
            "after {step}: {} blob directories have no data, e.g.{}",
            check.blob_dirs_without_data.count,
            examples(&check.blob_dirs_without_data)
        )
    });
    problems.check(check.markers.count == 0, || {
        format!(
            "after {step}: {} collection markers were left beside blob data, e.g.{}",
            check.markers.count,
            examples(&check.markers)
        )
    });
    Ok(check)
}

/// Checks a collection's totals against what was written (`collected`: over a root collected
/// before, with nothing left to delete).
fn check_totals(
    store: &GarbageStore,
    totals: &Totals,
    step: &str,
    collected: bool,
    problems: &mut Problems,
) {
    let repositories = store.repositories.len() as u64;
    let want = if collected {
        Totals {
            repositories,
            manifests_marked: repositories,
            blobs_marked: store.kept_blobs() as u64,
            ..Totals::default()
        }
    } else {
        Totals {
            repositories,
            manifests_marked: repositories,
            blobs_marked: store.kept_blobs() as u64,
            tags_deleted: 0,
            manifests_deleted: repositories,
            layer_links_deleted: store.garbage_layer_links() as u64,
            blobs_deleted: store.garbage_blobs() as u64,
            bytes_freed: totals.bytes_freed,
        }
    };
    problems.check(*totals == want, || {
        format!("{step}: the collector reported {totals:?}, want {want:?}")
    });
}

fn report_collection(step: &str, collection: &Collection) {
    println!("  {step}: {}", collection.describe());
    println!("    {}", collection.last);
    for line in &collection.unexpected {
        println!("    unexpected output: {line}");
    }
    for line in collection.stderr.lines().take(10) {
        println!("    stderr: {line}");
    }
}

/// The figures of the collections over a store written for them.
struct Offline {
    populate: Duration,
    bytes: u64,
    dry_run: Collection,
    collection: Collection,
    deleted: Totals,
    again: Collection,
}

fn offline(options: &Options, problems: &mut Problems) -> Result<Offline, Error> {
    let dir = TempDir::new("gc")?;
    let root = dir.0.join("data");
    let config = dir.0.join("gc.yml");
    write_config(&config, &root)?;
    println!(
        "\n## collecting {} repositories and {} blobs (in {})",
        options.repositories,
        options.blobs,
        root.display()
    );
    let (store, populate_time) = populate(options, &root)?;
    println!(
        "  populated in {:.1} s: {} blobs ({} of data), {} to keep and {} garbage \
         ({} unlinked), {} layer links to remove",
        populate_time.as_secs_f64(),
        store.blobs(),
        human_bytes(store.bytes),
        store.kept_blobs(),
        store.garbage_blobs(),
        store.unlinked.len(),
        store.garbage_layer_links()
    );
    check_store(&store, &root, "populating", false, problems)?;

    let dry_run = collect(
        &options.server,
        &config,
        &["--dry-run", "--delete-untagged"],
    )?;
    report_collection("dry run (--dry-run --delete-untagged)", &dry_run);
    let totals = dry_run.succeeded()?;
    check_totals(&store, &totals, "dry run", false, problems);
    check_store(&store, &root, "the dry run", false, problems)?;

    let collection = collect(&options.server, &config, &["--delete-untagged"])?;
    report_collection("collection (--delete-untagged)", &collection);
    let deleted = collection.succeeded()?;
    check_totals(&store, &deleted, "collection", false, problems);
    problems.check(deleted.bytes_freed == totals.bytes_freed, || {
        format!(
            "the collection freed {} bytes, the dry run said {}",
            deleted.bytes_freed, totals.bytes_freed
        )
    });
    check_store(&store, &root, "the collection", true, problems)?;

    let again = collect(&options.server, &config, &["--delete-untagged"])?;
    report_collection("collection again (nothing to delete)", &again);
    let totals = again.succeeded()?;
    check_totals(&store, &totals, "collection again", true, problems);
    check_store(&store, &root, "the second collection", true, problems)?;
    Ok(Offline {
        populate: populate_time,
        bytes: store.bytes,
        dry_run,
        collection,
        deleted,
        again,
    })
}

// ---------------------------------------------------------------------------------------------
// Uploads beside collections

/// Pushes of one upload period.
struct Pushed {
    bytes: u64,
    elapsed: Duration,
    digests: Vec<String>,
}

impl Pushed {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `concurrency` loops of POST + PUT of distinct blobs, for `--seconds` or, given `stop`, until
/// it is set: each blob is `base` with a stamp of its own (period, loop, count) in its first 8
/// bytes, copied and hashed by the client. Each period has a client (and connections) of its own.
async fn push_for(
    server: &RegistryProcess,
    options: &Options,
    base: &Bytes,
    period: u64,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Pushed, Error> {
    let client = RegistryClient::new(&server.base_url());
    let started = Instant::now();
    let deadline = started + options.seconds;
    let mut loops = tokio::task::JoinSet::new();
    for worker in 0..options.concurrency as u64 {
        let client = client.clone();
        let base = base.clone();
        let stop = stop.clone();
        loops.spawn(async move {
            let mut digests = Vec::new();
            let mut count = 0u64;
            let going = || match &stop {
                Some(stop) => !stop.load(Ordering::Relaxed),
                None => Instant::now() < deadline,
            };
            while going() {
                let mut data = base.to_vec();
                let stamp = (period << 56) | (worker << 32) | count;
                data[..8].copy_from_slice(&stamp.to_le_bytes());
                count += 1;
                digests.push(client.upload_bytes(UPLOAD_REPO, Bytes::from(data)).await?);
            }
            Ok::<_, Error>(digests)
        });
    }
    let mut digests = Vec::new();
    while let Some(done) = loops.join_next().await {
        digests.extend(done??);
    }
    Ok(Pushed {
        bytes: digests.len() as u64 * base.len() as u64,
        elapsed: started.elapsed(),
        digests,
    })
}

/// The figures of the uploads alone and beside collections.
struct Uploads {
    populate: Duration,
    alone_before: Pushed,
    during: Pushed,
    alone_after: Pushed,
    collections: Vec<Collection>,
}

impl Uploads {
    fn baseline(&self) -> f64 {
        (self.alone_before.mb_per_s() + self.alone_after.mb_per_s()) / 2.0
    }

    fn loss_percent(&self) -> f64 {
        (1.0 - self.during.mb_per_s() / self.baseline().max(1e-9)) * 100.0
    }
}

fn report_push(step: &str, pushed: &Pushed) {
    println!(
        "  {step}: {} blobs, {} in {:.2} s: {:.1} MB/s",
        pushed.digests.len(),
        human_bytes(pushed.bytes),
        pushed.elapsed.as_secs_f64(),
        pushed.mb_per_s()
    );
}

fn uploads(options: &Options, problems: &mut Problems) -> Result<Uploads, Error> {
    println!(
        "\n## uploads: {} concurrent POST + PUT loops of distinct {} blobs, {:.0} s a period",
        options.concurrency,
        human_bytes(options.push_size as u64),
        options.seconds.as_secs_f64()
    );
    let mut written = None;
    let settings = Settings {
        accesslog_disabled: true,
        ..Settings::default()
    };
    let mut server = RegistryProcess::start_configured(&options.server, &settings, |dir| {
        let config = dir.join("gc.yml");
        write_config(&config, &dir.join("data"))?;
        let (_, took) = populate(options, &dir.join("data"))?;
        written = Some((config, took));
        Ok(Vec::new())
    })?;
    let (config, populate_time) = written.ok_or("the server started without its store")?;
    println!(
        "  populated again in {:.1} s; server pid {} on {}",
        populate_time.as_secs_f64(),
        server.pid(),
        server.base_url()
    );
    let mut base = vec![0u8; options.push_size];
    XorShift::new(0x6c_0c01).fill(&mut base);
    let base = Bytes::from(base);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let alone_before = runtime.block_on(push_for(&server, options, &base, 1, None))?;
    report_push("alone", &alone_before);

    // Uploads run for exactly one collection, from its start to its end.
    let collected = Arc::new(AtomicBool::new(false));
    let collecting = {
        let collected = Arc::clone(&collected);
        let binary = options.server.clone();
        let config = config.clone();
        std::thread::spawn(move || {
            let collection = collect(&binary, &config, &["--delete-untagged"]);
            collected.store(true, Ordering::Relaxed);
            collection
                .map(|collection| vec![collection])
                .map_err(|e| e.to_string())
        })
    };
    let during = runtime.block_on(push_for(&server, options, &base, 2, Some(collected)));
    let collections = collecting.join().map_err(|_| "the collection panicked")??;
    let during = during?;
    report_push("during collections", &during);
    for (i, collection) in collections.iter().enumerate() {
        report_collection(&format!("collection {}", i + 1), collection);
        if let Err(e) = collection.succeeded() {
            problems.check(false, || {
                format!("collection {} beside uploads: {e}", i + 1)
            });
        }
    }

    let alone_after = runtime.block_on(push_for(&server, options, &base, 3, None))?;
    report_push("alone again", &alone_after);

    let root = server.data_dir();
    let lost: Vec<&String> = [&alone_before, &during, &alone_after]
        .iter()
        .flat_map(|pushed| &pushed.digests)
        .filter(|digest| !layout::blob_data_path(&root, digest).is_file())
        .collect();
    problems.check(lost.is_empty(), || {
        format!(
            "{} pushed blobs (each answered 201) are no longer stored, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        )
    });
    if !server.is_running() {
        return Err(format!("the server exited\n{}", server.log_tail(30)).into());
    }
    let log = server.log();
    for line in log.lines().take(10) {
        println!("  server log: {line}");
    }
    Ok(Uploads {
        populate: populate_time,
        alone_before,
        during,
        alone_after,
        collections,
    })
}

// ---------------------------------------------------------------------------------------------
// The report

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn markdown(options: &Options, offline: &Offline, uploads: Option<&Uploads>) -> String {
    let mut rows = vec![
        (
            "populate (written directly, `sync` included)".to_string(),
            format!(
                "{} repositories, {} blobs ({} of blob data) in {}",
                thousands(options.repositories as u64),
                thousands(options.blobs as u64),
                human_bytes(offline.bytes),
                seconds(offline.populate)
            ),
        ),
        (
            "dry run (`--dry-run --delete-untagged`)".to_string(),
            format!(
                "{}, peak RSS {}",
                seconds(offline.dry_run.wall),
                human_bytes(offline.dry_run.peak_rss)
            ),
        ),
        (
            "collection (`--delete-untagged`)".to_string(),
            format!(
                "{}, peak RSS {}",
                seconds(offline.collection.wall),
                human_bytes(offline.collection.peak_rss)
            ),
        ),
        (
            "deleted".to_string(),
            format!(
                "{} manifests, {} layer links, {} blobs ({})",
                thousands(offline.deleted.manifests_deleted),
                thousands(offline.deleted.layer_links_deleted),
                thousands(offline.deleted.blobs_deleted),
                human_bytes(offline.deleted.bytes_freed)
            ),
        ),
        (
            "collection again (nothing to delete)".to_string(),
            format!(
                "{}, peak RSS {}",
                seconds(offline.again.wall),
                human_bytes(offline.again.peak_rss)
            ),
        ),
    ];
    if let Some(uploads) = uploads {
        let push = format!(
            "{} × POST + PUT of {}",
            options.concurrency,
            human_bytes(options.push_size as u64)
        );
        rows.push((
            format!("uploads alone ({push}, {})", seconds(options.seconds)),
            format!(
                "{:.1} MB/s before, {:.1} MB/s after",
                uploads.alone_before.mb_per_s(),
                uploads.alone_after.mb_per_s()
            ),
        ));
        let peak = uploads
            .collections
            .iter()
            .map(|c| c.peak_rss)
            .max()
            .unwrap_or_default();
        rows.push((
            "uploads while a collection runs".to_string(),
            format!(
                "{:.1} MB/s for {} ({} collection, peak RSS {}; root populated again in {})",
                uploads.during.mb_per_s(),
                seconds(uploads.during.elapsed),
                uploads.collections.len(),
                human_bytes(peak),
                seconds(uploads.populate)
            ),
        ));
        rows.push((
            "upload throughput lost".to_string(),
            format!(
                "{:.1} % (target ≤ {:.0} %)",
                uploads.loss_percent(),
                options.max_loss
            ),
        ));
    }
    let mut out = String::from("| | registryd |\n|---|---|\n");
    for (figure, value) in rows {
        out.push_str(&format!("| {figure} | {value} |\n"));
    }
    out
}

fn run(options: &Options) -> Result<bool, Error> {
    println!("# registryd garbage collection");
    println!("machine: {}", machine());
    println!("registryd: {}", options.server.display());
    let mut problems = Problems::default();
    let offline = offline(options, &mut problems)?;
    let uploads = if options.uploads {
        Some(uploads(options, &mut problems)?)
    } else {
        None
    };

    println!("\n## summary (paste into docs/performance.md)\n");
    println!("{}\n", machine());
    print!("{}", markdown(options, &offline, uploads.as_ref()));

    let peak = [&offline.dry_run, &offline.collection, &offline.again]
        .into_iter()
        .chain(uploads.iter().flat_map(|u| &u.collections))
        .map(|c| c.peak_rss)
        .max()
        .unwrap_or_default();
    let mut within = true;
    if peak > options.limit {
        within = false;
        println!(
            "\nFAIL: a collection's peak RSS {} exceeds the limit {}",
            human_bytes(peak),
            human_bytes(options.limit)
        );
    }
    if let Some(uploads) = &uploads
        && uploads.loss_percent() > options.max_loss
    {
        within = false;
        println!(
            "\nFAIL: uploads during collections lost {:.1} % of their throughput (target ≤ {:.0} %)",
            uploads.loss_percent(),
            options.max_loss
        );
    }
    if !problems.0.is_empty() {
        println!("\nFAIL: {} checks failed:", problems.0.len());
        for problem in &problems.0 {
            println!("- {problem}");
        }
        return Ok(false);
    }
    if within {
        println!("\nok: within the targets");
    }
    Ok(within || !options.fail)
}

fn main() -> ExitCode {
    let outcome = parse_args().and_then(|options| run(&options));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("gc benchmark failed: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_line_is_parsed() {
        let line = "10000 repositories, 10000 manifests and 50001 blobs marked; deleted 0 tags, \
                    10000 manifests, 30000 layer links and 49999 blobs, freeing 40.1 MiB \
                    (42000000 bytes), in 31.2 s";
        assert_eq!(
            Totals::parse(line),
            Some(Totals {
                repositories: 10_000,
                manifests_marked: 10_000,
                blobs_marked: 50_001,
                tags_deleted: 0,
                manifests_deleted: 10_000,
                layer_links_deleted: 30_000,
                blobs_deleted: 49_999,
                bytes_freed: 42_000_000,
            })
        );
        let dry = line.replace("deleted", "would delete");
        assert_eq!(Totals::parse(&dry).map(|t| t.blobs_deleted), Some(49_999));
        assert_eq!(Totals::parse("gc/repo-1: marking manifest sha256:00"), None);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
