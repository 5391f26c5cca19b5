//! Benchmarks for registryd, as a small library shared by the benchmark binaries:
//!
//! - [`server`]: start a registry server process (registryd, or registry:2 as
//!   `docker-registry`) over a temporary filesystem root on a free 127.0.0.1 port;
//! - [`bounds`]: the machine's own limits (hashing, page cache, disk, loopback) that bound the
//!   registries' transfer figures;
//! - [`blob`]: deterministic pseudo-random blobs generated on the fly, hashed as they are sent,
//!   never held in memory;
//! - [`client`]: the OCI blob upload protocol (chunked and monolithic) and streaming,
//!   digest-verifying downloads over hyper;
//! - [`image`]: a small image pushed through the API, and a `docker save`-style archive;
//! - [`layout`]: registry:2's on-disk layout written directly (thousands of repositories
//!   or tags in seconds);
//! - [`load`]: a closed-loop HTTP/1.1 load generator (keep-alive connections, one request in
//!   flight each) with a latency histogram, for any endpoint;
//! - [`procfs`]: a process's peak and current resident memory from `/proc/PID/status`, and its
//!   CPU time from `/proc/PID/stat`;
//! - [`webhook`]: a notification endpoint that answers every delivery at once.
//!
//! Benchmarks measure and report; they never run in `cargo test`.

pub mod blob;
pub mod bounds;
pub mod client;
pub mod image;
pub mod layout;
pub mod load;
pub mod procfs;
pub mod server;
pub mod webhook;

/// Any error a benchmark step can end with.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// `1 GiB`-style sizes for reports.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parses `1073741824`, `512MiB`, `1GiB`, `64KiB` (also `M`, `G`, `K`, `MB`, `GB`, `KB` as
/// powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("not a size: {text:?} (try 1GiB, 256MiB, 4096)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown size unit {other:?} in {text:?}").into()),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size {text:?} is too large").into())
}

/// One line describing the machine a benchmark ran on: CPU model (and whether it has SHA-NI),
/// CPUs, memory, load average, and the time in UTC.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("unknown CPU")
        .to_string();
    let sha_ni = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "sha_ni"));
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kib: u64 = m
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()?;
            Some(human_bytes(kib * 1024))
        })
        .unwrap_or_else(|| "?".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!(
        "{model}{}, {cpus} CPU(s), {memory} memory, load average {load}, {} UTC",
        if sha_ni { " (SHA-NI)" } else { "" },
        utc_now()
    )
}

/// `YYYY-MM-DD HH:MM` in UTC, from the system clock.
fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("16MiB").ok(), Some(16 << 20));
        assert_eq!(parse_size("1GiB").ok(), Some(1 << 30));
        assert_eq!(parse_size("2g").ok(), Some(2 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn utc_now_is_a_date_and_a_minute() {
        let now = utc_now();
        let shape: String = now
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999-99-99 99:99", "{now}");
    }

    #[test]
    fn human_bytes_picks_the_largest_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(16 << 20), "16.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
