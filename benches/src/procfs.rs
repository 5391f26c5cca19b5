//! A process's memory as Linux reports it in `/proc/PID/status`.

use crate::Error;

/// Resident memory of a process, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// `VmHWM`: the peak resident set size since the process started.
    pub peak_rss: u64,
    /// `VmRSS`: the resident set size now.
    pub rss: u64,
}

impl Memory {
    /// Reads `/proc/PID/status`.
    pub fn of_pid(pid: u32) -> Result<Memory, Error> {
        let path = format!("/proc/{pid}/status");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        Memory::parse(&text).ok_or_else(|| format!("no VmHWM/VmRSS in {path}").into())
    }

    /// Parses the text of a `/proc/PID/status` file.
    pub fn parse(status: &str) -> Option<Memory> {
        let field = |name: &str| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(name)?.strip_prefix(':')?;
                let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
                Some(kib * 1024)
            })
        };
        Some(Memory {
            peak_rss: field("VmHWM")?,
            rss: field("VmRSS")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_bytes() {
        let status =
            "Name:\tregistryd\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(
            Memory::parse(status),
            Some(Memory {
                peak_rss: 40 << 20,
                rss: 20 << 20
            })
        );
        assert_eq!(Memory::parse("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_has_memory() {
        let memory = Memory::of_pid(std::process::id()).expect("read own status");
        assert!(memory.peak_rss >= memory.rss && memory.rss > 0);
    }
}
