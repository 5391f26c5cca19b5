//! The side-by-side benchmark: `cargo run --release -p registry-bench -- --compare registry2`.
//!
//! In one run on 127.0.0.1 it starts registryd (the release build next to this executable, or
//! `--server PATH`) and, with `--compare registry2`, CNCF Distribution 2.8 (Debian's
//! `docker-registry`, or `--registry2 PATH`), each with the same registry:2-format filesystem
//! configuration over a temporary directory (deletes enabled, `blobdescriptor: inmemory` as a
//! stock registry:2 install has, access logs off, `catalog.maxentries` and `tags.maxtags` large enough
//! for one page).
//! It runs every workload against both, alternating between them, prints each figure for both
//! with the ratio registryd / registry:2 and the target, and ends with a Markdown table.
//! When registry:2 is not installed it measures registryd alone and says so.
//!
//! Workloads (`--only` takes a comma-separated list of these names):
//! - `blob`: a 1 GiB pseudo-random blob uploaded as 16 MiB chunked PATCHes and as one streamed
//!   PUT, downloaded whole five times (the first download also shown alone: after a direct-I/O
//!   upload it is the one that reads the disk), and read as 1 MiB ranges; the servers' peak RSS
//!   (VmHWM) after that;
//! - `load`: 64 keep-alive connections for 10 s (after a 2 s warm-up) on GET manifest by tag, GET
//!   manifest by digest, HEAD blob and GET /v2/ (requests/s, p50, p99);
//! - `list`: GET /v2/_catalog over 10,000 repositories and tags/list of a repository with 10,000
//!   tags, written into the storage root in registry:2's layout before the servers start;
//! - `push32`: 32 concurrent pushes of distinct 8 MiB blobs (total MB/s);
//! - `docker`: docker push and docker pull of a 5-layer image (skipped without a Docker engine);
//! - `startup`: time from process start to the first 200 on /v2/ (median of 5 starts);
//! - `bounds`: after the servers' workloads, what the machine allows with no registry in the
//!   way (sha256 on one core, writing a new file, reading it from the page cache, loopback TCP),
//!   over as many bytes as the large blob, in the temporary directory the servers store to.
//!
//! Idle RSS is read from every run's servers shortly after they start. The blobs the client
//! sends are generated in memory before each timed step, so the client spends no CPU producing
//! or hashing them while a transfer is timed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use registry_bench::blob::MemoryBlob;
use registry_bench::bounds::{self, Bound};
use registry_bench::client::RegistryClient;
use registry_bench::image::{self, ACCEPT, SmallImage};
use registry_bench::layout;
use registry_bench::load::{self, LoadOptions, LoadReport, Target, format_micros};
use registry_bench::procfs::{Memory, cpu_time};
use registry_bench::server::{RegistryProcess, Settings};
use registry_bench::{Error, human_bytes, machine, parse_size};

const USAGE: &str = "\
usage: registry-bench [--compare registry2] [--quick] [--only WORKLOADS] [options]

  --compare registry2  also run registry:2 (Debian's docker-registry) and print ratios
  --registry2 PATH     the registry:2 binary (default /usr/bin/docker-registry)
  --server PATH        the registryd binary (env REGISTRYD_BIN; default: registryd next to
                       this executable)
  --quick              smoke test: 64 MiB blob, 2 s load, 1,000 repositories and tags
  --only LIST          comma-separated workloads: blob,load,list,push32,smallpush,docker,
                       startup,bounds,mirror
  --blob SIZE          the large blob (default 1GiB; --quick 64MiB)
  --seconds S          measured load period (default 10; --quick 2)
  --connections N      load connections (default 64)
  --entries N          repositories in the catalog and tags in the tag list (default 10000;
                       --quick 1000)
  --rounds N           rounds of the blob, push32, load and mirror workloads, alternating which
                       server goes first; load figures are each server's median round
                       (default 1)
  --direct-io          run registryd with storage.filesystem.directio: true (large uploads
                       bypass the page cache)
  --observe live|dead  run registryd with Prometheus metrics on a debug port and one
                       notification endpoint: a webhook this program runs (live) or a port
                       nothing listens on (dead). With --registry2 naming a copy of registryd,
                       the ratios are the cost of observing";

const WORKLOADS: [&str; 9] = [
    "blob",
    "load",
    "list",
    "push32",
    "smallpush",
    "docker",
    "startup",
    "bounds",
    "mirror",
];

/// The small image the load workload asks for.
const SMALL_REPO: &str = "bench/small";
const SMALL_TAG: &str = "latest";
const BLOB_REPO: &str = "bench/blob";
const PUSH32_REPO: &str = "bench/push32";
/// What the mirror workload reads through a pull-through cache.
const MIRRORED_REPO: &str = "bench/mirrored";
/// How many clients pull one image through a fresh mirror at once.
const MIRROR_PULLS: usize = 32;
const CHUNK: u64 = 16 << 20;
const RANGE: u64 = 1 << 20;
const PUSHES: usize = 32;
const PUSH_SIZE: u64 = 8 << 20;
const DOCKER_LAYERS: usize = 5;
/// Upper bound of any one docker command.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(300);

struct Options {
    registryd: PathBuf,
    registry2: Option<PathBuf>,
    quick: bool,
    only: BTreeSet<String>,
    blob: u64,
    seconds: Duration,
    warmup: Duration,
    connections: usize,
    entries: usize,
    rounds: usize,
    range_samples: usize,
    /// Whole-blob downloads per server and round (each a few tenths of a second).
    download_samples: usize,
    list_samples: usize,
    starts: usize,
    docker_layer: u64,
    /// Whether registryd runs with `storage.filesystem.directio: true`.
    direct_io: bool,
    /// The notification endpoint registryd is given, with metrics on: `None` for neither.
    observe: Option<Observe>,
}

/// What `--observe` gives registryd: metrics, and a webhook that is up or down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Observe {
    Live,
    Dead,
}

