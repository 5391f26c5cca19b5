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

mod options;
mod report;
mod subject;
mod workload;

use std::process::{Command, ExitCode};

use registry_bench::{Error, image, machine};

use crate::options::Options;
use crate::report::{Goal, Report, Unit};
use crate::subject::{Runtime, SMALL_REPO, SMALL_TAG, Subject, both, start_subject};

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
        ("blob", workload::blob::run),
        ("push32", workload::push32::run),
        ("smallpush", workload::smallpush::run),
        ("load", workload::load::run),
        ("list", workload::list::run),
        ("docker", |_, o, s, r| workload::docker::run(o, s, r)),
        ("startup", |_, o, s, r| workload::startup::run(o, s, r)),
        ("bounds", |_, o, _, r| workload::bounds::run(o, r)),
        ("mirror", |rt, o, _, r| workload::mirror::run(rt, o, r)),
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
    match Options::from_command_line().and_then(|options| run(&options)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry-bench failed: {e}");
            ExitCode::from(2)
        }
    }
}
