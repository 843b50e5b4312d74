//! The monitor lease's KV calls, around the [`Election`] that decides
//! them: at most one call in flight, and what it is for.
//!
//! | purpose   | call                         | sent when                                   |
//! |-----------|------------------------------|---------------------------------------------|
//! | `Acquire` | [`LeaseCall::Create`]        | a follower may stand and its attempt is due |
//! | `Renew`   | [`LeaseCall::Update`]        | the monitor's renewal is due                |
//! | `Fence`   | [`LeaseCall::Update`]        | the monitor is about to write the record: the renewal's revision is the write's fence |
//! | `Release` | [`LeaseCall::Delete`]        | the node leaves or retires holding the lease |
//!
//! The rest of the node says what the lease may do now with a [`Gate`]: a
//! call goes out only with the bucket open, never while a record write is
//! in flight (it expects the fence to be the bucket's last message), and a
//! fence never while a record read is (the fence is followed at once by
//! the write). Unreachable, the monitor still steps down on its own clock.
//!
//! Two flags outlive a call: an acquire refused just before the monitor
//! handed its lease back is tried again at once (`retry_acquire`), and a
//! node that handed the lease back says so in its nodedown (`released`).
//! Plain data, time passed in.

use super::{
    coordinator::{KvError, LeaseCall},
    election::{Election, ElectionAction, RoleChange},
};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// What a lease call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Take the lease.
    Acquire,
    /// Keep it.
    Renew,
    /// Renew it right before a record write: its revision is the fence.
    Fence,
    /// Hand it back (leaving or retiring).
    Release,
}

/// The call in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    purpose: Purpose,
    /// When it was sent: the lease counts from here.
    sent: Instant,
}

/// What the rest of the node allows the lease to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Gate {
    /// Connected, with the bucket open: calls may go out.
    pub(crate) reachable: bool,
    /// Leaving or retiring: hand the lease back, never renew nor stand.
    pub(crate) resign: bool,
    /// A record call forbids a lease call now.
    pub(crate) held: bool,
    /// The monitor wants to write the record: renew now, for the fence.
    pub(crate) fence: bool,
}

/// What [`Lease::poll`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Poll {
    /// The call to send.
    pub(crate) call: Option<LeaseCall>,
    /// A change of role (the monitor's lease ran out on its own clock).
    pub(crate) change: Option<RoleChange>,
    /// A fence was wanted, but this node may no longer act as monitor: the
    /// record must not be written.
    pub(crate) fence_lost: bool,
}

/// What the answer to the call in flight meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// No call was in flight: ignore it.
    Unexpected,
    /// The lease was handed back.
    Released,
    /// It could not be handed back; it will expire.
    NotReleased(KvError),
    /// An acquire or renewal succeeded with this revision; for a fence,
    /// the revision is the fence.
    Won {
        purpose: Purpose,
        revision: u64,
        change: Option<RoleChange>,
    },
    /// An acquire or renewal failed: held elsewhere, or unreachable.
    Lost {
        purpose: Purpose,
        error: KvError,
        change: Option<RoleChange>,
    },
}

/// One node's side of the lease, calls included. See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    election: Election,
    /// Every lease message's time to live.
    ttl: Duration,
    /// The encoded (and, with a cluster key, sealed) holder: this node.
    holder: Bytes,
    call: Option<Pending>,
    /// The monitor left while an acquire was in flight: if it fails, try
    /// again at once rather than after the attempt interval.
    retry_acquire: bool,
    /// This node handed its lease back (its nodedown says so).
    released: bool,
}

impl Lease {
    /// A follower that may stand at once, writing `holder` as the key's
    /// value, for a lease of `lease`.
    pub(crate) fn new(lease: Duration, holder: Bytes, now: Instant) -> Self {
        Self {
            election: Election::new(lease, now),
            ttl: Self::ttl_of(lease),
            holder,
            call: None,
            retry_acquire: false,
            released: false,
        }
    }

    /// The lease messages' time to live: the lease in whole seconds,
    /// rounded up (the server's unit), so a lease message never expires
    /// before its holder stops trusting it.
    pub(crate) fn ttl_of(lease: Duration) -> Duration {
        Duration::from_secs(lease.as_millis().div_ceil(1000).max(1) as u64)
    }