fn parse_args() -> Result<Options, Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut options = Options {
        registryd: registry_bench::server::default_registryd()?,
        registry2: None,
        quick,
        only: WORKLOADS.iter().map(|w| w.to_string()).collect(),
        blob: if quick { 64 << 20 } else { 1 << 30 },
        seconds: Duration::from_secs(if quick { 2 } else { 10 }),
        warmup: Duration::from_millis(if quick { 500 } else { 2000 }),
        connections: 64,
        entries: if quick { 1000 } else { 10_000 },
        rounds: 1,
        range_samples: if quick { 5 } else { 20 },
        download_samples: if quick { 3 } else { 5 },
        list_samples: if quick { 3 } else { 5 },
        starts: 5,
        docker_layer: if quick { 1 << 20 } else { 8 << 20 },
        direct_io: false,
        observe: None,
    };
    let mut compare = false;
    let mut registry2 = PathBuf::from("/usr/bin/docker-registry");
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--quick" => {}
            "--compare" => {
                let what = value()?;
                if what != "registry2" {
                    return Err(format!("--compare takes `registry2`, not {what:?}").into());
                }
                compare = true;
            }
            "--registry2" => {
                registry2 = PathBuf::from(value()?);
                compare = true;
            }
            "--server" => options.registryd = PathBuf::from(value()?),
            "--only" => {
                let list = value()?;
                options.only = list.split(',').map(|w| w.trim().to_string()).collect();
                if let Some(bad) = options
                    .only
                    .iter()
                    .find(|w| !WORKLOADS.contains(&w.as_str()))
                {
                    return Err(format!("unknown workload {bad:?}: one of {WORKLOADS:?}").into());
                }
            }
            "--blob" => options.blob = parse_size(&value()?)?,
            "--seconds" => options.seconds = Duration::from_secs_f64(value()?.parse()?),
            "--connections" => options.connections = value()?.parse()?,
            "--entries" => options.entries = value()?.parse()?,
            "--rounds" => options.rounds = value()?.parse()?,
            "--direct-io" => options.direct_io = true,
            "--observe" => {
                options.observe = Some(match value()?.as_str() {
                    "live" => Observe::Live,
                    "dead" => Observe::Dead,
                    other => {
                        return Err(format!("--observe takes live or dead, not {other:?}").into());
                    }
                })
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if options.blob < RANGE * 2 || options.connections == 0 || options.rounds == 0 {
        return Err("--blob must be at least 2 MiB, --connections and --rounds positive".into());
    }
    if options.seconds.is_zero() || options.seconds > Duration::from_secs(600) {
        return Err("--seconds must be between 0 and 600".into());
    }
    options.rounds = options.rounds.min(10);
    if compare {
        if registry2.is_file() {
            options.registry2 = Some(registry2);
        } else {
            println!(
                "registry:2 is not installed ({} not found; `apt-get install docker-registry`): \
                 measuring registryd alone",
                registry2.display()
            );
        }
    }
    Ok(options)
}

impl Options {
    fn wants(&self, workload: &str) -> bool {
        self.only.contains(workload)
    }

    /// The configuration of a server started from `binary`: the same for both, but for the
    /// registryd-only `directio` key.
    fn settings(&self, binary: &Path) -> Settings {
        Settings {
            blobdescriptor_inmemory: true,
            accesslog_disabled: true,
            catalog_maxentries: Some(self.catalog_page()),
            tags_maxtags: Some(self.catalog_page()),
            direct_io: self.direct_io && binary == self.registryd,
        }
    }

    /// `n` for the catalog: every repository the run creates, in one page.
    fn catalog_page(&self) -> u64 {
        self.entries as u64 + 100
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

/// How a figure is shown, and which way is better.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Unit {
    /// MB/s (10^6 bytes per second); higher is better.
    MBps,
    /// Requests per second; higher is better.
    PerSec,
    /// A time in microseconds; lower is better.
    Micros,
    /// Bytes of memory; lower is better.
    Bytes,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::MBps => format!("{value:.1} MB/s"),
            Unit::PerSec => format!("{}/s", thousands(value.round() as u64)),
            Unit::Micros => format_micros(value.round() as u64),
            Unit::Bytes => human_bytes(value.round() as u64),
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(self, Unit::MBps | Unit::PerSec)
    }
}

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

/// A target of the issue for one figure.
#[derive(Clone, Copy, Debug)]
enum Goal {
    /// registryd / registry:2 at least this.
    RatioAtLeast(f64),
    /// registryd / registry:2 at most this.
    RatioAtMost(f64),
    /// registryd's own value at most this (in the figure's unit).
    AtMost(f64),
}

struct Figure {
    name: String,
    unit: Unit,
    registryd: Option<f64>,
    registry2: Option<f64>,
    goal: Option<Goal>,
}

impl Figure {
    fn ratio(&self) -> Option<f64> {
        Some(self.registryd? / self.registry2.filter(|v| *v > 0.0)?)
    }

    fn goal_text(&self) -> String {
        match self.goal {
            None => String::new(),
            Some(Goal::RatioAtLeast(x)) => format!("≥ {x}x"),
            Some(Goal::RatioAtMost(x)) => format!("≤ {x}x"),
            Some(Goal::AtMost(x)) => format!("≤ {}", self.unit.format(x)),
        }
    }

    /// `met`, `MISSED`, or empty when there is no goal or no figure to judge.
    fn verdict(&self) -> &'static str {
        let met = match self.goal {
            None => return "",
            Some(Goal::AtMost(x)) => self.registryd.map(|v| v <= x),
            Some(Goal::RatioAtLeast(x)) => self.ratio().map(|r| r >= x),
            Some(Goal::RatioAtMost(x)) => self.ratio().map(|r| r <= x),
        };
        match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        }
    }

    fn cell(&self, value: Option<f64>) -> String {
        value.map_or_else(|| "—".to_string(), |v| self.unit.format(v))
    }

    fn ratio_text(&self) -> String {
        self.ratio()
            .map_or_else(String::new, |r| format!("{r:.3}x"))
    }

    /// `4.2x faster` / `1.3x slower` as a reader wants it.
    fn better_text(&self) -> String {
        let Some(r) = self.ratio() else {
            return String::new();
        };
        let better = if self.unit.higher_is_better() {
            r
        } else {
            1.0 / r.max(1e-12)
        };
        let (word_better, word_worse) = match self.unit {
            Unit::Bytes => ("less", "more"),
            _ => ("better", "worse"),
        };
        if better >= 1.0 {
            format!("{better:.1}x {word_better}")
        } else {
            format!("{:.1}x {word_worse}", 1.0 / better.max(1e-12))
        }
    }
}

#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
    /// The machine's own limits, when the `bounds` workload ran.
    bounds: Vec<Bound>,
    notes: Vec<String>,
}

