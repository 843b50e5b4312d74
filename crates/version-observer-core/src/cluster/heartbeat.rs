//! When a connected node says it is alive: a heartbeat every
//! [`Timings::heartbeat_interval`](crate::timing::Timings::heartbeat_interval),
//! paced from when the last one was due, never faster than half an
//! interval apart; none while disconnected or leaving. Plain data, time
//! passed in.

use std::time::{Duration, Instant};

/// The heartbeat schedule. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    interval: Duration,
    /// When the next one is due; `None`: stopped.
    next: Option<Instant>,
}

impl Heartbeat {
    /// Stopped, beating every `interval` once started.
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
        }
    }

    /// Starts (again) at `now`, right after a nodeup: the first heartbeat
    /// one interval later.
    pub(crate) fn start(&mut self, now: Instant) {
        self.next = Some(now + self.interval);
    }

    /// No more heartbeats (disconnected, or leaving).
    pub(crate) fn stop(&mut self) {
        self.next = None;
    }

    /// Whether a heartbeat is due at `now` (the next one is then scheduled).
    pub(crate) fn poll(&mut self, now: Instant) -> bool {
        match self.next {
            Some(at) if now >= at => {
                self.next = Some((at + self.interval).max(now + self.interval / 2));
                true
            }
            _ => false,
        }
    }

    /// When [`poll`](Self::poll) next says yes.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn beats_every_interval_from_when_it_was_due() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(ms(1_000));
        assert_eq!(h.next_deadline(), None);
        assert!(!h.poll(t0 + ms(5_000)), "stopped");
        h.start(t0);
        assert_eq!(h.next_deadline(), Some(t0 + ms(1_000)));
        assert!(!h.poll(t0 + ms(999)));
        // Woken 30 ms late: the next one is still due on the beat.
        assert!(h.poll(t0 + ms(1_030)));
        assert_eq!(h.next_deadline(), Some(t0 + ms(2_000)));
        assert!(!h.poll(t0 + ms(1_031)));
    }

    #[test]
    fn after_a_long_stall_never_faster_than_half_an_interval() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(ms(1_000));
        h.start(t0);
        assert!(h.poll(t0 + ms(4_800)));
        assert_eq!(h.next_deadline(), Some(t0 + ms(5_300)));
        h.stop();
        assert_eq!(h.next_deadline(), None);
    }
}
