//! What the kernel says about a process: CPU time, bytes written, memory (`/proc/<pid>/...`).

use std::sync::OnceLock;

/// One look at a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// User + system CPU time, in microseconds.
    pub cpu_us: u64,
    /// Bytes the process caused to be written to storage (`write_bytes` of `/proc/<pid>/io`).
    pub written: u64,
    /// Resident memory now, in bytes.
    pub rss: u64,
    /// The most resident memory it ever had, in bytes (`VmHWM`).
    pub peak_rss: u64,
}

impl Sample {
    /// `pid`'s figures, or `None` if it is gone (or not ours to read).
    pub fn of(pid: u32) -> Option<Self> {
        Self::read(&format!("/proc/{pid}"))
    }

    /// The figures of this process (the load generator itself).
    pub fn own() -> Option<Self> {
        Self::read("/proc/self")
    }

    fn read(dir: &str) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count from its end.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let io = std::fs::read_to_string(format!("{dir}/io")).ok()?;
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        Some(Sample {
            cpu_us: ticks * 1_000_000 / clock_ticks(),
            written: field(&io, "write_bytes:")?,
            rss: field(&status, "VmRSS:")? * 1024,
            peak_rss: field(&status, "VmHWM:")? * 1024,
        })
    }
}

/// The first number after `name` in a `/proc` key-value file.
fn field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let busy: u64 = (0..5_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        let s = Sample::own().expect("our own /proc entry");
        assert!(busy > 0 && s.rss > 0 && s.peak_rss >= s.rss, "{s:?}");
    }

    #[test]
    fn key_value_fields_are_read_by_name() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(field(status, "VmRSS:"), Some(1024));
        assert_eq!(field(status, "VmHWM:"), Some(2048));
        assert_eq!(field(status, "VmSwap:"), None);
    }
}
