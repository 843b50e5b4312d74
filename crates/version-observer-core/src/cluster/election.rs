//! Electing the single monitor with a lease held in a JetStream KV bucket.
//!
//! The lease is one key in a bucket whose `max_age` is the lease length:
//!
//! - **acquire**: create the key if absent (only one node can win);
//! - **renew**: update it expecting the revision we last wrote (fails if anyone
//!   else wrote since, i.e. we lost it);
//! - **expire**: a monitor that stops renewing loses the key after `max_age`;
//! - **release**: a monitor that stops gracefully deletes it, so a follower can
//!   take over at once.
//!
//! The monitor trusts its lease only until `sent + lease - margin`, where `sent`
//! is when it *sent* the acquire/renew that succeeded (the server's clock
//! started no earlier), so it steps down on its own clock before the key can
//! have expired on the server. The revision of the lease key is the monitor's
//! **fencing token**: [`Election::fence`] is what announcements carry.
//!
//! This type decides *what* to do and when; the transport does the KV calls and
//! reports their results back. Time is passed in.

use std::time::{Duration, Instant};

/// What the transport should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionAction {
    /// Nothing is due.
    Wait,
    /// Try to create the lease key.
    Acquire,
    /// Update the lease key, expecting this revision.
    Renew {
        /// The revision this node last wrote to the lease key.
        revision: u64,
    },
}

/// A change of role the node should log and act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// A follower won the lease: a new term (a renewal is not one).
    BecameMonitor {
        /// The lease key's revision it won with: its first fencing token.
        fence: u64,
    },
    /// A monitor lost the lease: a renewal failed, or the lease ran out on
    /// its own clock. (Resigning on a graceful stop reports no change.)
    SteppedDown {
        /// The last lease revision it held.
        fence: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Follower {
        next_attempt: Instant,
    },
    Monitor {
        revision: u64,
        valid_until: Instant,
        next_renewal: Instant,
    },
}

/// One node's side of the lease election: a follower waiting for its next
/// attempt, or a monitor with its lease revision and when it must renew. See
/// the [module docs](self).
///
/// ```
/// use std::time::{Duration, Instant};
/// use version_observer_core::cluster::election::{Election, ElectionAction, RoleChange};
/// let t0 = Instant::now();
/// let mut election = Election::new(Duration::from_secs(5), t0);
/// assert_eq!(election.poll(t0), (ElectionAction::Acquire, None));
/// // The transport created the lease key, which now has revision 7.
/// assert_eq!(election.won(7, t0), Some(RoleChange::BecameMonitor { fence: 7 }));
/// assert_eq!(election.fence(t0), Some(7));
/// // Without a successful renewal, it steps down before the server expires the key.
/// let too_late = t0 + election.lease() - election.margin();
/// assert!(!election.is_monitor(too_late));
/// ```
#[derive(Debug, Clone)]
pub struct Election {
    lease: Duration,
    role: Role,
    /// Whether a follower may stand: only a node whose membership view is
    /// warm can decide anything, so a node that has just started (or
    /// reconnected) must not take the monitor role from one that can.
    eligible: bool,
}

impl Election {
    /// A follower, eligible to stand, whose first attempt is due at `now`.
    /// `lease` is the lease length: the lease bucket's `max_age`.
    pub fn new(lease: Duration, now: Instant) -> Self {
        Self {
            lease,
            role: Role::Follower { next_attempt: now },
            eligible: true,
        }
    }

    /// Whether this node may try to take the lease (see `eligible`). A monitor
    /// keeps renewing either way.
    pub fn set_eligible(&mut self, eligible: bool) {
        self.eligible = eligible;
    }

    /// The lease length given to [`new`](Self::new).
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How long before its lease could expire a monitor steps down.
    pub fn margin(&self) -> Duration {
        (self.lease / 5)
            .max(Duration::from_millis(100))
            .min(self.lease / 2)
    }

    /// How often a monitor renews: three chances before it must step down.
    pub fn renew_interval(&self) -> Duration {
        (self.lease - self.margin()) / 3
    }

    /// How often a follower tries to take an expired lease.
    pub fn attempt_interval(&self) -> Duration {
        (self.lease / 10).clamp(Duration::from_millis(50), Duration::from_millis(500))
    }

    /// The fencing token while this node may act as monitor.
    pub fn fence(&self, now: Instant) -> Option<u64> {
        match self.role {
            Role::Monitor {
                revision,
                valid_until,
                ..
            } if now < valid_until => Some(revision),
            _ => None,
        }
    }

    /// Whether this node may act as monitor at `now`: it holds the lease and
    /// its own clock still trusts it (that is, [`fence`](Self::fence) is `Some`).
    pub fn is_monitor(&self, now: Instant) -> bool {
        self.fence(now).is_some()
    }

