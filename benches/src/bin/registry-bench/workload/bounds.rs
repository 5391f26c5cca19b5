//! `bounds`: what the machine allows with no registry in the way (sha256 on one core, writing a
//! new file, reading it from the page cache, loopback TCP), over as many bytes as the large
//! blob, in the temporary directory the servers store to.

use registry_bench::bounds;
use registry_bench::{Error, human_bytes};

use crate::options::Options;
use crate::report::Report;

/// The machine's own bounds (`bounds` workload), measured with no registry in the way.
pub(crate) fn run(options: &Options, report: &mut Report) -> Result<(), Error> {
    println!(
        "\n## bounds of this machine: {} through each, no registry in the way",
        human_bytes(options.blob)
    );
    report.bounds = bounds::measure(&std::env::temp_dir(), options.blob)?;
    for b in &report.bounds {
        println!("  {:<52} {:>9.0} MB/s", b.what, b.rate.mb_per_s());
    }
    Ok(())
}
