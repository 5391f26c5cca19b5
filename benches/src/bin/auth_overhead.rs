//! Authentication overhead: Docker sends its credentials with every request and a bcrypt check
//! costs milliseconds, so registryd caches verified credentials; this measures what the auth path
//! still costs. It starts the server (default: `registryd` next to this executable, so
//! `cargo build --release -p registryd -p registry-bench && target/release/auth_overhead`) twice
//! on 127.0.0.1 with filesystem storage in a temporary directory: without authentication, then
//! with `REGISTRY_AUTH=htpasswd` and a file made by `registryd htpasswd -C 10` (the default
//! cost). Each time it pushes one small image (config, one layer, manifest by tag), then runs a
//! closed loop of `HEAD /v2/<name>/manifests/<tag>` on 64 keep-alive connections for 10 s after
//! a 2 s warm-up (with `Authorization: Basic ...` in the second run), checks that every response
//! is 200, and prints requests/s, p50 and p99 latency, errors, and the ratio of the two runs.
//! Exits 1 when any request failed. Token auth is not measured.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use registry_bench::blob::XorShift;
use registry_bench::client::{RegistryClient, basic_authorization, sha256_digest};
use registry_bench::load::{self, LoadOptions, LoadReport, Target, format_micros};
use registry_bench::procfs::cpu_time;
use registry_bench::server::RegistryProcess;
use registry_bench::{Error, human_bytes};

/// The repository and tag of the image the benchmark pushes and asks for.
const NAME: &str = "bench/auth-overhead";
const TAG: &str = "latest";
/// The htpasswd user; the password only exists for this benchmark's temporary server.
const USER: &str = "bench";
const PASSWORD: &str = "registry-bench-password";
const REALM: &str = "registry-bench";

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// What Docker sends when it resolves a tag (abridged).
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.oci.image.index.v1+json";
const LAYER_SIZE: usize = 4096;

struct Options {
    server: PathBuf,
    connections: usize,
    seconds: Duration,
    warmup: Duration,
    cost: u32,
}

/// Authentication overhead: requests/s of `HEAD` manifest without auth, then with htpasswd
/// (Basic) credentials on every request.
#[derive(Debug, Parser)]
#[command(name = "auth_overhead")]
struct Args {
    /// registryd binary, run as `PATH serve CONFIG` and `PATH htpasswd` [env: REGISTRYD_BIN;
    /// default: registryd next to this executable].
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Concurrent keep-alive connections, one request in flight each.
    #[arg(long, value_name = "N", default_value_t = 64)]
    connections: usize,
    /// Measured period of each run, in seconds.
    #[arg(long, value_name = "S", default_value = "10", value_parser = parse_seconds)]
    seconds: Duration,
    /// Unmeasured load before each measured period, in seconds.
    #[arg(long, value_name = "S", default_value = "2", value_parser = parse_seconds)]
    warmup: Duration,
    /// bcrypt cost of the htpasswd entry (10 is registryd's default).
    #[arg(long, value_name = "N", default_value_t = 10)]
    cost: u32,
}

