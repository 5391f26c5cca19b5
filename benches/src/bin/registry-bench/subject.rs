//! The servers a run measures: registryd, and registry:2 when compared, each started over its
//! own storage root; and the bookkeeping of samples taken from both.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use registry_bench::client::RegistryClient;
use registry_bench::image::SmallImage;
use registry_bench::layout;
use registry_bench::procfs::Memory;
use registry_bench::server::RegistryProcess;
use registry_bench::{Error, human_bytes};

use crate::options::{Observe, Options};
use crate::report::median;

/// The small image the load workload asks for.
pub(crate) const SMALL_REPO: &str = "bench/small";
/// The tag of [`SMALL_REPO`]'s image.
pub(crate) const SMALL_TAG: &str = "latest";

/// One server under test.
pub(crate) struct Subject {
    /// `registryd` or `registry:2`.
    pub(crate) label: &'static str,
    pub(crate) binary: PathBuf,
    pub(crate) server: RegistryProcess,
    pub(crate) client: RegistryClient,
    /// Memory shortly after the start.
    pub(crate) idle: Memory,
    /// The image at [`SMALL_REPO`]:[`SMALL_TAG`], once pushed.
    pub(crate) small: Option<SmallImage>,
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

/// Starts `binary` as a subject, with the storage the chosen workloads need.
pub(crate) fn start_subject(
    label: &'static str,
    binary: &Path,
    options: &Options,
) -> Result<Subject, Error> {
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
pub(crate) fn both(
    subjects: &[Subject],
    mut f: impl FnMut(&Subject) -> Option<f64>,
) -> [Option<f64>; 2] {
    [
        subjects.first().and_then(&mut f),
        subjects.get(1).and_then(&mut f),
    ]
}

/// The runtime the asynchronous clients run on.
pub(crate) type Runtime = tokio::runtime::Runtime;

/// Collected samples for [registryd, registry:2].
#[derive(Default)]
pub(crate) struct Samples([Vec<f64>; 2]);

impl Samples {
    pub(crate) fn push(&mut self, index: usize, value: f64) {
        self.0[index].push(value);
    }

    /// The samples of subject `index`, in the order they were taken.
    pub(crate) fn of(&self, index: usize) -> &[f64] {
        &self.0[index]
    }

    pub(crate) fn medians(&self) -> [Option<f64>; 2] {
        [median(self.0[0].clone()), median(self.0[1].clone())]
    }
}

/// The order subjects run in for round `round`: A, B, then B, A, ...
pub(crate) fn order(count: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if !round.is_multiple_of(2) {
        order.reverse();
    }
    order
}
