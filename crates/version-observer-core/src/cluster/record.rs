//! The settled record's KV calls: the reads every node makes, and the
//! monitor's way from a settled round to a written record.
//!
//! **Reads.** A node reads the record on connect (once the bucket is
//! open), every [`RECORD_REFRESH`], and whenever it is *wanted*: a notice
//! said it changed, a write went wrong, or the monitor needs a fresh one.
//! One read is in flight at a time; a read that started before the last
//! settled round is not *fresh*, and its answer decides nothing.
//!
//! **Writes** ([`Settle`]): a settled round makes the monitor wait for a
//! fresh read (`Reading`), decide on it, renew its lease for the fence
//! (`Fencing`), and write with compare-and-set (`Writing`). Losing the
//! monitor role, leaving or retiring abandons the first two stages; a
//! write in flight is always waited for. No read starts while fencing or
//! writing (the write expects the record's revision it decided on).
//!
//! Plain data, time passed in.

use crate::{protocol::SettledRecord, release::Release, timing::RECORD_REFRESH};
use semver::Version;
use std::time::Instant;

/// The read in flight, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Idle,
    /// `fresh`: it started after the last settled round, so its answer
    /// may decide that round.
    InFlight {
        fresh: bool,
    },
}

/// The monitor's way from a settled round to a written record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Nothing to write.
    Idle,
    /// Waiting for a read of the record that started after the round ended.
    Reading {
        /// The version the round settled on.
        version: Version,
        /// Its release, from the round's replies.
        release: Option<Release>,
    },
    /// Waiting to renew the lease (the fence) before writing.
    Fencing {
        /// The record to write (its fence still to be filled in).
        record: SettledRecord,
        /// The record key's last revision when it was read (0: none).
        expected: u64,
    },
    /// The write is in flight.
    Writing {
        /// The record written.
        record: SettledRecord,
    },
}

/// Reads and writes of the record. See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct Record {
    read: Read,
    /// A read is wanted as soon as one can start.
    wanted: bool,
    /// When the periodic read is due.
    next_refresh: Instant,
    settle: Settle,
    /// The first read after connecting is done (or impossible).
    ready: bool,
}