fn parse_args() -> Result<Options, Error> {
    let args = Args::parse();
    let options = Options {
        server: match args.server {
            Some(path) => path,
            None => registry_bench::server::default_registryd()?,
        },
        connections: args.connections,
        seconds: args.seconds,
        warmup: args.warmup,
        cost: args.cost,
    };
    if options.connections == 0 || options.seconds.is_zero() {
        return Err("--connections and --seconds must be positive".into());
    }
    Ok(options)
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("not a number of seconds: {text:?}"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("not a usable number of seconds: {text:?}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    None,
    Htpasswd,
}

impl Auth {
    fn label(self) -> &'static str {
        match self {
            Auth::None => "no auth",
            Auth::Htpasswd => "htpasswd (Basic)",
        }
    }
}

/// One run's figures.
struct Run {
    auth: Auth,
    load: LoadReport,
    /// Wall time of the load (warm-up and measured period).
    wall: Duration,
    server_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
}

/// `registryd htpasswd -C COST USER PASSWORD`, written to `dir/htpasswd`; the environment that
/// makes the server use it.
fn make_htpasswd(server: &Path, cost: u32, dir: &Path) -> Result<Vec<(String, String)>, Error> {
    let started = Instant::now();
    let output = Command::new(server)
        .args(["htpasswd", "-C", &cost.to_string(), USER, PASSWORD])
        .output()
        .map_err(|e| format!("cannot run {} htpasswd: {e}", server.display()))?;
    let took = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{} htpasswd failed with {}: {}",
            server.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let line = String::from_utf8(output.stdout)?;
    let line = line.trim();
    if !line.starts_with(&format!("{USER}:$2")) {
        return Err(format!("{} htpasswd printed {line:?}", server.display()).into());
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("{line}\n"))?;
    println!(
        "  `registryd htpasswd -C {cost}` took {} (process start + one bcrypt hash)",
        format_micros(micros(took))
    );
    Ok(vec![
        ("REGISTRY_AUTH".into(), "htpasswd".into()),
        ("REGISTRY_AUTH_HTPASSWD_REALM".into(), REALM.into()),
        (
            "REGISTRY_AUTH_HTPASSWD_PATH".into(),
            path.to_string_lossy().into_owned(),
        ),
    ])
}

fn micros(duration: Duration) -> u64 {
    duration.as_micros().try_into().unwrap_or(u64::MAX)
}

/// Pushes a config blob, one 4 KiB layer and a manifest tagged [`TAG`]; returns the manifest's
/// digest.
async fn push_image(client: &RegistryClient) -> Result<String, Error> {
    let mut layer = vec![0u8; LAYER_SIZE];
    XorShift::new(7).fill(&mut layer);
    let layer = Bytes::from(layer);
    let layer_size = layer.len();
    let layer_digest = client.upload_bytes(NAME, layer).await?;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))?;
    let config_size = config.len();
    let config_digest = client.upload_bytes(NAME, Bytes::from(config)).await?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size },
        "layers": [ { "mediaType": LAYER_TYPE, "digest": layer_digest, "size": layer_size } ],
    }))?;
    let expected = sha256_digest(&manifest);
    let digest = client
        .put_manifest(NAME, TAG, MANIFEST_TYPE, Bytes::from(manifest))
        .await?;
    if digest != expected {
        return Err(format!("manifest digest {digest}, expected {expected}").into());
    }
    Ok(digest)
}

async fn measure(
    options: &Options,
    server: &RegistryProcess,
    auth: Auth,
) -> Result<(LoadReport, Duration, Option<Duration>, Option<Duration>), Error> {
    let anonymous = RegistryClient::new(&server.base_url());
    let (client, want_anonymous) = match auth {
        Auth::None => (anonymous.clone(), StatusCode::OK),
        Auth::Htpasswd => (
            anonymous.clone().with_basic_auth(USER, PASSWORD),
            StatusCode::UNAUTHORIZED,
        ),
    };
    let status = anonymous.ping().await?;
    if status != want_anonymous {
        return Err(format!(
            "GET /v2/ without credentials answered {status}, expected {want_anonymous}: \
             is REGISTRY_AUTH set in this environment?"
        )
        .into());
    }
    if auth == Auth::Htpasswd {
        for attempt in ["first (bcrypt check)", "second (cached)"] {
            let started = Instant::now();
            let status = client.ping().await?;
            let took = started.elapsed();
            if status != StatusCode::OK {
                return Err(format!("GET /v2/ with credentials answered {status}").into());
            }
            println!(
                "  GET /v2/ with credentials, {attempt}: {}",
                format_micros(micros(took))
            );
        }
    }

    let digest = push_image(&client).await?;
    let head = client.head_manifest(NAME, TAG, ACCEPT).await?;
    if head != digest {
        return Err(format!("HEAD answered digest {head}, pushed {digest}").into());
    }
    println!("  pushed {NAME}:{TAG} ({digest})");

    let mut target = Target::new(
        server.addr(),
        Method::HEAD,
        format!("/v2/{NAME}/manifests/{TAG}"),
    )
    .header(header::ACCEPT, HeaderValue::from_static(ACCEPT))
    .header(
        header::USER_AGENT,
        HeaderValue::from_static("registry-bench"),
    );
    if auth == Auth::Htpasswd {
        target = target.header(header::AUTHORIZATION, basic_authorization(USER, PASSWORD));
    }
    let load_options = LoadOptions {
        connections: options.connections,
        warmup: options.warmup,
        duration: options.seconds,
    };
    let server_before = cpu_time(server.pid()).ok();
    let client_before = cpu_time(std::process::id()).ok();
    let started = Instant::now();
    let report = load::run(&target, &load_options).await?;
    let wall = started.elapsed();
    let delta = |before: Option<Duration>, after: Result<Duration, Error>| {
        Some(after.ok()?.saturating_sub(before?))
    };
    let server_cpu = delta(server_before, cpu_time(server.pid()));
    let client_cpu = delta(client_before, cpu_time(std::process::id()));
    Ok((report, wall, server_cpu, client_cpu))
}