impl Report {
    fn add(&mut self, name: &str, unit: Unit, values: [Option<f64>; 2], goal: Option<Goal>) {
        let figure = Figure {
            name: name.to_string(),
            unit,
            registryd: values[0],
            registry2: values[1],
            goal,
        };
        println!(
            "  {:<44} registryd {:>12}   registry:2 {:>12}   ratio {:>8}  {} {}",
            figure.name,
            figure.cell(figure.registryd),
            figure.cell(figure.registry2),
            figure.ratio_text(),
            figure.goal_text(),
            figure.verdict(),
        );
        self.figures.push(figure);
    }

    fn markdown(&self, compared: bool) -> String {
        let mut out = String::new();
        if compared {
            out.push_str(
                "| figure | registryd | registry:2 | registryd / registry:2 | | target | |\n\
                 |---|---:|---:|---:|---|---|---|\n",
            );
        } else {
            out.push_str("| figure | registryd | target | |\n|---|---:|---|---|\n");
        }
        for f in &self.figures {
            if compared {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    f.name,
                    f.cell(f.registryd),
                    f.cell(f.registry2),
                    f.ratio_text(),
                    f.better_text(),
                    f.goal_text(),
                    f.verdict()
                ));
            } else {
                let goal = match f.goal {
                    Some(Goal::AtMost(_)) => f.goal_text(),
                    _ => String::new(),
                };
                let verdict = if goal.is_empty() { "" } else { f.verdict() };
                out.push_str(&format!(
                    "| {} | {} | {goal} | {verdict} |\n",
                    f.name,
                    f.cell(f.registryd)
                ));
            }
        }
        if !self.bounds.is_empty() {
            out.push_str("\n| bound of this machine | MB/s | what it bounds |\n|---|---:|---|\n");
            for b in &self.bounds {
                out.push_str(&format!(
                    "| {} | {:.0} | {} |\n",
                    b.what,
                    b.rate.mb_per_s(),
                    b.bounds
                ));
            }
        }
        out
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if !n.is_multiple_of(2) {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

// ---------------------------------------------------------------------------------------------
// The servers

struct Subject {
    label: &'static str,
    binary: PathBuf,
    server: RegistryProcess,
    client: RegistryClient,
    idle: Memory,
    small: Option<SmallImage>,
}

/// The environment that gives registryd metrics on a debug port and one notification endpoint.
fn observed_env(observe: Observe) -> Result<Vec<(String, String)>, Error> {
    let endpoint = match observe {
        Observe::Live => {
            let webhook = registry_bench::webhook::Webhook::start()?;
            println!("  webhook listening on http://{}", webhook.address);
            webhook.address
        }
        Observe::Dead => registry_bench::webhook::dead_address()?,
    };
    let debug = registry_bench::webhook::dead_address()?;
    Ok([
        ("REGISTRY_HTTP_DEBUG_ADDR", debug.to_string()),
        ("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true".to_owned()),
        (
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME",
            "bench".to_owned(),
        ),
        (
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL",
            format!("http://{endpoint}/events"),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect())
}

fn start_subject(label: &'static str, binary: &Path, options: &Options) -> Result<Subject, Error> {
    let populate = options.wants("list");
    let entries = options.entries;
    let started = Instant::now();
    let observe = options.observe.filter(|_| binary == options.registryd);
    let server = RegistryProcess::start_configured(binary, &options.settings(binary), |dir| {
        if populate {
            layout::populate(&dir.join("data"), entries, entries)?;
            // Tens of thousands of new files: flush them now, so that their writeback does not
            // run during the timed requests of either server.
            std::process::Command::new("sync").status()?;
        }
        match observe {
            Some(observe) => observed_env(observe),
            None => Ok(Vec::new()),
        }
    })?;
    let took = started.elapsed();
    // Let the process settle before the idle reading.
    std::thread::sleep(Duration::from_millis(500));
    let idle = Memory::of_pid(server.pid())?;
    println!(
        "  {label}: {} pid {} on {} (storage written and started in {:.1} s), idle RSS {}",
        binary.display(),
        server.pid(),
        server.base_url(),
        took.as_secs_f64(),
        human_bytes(idle.rss)
    );
    let client = RegistryClient::new(&server.base_url());
    Ok(Subject {
        label,
        binary: binary.to_path_buf(),
        server,
        client,
        idle,
        small: None,
    })
}

/// Values for [registryd, registry:2] from one closure called on each subject (registry:2 may
/// be absent).
fn both(subjects: &[Subject], mut f: impl FnMut(&Subject) -> Option<f64>) -> [Option<f64>; 2] {
    [
        subjects.first().and_then(&mut f),
        subjects.get(1).and_then(&mut f),
    ]
}

// ---------------------------------------------------------------------------------------------
// Workloads

type Runtime = tokio::runtime::Runtime;

/// Collected samples for [registryd, registry:2].
#[derive(Default)]
struct Samples([Vec<f64>; 2]);

impl Samples {
    fn push(&mut self, index: usize, value: f64) {
        self.0[index].push(value);
    }

    fn medians(&self) -> [Option<f64>; 2] {
        [median(self.0[0].clone()), median(self.0[1].clone())]
    }
}

/// The order subjects run in for round `round`: A, B, then B, A, ...
fn order(count: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if !round.is_multiple_of(2) {
        order.reverse();
    }
    order
}

fn blob_workload(
    rt: &Runtime,
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## {} blob: chunked and monolithic upload, download, 1 MiB ranges",
        human_bytes(options.blob)
    );
    let mut chunked = Samples::default();
    let mut monolithic = Samples::default();
    let mut download = Samples::default();
    let mut first_download = Samples::default();
    let mut range = Samples::default();
    for round in 0..options.rounds {
        let seed = 1000 + 10 * round as u64;
        let started = Instant::now();
        let blob = MemoryBlob::generate(seed, options.blob);
        println!(
            "  generated {} in memory in {:.1} s",
            human_bytes(options.blob),
            started.elapsed().as_secs_f64()
        );
        for &i in &order(subjects.len(), round) {
            let s = &subjects[i];
            let t = rt.block_on(s.client.upload_memory_chunked(BLOB_REPO, &blob, CHUNK))?;
            println!(
                "  {:<10} POST + {} x 16 MiB PATCH + PUT: {:.1} MB/s ({:.2} s)",
                s.label,
                options.blob.div_ceil(CHUNK),
                t.mb_per_s(),
                t.elapsed.as_secs_f64()
            );
            chunked.push(i, t.mb_per_s());
        }
        drop(blob);
        let blob = MemoryBlob::generate(seed + 1, options.blob);
        for &i in &order(subjects.len(), round) {
            let s = &subjects[i];
            let t = rt.block_on(s.client.upload_memory_monolithic(BLOB_REPO, &blob))?;
            println!(
                "  {:<10} POST + streamed PUT: {:.1} MB/s ({:.2} s)",
                s.label,
                t.mb_per_s(),
                t.elapsed.as_secs_f64()
            );
            monolithic.push(i, t.mb_per_s());
        }
        for sample in 0..options.download_samples {
            for &i in &order(subjects.len(), round + sample) {
                let s = &subjects[i];
                let t = rt.block_on(s.client.download_counted(
                    BLOB_REPO,
                    blob.digest(),
                    blob.size(),
                ))?;
                println!(
                    "  {:<10} GET whole blob: {:.1} MB/s ({:.2} s)",
                    s.label,
                    t.mb_per_s(),
                    t.elapsed.as_secs_f64()
                );
                download.push(i, t.mb_per_s());
                if sample == 0 {
                    first_download.push(i, t.mb_per_s());
                }
            }
        }
        // 1 MiB ranges at spread offsets; the first of each server is checked byte for byte.
        let span = options.blob - RANGE;
        let expected_offset = span / 2 / RANGE * RANGE + 12345;
        let expected = blob.slice(expected_offset, RANGE);
        for sample in 0..options.range_samples {
            let offset = if sample == 0 {
                expected_offset
            } else {
                (span / options.range_samples as u64) * sample as u64
            };
            for &i in &order(subjects.len(), sample) {
                let s = &subjects[i];
                let (bytes, took) =
                    rt.block_on(
                        s.client
                            .download_range(BLOB_REPO, blob.digest(), offset, RANGE),
                    )?;
                if bytes.len() as u64 != RANGE || (sample == 0 && bytes[..] != expected[..]) {
                    return Err(format!(
                        "{}: the range at {offset} came back wrong ({} bytes)",
                        s.label,
                        bytes.len()
                    )
                    .into());
                }
                range.push(i, micros(took));
            }
        }
    }
    let peak = both(subjects, |s| {
        Memory::of_pid(s.server.pid())
            .ok()
            .map(|m| m.peak_rss as f64)
    });
    report.add(
        &format!("upload {}, monolithic PUT", human_bytes(options.blob)),
        Unit::MBps,
        monolithic.medians(),
        Some(Goal::RatioAtLeast(4.0)),
    );
    report.add(
        &format!("upload {}, 16 MiB chunked PATCH", human_bytes(options.blob)),
        Unit::MBps,
        chunked.medians(),
        Some(Goal::RatioAtLeast(4.0)),
    );
    report.add(
        &format!(
            "download {} (median of {})",
            human_bytes(options.blob),
            options.download_samples * options.rounds
        ),
        Unit::MBps,
        download.medians(),
        Some(Goal::RatioAtLeast(1.0)),
    );
    report.add(
        &format!(
            "download {}, the first after the push",
            human_bytes(options.blob)
        ),
        Unit::MBps,
        first_download.medians(),
        None,
    );
    let ranges = range.medians();
    report.add(
        &format!("download 1 MiB range (median of {})", options.range_samples),
        Unit::Micros,
        ranges,
        None,
    );
    report.add(
        "download 1 MiB range, throughput",
        Unit::MBps,
        ranges.map(|t| t.map(|t| RANGE as f64 / t)),
        None,
    );
    report.add(
        &format!(
            "peak RSS (VmHWM) after push + pull of {}",
            human_bytes(options.blob)
        ),
        Unit::Bytes,
        peak,
        Some(Goal::AtMost(32.0 * 1024.0 * 1024.0)),
    );
    Ok(())
}

fn load_workload(
    rt: &Runtime,
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## load: {} connections, {:.1} s warm-up + {:.1} s measured each",
        options.connections,
        options.warmup.as_secs_f64(),
        options.seconds.as_secs_f64()
    );
    let load_options = LoadOptions {
        connections: options.connections,
        warmup: options.warmup,
        duration: options.seconds,
    };
    let accept = HeaderValue::from_static(ACCEPT);
    type MakeTarget = fn(&Subject, &HeaderValue) -> Result<Target, Error>;
    let endpoints: [(&str, MakeTarget); 4] = [
        ("GET manifest by tag", |s, accept| {
            Ok(Target::new(
                s.server.addr(),
                Method::GET,
                format!("/v2/{SMALL_REPO}/manifests/{SMALL_TAG}"),
            )
            .header(header::ACCEPT, accept.clone()))
        }),
        ("GET manifest by digest", |s, accept| {
            let small = s.small.as_ref().ok_or("the small image was not pushed")?;
            Ok(Target::new(
                s.server.addr(),
                Method::GET,
                format!("/v2/{SMALL_REPO}/manifests/{}", small.manifest),
            )
            .header(header::ACCEPT, accept.clone()))
        }),
        ("HEAD blob", |s, _| {
            let small = s.small.as_ref().ok_or("the small image was not pushed")?;
            Ok(Target::new(
                s.server.addr(),
                Method::HEAD,
                format!("/v2/{SMALL_REPO}/blobs/{}", small.layer),
            ))
        }),
        ("GET /v2/", |s, _| {
            Ok(Target::new(s.server.addr(), Method::GET, "/v2/"))
        }),
    ];
    for (n, (name, make)) in endpoints.iter().enumerate() {
        let mut rounds: [Vec<LoadReport>; 2] = [Vec::new(), Vec::new()];
        // Each round swaps who goes first: the second of a pair runs right after its own
        // previous workload, which leaves it with a pool of idle threads the first lacks.
        for i in (0..options.rounds).flat_map(|round| order(subjects.len(), n + round)) {
            let s = &subjects[i];
            let target = make(s, &accept)?.header(
                header::USER_AGENT,
                HeaderValue::from_static("registry-bench"),
            );
            let cpu_before = cpu_time(s.server.pid()).ok();
            let started = Instant::now();
            let result = rt.block_on(load::run(&target, &load_options))?;
            let wall = started.elapsed();
            let cpu = cpu_before
                .zip(cpu_time(s.server.pid()).ok())
                .map(|(a, b)| b.saturating_sub(a).as_secs_f64() / wall.as_secs_f64());
            println!(
                "  {:<10} {name}: {:.0} requests/s, p50 {}, p99 {}, max {}, errors {}{}, server CPU {}",
                s.label,
                result.requests_per_s(),
                format_micros(result.latency.percentile(50.0)),
                format_micros(result.latency.percentile(99.0)),
                format_micros(result.latency.max()),
                result.total_errors(),
                result
                    .first_error
                    .as_ref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default(),
                cpu.map_or_else(|| "?".into(), |c| format!("{:.0} % of a core", c * 100.0)),
            );
            if result.total_errors() > 0 {
                report.notes.push(format!(
                    "{}: {name} had {} errors",
                    s.label,
                    result.total_errors()
                ));
            }
            rounds[i].push(result);
        }
        let reports = rounds.map(median_by_rate);
        let name = if options.rounds > 1 {
            format!("{name} (median of {})", options.rounds)
        } else {
            (*name).to_owned()
        };
        let value =
            |f: fn(&LoadReport) -> f64| [reports[0].as_ref().map(f), reports[1].as_ref().map(f)];
        report.add(
            &format!("{name}: requests/s"),
            Unit::PerSec,
            value(|r| r.requests_per_s()),
            Some(Goal::RatioAtLeast(10.0)),
        );
        report.add(
            &format!("{name}: p50"),
            Unit::Micros,
            value(|r| r.latency.percentile(50.0) as f64),
            None,
        );
        report.add(
            &format!("{name}: p99"),
            Unit::Micros,
            value(|r| r.latency.percentile(99.0) as f64),
            Some(Goal::RatioAtMost(0.1)),
        );
    }
    Ok(())
}

/// The report with the median request rate (the higher middle one of an even count).
fn median_by_rate(mut reports: Vec<LoadReport>) -> Option<LoadReport> {
    reports.sort_by(|a, b| a.requests_per_s().total_cmp(&b.requests_per_s()));
    let middle = reports.len() / 2;
    reports.into_iter().nth(middle)
}

/// GETs `path` until the listing is complete (following `Link` pages, at most 100), returning
/// the entries under `key` and the total time.
async fn list_all(
    client: &RegistryClient,
    path: &str,
    key: &str,
) -> Result<(usize, usize, Duration), Error> {
    let mut next = Some(path.to_string());
    let mut entries = 0usize;
    let mut pages = 0usize;
    let mut total = Duration::ZERO;
    while let Some(path) = next.take() {
        if pages >= 100 {
            return Err(format!("{path}: more than 100 pages").into());
        }
        let (status, link, body, took) = client.get(&path).await?;
        if status != StatusCode::OK {
            return Err(format!("GET {path}: {status}").into());
        }
        total += took;
        pages += 1;
        let value: serde_json::Value = serde_json::from_slice(&body)?;
        entries += value[key].as_array().map_or(0, Vec::len);
        // `Link: </v2/_catalog?last=x&n=y>; rel="next"`
        next = link.and_then(|l| {
            let start = l.find('<')? + 1;
            let end = l.find('>')?;
            Some(l[start..end].to_string())
        });
    }
    Ok((entries, pages, total))
}

fn list_workload(
    rt: &Runtime,
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## listings: catalog of {} repositories, tags/list of {} tags ({} requests each)",
        thousands(options.entries as u64),
        thousands(options.entries as u64),
        options.list_samples
    );
    let catalog_path = format!("/v2/_catalog?n={}", options.catalog_page());
    let tags_path = format!(
        "/v2/{}/tags/list?n={}",
        layout::TAGGED_REPOSITORY,
        options.entries
    );
    let mut catalog = Samples::default();
    let mut tags = Samples::default();
    for (path, key, want, samples) in [
        (&catalog_path, "repositories", options.entries, &mut catalog),
        (&tags_path, "tags", options.entries, &mut tags),
    ] {
        for sample in 0..options.list_samples {
            for &i in &order(subjects.len(), sample) {
                let s = &subjects[i];
                let (entries, pages, took) = rt.block_on(list_all(&s.client, path, key))?;
                if entries < want {
                    return Err(format!(
                        "{}: GET {path} listed {entries} entries, expected at least {want}",
                        s.label
                    )
                    .into());
                }
                if sample == 0 {
                    println!(
                        "  {:<10} GET {path}: {entries} entries in {pages} page(s), first request {}",
                        s.label,
                        format_micros(micros(took) as u64)
                    );
                }
                samples.push(i, micros(took));
            }
        }
    }
    let n = thousands(options.entries as u64);
    report.add(
        &format!("GET /v2/_catalog, {n} repositories"),
        Unit::Micros,
        catalog.medians(),
        Some(Goal::RatioAtMost(0.1)),
    );
    report.add(
        &format!("GET tags/list, {n} tags"),
        Unit::Micros,
        tags.medians(),
        Some(Goal::RatioAtMost(0.2)),
    );
    Ok(())
}

