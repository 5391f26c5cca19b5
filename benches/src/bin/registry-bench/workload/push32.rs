//! `push32`: concurrent pushes of distinct blobs (total MB/s).

use std::time::Instant;

use registry_bench::blob::MemoryBlob;
use registry_bench::{Error, human_bytes};

use crate::options::Options;
use crate::report::{Goal, Report, Unit};
use crate::subject::{Runtime, Samples, Subject, order};

const PUSH32_REPO: &str = "bench/push32";
/// Pushes at once.
const PUSHES: usize = 32;
/// The size of each pushed blob.
const PUSH_SIZE: u64 = 8 << 20;

/// Runs the workload against every subject.
pub(crate) fn run(
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