    /// [`ttl_of`](Self::ttl_of) this lease.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// What the lease key's value is when this node writes it.
    pub(crate) fn set_holder(&mut self, holder: Bytes) {
        self.holder = holder;
    }

    /// Whether this node may stand (its view is warm, it is not leaving).
    pub(crate) fn set_eligible(&mut self, eligible: bool) {
        self.election.set_eligible(eligible);
    }

    /// Whether this node may act as monitor at `now`.
    pub(crate) fn is_monitor(&self, now: Instant) -> bool {
        self.election.is_monitor(now)
    }

    /// Whether it holds a lease revision it has not given up.
    pub(crate) fn holds_lease(&self) -> bool {
        self.election.holds_lease()
    }

    /// Whether it handed the lease back.
    pub(crate) fn released(&self) -> bool {
        self.released
    }

    /// Whether a fencing renewal is in flight.
    pub(crate) fn is_fencing(&self) -> bool {
        self.call.is_some_and(|c| c.purpose == Purpose::Fence)
    }

    /// Whether any call is in flight.
    pub(crate) fn in_flight(&self) -> bool {
        self.call.is_some()
    }

    /// What is due at `now`, as far as `gate` allows.
    pub(crate) fn poll(&mut self, now: Instant, gate: Gate) -> Poll {
        let mut poll = Poll::default();
        if !gate.reachable {
            // No calls: a monitor still steps down on its own clock.
            poll.change = self.election.poll(now).1;
            return poll;
        }
        if self.call.is_some() {
            return poll;
        }
        if gate.resign {
            if let Some(revision) = self.election.resign(now) {
                let ttl = self.ttl;
                poll.call = Some(self.send(Purpose::Release, now, |_| LeaseCall::Delete {
                    revision,
                    ttl,
                }));
            }
            return poll;
        }
        if gate.held {
            return poll;
        }
        if gate.fence {
            match self.election.fence(now) {
                Some(revision) => {
                    poll.call = Some(self.update(Purpose::Fence, revision, now));
                    return poll;
                }
                None => poll.fence_lost = true,
            }
        }
        let (action, change) = self.election.poll(now);
        poll.change = change;
        poll.call = match action {
            ElectionAction::Wait => None,
            ElectionAction::Acquire => {
                Some(self.send(Purpose::Acquire, now, |lease| LeaseCall::Create {
                    value: lease.holder.clone(),
                    ttl: lease.ttl,
                }))
            }
            ElectionAction::Renew { revision } => Some(self.update(Purpose::Renew, revision, now)),
        };
        poll
    }

    fn update(&mut self, purpose: Purpose, revision: u64, now: Instant) -> LeaseCall {
        self.send(purpose, now, |lease| LeaseCall::Update {
            revision,
            value: lease.holder.clone(),
            ttl: lease.ttl,
        })
    }

    fn send(
        &mut self,
        purpose: Purpose,
        now: Instant,
        call: impl FnOnce(&Self) -> LeaseCall,
    ) -> LeaseCall {
        self.call = Some(Pending { purpose, sent: now });
        call(self)
    }

    /// The answer to the call in flight (the key's new revision).
    pub(crate) fn answered(&mut self, result: Result<u64, KvError>, now: Instant) -> Answer {
        let Some(call) = self.call.take() else {
            return Answer::Unexpected;
        };
        match (call.purpose, result) {
            (Purpose::Release, Ok(_)) => {
                self.released = true;
                Answer::Released
            }
            (Purpose::Release, Err(error)) => Answer::NotReleased(error),
            (purpose, Ok(revision)) => Answer::Won {
                purpose,
                revision,
                change: self.election.won(revision, call.sent),
            },
            (purpose, Err(error)) => {
                let change = self.election.lost(now);
                if std::mem::take(&mut self.retry_acquire) {
                    self.election.attempt_now(now);
                }
                Answer::Lost {
                    purpose,
                    error,
                    change,
                }
            }
        }
    }

    /// The monitor handed its lease back and said nodedown: try to take
    /// it at once, and again as soon as an acquire in flight (perhaps
    /// refused before the release) returns.
    pub(crate) fn monitor_left(&mut self, now: Instant) {
        self.election.attempt_now(now);
        self.retry_acquire = self.call.is_some_and(|c| c.purpose == Purpose::Acquire);
    }

