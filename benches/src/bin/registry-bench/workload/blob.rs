//! `blob`: a large pseudo-random blob uploaded as 16 MiB chunked PATCHes and as one streamed
//! PUT, downloaded whole (the first download also shown alone: after a direct-I/O upload it is
//! the one that reads the disk), and read as 1 MiB ranges; the servers' peak RSS after that.

use std::time::Instant;

use registry_bench::blob::MemoryBlob;
use registry_bench::procfs::Memory;
use registry_bench::{Error, human_bytes};

use crate::options::Options;
use crate::report::{Goal, Report, Unit, micros};
use crate::subject::{Runtime, Samples, Subject, both, order};

const BLOB_REPO: &str = "bench/blob";
/// The PATCH size of the chunked upload.
const CHUNK: u64 = 16 << 20;
/// The size of one range read, and half the smallest blob `--blob` takes.
pub(crate) const RANGE: u64 = 1 << 20;

/// Runs the workload against every subject.
pub(crate) fn run(
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
