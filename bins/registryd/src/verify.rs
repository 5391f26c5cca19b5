//! `registryd verify`: a scrub of the store a configuration names. Prints each problem by storage
//! path as it is found and the totals at the end, with progress on stderr when it is a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use registry::content::{Problem, Repair, VerifyEvent, VerifyOptions, VerifyReport};

/// Arguments of `registryd verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The configuration file; else $REGISTRY_CONFIGURATION_PATH; else the built-in default.
    config: Option<PathBuf>,
    /// Remove the dangling and bad links found, each checked again just before. Blobs are never
    /// removed.
    #[arg(long)]
    repair: bool,
}

/// The exit code when something is wrong in the store.
const PROBLEMS_FOUND: u8 = 1;
/// The exit code when the store could not be verified (configuration, storage failure).
const CANNOT_VERIFY: u8 = 2;

/// How often the progress line is redrawn at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Verifies the store the configuration names: 0 when it is clean, [`PROBLEMS_FOUND`] when
/// anything was wrong (even if repaired), [`CANNOT_VERIFY`] when it could not be verified.
pub(crate) fn run(args: VerifyArgs) -> ExitCode {
    match verify(args) {
        Ok(report) if report.is_clean() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(PROBLEMS_FOUND),
        Err(message) => {
            eprintln!("registryd verify: {message}");
            ExitCode::from(CANNOT_VERIFY)
        }
    }
}

fn verify(args: VerifyArgs) -> Result<VerifyReport, String> {
    let (content, _) = crate::stored_content(args.config, "verify")?;
    // The scan awaits one thing at a time; the driver's file work and the hashing run on the
    // blocking pool, which a current-thread runtime has too.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    let options = VerifyOptions {
        repair: args.repair,
    };
    let mut printer = Printer::new(std::io::stderr().is_terminal());
    let verified = runtime.block_on(content.verify(&options, |event| printer.event(event)));
    printer.clear_progress();
    let report = verified.map_err(|error| format!("verification stopped: {error}"))?;
    println!("{}", summary(&report, printer.started.elapsed()));
    Ok(report)
}

/// Prints problems to stdout as they come and, on a terminal, a progress line to stderr.
struct Printer {
    /// Whether to show progress (stderr is a terminal).
    show_progress: bool,
    /// When the progress line was last drawn; `None` when none is on screen.
    drawn: Option<Instant>,
    started: Instant,
}

impl Printer {
    fn new(show_progress: bool) -> Printer {
        Printer {
            show_progress,
            drawn: None,
            started: Instant::now(),
        }
    }

    fn event(&mut self, event: VerifyEvent<'_>) {
        match event {
            VerifyEvent::Problem(problem) => {
                self.clear_progress();
                println!("{}", problem_line(problem));
            }
            VerifyEvent::Progress(totals) => self.progress(totals),
            _ => {}
        }
    }

    fn progress(&mut self, totals: &VerifyReport) {
        if !self.show_progress
            || self
                .drawn
                .is_some_and(|at| at.elapsed() < PROGRESS_INTERVAL)
        {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        // A progress line that cannot be drawn is not worth stopping the scan for.
        let _ = write!(
            stderr,
            "\r\x1b[Kverifying: {} blobs ({}), {} links, {} problems",
            totals.blobs_checked,
            human_bytes(totals.bytes_hashed),
            totals.links_checked,
            totals.problems
        );
        let _ = stderr.flush();
        self.drawn = Some(Instant::now());
    }

    /// Erases the progress line, so that what is printed next starts on a clean line.
    fn clear_progress(&mut self) {
        if self.drawn.take().is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// `<path>: <what is wrong>`, with what repair did.
fn problem_line(problem: &Problem) -> String {
    let line = format!("{}: {}", problem.path, problem.kind);
    match &problem.repair {
        Repair::None => line,
        Repair::Removed(path) => format!("{line} (removed {path})"),
        Repair::Failed { path, error } => format!("{line} (could not remove {path}: {error})"),
    }
}

fn summary(report: &VerifyReport, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        format!(
            " ({}/s)",
            human_bytes((report.bytes_hashed as f64 / seconds) as u64)
        )
    } else {
        String::new()
    };
    let problems = match report.problems {
        0 => "no problems".to_owned(),
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    };
    let repaired = match report.repaired {
        0 => String::new(),
        1 => ", 1 link removed".to_owned(),
        n => format!(", {n} links removed"),
    };
    format!(
        "verified {} blobs and {} links, hashed {} bytes ({}) in {seconds:.1} s{rate}: \
         {problems}{repaired}",
        report.blobs_checked,
        report.links_checked,
        report.bytes_hashed,
        human_bytes(report.bytes_hashed),
    )
}

/// `bytes` in decimal units with one decimal: `512 B`, `1.5 kB`, `3.2 GB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_in_decimal_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(3_210_000_000), "3.2 GB");
        assert_eq!(human_bytes(u64::MAX), "18446.7 PB");
    }
}