    /// A retiring monitor handed its lease back: try to take it at once.
    pub(crate) fn attempt_now(&mut self, now: Instant) {
        self.election.attempt_now(now);
    }

    /// The connection is gone while handing the lease back: the call will
    /// not complete (the lease will expire).
    pub(crate) fn forget_call(&mut self) {
        self.call = None;
    }

    /// When [`poll`](Self::poll) next has something to do under `gate`:
    /// unreachable, only the monitor's own expiry; reachable, the
    /// election's next attempt, renewal or expiry, unless a call is in
    /// flight or the record holds calls back (their answers come first).
    pub(crate) fn next_deadline(&self, gate: Gate) -> Option<Instant> {
        if !gate.reachable {
            return self.election.valid_until();
        }
        if self.call.is_some() || gate.held {
            return None;
        }
        self.election.next_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn open() -> Gate {
        Gate {
            reachable: true,
            ..Gate::default()
        }
    }

    fn holder() -> Bytes {
        Bytes::from_static(b"{\"id\":\"me\"}")
    }

    /// A lease held since `t0` with revision 3.
    fn monitor(t0: Instant) -> Lease {
        let mut lease = Lease::new(LEASE, holder(), t0);
        let poll = lease.poll(t0, open());
        assert!(matches!(poll.call, Some(LeaseCall::Create { .. })));
        let answer = lease.answered(Ok(3), t0);
        assert!(matches!(
            answer,
            Answer::Won {
                change: Some(_),
                ..
            }
        ));
        lease
    }

    #[test]
    fn the_ttl_is_the_lease_in_whole_seconds_rounded_up() {
        for (lease, ttl) in [(500, 1), (1_000, 1), (1_001, 2), (5_000, 5), (8_500, 9)] {
            assert_eq!(Lease::ttl_of(ms(lease)), ms(ttl * 1_000), "{lease} ms");
        }
    }

    #[test]
    fn one_call_at_a_time_and_nothing_due_while_it_is_in_flight() {
        let t0 = Instant::now();
        let mut lease = Lease::new(LEASE, holder(), t0);
        assert_eq!(lease.next_deadline(open()), Some(t0));
        let poll = lease.poll(t0, open());
        assert_eq!(
            poll.call,
            Some(LeaseCall::Create {
                value: holder(),
                ttl: LEASE
            })
        );
        assert!(lease.in_flight());
        assert_eq!(lease.next_deadline(open()), None);
        assert_eq!(lease.poll(t0 + ms(600), open()), Poll::default());
        // Refused: held elsewhere; the next attempt after the interval.
        let answer = lease.answered(Err(KvError::Conflict("held".into())), t0 + ms(2));
        assert!(matches!(
            answer,
            Answer::Lost {
                purpose: Purpose::Acquire,
                change: None,
                ..
            }
        ));
        assert_eq!(lease.next_deadline(open()), Some(t0 + ms(502)));
        assert_eq!(lease.answered(Ok(9), t0), Answer::Unexpected);
    }

    #[test]
    fn the_monitor_renews_when_due_and_counts_from_when_it_sent() {
        let t0 = Instant::now();
        let mut lease = monitor(t0);
        let renew_at = t0 + (LEASE - ms(1_000)) / 3;
        assert_eq!(lease.next_deadline(open()), Some(renew_at));
        assert_eq!(lease.poll(renew_at - ms(1), open()), Poll::default());
        let poll = lease.poll(renew_at, open());
        assert!(matches!(
            poll.call,
            Some(LeaseCall::Update { revision: 3, .. })
        ));
        // The answer came late: the lease counts from the renewal's sending.
        let answer = lease.answered(Ok(4), renew_at + ms(900));
        assert!(matches!(
            answer,
            Answer::Won {
                purpose: Purpose::Renew,
                revision: 4,
                change: None
            }
        ));
        assert!(lease.is_monitor(renew_at + LEASE - ms(1_001)));
        assert!(!lease.is_monitor(renew_at + LEASE - ms(1_000)));
    }

    #[test]
    fn the_deadline_follows_the_gate() {
        let t0 = Instant::now();
        // (gate, the deadline of a monitor whose lease was won at t0)
        let renew_at = t0 + (LEASE - ms(1_000)) / 3;
        let expires = t0 + LEASE - ms(1_000);
        let cases = [
            (open(), Some(renew_at)),
            // Cut off (or the bucket closed): no renewal can go out, but
            // the monitor steps down on its own clock.
            (Gate::default(), Some(expires)),
            // A record write in flight: its answer comes first.
            (
                Gate {
                    held: true,
                    ..open()
                },
                None,
            ),
        ];
        for (gate, deadline) in cases {
            let lease = monitor(t0);
            assert_eq!(lease.next_deadline(gate), deadline, "{gate:?}");
        }
        // Unreachable, a follower has nothing to do.
        let follower = Lease::new(LEASE, holder(), t0);
        assert_eq!(follower.next_deadline(Gate::default()), None);
    }

    #[test]
    fn unreachable_a_monitor_only_steps_down_on_its_own_clock() {
        let t0 = Instant::now();
        let mut lease = monitor(t0);
        let renew_at = t0 + (LEASE - ms(1_000)) / 3;
        assert_eq!(lease.poll(renew_at, Gate::default()), Poll::default());
        let expires = t0 + LEASE - ms(1_000);
        let poll = lease.poll(expires, Gate::default());
        assert_eq!(poll.call, None);
        assert_eq!(poll.change, Some(RoleChange::SteppedDown { fence: 3 }));
        assert!(!lease.holds_lease());
        assert_eq!(lease.next_deadline(Gate::default()), None);
    }

    #[test]
    fn a_fence_is_a_renewal_right_now_unless_the_lease_is_no_longer_trusted() {
        let t0 = Instant::now();
        let fence = Gate {
            fence: true,
            ..open()
        };
        let mut lease = monitor(t0);
        let poll = lease.poll(t0 + ms(10), fence);
        assert!(matches!(
            poll.call,
            Some(LeaseCall::Update { revision: 3, .. })
        ));
        assert!(lease.is_fencing());
        let answer = lease.answered(Ok(5), t0 + ms(11));
        assert!(matches!(
            answer,
            Answer::Won {
                purpose: Purpose::Fence,
                revision: 5,
                ..
            }
        ));
        assert!(!lease.is_fencing());
        // Held back by a record read, then too late: no fence, no write.
        let mut lease = monitor(t0);
        assert_eq!(
            lease.poll(
                t0,
                Gate {
                    held: true,
                    ..fence
                }
            ),
            Poll::default()
        );
        let late = t0 + LEASE;
        let poll = lease.poll(late, fence);
        assert!(poll.fence_lost);
        assert_eq!(poll.change, Some(RoleChange::SteppedDown { fence: 3 }));
    }

    #[test]
    fn resigning_hands_the_lease_back_once_and_says_so() {
        let t0 = Instant::now();
        let resign = Gate {
            resign: true,
            ..open()
        };
        let mut lease = monitor(t0);
        let poll = lease.poll(t0 + ms(5), resign);
        assert_eq!(
            poll.call,
            Some(LeaseCall::Delete {
                revision: 3,
                ttl: LEASE
            })
        );
        assert!(!lease.released());
        assert_eq!(lease.answered(Ok(4), t0 + ms(6)), Answer::Released);
        assert!(lease.released());
        lease.set_eligible(false);
        assert_eq!(lease.poll(t0 + ms(7), resign), Poll::default());
        assert_eq!(lease.next_deadline(resign), None);
        // A follower has nothing to hand back.
        let mut follower = Lease::new(LEASE, holder(), t0);
        assert_eq!(follower.poll(t0, resign), Poll::default());
    }

    #[test]
    fn an_acquire_refused_just_before_a_handover_is_tried_again_at_once() {
        let t0 = Instant::now();
        let mut lease = Lease::new(LEASE, holder(), t0);
        lease.poll(t0, open());
        // The monitor's nodedown arrives while the acquire is in flight.
        lease.monitor_left(t0 + ms(1));
        lease.answered(Err(KvError::Conflict("held".into())), t0 + ms(2));
        assert_eq!(lease.next_deadline(open()), Some(t0 + ms(2)));
        let poll = lease.poll(t0 + ms(2), open());
        assert!(matches!(poll.call, Some(LeaseCall::Create { .. })));
        // Only once.
        lease.answered(Err(KvError::Conflict("held".into())), t0 + ms(3));
        assert_eq!(lease.next_deadline(open()), Some(t0 + ms(503)));
    }
}