    /// Whether this node still holds a lease revision it has not given up,
    /// whether or not its own clock still trusts it.
    pub fn holds_lease(&self) -> bool {
        matches!(self.role, Role::Monitor { .. })
    }

    /// When a monitor's own clock stops trusting its lease (it steps down
    /// at its next [`poll`](Self::poll) from then on); `None` for a follower.
    pub fn valid_until(&self) -> Option<Instant> {
        match self.role {
            Role::Monitor { valid_until, .. } => Some(valid_until),
            Role::Follower { .. } => None,
        }
    }

    /// When [`poll`](Self::poll) next has something to do (never, for a
    /// follower that may not stand).
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.role {
            Role::Follower { .. } if !self.eligible => None,
            Role::Follower { next_attempt } => Some(next_attempt),
            Role::Monitor {
                valid_until,
                next_renewal,
                ..
            } => Some(next_renewal.min(valid_until)),
        }
    }

    /// What is due at `now`. A monitor whose lease ran out on its own clock steps
    /// down here (and the returned change says so).
    pub fn poll(&mut self, now: Instant) -> (ElectionAction, Option<RoleChange>) {
        match self.role {
            Role::Monitor {
                revision,
                valid_until,
                ..
            } if now >= valid_until => {
                self.role = Role::Follower { next_attempt: now };
                (
                    ElectionAction::Acquire,
                    Some(RoleChange::SteppedDown { fence: revision }),
                )
            }
            Role::Monitor {
                revision,
                next_renewal,
                ..
            } if now >= next_renewal => (ElectionAction::Renew { revision }, None),
            Role::Follower { next_attempt } if self.eligible && now >= next_attempt => {
                (ElectionAction::Acquire, None)
            }
            _ => (ElectionAction::Wait, None),
        }
    }

    /// The create or update sent at `sent` succeeded with `revision`.
    pub fn won(&mut self, revision: u64, sent: Instant) -> Option<RoleChange> {
        let was_monitor = matches!(self.role, Role::Monitor { .. });
        self.role = Role::Monitor {
            revision,
            valid_until: sent + self.lease - self.margin(),
            next_renewal: sent + self.renew_interval(),
        };
        (!was_monitor).then_some(RoleChange::BecameMonitor { fence: revision })
    }

    /// The create or update failed: someone else holds the lease (or the bucket
    /// is unreachable). Try again after the attempt interval.
    pub fn lost(&mut self, now: Instant) -> Option<RoleChange> {
        let change = match self.role {
            Role::Monitor { revision, .. } => Some(RoleChange::SteppedDown { fence: revision }),
            Role::Follower { .. } => None,
        };
        self.role = Role::Follower {
            next_attempt: now + self.attempt_interval(),
        };
        change
    }

    /// A node left gracefully (it hands its lease back before it says
    /// nodedown): a follower tries to take the lease now rather than at its
    /// next scheduled attempt, so a handover takes one round trip, not an
    /// attempt interval.
    pub fn attempt_now(&mut self, now: Instant) {
        if let Role::Follower { next_attempt } = &mut self.role {
            *next_attempt = (*next_attempt).min(now);
        }
    }

    /// Gives the lease up (graceful stop); returns the revision to delete, if held.
    pub fn resign(&mut self, now: Instant) -> Option<u64> {
        let held = match self.role {
            Role::Monitor { revision, .. } => Some(revision),
            Role::Follower { .. } => None,
        };
        self.role = Role::Follower {
            next_attempt: now + self.lease,
        };
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn timing_for_the_default_lease() {
        let e = Election::new(LEASE, Instant::now());
        assert_eq!(e.margin(), ms(1_000));
        assert_eq!(e.renew_interval(), ms(4_000) / 3);
        assert_eq!(e.attempt_interval(), ms(500));
        // Takeover after a crash is bounded by lease + one attempt interval.
        assert!(e.lease() + e.attempt_interval() <= LEASE + ms(1_000));
    }

    #[test]
    fn timing_for_short_leases_stays_sane() {
        let e = Election::new(ms(300), Instant::now());
        assert_eq!(e.margin(), ms(100));
        assert!(e.renew_interval() > Duration::ZERO);
        assert_eq!(e.attempt_interval(), ms(50));
    }

    #[test]
    fn a_follower_acquires_then_renews_then_keeps_renewing() {
        let t0 = Instant::now();
        let mut e = Election::new(LEASE, t0);
        assert_eq!(e.poll(t0), (ElectionAction::Acquire, None));
        assert_eq!(e.won(11, t0), Some(RoleChange::BecameMonitor { fence: 11 }));
        assert_eq!(e.fence(t0), Some(11));
        assert_eq!(e.poll(t0 + ms(10)), (ElectionAction::Wait, None));
        let renew_at = t0 + e.renew_interval();
        assert_eq!(e.next_deadline(), Some(renew_at));
        assert_eq!(
            e.poll(renew_at),
            (ElectionAction::Renew { revision: 11 }, None)
        );
        assert_eq!(e.won(12, renew_at), None, "a renewal is not a new term");
        assert_eq!(e.fence(renew_at), Some(12));
    }

    #[test]
    fn a_leader_that_cannot_renew_steps_down_before_the_lease_expires() {
        let t0 = Instant::now();
        let mut e = Election::new(LEASE, t0);
        e.won(3, t0);
        // Renewals are attempted but never confirmed (NATS unreachable).
        let deadline = t0 + LEASE - e.margin();
        assert!(e.is_monitor(deadline - ms(1)));
        assert!(
            !e.is_monitor(deadline),
            "no fence once the lease may be gone"
        );
        assert_eq!(
            e.poll(deadline),
            (
                ElectionAction::Acquire,
                Some(RoleChange::SteppedDown { fence: 3 })
            )
        );
        assert!(
            deadline < t0 + LEASE,
            "stepped down before the server could expire it"
        );
    }

    #[test]
    fn a_failed_renewal_means_the_lease_was_lost() {
        let t0 = Instant::now();
        let mut e = Election::new(LEASE, t0);
        e.won(3, t0);
        assert_eq!(
            e.lost(t0 + ms(1_500)),
            Some(RoleChange::SteppedDown { fence: 3 })
        );
        assert!(!e.is_monitor(t0 + ms(1_500)));
        assert_eq!(e.poll(t0 + ms(1_600)), (ElectionAction::Wait, None));
        assert_eq!(e.poll(t0 + ms(2_000)), (ElectionAction::Acquire, None));
    }

    #[test]
    fn a_follower_retries_at_the_attempt_interval() {
        let t0 = Instant::now();
        let mut e = Election::new(LEASE, t0);
        assert_eq!(e.lost(t0), None);
        assert_eq!(e.next_deadline(), Some(t0 + ms(500)));
        assert_eq!(e.poll(t0 + ms(499)), (ElectionAction::Wait, None));
        assert_eq!(e.poll(t0 + ms(500)), (ElectionAction::Acquire, None));
    }

    #[test]
    fn the_lease_counts_from_when_the_request_was_sent() {
        let t0 = Instant::now();
        let mut e = Election::new(LEASE, t0);
        // The reply came 2 s late; the server's clock started no later than t0.
        e.won(5, t0);
        let late_reply = t0 + ms(2_000);
        assert!(e.is_monitor(late_reply));
        assert!(!e.is_monitor(t0 + LEASE - e.margin()));
    }

    #[test]
    fn a_graceful_departure_makes_a_follower_try_at_once() {
        let t0 = Instant::now();
        let mut e = Election::new(LEASE, t0);
        e.lost(t0);
        assert_eq!(e.poll(t0 + ms(10)), (ElectionAction::Wait, None));
        e.attempt_now(t0 + ms(10));
        assert_eq!(e.poll(t0 + ms(10)), (ElectionAction::Acquire, None));
        // A monitor is not disturbed by someone else leaving.
        e.won(4, t0 + ms(10));
        e.attempt_now(t0 + ms(20));
        assert_eq!(e.poll(t0 + ms(20)), (ElectionAction::Wait, None));
        assert_eq!(e.fence(t0 + ms(20)), Some(4));
    }

    #[test]
    fn a_cold_follower_does_not_stand_but_a_cold_leader_keeps_its_lease() {
        let t0 = Instant::now();
        let mut e = Election::new(LEASE, t0);
        e.set_eligible(false);
        assert_eq!(e.poll(t0), (ElectionAction::Wait, None));
        assert_eq!(e.next_deadline(), None);
        e.attempt_now(t0 + ms(5));
        assert_eq!(e.poll(t0 + ms(5)), (ElectionAction::Wait, None));
        // Warm now: the attempt that has been due since t0 happens at once.
        e.set_eligible(true);
        assert_eq!(e.next_deadline(), Some(t0));
        assert_eq!(e.poll(t0 + ms(6)), (ElectionAction::Acquire, None));
        e.won(8, t0 + ms(6));
        // A reconnect makes the view cold: the monitor still renews.
        e.set_eligible(false);
        let renew_at = t0 + ms(6) + e.renew_interval();
        assert_eq!(e.next_deadline(), Some(renew_at));
        assert_eq!(
            e.poll(renew_at),
            (ElectionAction::Renew { revision: 8 }, None)
        );
    }

    #[test]
    fn resigning_hands_back_the_revision_to_delete() {
        let t0 = Instant::now();
        let mut e = Election::new(LEASE, t0);
        assert_eq!(e.resign(t0), None);
        e.won(9, t0);
        assert_eq!(e.resign(t0), Some(9));
        assert!(!e.is_monitor(t0));
        assert_eq!(e.poll(t0 + ms(100)), (ElectionAction::Wait, None));
    }
}