impl Record {
    /// Nothing read yet; the first read due at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            read: Read::Idle,
            wanted: false,
            next_refresh: now,
            settle: Settle::Idle,
            ready: false,
        }
    }

    /// Read as soon as a read can start.
    pub(crate) fn want_read(&mut self) {
        self.wanted = true;
    }

    /// Whether a read may start (nothing in flight, no write on its way:
    /// `lease_fencing` says the lease's fencing renewal is in flight).
    fn may_read(&self, reachable: bool, lease_fencing: bool) -> bool {
        reachable
            && self.read == Read::Idle
            && matches!(self.settle, Settle::Idle | Settle::Reading { .. })
            && !lease_fencing
    }

    /// Whether to read now (the read then counts as in flight, and fresh).
    pub(crate) fn poll_read(&mut self, now: Instant, reachable: bool, lease_fencing: bool) -> bool {
        if !self.may_read(reachable, lease_fencing) || !(self.wanted || now >= self.next_refresh) {
            return false;
        }
        self.wanted = false;
        self.read = Read::InFlight { fresh: true };
        self.next_refresh = now + RECORD_REFRESH;
        true
    }

    /// A read's answer came in (or a stray one): returns whether it was
    /// fresh. From now on the node counts as ready.
    pub(crate) fn read_answered(&mut self) -> bool {
        self.ready = true;
        match std::mem::replace(&mut self.read, Read::Idle) {
            Read::InFlight { fresh } => fresh,
            Read::Idle => false,
        }
    }

    /// Whether the first read after connecting is done (or impossible).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    /// No read will answer soon (the bucket cannot be opened): ready anyway.
    pub(crate) fn mark_ready(&mut self) {
        self.ready = true;
    }

    /// A round settled on `version`: decide on a read that starts after it.
    pub(crate) fn settled(&mut self, version: Version, release: Option<Release>) {
        self.settle = Settle::Reading { version, release };
        self.wanted = true;
        if let Read::InFlight { fresh } = &mut self.read {
            // The read in flight is older than the round.
            *fresh = false;
        }
    }

    /// Ends the `Reading` stage: the settled version and its release.
    pub(crate) fn take_reading(&mut self) -> Option<(Version, Option<Release>)> {
        match std::mem::replace(&mut self.settle, Settle::Idle) {
            Settle::Reading { version, release } => Some((version, release)),
            other => {
                self.settle = other;
                None
            }
        }
    }

    /// The decision is to write `record` over the revision `expected`:
    /// fence first.
    pub(crate) fn fence(&mut self, record: SettledRecord, expected: u64) {
        self.settle = Settle::Fencing { record, expected };
    }

    /// Ends the `Fencing` stage: the record and the revision it expects.
    pub(crate) fn take_fencing(&mut self) -> Option<(SettledRecord, u64)> {
        match std::mem::replace(&mut self.settle, Settle::Idle) {
            Settle::Fencing { record, expected } => Some((record, expected)),
            other => {
                self.settle = other;
                None
            }
        }
    }

    /// The write of `record` is on its way.
    pub(crate) fn write(&mut self, record: SettledRecord) {
        self.settle = Settle::Writing { record };
    }

    /// The write's answer came in: the record it wrote (`None` for a stray
    /// answer).
    pub(crate) fn written(&mut self) -> Option<SettledRecord> {
        match std::mem::replace(&mut self.settle, Settle::Idle) {
            Settle::Writing { record } => Some(record),
            other => {
                self.settle = other;
                None
            }
        }
    }

    /// Stops on the way to a write (no longer the monitor, leaving,
    /// retiring): a write already in flight is still waited for.
    pub(crate) fn abandon(&mut self) {
        if matches!(self.settle, Settle::Reading { .. } | Settle::Fencing { .. }) {
            self.settle = Settle::Idle;
        }
    }

    /// Whether nothing is on its way to a write (a round may start).
    pub(crate) fn is_idle(&self) -> bool {
        self.settle == Settle::Idle
    }

    /// Whether the record waits for the lease's fence.
    pub(crate) fn is_fencing(&self) -> bool {
        matches!(self.settle, Settle::Fencing { .. })
    }

    /// Whether lease calls must wait: a write in flight expects the fence
    /// to be the bucket's last message, and a fence must wait for a read
    /// in flight (it is followed at once by the write).
    pub(crate) fn holds_lease(&self) -> bool {
        match self.settle {
            Settle::Writing { .. } => true,
            Settle::Fencing { .. } => self.read != Read::Idle,
            Settle::Idle | Settle::Reading { .. } => false,
        }
    }

    /// When [`poll_read`](Self::poll_read) next has something to do: the
    /// periodic read, whenever a read may start (a wanted one starts at
    /// once; the others wait for an answer, not a moment).
    pub(crate) fn next_deadline(&self, reachable: bool, lease_fencing: bool) -> Option<Instant> {
        self.may_read(reachable, lease_fencing)
            .then_some(self.next_refresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RecordKind;
    use std::time::Duration;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn record(version: &str) -> SettledRecord {
        SettledRecord {
            version: v(version),
            previous: None,
            kind: RecordKind::Baseline,
            fence: 0,
            leader: "me".into(),
            at_ms: 0,
            release: None,
        }
    }

    #[test]
    fn a_read_is_due_at_once_then_every_refresh() {
        let t0 = Instant::now();
        let mut r = Record::new(t0);
        assert_eq!(r.next_deadline(false, false), None, "unreachable");
        assert!(!r.poll_read(t0, false, false));
        assert_eq!(r.next_deadline(true, false), Some(t0));
        assert!(r.poll_read(t0, true, false));
        assert_eq!(r.next_deadline(true, false), None, "one read at a time");
        assert!(!r.is_ready());
        assert!(r.read_answered());
        assert!(r.is_ready());
        assert_eq!(r.next_deadline(true, false), Some(t0 + RECORD_REFRESH));
        assert!(!r.poll_read(t0 + RECORD_REFRESH - Duration::from_millis(1), true, false));
        assert!(r.poll_read(t0 + RECORD_REFRESH, true, false));
    }

    #[test]
    fn a_wanted_read_starts_as_soon_as_it_may() {
        let t0 = Instant::now();
        let mut r = Record::new(t0);
        r.poll_read(t0, true, false);
        r.want_read();
        assert!(!r.poll_read(t0, true, false), "one in flight");
        r.read_answered();
        assert!(r.poll_read(t0 + Duration::from_millis(1), true, false));
        r.read_answered();
        r.want_read();
        assert!(!r.poll_read(t0, true, true), "the lease is fencing");
        assert_eq!(r.next_deadline(true, true), None);
        assert!(r.poll_read(t0 + Duration::from_millis(2), true, false));
    }

    #[test]
    fn only_a_read_that_started_after_the_round_decides() {
        let t0 = Instant::now();
        let mut r = Record::new(t0);
        r.poll_read(t0, true, false);
        r.settled(v("2.0.0"), None);
        assert!(!r.read_answered(), "older than the round");
        assert!(r.poll_read(t0, true, false), "wanted at once");
        assert!(r.read_answered());
        assert_eq!(r.take_reading(), Some((v("2.0.0"), None)));
        assert!(r.is_idle());
        assert_eq!(r.take_reading(), None);
    }

    #[test]
    fn fencing_and_writing_hold_reads_and_the_lease_back() {
        let t0 = Instant::now();
        let later = t0 + RECORD_REFRESH * 2;
        let mut r = Record::new(t0);
        r.settled(v("2.0.0"), None);
        r.poll_read(t0, true, false);
        r.fence(record("2.0.0"), 4);
        // A fence waits for the read in flight.
        assert!(r.holds_lease());
        assert!(r.read_answered());
        assert!(!r.holds_lease());
        assert!(r.is_fencing());
        assert_eq!(r.next_deadline(true, false), None, "no read while fencing");
        assert!(!r.poll_read(later, true, false));
        let (written, expected) = r.take_fencing().unwrap();
        assert_eq!(expected, 4);
        r.write(written.clone());
        assert!(r.holds_lease());
        assert_eq!(r.next_deadline(true, false), None, "no read while writing");
        r.abandon();
        assert!(!r.is_idle(), "a write in flight is waited for");
        assert_eq!(r.written(), Some(written));
        assert!(r.is_idle());
        assert_eq!(r.next_deadline(true, false), Some(t0 + RECORD_REFRESH));
        assert_eq!(r.written(), None);
    }

    #[test]
    fn abandoning_drops_a_decision_not_yet_written() {
        let t0 = Instant::now();
        let mut r = Record::new(t0);
        r.settled(v("2.0.0"), None);
        r.abandon();
        assert!(r.is_idle());
        r.fence(record("2.0.0"), 0);
        r.abandon();
        assert!(r.is_idle());
        assert_eq!(r.take_fencing(), None);
    }
}