fn push32_workload(
    rt: &Runtime,
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## {PUSHES} concurrent pushes of distinct {} blobs (POST + streamed PUT each)",
        human_bytes(PUSH_SIZE)
    );
    let rounds = options.rounds.max(3);
    let mut totals = Samples::default();
    for round in 0..rounds {
        let blobs: Vec<MemoryBlob> = (0..PUSHES)
            .map(|k| MemoryBlob::generate(50_000 + (round * PUSHES + k) as u64, PUSH_SIZE))
            .collect();
        for &i in &order(subjects.len(), round) {
            let s = &subjects[i];
            let started = Instant::now();
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for blob in &blobs {
                    let client = s.client.clone();
                    let blob = blob.clone();
                    set.spawn(
                        async move { client.upload_memory_monolithic(PUSH32_REPO, &blob).await },
                    );
                }
                while let Some(done) = set.join_next().await {
                    done??;
                }
                Ok::<(), Error>(())
            })?;
            let took = started.elapsed();
            let mbps = (PUSHES as u64 * PUSH_SIZE) as f64 / 1e6 / took.as_secs_f64();
            println!(
                "  {:<10} round {}: {:.1} MB/s total ({:.2} s)",
                s.label,
                round + 1,
                mbps,
                took.as_secs_f64()
            );
            totals.push(i, mbps);
        }
    }
    report.add(
        &format!(
            "{PUSHES} concurrent pushes of {} (median of {rounds})",
            human_bytes(PUSH_SIZE)
        ),
        Unit::MBps,
        totals.medians(),
        Some(Goal::RatioAtLeast(3.0)),
    );
    Ok(())
}

