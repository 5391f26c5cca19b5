//! S3 cost benchmark (issue 13): registryd and registry:2 side by side, each over its own bucket
//! of one moto (a local S3 on 127.0.0.1, answering one request at a time, installed by
//! `.ci/moto-setup`), counting the S3 requests each answer costs from moto's access log.
//!
//! `cargo build --release -p registryd -p registry-bench && target/release/s3_cost`, for each
//! server in turn:
//!
//! 1. pushes `--repositories` small images (a 1 KiB layer, a config, a manifest tagged `latest`)
//!    from 8 concurrent clients;
//! 2. `GET`s the manifests of `--sample` repositories by digest, then again, and `HEAD`s their
//!    layers, then again: S3 requests per answer, the first time and the second (cached);
//! 3. reads the whole catalog (pages of 1,000, as registry:2 caps them) three times: the time and
//!    the S3 requests of each read;
//! 4. uploads `--uploads` distinct blobs of `--upload-size` from 4 concurrent `POST` + `PUT`s,
//!    then as many again as `POST` + one `PATCH` + empty `PUT` (Docker's way): MB/s of each.
//!
//! Prints a Markdown report and exits 1 when registryd misses a target (unless `--no-fail`):
//! a manifest by digest in at most 1 S3 request (0 when cached), a blob `HEAD` in at most 1, the
//! catalog at least 10x faster than registry:2's, uploads at least 1.5x registry:2's rate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use registry_bench::blob::MemoryBlob;
use registry_bench::client::RegistryClient;
use registry_bench::image::{MANIFEST_TYPE, push_small_image};
use registry_bench::server::{RegistryProcess, Settings};
use registry_bench::{Error, human_bytes, machine, parse_size};
use registry_storage_s3::moto::MotoServer;
use tokio::task::JoinSet;

/// Clients pushing the repositories at once.
const PUSHERS: usize = 8;
/// Clients uploading at once in the throughput run.
const UPLOADERS: usize = 4;
/// The catalog page size registry:2 caps `n` at.
const CATALOG_PAGE: usize = 1000;

/// The cost on S3 of serving images: S3 requests per answer, catalog time, upload rate, for
/// registryd and registry:2 over the same moto.
///
/// A quick run: s3_cost --repositories 100 --sample 20 --uploads 4
#[derive(Debug, Parser)]
#[command(name = "s3_cost")]
struct Args {
    /// The registryd binary [env: REGISTRYD_BIN; default: registryd next to this executable].
    #[arg(long, value_name = "PATH")]
    registryd: Option<PathBuf>,
    /// registry:2 (CNCF Distribution 2.x, Debian's docker-registry).
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/docker-registry")]
    registry2: PathBuf,
    /// Repositories pushed, each with one image.
    #[arg(long, value_name = "N", default_value_t = 1001)]
    repositories: usize,
    /// Repositories whose manifest and layer are fetched to count requests.
    #[arg(long, value_name = "N", default_value_t = 100)]
    sample: usize,
    /// Blobs uploaded for the throughput figure.
    #[arg(long, value_name = "N", default_value_t = 16)]
    uploads: usize,
    /// Size of each uploaded blob.
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = size)]
    upload_size: u64,
    /// Report figures past their targets, but exit 0 for them.
    #[arg(long)]
    no_fail: bool,
}

