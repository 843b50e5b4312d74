//! Readings from the operating system: a clock that several processes share,
//! a process's memory and CPU time (alone, or summed over the process and
//! every descendant of it: a server made of several processes), and a line
//! describing the machine.

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

/// `root` and every process descended from it (by parent pid, whatever
/// their process groups: Pushpin's runner puts each service in its own).
pub fn process_tree(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_ppid(&stat)?))
        })
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(pid, _)| pid),
        );
        i += 1;
    }
    tree
}

/// Resident memory of `root` and its descendants, summed, in bytes. Pages
/// that processes share (code, nginx's shared memory zone) count once per
/// process that maps them: a constant that cancels out of per-connection
/// differences.
/// `None` if `root` is gone; a descendant that exits meanwhile counts nothing.
pub fn tree_rss_bytes(root: u32) -> Option<u64> {
    let descendants = process_tree(root).into_iter().skip(1);
    Some(rss_bytes(root)? + descendants.filter_map(rss_bytes).sum::<u64>())
}

/// CPU time of `root` and its descendants, summed, in seconds.
pub fn tree_cpu_seconds(root: u32) -> Option<f64> {
    let descendants = process_tree(root).into_iter().skip(1);
    Some(cpu_seconds(root)? + descendants.filter_map(cpu_seconds).sum::<f64>())
}

/// A process's name (`/proc/<pid>/comm`).
pub fn process_name(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_owned())
}

/// How many files a process has open.
pub fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The parent pid (field 4) of a `/proc/<pid>/stat` line.
fn parse_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
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
        assert_eq!(parse_ppid(stat), Some(1));
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
        assert!(process_tree(me).contains(&me));
        assert!(open_files(me).unwrap() > 0);
        assert!(process_name(me).is_some());
        let (a, b) = (mono_ns(), mono_ns());
        assert!(b >= a);
    }

    /// A shell waiting on a `sleep`: two idle processes whose memory does
    /// not move (this test process's own does, with tests running beside it).
    #[test]
    fn a_tree_sums_its_processes() {
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .expect("sh starts");
        let root = shell.id();
        // Until the child has become `sleep` and its memory stays put.
        let settled = |tree: &[u32]| {
            tree.len() == 2
                && process_name(tree[1]).as_deref() == Some("sleep")
                && rss_bytes(tree[1]) == {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    rss_bytes(tree[1])
                }
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let tree = loop {
            let tree = process_tree(root);
            if settled(&tree) || std::time::Instant::now() > deadline {
                break tree;
            }
        };
        let parts: Vec<Option<u64>> = tree.iter().map(|&pid| rss_bytes(pid)).collect();
        let sum = tree_rss_bytes(root);
        for &pid in &tree[1..] {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        shell.kill().ok();
        shell.wait().ok();
        assert_eq!(tree.len(), 2, "sh and its sleep: {tree:?}");
        assert_eq!(sum, parts.into_iter().sum::<Option<u64>>());
    }
}
