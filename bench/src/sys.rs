//! Readings from the operating system: a clock that several processes share,
//! a process's memory and CPU time, and a line describing the machine.

use std::path::Path;

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process on this
/// machine, so a load generator's receive times compare with the trigger's.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime with a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Milliseconds from `from` to `to` (both [`mono_ns`]).
pub fn ms_between(from: u64, to: u64) -> f64 {
    (to as f64 - from as f64) / 1e6
}

/// Resident memory of a process, in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kib_field(&status, "VmRSS:").map(|kib| kib * 1024)
}

fn parse_kib_field(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// User plus system CPU time of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / clock_ticks())
}

/// utime + stime from a `/proc/<pid>/stat` line (fields 14 and 15; the name
/// in parentheses may hold spaces, so count from its closing parenthesis).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// "2 CPUs (model), 23.4 GiB RAM, Linux 6.x".
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = parse_kib_field(&meminfo, "MemTotal:").unwrap_or(0) as f64 / 1024.0 / 1024.0;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {mem_gib:.1} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// Whether a file exists and is executable by someone.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_survive_spaces_in_the_name() {
        let stat = "1234 (my proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 70 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(320));
    }

    #[test]
    fn kib_fields_parse() {
        let status = "Name:\tx\nVmRSS:\t   10240 kB\nThreads: 3\n";
        assert_eq!(parse_kib_field(status, "VmRSS:"), Some(10240));
        assert_eq!(parse_kib_field(status, "VmHWM:"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(cpu_seconds(me).is_some());
        let (a, b) = (mono_ns(), mono_ns());
        assert!(b >= a);
    }
}