/// Images pushed one after another by the smallpush workload, per server and round.
const SMALL_PUSHES: usize = 300;

/// Small pushes one after another: where the fixed cost of a push (storage operations, leases,
/// the checks beside garbage collection) shows, since the bytes are few.
fn smallpush_workload(
    rt: &Runtime,
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## {SMALL_PUSHES} small images pushed one after another (1 KiB layer, config, manifest)"
    );
    let rounds = options.rounds.max(3);
    let mut per_image = Samples::default();
    for round in 0..rounds {
        for &i in &order(subjects.len(), round) {
            let s = &subjects[i];
            let started = Instant::now();
            rt.block_on(async {
                for k in 0..SMALL_PUSHES {
                    let seed = 1_000_000 + (round * SMALL_PUSHES + k) as u64;
                    let tag = format!("r{round}-{k}");
                    image::push_small_image(&s.client, "bench/smallpush", &tag, 1024, seed).await?;
                }
                Ok::<(), Error>(())
            })?;
            let micros = micros(started.elapsed()) / SMALL_PUSHES as f64;
            println!(
                "  {:<10} round {}: {} an image",
                s.label,
                round + 1,
                format_micros(micros.round() as u64)
            );
            per_image.push(i, micros);
        }
    }
    report.add(
        &format!(
            "push of a small image, one at a time (median of {rounds} rounds of {SMALL_PUSHES})"
        ),
        Unit::Micros,
        per_image.medians(),
        None,
    );
    Ok(())
}

