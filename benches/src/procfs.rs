//! A process's memory as Linux reports it in `/proc/PID/status`, and the CPU time it used from
//! `/proc/PID/stat`.

use std::time::Duration;

use crate::Error;

/// Linux reports CPU times in `/proc` in clock ticks of `USER_HZ`, which is 100 on every
/// architecture Linux supports (it is part of the user-space ABI, whatever `CONFIG_HZ` is).
const USER_HZ: u64 = 100;

/// CPU time (user + system, all threads) a process has used since it started, from
/// `/proc/PID/stat`, with a resolution of 10 ms.
pub fn cpu_time(pid: u32) -> Result<Duration, Error> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_cpu_ticks(&text)
        .map(|ticks| Duration::from_millis(ticks * 1000 / USER_HZ))
        .ok_or_else(|| format!("no utime/stime in {path}").into())
}

/// `utime + stime` in clock ticks from the text of a `/proc/PID/stat` file. The command name
/// (field 2) is in parentheses and may contain spaces, so fields are counted after the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt,
    // majflt, cmajflt, utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

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
    fn cpu_ticks_are_counted_after_the_command_name() {
        let stat = "4242 (tokio (worker) 1) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 31 0 0 20 0 9 0 1000 100000 2000";
        assert_eq!(parse_cpu_ticks(stat), Some(281));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn own_process_has_memory() {
        let memory = Memory::of_pid(std::process::id()).expect("read own status");
        assert!(memory.peak_rss >= memory.rss && memory.rss > 0);
    }
}
