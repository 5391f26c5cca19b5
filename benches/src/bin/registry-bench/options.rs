//! The command line, and the settings of a run it resolves to.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use registry_bench::server::Settings;
use registry_bench::{Error, parse_size};

use crate::workload::blob::RANGE;

/// Every workload, by the name `--only` takes.
pub(crate) const WORKLOADS: [&str; 9] = [
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

/// registryd side by side with registry:2 (CNCF Distribution) on 127.0.0.1: uploads,
/// downloads, request rates, listings, pushes, start-up time and memory.
#[derive(Debug, Parser)]
#[command(name = "registry-bench")]
struct Args {
    /// Also run registry:2 (Debian's docker-registry) and print ratios.
    #[arg(long, value_name = "registry2", value_parser = ["registry2"])]
    compare: Option<String>,
    /// The registry:2 binary; implies --compare registry2 [default: /usr/bin/docker-registry].
    #[arg(long, value_name = "PATH")]
    registry2: Option<PathBuf>,
    /// The registryd binary [env: REGISTRYD_BIN; default: registryd next to this executable].
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Smoke test: 64 MiB blob, 2 s load, 1,000 repositories and tags.
    #[arg(long)]
    quick: bool,
    /// Comma-separated workloads: blob,load,list,push32,smallpush,docker,startup,bounds,mirror
    /// [default: all].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = workload)]
    only: Option<Vec<String>>,
    /// The large blob (1GiB, 256MiB, 4096, ...) [default: 1GiB; --quick 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = size)]
    blob: Option<u64>,
    /// Measured load period, in seconds, at most 600 [default: 10; --quick 2].
    #[arg(long, value_name = "S", value_parser = seconds)]
    seconds: Option<Duration>,
    /// Load connections.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Repositories in the catalog and tags in the tag list [default: 10000; --quick 1000].
    #[arg(long, value_name = "N")]
    entries: Option<usize>,
    /// Rounds of the blob, push32, load and mirror workloads (at most 10), alternating which
    /// server goes first; load figures are each server's median round.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Run registryd with storage.filesystem.directio: true (large uploads bypass the page
    /// cache).
    #[arg(long)]
    direct_io: bool,
    /// Run registryd with Prometheus metrics on a debug port and one notification endpoint: a
    /// webhook this program runs (live) or a port nothing listens on (dead). With --registry2
    /// naming a copy of registryd, the ratios are the cost of observing.
    #[arg(long, value_enum, value_name = "live|dead")]
    observe: Option<Observe>,
}

/// One `--only` entry, checked against [`WORKLOADS`].
fn workload(text: &str) -> Result<String, String> {
    let name = text.trim();
    if WORKLOADS.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(format!("unknown workload {name:?}: one of {WORKLOADS:?}"))
    }
}

/// A `--blob` size, at least two ranges long.
fn size(text: &str) -> Result<u64, String> {
    let size = parse_size(text).map_err(|e| e.to_string())?;
    if size < RANGE * 2 {
        return Err("must be at least 2 MiB".into());
    }
    Ok(size)
}

/// A `--seconds` period: above 0 and at most 600 s.
fn seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("not a number of seconds: {text:?}"))?;
    match Duration::try_from_secs_f64(seconds) {
        Ok(period) if !period.is_zero() && period <= Duration::from_secs(600) => Ok(period),
        _ => Err("must be between 0 and 600".into()),
    }
}

/// What `--observe` gives registryd: metrics, and a webhook that is up or down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Observe {
    /// A webhook this program runs, answering every delivery at once.
    Live,
    /// A port nothing listens on.
    Dead,
}

/// The settings of a run.
pub(crate) struct Options {
    pub(crate) registryd: PathBuf,
    pub(crate) registry2: Option<PathBuf>,
    pub(crate) quick: bool,
    pub(crate) only: BTreeSet<String>,
    pub(crate) blob: u64,
    pub(crate) seconds: Duration,
    pub(crate) warmup: Duration,
    pub(crate) connections: usize,
    pub(crate) entries: usize,
    pub(crate) rounds: usize,
    pub(crate) range_samples: usize,
    /// Whole-blob downloads per server and round (each a few tenths of a second).
    pub(crate) download_samples: usize,
    pub(crate) list_samples: usize,
    pub(crate) starts: usize,
    pub(crate) docker_layer: u64,
    /// Whether registryd runs with `storage.filesystem.directio: true`.
    pub(crate) direct_io: bool,
    /// The notification endpoint registryd is given, with metrics on: `None` for neither.
    pub(crate) observe: Option<Observe>,
}

