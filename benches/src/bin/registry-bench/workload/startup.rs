//! `startup`: time from process start to the first 200 on /v2/.

use registry_bench::Error;
use registry_bench::load::format_micros;
use registry_bench::server::RegistryProcess;

use crate::options::Options;
use crate::report::{Goal, Report, Unit, micros};
use crate::subject::{Samples, Subject, order};

/// Runs the workload against every subject.
pub(crate) fn run(
    options: &Options,
    subjects: &[Subject],
    report: &mut Report,
) -> Result<(), Error> {
    println!(
        "\n## start to first 200 on /v2/ (empty storage root, {} starts each, polled every ms)",
        options.starts
    );
    let mut times = Samples::default();
    for start in 0..options.starts {
        for &i in &order(subjects.len(), start) {
            let s = &subjects[i];
            let server =
                RegistryProcess::start_configured(&s.binary, &options.settings(&s.binary), |_| {
                    Ok(Vec::new())
                })?;
            let (took, status) = server.startup();
            if status != 200 {
                return Err(format!("{}: first answer on /v2/ was {status}", s.label).into());
            }
            times.push(i, micros(took));
        }
    }
    for (i, s) in subjects.iter().enumerate() {
        let list: Vec<String> = times
            .of(i)
            .iter()
            .map(|t| format_micros(*t as u64))
            .collect();
        println!("  {:<10} {}", s.label, list.join(", "));
    }
    report.add(
        &format!("start to first 200 on /v2/ (median of {})", options.starts),
        Unit::Micros,
        times.medians(),
        Some(Goal::AtMost(50_000.0)),
    );
    Ok(())
}
