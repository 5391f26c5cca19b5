//! `load`: keep-alive connections in a closed loop on GET manifest by tag, GET manifest by
//! digest, HEAD blob and GET /v2/ (requests/s, p50, p99).

use std::time::Instant;

use hyper::Method;
use hyper::header::{self, HeaderValue};
use registry_bench::Error;
use registry_bench::image::ACCEPT;
use registry_bench::load::{self, LoadOptions, LoadReport, Target, format_micros};
use registry_bench::procfs::cpu_time;

use crate::options::Options;
use crate::report::{Goal, Report, Unit};
use crate::subject::{Runtime, SMALL_REPO, SMALL_TAG, Subject, order};

/// Runs the workload against every subject.
pub(crate) fn run(
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
