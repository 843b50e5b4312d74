//! The process's file-descriptor limit, and what it allows.
//!
//! Every open stream is a socket, so the node raises its soft
//! `RLIMIT_NOFILE` to the hard limit at start, and `--max-streams` defaults
//! to what it can then actually hold: the limit less a reserve for
//! everything else (pages, the bundle, NATS, files), at most 100,000.
//! Beyond it streams get a clean 503 rather than failing to be accepted.

use version_observer::core::timing::streams;

/// Raises the soft open-files limit to the hard one; returns the soft
/// limit now in force (`None` where it cannot be read).
pub fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: get/setrlimit with a valid struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

/// The open-files limit now in force, if known.
fn open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit with a valid struct.
        (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

/// `--max-streams` when not given: what the open-files limit leaves for
/// streams (see the module docs).
pub fn default_max_streams() -> u32 {
    match open_files() {
        Some(limit) => streams_for(limit),
        None => streams::MAX_STREAMS,
    }
}

/// Streams a process with `limit` descriptors can hold: a quarter of the
/// limit, at most 1,024, is kept for everything else.
fn streams_for(limit: u64) -> u32 {
    let reserve = (limit / 4).min(1_024);
    let available = limit.saturating_sub(reserve).max(1);
    u32::try_from(available)
        .unwrap_or(u32::MAX)
        .min(streams::MAX_STREAMS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_a_reserve() {
        assert_eq!(streams_for(20_000), 18_976);
        assert_eq!(streams_for(1_024), 768);
        assert_eq!(streams_for(128), 96);
        assert_eq!(streams_for(1_048_576), streams::MAX_STREAMS);
        assert_eq!(streams_for(0), 1);
    }
}