fn run_one(options: &Options, runtime: &tokio::runtime::Runtime, auth: Auth) -> Result<Run, Error> {
    println!("{}:", auth.label());
    let mut server = match auth {
        Auth::None => RegistryProcess::start(&options.server)?,
        Auth::Htpasswd => RegistryProcess::start_with(&options.server, |dir| {
            make_htpasswd(&options.server, options.cost, dir)
        })?,
    };
    println!(
        "  server pid {} on {}, RSS after start {}",
        server.pid(),
        server.base_url(),
        registry_bench::procfs::Memory::of_pid(server.pid())
            .map_or_else(|e| format!("? ({e})"), |m| human_bytes(m.rss)),
    );
    let outcome = runtime.block_on(measure(options, &server, auth));
    let (load, wall, server_cpu, client_cpu) = match outcome {
        Ok(outcome) => outcome,
        Err(e) => return Err(format!("{e}\n{}", server.log_tail(30)).into()),
    };
    if !server.is_running() {
        return Err(format!("the server exited\n{}", server.log_tail(30)).into());
    }
    let run = Run {
        auth,
        load,
        wall,
        server_cpu,
        client_cpu,
    };
    print_run(&run);
    Ok(run)
}

fn print_run(run: &Run) {
    let load = &run.load;
    let latency = &load.latency;
    println!(
        "  {:.0} requests/s ({} in {:.1} s on {} connections, {} more in the warm-up)",
        load.requests_per_s(),
        load.requests,
        load.duration.as_secs_f64(),
        load.connections,
        load.warmup_requests,
    );
    println!(
        "  latency: p50 {}  p99 {}  mean {}  max {}",
        format_micros(latency.percentile(50.0)),
        format_micros(latency.percentile(99.0)),
        format_micros(latency.mean().round() as u64),
        format_micros(latency.max()),
    );
    let share = |cpu: Option<Duration>| {
        cpu.map_or_else(
            || "?".to_string(),
            |cpu| {
                format!(
                    "{:.1} s ({:.0} % of a core)",
                    cpu.as_secs_f64(),
                    100.0 * cpu.as_secs_f64() / run.wall.as_secs_f64().max(1e-9)
                )
            },
        )
    };
    println!(
        "  CPU over the {:.1} s of load: server {}, load generator {}",
        run.wall.as_secs_f64(),
        share(run.server_cpu),
        share(run.client_cpu),
    );
    println!(
        "  errors: {} (measured {}, warm-up {}){}",
        load.total_errors(),
        load.errors,
        load.warmup_errors,
        load.first_error
            .as_ref()
            .map(|e| format!("; first: {e}"))
            .unwrap_or_default(),
    );
}

fn print_summary(runs: &[Run]) {
    println!();
    println!(
        "{:<18} {:>12} {:>10} {:>10} {:>8}",
        "HEAD manifest", "requests/s", "p50", "p99", "errors"
    );
    for run in runs {
        println!(
            "{:<18} {:>12.0} {:>10} {:>10} {:>8}",
            run.auth.label(),
            run.load.requests_per_s(),
            format_micros(run.load.latency.percentile(50.0)),
            format_micros(run.load.latency.percentile(99.0)),
            run.load.total_errors(),
        );
    }
    let find = |auth| runs.iter().find(|r| r.auth == auth);
    if let (Some(plain), Some(authed)) = (find(Auth::None), find(Auth::Htpasswd)) {
        let ratio = authed.load.requests_per_s() / plain.load.requests_per_s().max(1e-9);
        let p = |run: &Run, q| run.load.latency.percentile(q) as f64;
        println!(
            "with/without auth: {ratio:.3}x requests/s ({:+.1} % throughput), \
             p50 x{:.2}, p99 x{:.2}",
            (ratio - 1.0) * 100.0,
            p(authed, 50.0) / p(plain, 50.0).max(1.0),
            p(authed, 99.0) / p(plain, 99.0).max(1.0),
        );
    }
}

fn run(options: &Options) -> Result<bool, Error> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "server {} | HEAD /v2/{NAME}/manifests/{TAG} | {} connections | {:.1} s warm-up + \
         {:.1} s measured per run",
        options.server.display(),
        options.connections,
        options.warmup.as_secs_f64(),
        options.seconds.as_secs_f64(),
    );
    println!(
        "note: the load generator (one thread) and the server share this machine's {cpus} \
         CPU(s) over 127.0.0.1; the figures are for both on one host, not for the server alone"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut runs = Vec::new();
    for auth in [Auth::None, Auth::Htpasswd] {
        runs.push(run_one(options, &runtime, auth)?);
    }
    print_summary(&runs);
    let errors: u64 = runs.iter().map(|r| r.load.total_errors()).sum();
    if errors > 0 {
        println!("FAIL: {errors} request(s) did not answer 200");
    }
    Ok(errors == 0)
}

fn main() -> ExitCode {
    let outcome = parse_args().and_then(|options| run(&options));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("auth_overhead benchmark failed: {e}");
            ExitCode::from(2)
        }
    }
}
