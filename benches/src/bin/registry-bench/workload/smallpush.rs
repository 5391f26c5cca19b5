//! `smallpush`: small images pushed one after another.

use std::time::Instant;

use registry_bench::Error;
use registry_bench::image;
use registry_bench::load::format_micros;

use crate::options::Options;
use crate::report::{Report, Unit, micros};
use crate::subject::{Runtime, Samples, Subject, order};

/// Images pushed one after another by the smallpush workload, per server and round.
const SMALL_PUSHES: usize = 300;

/// Small pushes one after another: where the fixed cost of a push (storage operations, leases,
/// the checks beside garbage collection) shows, since the bytes are few.
pub(crate) fn run(
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