/// A registryd pull-through cache of `upstream` (registry:2's `proxy.remoteurl`).
fn start_mirror(options: &Options, upstream: &RegistryProcess) -> Result<RegistryProcess, Error> {
    let remote = upstream.base_url();
    RegistryProcess::start_configured(
        &options.registryd,
        &options.settings(&options.registryd),
        |_| Ok(vec![("REGISTRY_PROXY_REMOTEURL".to_owned(), remote)]),
    )
}

/// The requests for `repository` in a registryd's access log.
fn requests_for(log: &str, repository: &str) -> Vec<String> {
    let needle = format!("path=\"/v2/{repository}/");
    log.lines()
        .filter(|line| line.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// registryd as a pull-through cache of another registryd: a large blob pulled through it on a
/// miss and on a hit, against a pull straight from the upstream; and the upstream requests of 32
/// clients pulling one image through a fresh mirror at once.
fn mirror_workload(rt: &Runtime, options: &Options, report: &mut Report) -> Result<(), Error> {
    println!(
        "\n## mirror: {} blob through a registryd pull-through cache of a registryd",
        human_bytes(options.blob)
    );
    // Its own upstream, logging each request, so the mirror's requests can be counted.
    let settings = Settings {
        accesslog_disabled: false,
        ..options.settings(&options.registryd)
    };
    let upstream = RegistryProcess::start_configured(&options.registryd, &settings, |_| {
        Ok(vec![("REGISTRY_LOG_LEVEL".to_owned(), "info".to_owned())])
    })?;
    let origin = RegistryClient::new(&upstream.base_url());
    let blob = MemoryBlob::generate(4242, options.blob);
    rt.block_on(origin.upload_memory_monolithic(MIRRORED_REPO, &blob))?;
    let (digest, size) = (blob.digest().to_owned(), blob.size());
    drop(blob);
    let mut direct = Vec::new();
    let mut miss = Vec::new();
    let mut hit = Vec::new();
    for round in 0..options.rounds {
        let mirror = start_mirror(options, &upstream)?;
        let through = RegistryClient::new(&mirror.base_url());
        let straight = rt.block_on(origin.download_counted(MIRRORED_REPO, &digest, size))?;
        let missed = rt.block_on(through.download_counted(MIRRORED_REPO, &digest, size))?;
        println!(
            "  round {}: straight from the upstream {:.1} MB/s, through the mirror on a miss {:.1} MB/s",
            round + 1,
            straight.mb_per_s(),
            missed.mb_per_s()
        );
        direct.push(straight.mb_per_s());
        miss.push(missed.mb_per_s());
        for sample in 0..options.download_samples {
            // Whoever goes second reads pages the first just touched: alternate.
            let (straight, cached) = if sample % 2 == 0 {
                let straight =
                    rt.block_on(origin.download_counted(MIRRORED_REPO, &digest, size))?;
                let cached = rt.block_on(through.download_counted(MIRRORED_REPO, &digest, size))?;
                (straight, cached)
            } else {
                let cached = rt.block_on(through.download_counted(MIRRORED_REPO, &digest, size))?;
                let straight =
                    rt.block_on(origin.download_counted(MIRRORED_REPO, &digest, size))?;
                (straight, cached)
            };
            println!(
                "           straight from the upstream {:.1} MB/s, from the mirror's cache {:.1} MB/s",
                straight.mb_per_s(),
                cached.mb_per_s()
            );
            direct.push(straight.mb_per_s());
            hit.push(cached.mb_per_s());
        }
    }
    let (direct, miss, hit) = (median(direct), median(miss), median(hit));
    report.add(
        &format!(
            "mirror: {} on a miss / straight from the upstream",
            human_bytes(size)
        ),
        Unit::MBps,
        [miss, direct],
        Some(Goal::RatioAtLeast(0.8)),
    );
    report.add(
        &format!(
            "mirror: {} on a hit / straight from the upstream",
            human_bytes(size)
        ),
        Unit::MBps,
        [hit, direct],
        Some(Goal::RatioAtLeast(1.0)),
    );

    let image = rt.block_on(image::push_small_image(
        &origin,
        MIRRORED_REPO,
        "latest",
        1 << 20,
        4243,
    ))?;
    let mirror = start_mirror(options, &upstream)?;
    let before = requests_for(&upstream.log(), MIRRORED_REPO).len();
    let base = mirror.base_url();
    rt.block_on(async {
        let mut pulls = tokio::task::JoinSet::new();
        for _ in 0..MIRROR_PULLS {
            let client = RegistryClient::new(&base);
            let layer = image.layer.clone();
            pulls.spawn(async move {
                let (status, _, manifest, _) = client
                    .get(&format!("/v2/{MIRRORED_REPO}/manifests/latest"))
                    .await?;
                if !status.is_success() {
                    return Err(Error::from(format!("manifest: {status}")));
                }
                let manifest: serde_json::Value = serde_json::from_slice(&manifest)?;
                let config = manifest["config"]["digest"].as_str().unwrap_or_default();
                for digest in [config, layer.as_str()] {
                    let (status, _, _, _) = client
                        .get(&format!("/v2/{MIRRORED_REPO}/blobs/{digest}"))
                        .await?;
                    if !status.is_success() {
                        return Err(format!("blob {digest}: {status}").into());
                    }
                }
                Ok(())
            });
        }
        while let Some(pulled) = pulls.join_next().await {
            pulled??;
        }
        Ok::<(), Error>(())
    })?;
    let asked = requests_for(&upstream.log(), MIRRORED_REPO).split_off(before);
    println!(
        "  {MIRROR_PULLS} concurrent pulls of one image (manifest, config, 1 MiB layer) through a \
         fresh mirror: {} upstream requests",
        asked.len()
    );
    for line in &asked {
        let request = line
            .split_whitespace()
            .filter(|word| word.starts_with("method=") || word.starts_with("path="))
            .collect::<Vec<_>>()
            .join(" ");
        println!("    {request}");
    }
    report.notes.push(format!(
        "mirror: {MIRROR_PULLS} concurrent pulls of one image (manifest, config, layer) through \
         a fresh mirror made {} upstream requests",
        asked.len()
    ));
    Ok(())
}

fn startup_workload(
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## start to first 200 on /v2/ (empty storage root, {} starts each, polled every ms)",
        options.starts
    );
    let mut times = Samples::default();
    for start in 0..options.starts {
        for &i in &order(subjects.len(), start) {
            let s = &subjects[i];
            let server =
                RegistryProcess::start_configured(&s.binary, &options.settings(&s.binary), |_| {
                    Ok(Vec::new())
                })?;
            let (took, status) = server.startup();
            if status != 200 {
                return Err(format!("{}: first answer on /v2/ was {status}", s.label).into());
            }
            times.push(i, micros(took));
        }
    }
    for (i, s) in subjects.iter().enumerate() {
        let list: Vec<String> = times.0[i]
            .iter()
            .map(|t| format_micros(*t as u64))
            .collect();
        println!("  {:<10} {}", s.label, list.join(", "));
    }
    report.add(
        &format!("start to first 200 on /v2/ (median of {})", options.starts),
        Unit::Micros,
        times.medians(),
        Some(Goal::AtMost(50_000.0)),
    );
    Ok(())
}

/// The machine's own bounds (`bounds` workload), measured with no registry in the way.
fn bounds_workload(options: &Options, report: &mut Report) -> Result<(), Error> {
    println!(
        "\n## bounds of this machine: {} through each, no registry in the way",
        human_bytes(options.blob)
    );
    report.bounds = bounds::measure(&std::env::temp_dir(), options.blob)?;
    for b in &report.bounds {
        println!("  {:<52} {:>9.0} MB/s", b.what, b.rate.mb_per_s());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Docker

/// Runs a command with its output in files, killing it after `timeout`.
fn run_bounded(command: &mut Command, timeout: Duration) -> Result<(Duration, String), Error> {
    let dir = std::env::temp_dir();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let out_path = dir.join(format!(
        "registry-bench-cmd-{}-{stamp}.out",
        std::process::id()
    ));
    let out = std::fs::File::create(&out_path)?;
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    match status {
        Some(status) if status.success() => Ok((took, output)),
        Some(status) => Err(format!("{command:?} failed with {status}:\n{output}").into()),
        None => Err(format!("{command:?} did not finish in {timeout:?}:\n{output}").into()),
    }
}

struct Docker {
    config: PathBuf,
    forget: Vec<String>,
}

impl Docker {
    /// A docker client with a private, empty config directory, when `docker info` works.
    fn available() -> Option<Docker> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let config = std::env::temp_dir().join(format!(
            "registry-bench-docker-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&config).ok()?;
        let docker = Docker {
            config,
            forget: Vec::new(),
        };
        let info = docker.run(
            &["info", "--format", "{{.ServerVersion}}"],
            Duration::from_secs(20),
        );
        match info {
            Ok((_, version)) => {
                println!("  Docker engine {}", version.trim());
                Some(docker)
            }
            Err(e) => {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                println!("  no usable Docker engine ({first}): skipping docker push/pull");
                None
            }
        }
    }

    fn run(&self, args: &[&str], timeout: Duration) -> Result<(Duration, String), Error> {
        let mut command = Command::new("docker");
        command.env("DOCKER_CONFIG", &self.config).args(args);
        run_bounded(&mut command, timeout)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for reference in &self.forget {
            let _ = self.run(&["rmi", "-f", reference], Duration::from_secs(60));
        }
        let _ = std::fs::remove_dir_all(&self.config);
    }
}

fn docker_workload(
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## docker push and pull of a {DOCKER_LAYERS}-layer image ({} of random data a layer)",
        human_bytes(options.docker_layer)
    );
    let Some(mut docker) = Docker::available() else {
        report
            .notes
            .push("docker push/pull skipped: no Docker engine".into());
        return Ok(());
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let base = format!("registry-bench/layers:{}-{stamp}", std::process::id());
    let archive = std::env::temp_dir().join(format!(
        "registry-bench-image-{}-{stamp}.tar",
        std::process::id()
    ));
    image::write_docker_archive(&archive, &base, DOCKER_LAYERS, options.docker_layer, stamp)?;
    docker.forget.push(base.clone());
    let loaded = docker.run(&["load", "-i", &archive.to_string_lossy()], DOCKER_TIMEOUT);
    let _ = std::fs::remove_file(&archive);
    loaded?;
    let tags: Vec<String> = subjects
        .iter()
        .map(|s| format!("{}/bench/docker:{DOCKER_LAYERS}-layers", s.server.addr()))
        .collect();
    let mut push = [None, None];
    let mut pull = [None, None];
    for tag in &tags {
        docker.forget.push(tag.clone());
        docker.run(&["tag", &base, tag], DOCKER_TIMEOUT)?;
    }
    // Docker's first push of an image does work later pushes skip (it compresses each layer
    // and remembers the digests): do it untimed, to a throwaway registryd, so neither measured
    // server pays for it.
    {
        let warmup = RegistryProcess::start_configured(
            &options.registryd,
            &options.settings(&options.registryd),
            |_| Ok(Vec::new()),
        )?;
        let tag = format!("{}/bench/warmup:1", warmup.addr());
        docker.forget.push(tag.clone());
        docker.run(&["tag", &base, &tag], DOCKER_TIMEOUT)?;
        let (took, _) = docker.run(&["push", &tag], DOCKER_TIMEOUT)?;
        println!(
            "  untimed warm-up push to another registryd: {:.2} s",
            took.as_secs_f64()
        );
        docker.run(&["rmi", &tag], DOCKER_TIMEOUT)?;
    }
    for &i in &order(subjects.len(), 0) {
        let (took, _) = docker.run(&["push", &tags[i]], DOCKER_TIMEOUT)?;
        println!(
            "  {:<10} docker push: {:.2} s",
            subjects[i].label,
            took.as_secs_f64()
        );
        push[i] = Some(micros(took));
    }
    // Remove every name of the image, so the pulls download every layer.
    let mut names = vec![base.as_str()];
    names.extend(tags.iter().map(String::as_str));
    let mut rmi = vec!["rmi"];
    rmi.extend(names);
    docker.run(&rmi, DOCKER_TIMEOUT)?;
    for &i in &order(subjects.len(), 1) {
        let (took, _) = docker.run(&["pull", &tags[i]], DOCKER_TIMEOUT)?;
        println!(
            "  {:<10} docker pull: {:.2} s",
            subjects[i].label,
            took.as_secs_f64()
        );
        pull[i] = Some(micros(took));
        docker.run(&["rmi", &tags[i]], DOCKER_TIMEOUT)?;
    }
    report.add(
        &format!("docker push, {DOCKER_LAYERS} layers"),
        Unit::Micros,
        push,
        None,
    );
    report.add(
        &format!("docker pull, {DOCKER_LAYERS} layers"),
        Unit::Micros,
        pull,
        None,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn run(options: &Options) -> Result<Report, Error> {
    let compared = options.registry2.is_some();
    println!(
        "# registry-bench: registryd{}",
        if compared { " vs registry:2" } else { "" }
    );
    println!("machine: {}", machine());
    println!(
        "note: the servers and this load generator share the machine's CPUs over 127.0.0.1 \
         (and on a shared machine, with whatever else runs there): figures are for all of them \
         on one host"
    );
    println!(
        "mode: {}; workloads: {}{}",
        if options.quick { "quick" } else { "full" },
        options.only.iter().cloned().collect::<Vec<_>>().join(", "),
        if options.direct_io {
            "; registryd with storage.filesystem.directio: true"
        } else {
            ""
        }
    );
    let mut report = Report::default();
    println!("\n## servers");
    let mut subjects = vec![start_subject("registryd", &options.registryd, options)?];
    if let Some(registry2) = &options.registry2 {
        let version = Command::new(registry2)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        println!("  registry:2 is {version}");
        subjects.push(start_subject("registry:2", registry2, options)?);
    }
    report.add(
        "idle RSS after start",
        Unit::Bytes,
        both(&subjects, |s| Some(s.idle.rss as f64)),
        Some(Goal::RatioAtMost(0.5)),
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for s in &mut subjects {
        let small = rt.block_on(image::push_small_image(
            &s.client, SMALL_REPO, SMALL_TAG, 4096, 7,
        ));
        s.small = Some(small.map_err(|e| format!("{}: {e}\n{}", s.label, s.server.log_tail(20)))?);
    }

    type Step = fn(&Runtime, &Options, &[Subject], &mut Report) -> Result<(), Error>;
    let steps: [(&str, Step); 9] = [
        ("blob", blob_workload),
        ("push32", push32_workload),
        ("smallpush", smallpush_workload),
        ("load", load_workload),
        ("list", list_workload),
        ("docker", |_, o, s, r| docker_workload(o, s, r)),
        ("startup", |_, o, s, r| startup_workload(o, s, r)),
        ("bounds", |_, o, _, r| bounds_workload(o, r)),
        ("mirror", |rt, o, _, r| mirror_workload(rt, o, r)),
    ];
    for (name, step) in steps {
        if !options.wants(name) {
            continue;
        }
        if let Err(e) = step(&rt, options, &subjects, &mut report) {
            let logs: Vec<String> = subjects
                .iter()
                .map(|s| format!("{}:\n{}", s.label, s.server.log_tail(20)))
                .collect();
            return Err(format!("workload {name}: {e}\n{}", logs.join("\n")).into());
        }
        for s in &mut subjects {
            if !s.server.is_running() {
                return Err(format!("{} exited\n{}", s.label, s.server.log_tail(20)).into());
            }
        }
    }

    println!("\n## summary (paste into docs/performance.md)\n");
    println!("{}", machine());
    if options.direct_io {
        println!("registryd with storage.filesystem.directio: true");
    }
    println!();
    print!("{}", report.markdown(compared));
    if !compared {
        println!("\n(registryd alone: registry:2 was not run)");
    }
    for note in &report.notes {
        println!("\nnote: {note}");
    }
    Ok(report)
}

fn main() -> ExitCode {
    match parse_args().and_then(|options| run(&options)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry-bench failed: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn verdicts_follow_the_goal() {
        let figure = |registryd, registry2, goal| Figure {
            name: "x".into(),
            unit: Unit::MBps,
            registryd: Some(registryd),
            registry2,
            goal: Some(goal),
        };
        assert_eq!(
            figure(800.0, Some(190.0), Goal::RatioAtLeast(4.0)).verdict(),
            "met"
        );
        assert_eq!(
            figure(700.0, Some(190.0), Goal::RatioAtLeast(4.0)).verdict(),
            "MISSED"
        );
        assert_eq!(
            figure(10.0, Some(200.0), Goal::RatioAtMost(0.1)).verdict(),
            "met"
        );
        assert_eq!(figure(10.0, None, Goal::AtMost(20.0)).verdict(), "met");
        assert_eq!(figure(10.0, None, Goal::RatioAtMost(0.1)).verdict(), "");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