impl Options {
    /// The settings from this process's command line; exits with clap's message (status 2) on
    /// a bad one, and prints the help for `--help`.
    pub(crate) fn from_command_line() -> Result<Options, Error> {
        Options::from_args(Args::parse())
    }

    fn from_args(args: Args) -> Result<Options, Error> {
        let quick = args.quick;
        let registryd = match args.server {
            Some(path) => path,
            None => registry_bench::server::default_registryd()?,
        };
        let compare = args.compare.is_some() || args.registry2.is_some();
        let registry2 = args
            .registry2
            .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"));
        let registry2 = if !compare {
            None
        } else if registry2.is_file() {
            Some(registry2)
        } else {
            println!(
                "registry:2 is not installed ({} not found; `apt-get install docker-registry`): \
                 measuring registryd alone",
                registry2.display()
            );
            None
        };
        Ok(Options {
            registryd,
            registry2,
            quick,
            only: match args.only {
                Some(only) => only.into_iter().collect(),
                None => WORKLOADS.iter().map(|w| w.to_string()).collect(),
            },
            blob: args.blob.unwrap_or(if quick { 64 << 20 } else { 1 << 30 }),
            seconds: args
                .seconds
                .unwrap_or(Duration::from_secs(if quick { 2 } else { 10 })),
            warmup: Duration::from_millis(if quick { 500 } else { 2000 }),
            connections: usize::try_from(args.connections)?,
            entries: args.entries.unwrap_or(if quick { 1000 } else { 10_000 }),
            rounds: usize::try_from(args.rounds.min(10))?,
            range_samples: if quick { 5 } else { 20 },
            download_samples: if quick { 3 } else { 5 },
            list_samples: if quick { 3 } else { 5 },
            starts: 5,
            docker_layer: if quick { 1 << 20 } else { 8 << 20 },
            direct_io: args.direct_io,
            observe: args.observe,
        })
    }

    /// Whether `--only` (or its default, every workload) names `workload`.
    pub(crate) fn wants(&self, workload: &str) -> bool {
        self.only.contains(workload)
    }

    /// The configuration of a server started from `binary`: the same for both, but for the
    /// registryd-only `directio` key.
    pub(crate) fn settings(&self, binary: &Path) -> Settings {
        Settings {
            blobdescriptor_inmemory: true,
            accesslog_disabled: true,
            catalog_maxentries: Some(self.catalog_page()),
            tags_maxtags: Some(self.catalog_page()),
            direct_io: self.direct_io && binary == self.registryd,
            driver_yaml: None,
        }
    }

    /// `n` for the catalog: every repository the run creates, in one page.
    pub(crate) fn catalog_page(&self) -> u64 {
        self.entries as u64 + 100
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn parse(line: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("registry-bench").chain(line.iter().copied()))
    }

    #[test]
    fn command_line_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn documented_command_lines_parse() {
        for line in [
            &["--compare", "registry2"][..],
            &["--compare", "registry2", "--quick"],
            &["--only", "blob,load,list,push32,docker,startup,bounds"],
            &[
                "--compare",
                "registry2",
                "--only",
                "blob,push32,bounds",
                "--direct-io",
            ],
            &[
                "--compare",
                "registry2",
                "--server",
                "target/release/registryd",
                "--registry2",
                "/tmp/registryd-plain",
                "--only",
                "blob,load,push32",
                "--rounds",
                "4",
            ],
            &[
                "--only",
                "load",
                "--rounds",
                "4",
                "--seconds",
                "5",
                "--observe",
                "live",
            ],
            &[
                "--only",
                "smallpush,push32",
                "--rounds",
                "2",
                "--observe",
                "dead",
            ],
            &["--only", "mirror,bounds", "--rounds", "3"],
            &["--blob", "256MiB", "--connections", "8", "--entries", "100"],
        ] {
            assert!(parse(line).is_ok(), "{line:?}: {:?}", parse(line).err());
        }
    }

    #[test]
    fn only_takes_known_workloads_with_spaces_trimmed() {
        let args = parse(&["--only", "blob, mirror"]).ok();
        let only = args.and_then(|a| a.only);
        assert_eq!(only, Some(vec!["blob".to_owned(), "mirror".to_owned()]));
        assert!(parse(&["--only", "blob,nope"]).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--compare", "registry3"]).is_err());
        assert!(parse(&["--observe", "maybe"]).is_err());
        assert!(parse(&["--blob", "1MiB"]).is_err());
        assert!(parse(&["--seconds", "0"]).is_err());
        assert!(parse(&["--seconds", "601"]).is_err());
        assert!(parse(&["--seconds", "-1"]).is_err());
        assert!(parse(&["--connections", "0"]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--unknown"]).is_err());
    }
}