fn size(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// What one server cost.
#[derive(Debug, Default)]
struct Figures {
    push: Duration,
    /// S3 requests per image pushed (two blob uploads and a manifest).
    push_requests: f64,
    manifest_cold: f64,
    manifest_warm: f64,
    head_cold: f64,
    head_warm: f64,
    /// (time, S3 requests) of each catalog read.
    catalog: Vec<(Duration, usize)>,
    /// `POST` + `PUT` with the blob.
    upload_mb_s: f64,
    /// `POST` + `PATCH` + empty `PUT`.
    chunked_upload_mb_s: f64,
}

impl Figures {
    fn best_catalog(&self) -> Duration {
        self.catalog
            .iter()
            .map(|(took, _)| *took)
            .min()
            .unwrap_or_default()
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("s3_cost: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, Error> {
    let args = Args::parse();
    let registryd = match &args.registryd {
        Some(path) => path.clone(),
        None => registry_bench::server::default_registryd()?,
    };
    let moto = MotoServer::start().ok_or("no local S3: .ci/moto-setup could not install moto")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!(
        "# S3 cost: registryd and registry:2 over moto\n\n{}",
        machine()
    );
    let mut figures = Vec::new();
    for (name, binary) in [("registryd", &registryd), ("registry:2", &args.registry2)] {
        let bucket = name.replace(':', "");
        moto.create_bucket(&bucket);
        let settings = Settings {
            accesslog_disabled: true,
            blobdescriptor_inmemory: true,
            driver_yaml: Some(format!("  s3:\n{}", moto.config_yaml(&bucket, 4))),
            ..Settings::default()
        };
        // registry:2's S3 driver panics when AWS_CA_BUNDLE is set; moto is plain HTTP.
        let server = RegistryProcess::start_configured(binary, &settings, |_| {
            Ok(vec![("AWS_CA_BUNDLE".to_owned(), String::new())])
        })?;
        println!("\n## {name} ({})", binary.display());
        let measured = runtime.block_on(measure(&args, &moto, &server))?;
        figures.push((name, measured));
    }
    Ok(report(&args, &figures))
}

async fn measure(
    args: &Args,
    moto: &MotoServer,
    server: &RegistryProcess,
) -> Result<Figures, Error> {
    let client = RegistryClient::new(&server.base_url());
    let mut figures = Figures::default();

    let before = settled_requests(moto).await;
    let started = Instant::now();
    let mut images = Vec::with_capacity(args.repositories);
    let mut pushers = JoinSet::new();
    for pusher in 0..PUSHERS {
        let (client, count) = (client.clone(), args.repositories);
        pushers.spawn(async move {
            let mut pushed = Vec::new();
            for number in (pusher..count).step_by(PUSHERS) {
                let name = format!("cost/repo{number:05}");
                let image = push_small_image(&client, &name, "latest", 1024, number as u64).await?;
                pushed.push((name, image));
            }
            Ok::<_, Error>(pushed)
        });
    }
    while let Some(pushed) = pushers.join_next().await {
        images.extend(pushed??);
    }
    images.sort_by(|a, b| a.0.cmp(&b.0));
    figures.push = started.elapsed();
    figures.push_requests =
        (settled_requests(moto).await - before) as f64 / images.len().max(1) as f64;
    println!(
        "pushed {} repositories in {:.1} s, {:.1} S3 requests an image",
        images.len(),
        figures.push.as_secs_f64(),
        figures.push_requests
    );

    let sample = &images[..args.sample.min(images.len())];
    let per_answer = |before: usize, after: usize| (after - before) as f64 / sample.len() as f64;
    for round in 0..2 {
        let before = settled_requests(moto).await;
        for (name, image) in sample {
            let (status, _) = client
                .get_manifest(name, &image.manifest, MANIFEST_TYPE)
                .await?;
            if status != 200 {
                return Err(format!("GET manifest of {name}: {status}").into());
            }
        }
        let cost = per_answer(before, settled_requests(moto).await);
        if round == 0 {
            figures.manifest_cold = cost;
        } else {
            figures.manifest_warm = cost;
        }
    }
    for round in 0..2 {
        let before = settled_requests(moto).await;
        for (name, image) in sample {
            let status = client
                .head(&format!("/v2/{name}/blobs/{}", image.layer))
                .await?;
            // registry:2 redirects a HEAD to the bucket as it does a GET.
            if status != 200 && status != 307 {
                return Err(format!("HEAD blob of {name}: {status}").into());
            }
        }
        let cost = per_answer(before, settled_requests(moto).await);
        if round == 0 {
            figures.head_cold = cost;
        } else {
            figures.head_warm = cost;
        }
    }
    println!(
        "GET manifest by digest: {:.2} then {:.2} S3 requests; HEAD blob: {:.2} then {:.2}",
        figures.manifest_cold, figures.manifest_warm, figures.head_cold, figures.head_warm
    );

    for _ in 0..3 {
        let before = settled_requests(moto).await;
        let started = Instant::now();
        let listed = read_catalog(&client).await?;
        let took = started.elapsed();
        if listed != images.len() {
            return Err(format!(
                "the catalog lists {listed} of {} repositories",
                images.len()
            )
            .into());
        }
        let requests = settled_requests(moto).await - before;
        println!(
            "catalog of {listed}: {:.3} s, {requests} S3 requests",
            took.as_secs_f64()
        );
        figures.catalog.push((took, requests));
    }

    figures.upload_mb_s = upload_rate(&client, args, Upload::Monolithic).await?;
    figures.chunked_upload_mb_s = upload_rate(&client, args, Upload::Chunked).await?;
    Ok(figures)
}

/// How the throughput run sends each blob.
#[derive(Clone, Copy, Debug)]
enum Upload {
    /// `POST`, then `PUT ?digest=` with the whole blob.
    Monolithic,
    /// `POST`, one `PATCH` with the whole blob, then an empty `PUT ?digest=`: what Docker does.
    Chunked,
}

/// MB/s of `--uploads` distinct blobs of `--upload-size` sent the `upload` way from
/// [`UPLOADERS`] clients at once.
async fn upload_rate(client: &RegistryClient, args: &Args, upload: Upload) -> Result<f64, Error> {
    // Distinct contents for each way, so neither finds the other's blobs stored.
    let seed = match upload {
        Upload::Monolithic => 1_000_000,
        Upload::Chunked => 2_000_000,
    };
    let blobs: Vec<MemoryBlob> = (0..args.uploads)
        .map(|number| MemoryBlob::generate(seed + number as u64, args.upload_size))
        .collect();
    let blobs = std::sync::Arc::new(blobs);
    let started = Instant::now();
    let mut uploaders = JoinSet::new();
    for uploader in 0..UPLOADERS {
        let (client, blobs) = (client.clone(), blobs.clone());
        uploaders.spawn(async move {
            for blob in blobs.iter().skip(uploader).step_by(UPLOADERS) {
                match upload {
                    Upload::Monolithic => {
                        client
                            .upload_memory_monolithic("cost/uploads", blob)
                            .await?
                    }
                    Upload::Chunked => {
                        client
                            .upload_memory_chunked("cost/uploads", blob, blob.size())
                            .await?
                    }
                };
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(done) = uploaders.join_next().await {
        done??;
    }
    let bytes = args.uploads as u64 * args.upload_size;
    let rate = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    println!(
        "uploaded {} blobs of {} ({upload:?}) in {:.1} s: {rate:.1} MB/s",
        args.uploads,
        human_bytes(args.upload_size),
        started.elapsed().as_secs_f64(),
    );
    Ok(rate)
}

/// Every page of `/v2/_catalog`, following `Link`: how many repositories it lists.
async fn read_catalog(client: &RegistryClient) -> Result<usize, Error> {
    let mut next = Some(format!("/v2/_catalog?n={CATALOG_PAGE}"));
    let mut listed = 0;
    while let Some(target) = next.take() {
        let (status, link, body, _) = client.get(&target).await?;
        if status != 200 {
            return Err(format!("GET {target}: {status}").into());
        }
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        listed += page["repositories"].as_array().map_or(0, Vec::len);
        next = link.and_then(|link| {
            let start = link.find('<')? + 1;
            let end = link.find('>')?;
            Some(link[start..end].to_owned())
        });
    }
    Ok(listed)
}

/// moto's request count once its access log has caught up: moto logs a request just after
/// answering it, so the count is read until two reads 50 ms apart agree.
async fn settled_requests(moto: &MotoServer) -> usize {
    let mut last = moto.requests();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = moto.requests();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Prints the comparison; whether registryd met every target.
fn report(args: &Args, figures: &[(&str, Figures)]) -> bool {
    let [(_, ours), (_, theirs)] = figures else {
        return false;
    };
    println!(
        "\n## Summary: {} repositories, {} sampled, uploads of {} x {}\n",
        args.repositories,
        args.sample,
        args.uploads,
        human_bytes(args.upload_size)
    );
    println!("| | registryd | registry:2 | target |");
    println!("|---|---:|---:|---|");
    println!(
        "| push of the repositories | {:.1} s | {:.1} s | |",
        ours.push.as_secs_f64(),
        theirs.push.as_secs_f64()
    );
    println!(
        "| S3 requests per image pushed (2 blobs, 1 manifest) | {:.1} | {:.1} | |",
        ours.push_requests, theirs.push_requests
    );
    println!(
        "| S3 requests per GET manifest by digest, first / again | {:.2} / {:.2} | {:.2} / {:.2} | ≤ 1 / 0 |",
        ours.manifest_cold, ours.manifest_warm, theirs.manifest_cold, theirs.manifest_warm
    );
    println!(
        "| S3 requests per HEAD blob, first / again | {:.2} / {:.2} | {:.2} / {:.2} | ≤ 1 |",
        ours.head_cold, ours.head_warm, theirs.head_cold, theirs.head_warm
    );
    for (number, ((our_time, our_requests), (their_time, their_requests))) in
        ours.catalog.iter().zip(&theirs.catalog).enumerate()
    {
        println!(
            "| catalog, read {} | {:.3} s, {our_requests} requests | {:.3} s, {their_requests} requests | |",
            number + 1,
            our_time.as_secs_f64(),
            their_time.as_secs_f64()
        );
    }
    let catalog_speedup =
        theirs.best_catalog().as_secs_f64() / ours.best_catalog().as_secs_f64().max(1e-9);
    println!("| catalog speed-up (best reads) | {catalog_speedup:.1}x | | ≥ 10x |");
    let upload_ratio = ours.upload_mb_s / theirs.upload_mb_s.max(1e-9);
    println!(
        "| upload rate, POST + PUT | {:.1} MB/s ({upload_ratio:.2}x) | {:.1} MB/s | ≥ 1.5x |",
        ours.upload_mb_s, theirs.upload_mb_s
    );
    println!(
        "| upload rate, PATCH + PUT (Docker's way) | {:.1} MB/s ({:.2}x) | {:.1} MB/s | |",
        ours.chunked_upload_mb_s,
        ours.chunked_upload_mb_s / theirs.chunked_upload_mb_s.max(1e-9),
        theirs.chunked_upload_mb_s
    );
    let met = [
        (
            "GET manifest by digest ≤ 1 request",
            ours.manifest_cold <= 1.0,
        ),
        (
            "cached GET manifest by digest 0 requests",
            ours.manifest_warm == 0.0,
        ),
        (
            "HEAD blob ≤ 1 request",
            ours.head_cold <= 1.0 && ours.head_warm <= 1.0,
        ),
        ("catalog ≥ 10x faster", catalog_speedup >= 10.0),
        ("uploads ≥ 1.5x", upload_ratio >= 1.5),
    ];
    let missed: Vec<&str> = met
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| *what)
        .collect();
    if missed.is_empty() {
        println!("\nevery target met");
        true
    } else {
        println!("\nmissed: {}", missed.join("; "));
        args.no_fail
    }
}
