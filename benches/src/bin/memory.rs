//! Memory benchmark: a registry server must stream blobs, so its peak resident memory must not
//! grow with blob size. Starts the server (default: `registryd` next to this executable, so
//! `cargo build --release -p registryd -p registry-bench && target/release/memory`), pushes a
//! 1 GiB pseudo-random blob with chunked `PATCH`es and again as one streamed `PUT`, reads it
//! back, prints MB/s for each step and the server's peak (`VmHWM`) and idle (`VmRSS`) resident
//! memory, and exits 1 when the peak reaches the limit (64 MiB by default).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use registry_bench::blob::BlobSource;
use registry_bench::client::{RegistryClient, Transfer};
use registry_bench::procfs::Memory;
use registry_bench::server::RegistryProcess;
use registry_bench::{Error, human_bytes, parse_size};

struct Options {
    server: PathBuf,
    size: u64,
    chunk: u64,
    limit: u64,
    seed: u64,
}

/// Peak memory of a registry server while it stores and serves a large blob.
#[derive(Debug, Parser)]
#[command(name = "memory")]
struct Args {
    /// Registry binary run as `PATH serve CONFIG` [env: REGISTRYD_BIN; default: registryd next
    /// to this executable]. registry:2 works too: --server /usr/bin/docker-registry
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Blob size.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = size)]
    size: u64,
    /// PATCH chunk size for the chunked upload.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = size)]
    chunk: u64,
    /// Fail when the server's peak RSS reaches this.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = size)]
    limit: u64,
    /// Pseudo-random stream seed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
}

/// A size as [`parse_size`] reads it.
fn size(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

fn parse_args() -> Result<Options, Error> {
    let args = Args::parse();
    let options = Options {
        server: match args.server {
            Some(path) => path,
            None => registry_bench::server::default_registryd()?,
        },
        size: args.size,
        chunk: args.chunk,
        limit: args.limit,
        seed: args.seed,
    };
    if options.size == 0 || options.chunk == 0 {
        return Err("--size and --chunk must be positive".into());
    }
    Ok(options)
}

fn report(step: &str, transfer: &Transfer, memory: Result<Memory, Error>) {
    let rss = memory.map_or_else(|e| format!("? ({e})"), |m| human_bytes(m.rss));
    println!(
        "{step:<28} {:>10} in {:>7.2} s  {:>8.1} MB/s   server RSS now {rss}",
        human_bytes(transfer.bytes),
        transfer.elapsed.as_secs_f64(),
        transfer.mb_per_s(),
    );
}

async fn measure(options: &Options, server: &RegistryProcess) -> Result<(), Error> {
    let client = RegistryClient::new(&server.base_url());
    let pid = server.pid();

    let blob = BlobSource::shared(options.seed, options.size);
    let (digest, chunked) = client
        .upload_chunked("bench/chunked", &blob, options.chunk)
        .await?;
    report(
        &format!(
            "POST + PATCH x{} chunks",
            options.size.div_ceil(options.chunk)
        ),
        &chunked,
        Memory::of_pid(pid),
    );

    let blob = BlobSource::shared(options.seed, options.size);
    let monolithic = client
        .upload_monolithic("bench/monolithic", &blob, &digest)
        .await?;
    report("POST + streamed PUT", &monolithic, Memory::of_pid(pid));

    let download = client
        .download_verified("bench/monolithic", &digest, options.size)
        .await?;
    report("GET (digest verified)", &download, Memory::of_pid(pid));
    println!("blob {digest}");
    Ok(())
}

fn run(options: &Options) -> Result<bool, Error> {
    println!(
        "server {} | blob {} | PATCH chunk {} | peak RSS limit {}",
        options.server.display(),
        human_bytes(options.size),
        human_bytes(options.chunk),
        human_bytes(options.limit)
    );
    let mut server = RegistryProcess::start(&options.server)?;
    let started = Memory::of_pid(server.pid())?;
    println!(
        "server pid {} on {}: RSS after start {}",
        server.pid(),
        server.base_url(),
        human_bytes(started.rss)
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(measure(options, &server));
    if let Err(e) = outcome {
        let log = server.log();
        let tail: String = log
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|l| format!("{l}\n"))
            .collect();
        return Err(format!("{e}\n--- last lines of the server log\n{tail}").into());
    }
    if !server.is_running() {
        return Err(format!("the server exited\n{}", server.log()).into());
    }

    // Give the server a moment to drop per-request buffers before the idle reading.
    std::thread::sleep(Duration::from_secs(1));
    let memory = Memory::of_pid(server.pid())?;
    println!("server peak RSS (VmHWM)  {}", human_bytes(memory.peak_rss));
    println!("server idle RSS (VmRSS)  {}", human_bytes(memory.rss));
    let within = memory.peak_rss < options.limit;
    if within {
        println!("ok: peak RSS is below {}", human_bytes(options.limit));
    } else {
        println!(
            "FAIL: peak RSS {} reached the limit {}",
            human_bytes(memory.peak_rss),
            human_bytes(options.limit)
        );
    }
    Ok(within)
}

fn main() -> ExitCode {
    let outcome = parse_args().and_then(|options| run(&options));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("memory benchmark failed: {e}");
            ExitCode::from(2)
        }
    }
}
