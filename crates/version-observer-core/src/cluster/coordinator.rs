//! One node's side of the cluster protocol, as a state machine with no I/O.
//!
//! In the manner of quinn-proto: the driver feeds in what happened, with the
//! time it happened —
//!
//! - [`handle_connected`](Coordinator::handle_connected) /
//!   [`handle_disconnected`](Coordinator::handle_disconnected): the NATS connection;
//! - [`handle_message`](Coordinator::handle_message): any message on the
//!   cluster's subjects or this node's reply inbox (raw bytes: checking,
//!   decoding and dropping bad input happen here);
//! - [`handle_buckets`](Coordinator::handle_buckets),
//!   [`handle_lease`](Coordinator::handle_lease),
//!   [`handle_record`](Coordinator::handle_record),
//!   [`handle_record_written`](Coordinator::handle_record_written): the
//!   result of the KV call it was asked for;
//! - [`handle_timeout`](Coordinator::handle_timeout): the deadline from
//!   [`poll_timeout`](Coordinator::poll_timeout) has passed;
//! - [`begin_leave`](Coordinator::begin_leave) and
//!   [`begin_retire`](Coordinator::begin_retire): the node is told to stop;
//!
//! and takes out what to do with [`poll_action`](Coordinator::poll_action):
//! publish, call KV, or show browsers a new [`ClusterView`].
//!
//! # The caller's rules
//!
//! 1. **Time is monotonic.** Every `now` passed in is an [`Instant`] from one
//!    monotonic clock, never earlier than the `now` of the call before. (The
//!    wall clock, [`set_unix_time_ms`](Coordinator::set_unix_time_ms), is
//!    only stamped on records; nothing is decided on it.)
//! 2. **Drain after every call.** After any `handle_*` or `begin_*` call
//!    (at the latest before waiting for the next event), call
//!    [`poll_action`](Coordinator::poll_action) until it returns `None` and
//!    carry the actions out in that order: [`Action::Publish`] (fire and
//!    forget, bounded), the KV calls (rule 4, beside the coordinator), and
//!    [`Action::View`] (what browsers are told now).
//! 3. **Wake up on time.** Call [`handle_timeout`](Coordinator::handle_timeout)
//!    no later than the moment [`poll_timeout`](Coordinator::poll_timeout)
//!    returned; ask again after every call, as any call may move it.
//!    Calling it earlier or more often is harmless. Right after any
//!    `handle_*` or `begin_*` call at `now`, `poll_timeout(now)` is `None` or
//!    later than `now`, so a driver that sleeps until then never spins.
//! 4. **Answer every KV call, once, with its own handler.**
//!    [`Action::OpenBucket`] is answered by
//!    [`handle_buckets`](Coordinator::handle_buckets), [`Action::Lease`] by
//!    [`handle_lease`](Coordinator::handle_lease), [`Action::ReadRecord`] by
//!    [`handle_record`](Coordinator::handle_record) and
//!    [`Action::WriteRecord`] by
//!    [`handle_record_written`](Coordinator::handle_record_written). A call
//!    that does not complete within a bound
//!    ([`Timings::kv_timeout`]) is answered with [`KvError::Unavailable`]; an
//!    answer that arrives after a disconnect is still passed in. At most one
//!    bucket open, one lease call and one record call are outstanding at a
//!    time, and the coordinator never waits for one: presence, expiries and
//!    replies are handled while a KV call is in flight, so a slow JetStream
//!    cannot make members flap.
//! 5. **Subscribe before connecting.** Hold the
//!    [`subscriptions`](Coordinator::subscriptions) (every cluster subject,
//!    and this node's reply inbox), and report each (re)connection with
//!    [`handle_connected`](Coordinator::handle_connected) and each loss with
//!    [`handle_disconnected`](Coordinator::handle_disconnected).
//! 6. **Stop once it has left.** After [`has_left`](Coordinator::has_left)
//!    (nodedown said), flush what was published and stop calling.
//!
//! # What it does
//!
//! - **presence**: nodeup on every connect, a heartbeat every third of the
//!   node timeout while connected (`heartbeat.rs`),
//!   nodedown when leaving;
//! - **membership** ([`MembershipView`]), fed by presence and replies;
//! - **the bucket** (`buckets.rs`): opened (created if
//!   missing) on every connect, and again after a KV call could not complete;
//! - **the lease** (`lease.rs`, around [`Election`](super::election::Election)):
//!   acquire and renew it while warm, fence the record's writes with it,
//!   hand it back when leaving or retiring;
//! - as monitor, **rounds** ([`Round`], [`Scheduler`]): a version request with
//!   a reply subject of this node's inbox, answers counted until complete or
//!   timed out; a settled round leads to a **decision** ([`monitor::decide`])
//!   on a fresh read of the record, a fencing renewal of the lease, and a
//!   compare-and-set write of the record (`record.rs`);
//! - **the record** is read from KV on connect, every few seconds, and
//!   whenever a `settled`/`announce` notice says it changed: a notice is only a
//!   hint, never taken as the record itself;
//! - **retiring** ([`super::retire`]) and **leaving**: the node's
//!   life from serving to nodedown;
//! - **what it receives** passes one set of checks (`inbound.rs`, shared
//!   with the [`Watcher`](super::watcher::Watcher)): the MAC, the subject,
//!   decoding, release metadata; what fails is dropped and counted
//!   ([`dropped`](Coordinator::dropped)).
//!
//! Each part keeps its own state and says when it next has something to do;
//! [`poll_timeout`](Coordinator::poll_timeout) is the earliest of those
//! deadlines, each given only while that part could act on it.

use super::{
    buckets::Buckets,
    election::RoleChange,
    heartbeat::Heartbeat,
    inbound::{Inbound, Listener, Message},
    lease::{self, Answer, Lease, Purpose},
    membership::{Agreement, Change, MembershipView, Process},
    monitor::{self, Decision, Round, RoundOutcome, Scheduler},
    record::Record,
    retire::{self, RetireEnd, Retirement},
};
use crate::{
    auth::ClusterKey,
    compat::Compat,
    protocol::{self, *},
    release::Release,
    report::{ClusterState, ClusterView},
    status::{ClusterStatus, Counters, Dropped, RoundStats},
    timing::{Timings, ROUND_BACKOFF},
};
use bytes::Bytes;
use semver::Version;
use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

/// Who this node is. `incarnation` tells one process from an earlier one
/// with the same id: larger is newer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// This node's id ([`valid_node_id`]),
    /// sent in every presence message and version reply.
    pub id: String,
    /// The version this node runs and reports.
    pub version: Version,
    /// This process's incarnation: a random number drawn at start, so two
    /// processes with one id are two members.
    pub incarnation: u64,
}

/// The cluster's KV bucket, as the driver should create it if missing.
///
/// One bucket holds both the lease ([`LEASE_KEY`]) and the record
/// ([`STATE_KEY`]), so they are one stream: the record is written expecting
/// the stream's last sequence to be the monitor's own fencing renewal, and a
/// deposed monitor's write, however late, cannot land. The lease is a
/// message with its own time to live (`Nats-TTL`), so the bucket keeps
/// everything else for ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    /// The bucket's name ([`Names::bucket`]).
    pub name: String,
    /// A description for operators, stored with the bucket.
    pub description: &'static str,
    /// Stream replicas (in a NATS cluster; 1 on a single server).
    pub replicas: usize,
    /// The first sequence of a bucket created anew: above every revision
    /// this node has seen, so revisions (and fences) never go backwards
    /// when a bucket is lost and recreated.
    pub first_sequence: u64,
    /// The longest a lease message lives ([`LeaseCall`] TTLs): an existing
    /// bucket whose `max_age` is shorter would drop a lease its holder still
    /// trusts, and is refused.
    pub lease_ttl: Duration,
}

/// A call on the lease key ([`LEASE_KEY`]). Every lease message carries a
/// time to live, `ttl`: the lease rounded up to whole seconds, never
/// shorter than the holder trusts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCall {
    /// Take the key if nobody holds it (absent, deleted or expired); answer
    /// with the new revision, or [`KvError::Conflict`] if it is held.
    Create {
        /// The encoded [`LeaseHolder`] naming this node.
        value: Bytes,
        /// The message's time to live.
        ttl: Duration,
    },
    /// Update the key expecting `revision`; answer with the new revision.
    Update {
        /// The revision this node last wrote; any other makes the call fail
        /// with [`KvError::Conflict`].
        revision: u64,
        /// The encoded [`LeaseHolder`] naming this node.
        value: Bytes,
        /// The message's time to live.
        ttl: Duration,
    },
    /// Delete the key expecting `revision` (a delete marker, itself with a
    /// time to live).
    Delete {
        /// The revision this node holds; any other makes the call fail.
        revision: u64,
        /// The marker's time to live.
        ttl: Duration,
    },
}

/// What a read of the record found: the key's last revision, and its value
/// unless that revision is a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The revision (stream sequence) of the key's last message.
    pub revision: u64,
    /// Its value; `None` for a delete or purge marker.
    pub value: Option<Bytes>,
}

/// What the driver should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Publish `payload` on `subject` (with `reply` as its reply subject).
    Publish {
        /// A cluster subject, or the reply inbox of a version request.
        subject: String,
        /// `Some` only for a version request: this node's inbox subject for
        /// the round's replies.
        reply: Option<String>,
        /// The JSON-encoded message ([`protocol::encode`]).
        payload: Bytes,
        /// With a cluster key: the message's MAC, for the
        /// [`MAC_HEADER`](crate::auth::MAC_HEADER) header.
        mac: Option<String>,
    },
    /// Open the bucket, creating it as specified if it is missing, and
    /// check an existing one can be used; answer with
    /// [`Coordinator::handle_buckets`] ([`KvError::Incompatible`] if not).
    OpenBucket(BucketSpec),
    /// Answer with [`Coordinator::handle_lease`].
    Lease(LeaseCall),
    /// Read [`STATE_KEY`]; answer with [`Coordinator::handle_record`].
    ReadRecord,
    /// Write [`STATE_KEY`] only if the bucket's last message is still the
    /// fencing renewal `fence` (no other monitor has written since) and the
    /// record's last revision is still `expected_revision` (0: none).
    /// Answer with [`Coordinator::handle_record_written`].
    WriteRecord {
        /// The stream's expected last sequence: this monitor's lease renewal.
        fence: u64,
        /// The record key's expected last revision (0 when it has none).
        expected_revision: u64,
        /// The encoded [`SettledRecord`].
        value: Bytes,
    },
    /// What browsers should now be told.
    View(ClusterView),
}

/// Why a KV call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key's revision was not the expected one (or it already existed).
    #[error("revision conflict: {0}")]
    Conflict(String),
    /// The call did not complete (timeout, no JetStream, connection lost).
    #[error("KV unavailable: {0}")]
    Unavailable(String),
    /// The bucket exists with settings this node cannot use safely.
    #[error("the cluster's KV bucket cannot be used: {0}")]
    Incompatible(String),
}

/// A retiring node as its status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiringStatus {
    /// How long ago it started retiring.
    pub since: Duration,
    /// How long it may still retire at most.
    pub remaining: Duration,
    /// Whether an open page still needs it (or it cannot tell).
    pub needed: bool,
}

/// How many of the records it has seen a node lists in its status.
pub const RECENT_RECORDS: usize = 8;

/// The moments a coordinator wakes up for, one per part (quinn-proto's
/// `Timer`, derived from each part's state instead of stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// A silent member expires (the membership view).
    Expiry,
    /// The view becomes warm: elections and decisions may start.
    WarmUp,
    /// The next heartbeat.
    Heartbeat,
    /// The retirement ends (drained, or out of time).
    Retirement,
    /// The lease: the next attempt, renewal, or the monitor's own expiry.
    Lease,
    /// Opening the bucket (again).
    Buckets,
    /// The periodic read of the record.
    Record,
    /// The round in progress ends, answered or not.
    Round,
    /// The next round is due.
    Scheduler,
}

/// A node's life, from serving to nodedown.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Life {
    /// A member like any other.
    Serving,
    /// Retiring ([`Coordinator::begin_retire`]): still a member, serving
    /// pages that need its version, no longer counted nor standing.
    Retiring {
        retirement: Retirement,
        /// Whether an open page still needs it, as last computed.
        needed: bool,
    },
    /// Handing the lease back before saying nodedown (`retired`: after a
    /// retirement).
    Releasing { retired: bool },
    /// Nodedown published: nothing more to do (`retired` still decides
    /// whether a lease that comes back late is handed back).
    Left { retired: bool },
}

impl Life {
    /// Still a member: neither leaving nor gone.
    fn is_member(&self) -> bool {
        matches!(self, Life::Serving | Life::Retiring { .. })
    }

    /// Whether it retires or retired: it answers no version request.
    fn retired(&self) -> bool {
        matches!(
            self,
            Life::Retiring { .. }
                | Life::Releasing { retired: true }
                | Life::Left { retired: true }
        )
    }
}

/// One node's cluster protocol. See the [module docs](self).
#[derive(Debug)]
pub struct Coordinator {
    me: Identity,
    names: Names,
    /// This node's reply inbox: round `n`'s replies come to `<inbox>.<n>`.
    inbox: String,
    compat: Compat,
    timings: Timings,
    /// The cluster's shared key, if messages are authenticated: what this
    /// node sends is signed with it.
    key: Option<ClusterKey>,
    /// The checks of what it receives.
    inbound: Inbound,
    /// This node's release metadata, sent with its version replies.
    release: Option<Release>,
    /// The bucket's replicas, when this node creates it.
    replicas: usize,
    connected: bool,
    life: Life,
    // ---- the parts, each with its own state and deadline
    view: MembershipView,
    heartbeat: Heartbeat,
    buckets: Buckets,
    lease: Lease,
    record: Record,
    scheduler: Scheduler,
    round: Option<Round>,
    // ---- what it knows and shows
    /// Rounds started so far (the last round's number).
    rounds: u64,
    last_round: Option<RoundStats>,
    announced: Option<SettledNotice>,
    /// The records this node has seen, newest first (at most [`RECENT_RECORDS`]).
    recent: VecDeque<SettledNotice>,
    /// The largest revision (stream sequence) seen.
    max_revision: u64,
    was_warm: bool,
    /// Bumped whenever anything the status shows changes.
    changes: u64,
    shown: Option<ClusterView>,
    dropped: Dropped,
    /// Running totals for metrics (`dropped` is copied in when shown).
    counters: Counters,
    /// This node's open tabs by page version, for its presence messages.
    tabs: BTreeMap<String, u64>,
    /// The wall clock, as the driver last told it (milliseconds since the
    /// Unix epoch): only stamped on records, never used to decide anything.
    unix_ms: u64,
    actions: VecDeque<Action>,
}

impl Coordinator {
    /// A coordinator for `me` in the cluster `names`, whose round replies
    /// will come to `<inbox>.<round>` (the driver subscribes to `<inbox>.*`).
    /// It starts disconnected.
    pub fn new(
        me: Identity,
        names: Names,
        inbox: String,
        compat: Compat,
        timings: Timings,
        now: Instant,
    ) -> Self {
        let holder = holder(&me, None);
        let listener = Listener::Node {
            inbox: inbox.clone(),
        };
        Self {
            inbound: Inbound::new(names.clone(), listener, None),
            view: MembershipView::new(timings.node_timeout),
            heartbeat: Heartbeat::new(timings.heartbeat_interval()),
            buckets: Buckets::new(now),
            lease: Lease::new(timings.lease, holder, now),
            record: Record::new(now),
            scheduler: Scheduler::new(timings.safety_interval, ROUND_BACKOFF, now),
            round: None,
            me,
            names,
            inbox,
            compat,
            timings,
            key: None,
            release: None,
            replicas: 1,
            connected: false,
            life: Life::Serving,
            rounds: 0,
            last_round: None,
            announced: None,
            recent: VecDeque::new(),
            max_revision: 0,
            was_warm: false,
            changes: 1,
            shown: None,
            dropped: Dropped::default(),
            counters: Counters::default(),
            tabs: BTreeMap::new(),
            unix_ms: 0,
            actions: VecDeque::new(),
        }
    }

    /// Authenticate every message and KV value with `key` (see
    /// [`auth`](crate::auth)): what this node sends is signed, and what it
    /// receives without a valid MAC is dropped and counted.
    pub fn with_key(mut self, key: ClusterKey) -> Self {
        self.lease.set_holder(holder(&self.me, Some(&key)));
        self.inbound.set_key(key.clone());
        self.key = Some(key);
        self
    }

    /// Send `release` (this node's release metadata) with every version
    /// reply, so that the monitor records it with the version once the
    /// cluster settles on it. An empty release, or one that fails
    /// [`Release::validate`], is not sent (drivers check it at start-up).
    pub fn with_release(mut self, release: Release) -> Self {
        self.release = match release.validate() {
            Ok(()) => release.non_empty(),
            Err(e) => {
                tracing::error!(error = %e, "not sending invalid release metadata");
                None
            }
        };
        self
    }

    /// Create the bucket, if this node is the one to create it, with this
    /// many replicas (for a NATS cluster; default 1).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// The subscriptions the driver must hold: every cluster subject, and
    /// this node's reply inbox.
    pub fn subscriptions(&self) -> [String; 2] {
        [self.names.all(), format!("{}.*", self.inbox)]
    }

    /// Who this node is, as given to [`new`](Self::new).
    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// The names of the cluster's subjects and buckets.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether the first record read after connecting is done (so a browser
    /// that connects now gets the announced version at once).
    pub fn is_ready(&self) -> bool {
        self.record.is_ready()
    }

    /// Whether this node is the monitor: it holds the lease, by its own clock.
    pub fn is_monitor(&self, now: Instant) -> bool {
        self.lease.is_monitor(now)
    }

    /// [`is_monitor`](Self::is_monitor), by the wire format's word
    /// (`leader` in presence messages), for existing callers.
    #[doc(hidden)]
    pub fn is_leader(&self, now: Instant) -> bool {
        self.is_monitor(now)
    }

    /// Whether nodedown has been said (after [`begin_leave`](Self::begin_leave),
    /// or at the end of a retirement).
    pub fn has_left(&self) -> bool {
        matches!(self.life, Life::Left { .. })
    }

    /// Whether this node is retiring (and has not left yet).
    pub fn is_retiring(&self) -> bool {
        matches!(self.life, Life::Retiring { .. })
    }

    /// This node's retirement at `now`, while it retires.
    pub fn retiring_status(&self, now: Instant) -> Option<RetiringStatus> {
        let Life::Retiring { retirement, needed } = &self.life else {
            return None;
        };
        Some(RetiringStatus {
            since: now.saturating_duration_since(retirement.started()),
            remaining: retirement.until().saturating_duration_since(now),
            needed: *needed,
        })
    }

    /// Messages dropped since this coordinator was created, by reason
    /// ([`status`](Self::status) shows their total).
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// Counts every change of what [`status`](Self::status) shows (but the
    /// members' ages): a driver republishes the status when it moves.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The wall clock now, in milliseconds since the Unix epoch, for the
    /// `at_ms` stamp of the records this node writes. Decisions never depend
    /// on it (they use the monotonic `now` of each call).
    pub fn set_unix_time_ms(&mut self, unix_ms: u64) {
        self.unix_ms = unix_ms;
    }

    // ---- events ---------------------------------------------------------

    /// The connection to NATS is up (first time or again).
    pub fn handle_connected(&mut self, now: Instant) {
        if self.connected {
            return self.step(now);
        }
        self.connected = true;
        self.changes += 1;
        self.counters.nats_connects += 1;
        self.view.start_observing(now);
        // Nodeup at once; heartbeats follow.
        if self.life.is_member() {
            self.publish_presence(PresenceKind::Up, now);
            self.heartbeat.start(now);
        }
        // Open the buckets again (creating what is missing): a NATS restart
        // may have lost the lease bucket (memory storage), or anything else.
        self.buckets.connected(now);
        self.step(now);
    }

    /// The connection to NATS is lost: the view is unknown until it returns.
    pub fn handle_disconnected(&mut self, now: Instant) {
        if !self.connected {
            return self.step(now);
        }
        self.connected = false;
        self.changes += 1;
        self.view.stop_observing();
        self.heartbeat.stop();
        if matches!(self.life, Life::Releasing { .. }) {
            // The release cannot complete now; the lease will expire.
            self.lease.forget_call();
        }
        self.step(now);
    }

    /// A message on one of [`subscriptions`](Self::subscriptions).
    pub fn handle_message(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        payload: &[u8],
        mac: Option<&str>,
        now: Instant,
    ) {
        let dropped = self.dropped.total();
        let message = self
            .inbound
            .message(subject, payload, mac, &mut self.dropped);
        if self.dropped.total() != dropped {
            self.changes += 1;
        }
        match message {
            None => {}
            Some(Message::Presence(kind, presence)) => self.on_presence(kind, presence, now),
            Some(Message::VersionRequest(_)) => self.on_version_request(reply),
            // Only a hint: the record itself is read from KV.
            Some(Message::Notice(_)) => self.record.want_read(),
            Some(Message::Reply(round, answer)) => self.on_reply(round, answer, now),
        }
        self.step(now);
    }

    /// The result of [`Action::OpenBucket`].
    pub fn handle_buckets(&mut self, result: Result<(), KvError>, now: Instant) {
        self.buckets.opened(&result, now);
        match &result {
            Ok(()) => self.record.want_read(),
            Err(e) => {
                match e {
                    KvError::Incompatible(_) => {
                        tracing::error!(error = %e, "cannot coordinate until the bucket is fixed")
                    }
                    _ => tracing::warn!(error = %e, "cannot open the cluster's KV bucket yet"),
                }
                self.record.mark_ready();
            }
        }
        self.step(now);
    }

    /// The result of an [`Action::Lease`]: the key's new revision (any value
    /// for a delete).
    pub fn handle_lease(&mut self, result: Result<u64, KvError>, now: Instant) {
        match self.lease.answered(result, now) {
            // Not asked for: nothing to do with it.
            Answer::Unexpected => {}
            Answer::Released => {
                tracing::info!("released the monitor lease");
                if self.life.is_member() && self.connected {
                    // Retiring: tell the others the lease is free now.
                    self.publish_presence(PresenceKind::Heartbeat, now);
                }
            }
            Answer::NotReleased(e) => {
                tracing::warn!(error = %e, "could not release the lease; it will expire");
            }
            Answer::Won {
                purpose,
                revision,
                change,
            } => {
                if let Some(change) = change {
                    self.role_changed(change, now);
                }
                self.saw_revision(revision);
                if purpose == Purpose::Fence {
                    self.fenced(revision, now);
                }
            }
            Answer::Lost {
                purpose,
                error,
                change,
            } => {
                self.buckets.failed(&error, now);
                match purpose {
                    Purpose::Acquire => tracing::debug!(error = %error, "lease held elsewhere"),
                    Purpose::Fence => {
                        tracing::warn!(error = %error, "lost the lease before writing the record; not writing");
                        self.record.abandon();
                    }
                    _ => tracing::warn!(error = %error, "lease renewal failed"),
                }
                if let Some(change) = change {
                    self.role_changed(change, now);
                }
            }
        }
        self.step(now);
    }

    /// The result of [`Action::ReadRecord`]: the value and its revision, or
    /// `None` when there is no record.
    pub fn handle_record(&mut self, result: Result<Option<Entry>, KvError>, now: Instant) {
        let fresh = self.record.read_answered();
        let (revision, current) = match result {
            Ok(None) => (0, None),
            Ok(Some(Entry {
                revision,
                value: None,
            })) => (revision, None),
            Ok(Some(Entry {
                revision,
                value: Some(value),
            })) => {
                self.saw_revision(revision);
                (revision, self.read_record(revision, &value))
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the settled record");
                self.buckets.failed(&e, now);
                if fresh && self.record.take_reading().is_some() {
                    // Try the decision again with the next round.
                    self.scheduler.collect_now(now);
                }
                self.step(now);
                return;
            }
        };
        if let Some(notice) = &current {
            self.apply(notice.clone());
        }
        if fresh {
            if let Some((version, release)) = self.record.take_reading() {
                self.decide(version, release, revision, current, now);
            }
        }
        self.step(now);
    }

    /// The record in a KV value, if it passes the inbound checks.
    fn read_record(&mut self, revision: u64, value: &[u8]) -> Option<SettledNotice> {
        let dropped = self.dropped.total();
        let notice = self.inbound.record(revision, value, &mut self.dropped);
        if self.dropped.total() != dropped {
            self.changes += 1;
        }
        notice
    }

    /// The result of [`Action::WriteRecord`]: the record's new revision.
    pub fn handle_record_written(&mut self, result: Result<u64, KvError>, now: Instant) {
        match (result, self.record.written()) {
            (Ok(revision), Some(record)) => {
                let kind = record.kind;
                let notice = SettledNotice { revision, record };
                let payload = protocol::encode(&notice);
                self.publish(self.names.settled(), payload.clone());
                if kind == RecordKind::Announcement {
                    self.counters.announcements_written += 1;
                    tracing::info!(version = %notice.record.version, previous = ?notice.record.previous,
                        fence = notice.record.fence, revision, "announcing a new version");
                    self.publish(self.names.announce(), payload);
                } else {
                    self.counters.baselines_written += 1;
                    tracing::info!(version = %notice.record.version, fence = notice.record.fence,
                        revision, "recorded the cluster's baseline version");
                }
                self.apply(notice);
            }
            (Ok(_), None) => self.record.want_read(),
            (Err(e), _) => {
                self.buckets.failed(&e, now);
                tracing::warn!(error = %e, "the settled record was not written; re-reading");
                self.record.want_read();
                self.scheduler.collect_now(now);
            }
        }
        self.step(now);
    }

    /// The deadline from [`poll_timeout`](Self::poll_timeout) has passed (or
    /// any other moment: calling it early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.step(now);
    }

    /// Starts leaving the cluster gracefully: hand the lease back first (so
    /// whoever hears the nodedown can take it at once), then say nodedown.
    /// Done when [`has_left`](Self::has_left).
    pub fn begin_leave(&mut self, now: Instant) {
        if !self.life.is_member() {
            return self.step(now);
        }
        self.life = Life::Releasing {
            retired: self.life.retired(),
        };
        self.heartbeat.stop();
        self.round = None;
        self.record.abandon();
        self.step(now);
    }

    /// Starts retiring ([`super::retire`]): hand the lease back if
    /// this node holds it, say "retiring" in every presence message from
    /// now on, stop answering version requests and standing for the lease,
    /// and leave (nodedown, [`has_left`](Self::has_left)) once no open page
    /// has needed this node for `grace`, or after `retire_for`. Ignored once
    /// retiring or leaving; [`begin_leave`](Self::begin_leave) still ends it
    /// at once.
    pub fn begin_retire(&mut self, now: Instant, retire_for: Duration, grace: Duration) {
        if self.life != Life::Serving {
            return self.step(now);
        }
        tracing::info!(
            ?retire_for,
            ?grace,
            "retiring: serving forwarded requests of this version until no page needs it"
        );
        self.life = Life::Retiring {
            retirement: Retirement::new(now, retire_for, grace),
            needed: true,
        };
        self.round = None;
        self.record.abandon();
        self.changes += 1;
        // Say it at once: the monitor stops waiting for this node.
        if self.connected {
            self.publish_presence(PresenceKind::Heartbeat, now);
        }
        self.step(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next:
    /// the earliest moment one of the coordinator's parts has something to
    /// do (`None`: only an event can change anything). Right after any
    /// `handle_*` or `begin_*` call at `now`, it is later than `now`.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if self.has_left() {
            return None;
        }
        self.timers(now).into_iter().filter_map(|(_, at)| at).min()
    }

    /// Every part's next deadline, while that part could act on it.
    pub(super) fn timers(&self, now: Instant) -> [(Timer, Option<Instant>); 9] {
        let reachable = self.reachable();
        let connected = |at: Option<Instant>| at.filter(|_| self.connected);
        let retirement = match &self.life {
            Life::Retiring { retirement, .. } => Some(retirement.next_deadline()),
            _ => None,
        };
        let next_round = (self.monitoring(now) && self.may_start_round(now))
            .then(|| self.scheduler.next_round());
        [
            (Timer::Expiry, self.view.next_expiry()),
            (Timer::WarmUp, self.view.warm_at().filter(|w| *w > now)),
            (Timer::Heartbeat, self.heartbeat.next_deadline()),
            (Timer::Retirement, retirement),
            (Timer::Lease, self.lease.next_deadline(self.lease_gate())),
            (Timer::Buckets, connected(self.buckets.next_deadline())),
            (
                Timer::Record,
                self.record
                    .next_deadline(reachable, self.lease.is_fencing()),
            ),
            (
                Timer::Round,
                connected(self.round.as_ref().map(|r| r.deadline)),
            ),
            (Timer::Scheduler, connected(next_round)),
        ]
    }

    // ---- what the driver shows ------------------------------------------

    /// What browsers should be told now.
    pub fn view(&self, now: Instant) -> ClusterView {
        let (state, settled_version) = match (self.connected, self.view.agreement(now)) {
            (true, Agreement::Settled(v)) => (ClusterState::Settled, Some(v)),
            (true, Agreement::Mixed(_)) => (ClusterState::Mixed, None),
            _ => (ClusterState::Unknown, None),
        };
        ClusterView {
            state,
            settled_version,
            announced_version: self.announced.as_ref().map(|n| n.record.version.clone()),
            announced_revision: self.announced.as_ref().map(|n| n.revision),
            compat: self.compat,
            announced_release: self
                .announced
                .as_ref()
                .and_then(|n| n.record.release.clone()),
        }
    }

    /// This node's open tabs by page version, sent with its next nodeup or
    /// heartbeat (fleet views add them up across the cluster).
    pub fn set_tabs(&mut self, tabs: BTreeMap<String, u64>) {
        self.tabs = tabs;
    }

    /// Running totals since this coordinator was created (for metrics).
    pub fn counters(&self) -> Counters {
        Counters {
            dropped: self.dropped,
            ..self.counters.clone()
        }
    }

    /// This node's view of its cluster, for `GET /api/cluster`.
    pub fn status(&self, now: Instant) -> ClusterStatus {
        let view = self.view(now);
        let monitor = self.lease.is_monitor(now);
        let members = self
            .view
            .members()
            .map(|m| {
                let me = m.id == self.me.id && m.incarnation == self.me.incarnation;
                m.status(now, if me { monitor } else { m.monitor })
            })
            .collect();
        // The wire's word for the monitor is `leader`.
        let leader = if monitor {
            Some(self.me.id.clone())
        } else {
            self.view.monitor().map(|m| m.id.clone())
        };
        ClusterStatus {
            cluster: Some(self.names.cluster().to_owned()),
            node_id: self.me.id.clone(),
            connected: self.connected,
            leader,
            this_node_leads: monitor,
            state: view.state,
            settled_version: view.settled_version,
            announced: self.announced.clone(),
            members,
            last_round: self.last_round.clone(),
            dropped_messages: self.dropped.total(),
            counters: self.counters(),
            recent_records: self.recent.iter().cloned().collect(),
        }
    }

    // ---- the step -------------------------------------------------------

    /// Connected with the bucket open: KV calls may go out.
    fn reachable(&self) -> bool {
        self.connected && self.buckets.is_open()
    }

    /// Whether this node acts as monitor at `now`: it holds the lease and
    /// is neither leaving nor retiring.
    fn monitoring(&self, now: Instant) -> bool {
        self.lease.is_monitor(now) && self.life == Life::Serving
    }

    /// Whether a monitor may start a round at `now` (when one is due).
    fn may_start_round(&self, now: Instant) -> bool {
        self.round.is_none()
            && self.record.is_idle()
            && self.buckets.is_open()
            && self.view.is_warm(now)
    }

    /// What the lease may do now.
    fn lease_gate(&self) -> lease::Gate {
        lease::Gate {
            reachable: self.reachable(),
            resign: match self.life {
                Life::Serving => false,
                Life::Retiring { .. } | Life::Releasing { .. } => true,
                Life::Left { retired } => retired,
            },
            held: self.record.holds_lease(),
            fence: self.record.is_fencing(),
        }
    }

    /// Everything due at `now`.
    fn step(&mut self, now: Instant) {
        let expired = self.view.expire(now);
        if !expired.is_empty() {
            tracing::info!(nodes = ?expired, "nodes timed out");
            self.changes += 1;
            self.scheduler.collect_now(now);
            if let Some(round) = self.round.as_mut() {
                expired.iter().for_each(|id| round.departed(id));
            }
        }
        let warm = self.view.is_warm(now);
        if warm != self.was_warm {
            self.was_warm = warm;
            self.changes += 1;
        }
        self.lease.set_eligible(warm && self.life == Life::Serving);
        if self.connected && self.buckets.poll(now) {
            self.actions.push_back(Action::OpenBucket(self.bucket()));
        }
        // Unreachable, a monitor still steps down on its own clock.
        self.lease_step(now);
        if self.connected {
            if self.heartbeat.poll(now) {
                self.publish_presence(PresenceKind::Heartbeat, now);
            }
            self.monitor_step(now);
            // After the monitor's step, which may just have asked for a
            // fresh read (a settled round): nothing here may wait for
            // another event.
            if self
                .record
                .poll_read(now, self.reachable(), self.lease.is_fencing())
            {
                self.actions.push_back(Action::ReadRecord);
            }
        }
        self.retire_step(now);
        self.leave_step(now);
        self.show(now);
    }

    fn lease_step(&mut self, now: Instant) {
        let poll = self.lease.poll(now, self.lease_gate());
        if poll.fence_lost {
            self.record.abandon();
        }
        if let Some(change) = poll.change {
            self.role_changed(change, now);
        }
        if let Some(call) = poll.call {
            self.actions.push_back(Action::Lease(call));
        }
    }

    /// While retiring: whether open pages still need this node, and the
    /// leave once none has for the grace period (or the time is up).
    fn retire_step(&mut self, now: Instant) {
        if !matches!(self.life, Life::Retiring { .. }) {
            return;
        }
        // Unknown (cut off, or not observing long enough) counts as needed.
        let me = Process::new(&self.me.id, self.me.incarnation);
        let retiring: Vec<(Process, Version)> = self
            .view
            .retiring()
            .map(|m| (m.process(), m.version.clone()))
            .collect();
        let now_needed = !(self.connected && self.view.is_warm(now))
            || retire::needs_me(
                &me,
                &self.me.version,
                self.compat,
                self.view.serving_versions(),
                &retiring,
                self.view.tabs(),
            );
        let Life::Retiring { retirement, needed } = &mut self.life else {
            return;
        };
        if now_needed != *needed {
            *needed = now_needed;
            self.changes += 1;
        }
        retirement.observe(now, now_needed);
        if let Some(end) = retirement.end(now) {
            match end {
                RetireEnd::Drained => {
                    tracing::info!(
                        "retired: no open page has needed this node for the grace period"
                    )
                }
                RetireEnd::TimedOut => {
                    tracing::info!("retired: the time to retire ran out")
                }
            }
            self.life = Life::Releasing { retired: true };
            self.heartbeat.stop();
            self.round = None;
            self.record.abandon();
            self.changes += 1;
        }
    }

    fn monitor_step(&mut self, now: Instant) {
        if !self.monitoring(now) {
            self.round = None;
            self.record.abandon();
            return;
        }
        if self.round.as_ref().is_some_and(|r| r.is_over(now)) {
            self.finish_round(now);
        }
        if self.may_start_round(now) && self.scheduler.is_due(now) {
            self.start_round(now);
        }
    }

    fn start_round(&mut self, now: Instant) {
        self.rounds += 1;
        let request = VersionRequest {
            leader: self.me.id.clone(),
            round: self.rounds,
        };
        self.publish_with_reply(
            self.names.version_request(),
            Some(Names::reply_subject(&self.inbox, self.rounds)),
            protocol::encode(&request),
        );
        self.round = Some(Round::new(
            self.rounds,
            self.view.serving_processes(),
            now,
            self.timings.round_timeout,
        ));
    }

    fn finish_round(&mut self, now: Instant) {
        let Some(round) = self.round.take() else {
            return;
        };
        let outcome = round.outcome();
        let release = round.release();
        let collect_ms = now.saturating_duration_since(round.started).as_secs_f64() * 1000.0;
        self.scheduler.finished(&outcome, now);
        tracing::debug!(round = round.number, ?outcome, collect_ms, "round");
        self.counters.round_durations.observe_ms(collect_ms);
        match outcome {
            RoundOutcome::Settled(_) => self.counters.rounds_settled += 1,
            RoundOutcome::Mixed(_) => self.counters.rounds_mixed += 1,
            RoundOutcome::Incomplete { .. } => self.counters.rounds_incomplete += 1,
        }
        self.last_round = Some(RoundStats {
            round: round.number,
            expected: round.expected(),
            replies: round.replies(),
            outcome: match outcome {
                RoundOutcome::Settled(_) => "settled",
                RoundOutcome::Mixed(_) => "mixed",
                RoundOutcome::Incomplete { .. } => "incomplete",
            }
            .to_owned(),
            collect_ms,
        });
        self.changes += 1;
        match outcome {
            // Decide on a read that starts after the round ended.
            RoundOutcome::Settled(version) => self.record.settled(version, release),
            RoundOutcome::Mixed(versions) => {
                tracing::info!(?versions, "versions mixed; waiting")
            }
            RoundOutcome::Incomplete { missing } => {
                tracing::info!(?missing, "members did not reply; retrying")
            }
        }
    }

    /// A fresh read of the record is in; decide what `version` means (its
    /// record carries `release`, the settled round's merged release; a
    /// compatible version is no news, whatever its release says).
    /// `revision` is the record key's last revision, readable or not (0
    /// for none; an unreadable record is overwritten, compare-and-set on it).
    fn decide(
        &mut self,
        version: Version,
        release: Option<Release>,
        revision: u64,
        current: Option<SettledNotice>,
        now: Instant,
    ) {
        // A member that joined (or changed) since the round ended must be
        // waited for: never announce while the view holds another version.
        if self.view.agreement(now) != Agreement::Settled(version.clone()) {
            self.scheduler.collect_now(now);
            return;
        }
        let last = current.as_ref().map(|n| &n.record.version);
        let (kind, previous) = match monitor::decide(&version, last, self.compat) {
            Decision::NoNews => return,
            Decision::Baseline(_) => (RecordKind::Baseline, None),
            Decision::Announce { previous, .. } => {
                let held = monitor::rollback_held(
                    &version,
                    &previous,
                    self.compat,
                    self.view.expiries(),
                    self.view.observing_since(),
                    self.timings.rollback_hold(),
                    now,
                );
                if let Some(until) = held {
                    tracing::info!(
                        %version, %previous,
                        "a rollback, held: a member of the announced version may be cut off, not gone"
                    );
                    self.scheduler.collect_at(until);
                    return;
                }
                (RecordKind::Announcement, Some(previous))
            }
        };
        let record = SettledRecord {
            version,
            previous,
            kind,
            fence: 0,
            leader: self.me.id.clone(),
            at_ms: self.unix_ms,
            release,
        };
        self.record.fence(record, revision);
    }

    /// The fencing renewal succeeded with `fence`: write the record, unless
    /// a member of another version joined meanwhile.
    fn fenced(&mut self, fence: u64, now: Instant) {
        let Some((mut record, expected)) = self.record.take_fencing() else {
            return;
        };
        if self.view.agreement(now) != Agreement::Settled(record.version.clone()) {
            self.scheduler.collect_now(now);
            return;
        }
        record.fence = fence;
        let value = self.seal(STATE_KEY, protocol::encode(&record));
        self.record.write(record);
        self.actions.push_back(Action::WriteRecord {
            fence,
            expected_revision: expected,
            value,
        });
    }

    fn leave_step(&mut self, now: Instant) {
        let Life::Releasing { retired } = self.life else {
            return;
        };
        if self.lease.in_flight() {
            return;
        }
        if self.reachable() && self.lease.holds_lease() {
            // `lease_step` sends the release first.
            return;
        }
        if self.connected {
            self.publish_presence(PresenceKind::Down, now);
        }
        self.life = Life::Left { retired };
        self.heartbeat.stop();
        self.changes += 1;
    }

    /// Queues the browser view when it changed.
    fn show(&mut self, now: Instant) {
        let view = self.view(now);
        if self.shown.as_ref() != Some(&view) {
            self.shown = Some(view.clone());
            self.changes += 1;
            self.actions.push_back(Action::View(view));
        }
    }

    // ---- internals ------------------------------------------------------

    /// Revisions (stream sequences) seen so far only move forward; a bucket
    /// created anew starts above them.
    fn saw_revision(&mut self, revision: u64) {
        self.max_revision = self.max_revision.max(revision);
    }

    fn bucket(&self) -> BucketSpec {
        BucketSpec {
            name: self.names.bucket(),
            description: "version-observer: the monitor lease and the settled record",
            replicas: self.replicas,
            first_sequence: self.max_revision + 1,
            lease_ttl: self.lease.ttl(),
        }
    }

    fn publish(&mut self, subject: String, payload: Bytes) {
        self.publish_with_reply(subject, None, payload);
    }

    fn publish_with_reply(&mut self, subject: String, reply: Option<String>, payload: Bytes) {
        let mac = self.key.as_ref().map(|key| key.sign(&subject, &payload));
        self.actions.push_back(Action::Publish {
            subject,
            reply,
            payload,
            mac,
        });
    }

    /// A KV value as written: sealed with the cluster key, if there is one.
    fn seal(&self, key_name: &str, value: Bytes) -> Bytes {
        seal(self.key.as_ref(), key_name, value)
    }

    fn publish_presence(&mut self, kind: PresenceKind, now: Instant) {
        let presence = Presence {
            id: self.me.id.clone(),
            version: self.me.version.clone(),
            incarnation: self.me.incarnation,
            // On nodedown: whether this node held the lease until just now
            // (it released it first), so the others try to take it at once.
            leader: match kind {
                PresenceKind::Down => self.lease.released(),
                _ => self.lease.is_monitor(now),
            },
            tabs: match kind {
                PresenceKind::Down => Default::default(),
                _ => self.tabs.clone(),
            },
            retiring: self.life.retired() && kind != PresenceKind::Down,
        };
        self.publish(self.names.presence(kind), protocol::encode(&presence));
    }

    fn on_presence(&mut self, kind: PresenceKind, presence: Presence, now: Instant) {
        let material = match kind {
            PresenceKind::Down => {
                let was_monitor = presence.leader
                    || self
                        .view
                        .get(&presence.id, presence.incarnation)
                        .is_some_and(|m| m.monitor);
                let left = self.view.left(&presence.id, presence.incarnation, now);
                if left && was_monitor {
                    // It handed the lease back before saying nodedown.
                    self.lease.monitor_left(now);
                }
                if let (true, Some(round)) = (left, self.round.as_mut()) {
                    round.departed(&Process::new(&presence.id, presence.incarnation));
                }
                left
            }
            PresenceKind::Up | PresenceKind::Heartbeat => {
                let was_monitor = self
                    .view
                    .get(&presence.id, presence.incarnation)
                    .is_some_and(|m| m.monitor);
                let change = self.view.heard(
                    &presence.id,
                    &presence.version,
                    presence.incarnation,
                    presence.leader,
                    now,
                );
                if change == Change::Ignored {
                    return;
                }
                self.view
                    .set_tabs(&presence.id, presence.incarnation, presence.tabs);
                let retiring =
                    self.view
                        .set_retiring(&presence.id, presence.incarnation, presence.retiring);
                if presence.retiring {
                    // It no longer counts: the round does not wait for it.
                    if let Some(round) = self.round.as_mut() {
                        round.departed(&Process::new(&presence.id, presence.incarnation));
                    }
                    if was_monitor && !presence.leader {
                        // A retiring monitor handed the lease back.
                        self.lease.attempt_now(now);
                    }
                }
                change.is_material() || retiring.is_material()
            }
        };
        if material {
            tracing::info!(node = %presence.id, version = %presence.version, event = kind.as_str(), "membership changed");
            self.changes += 1;
            self.scheduler.collect_now(now);
        }
    }

    fn on_version_request(&mut self, reply: Option<&str>) {
        if !self.connected || self.has_left() || self.life.retired() {
            // A node that said nodedown must not be counted again, nor one
            // that retires.
            return;
        }
        let Some(reply) = reply.filter(|r| protocol::is_reply_inbox(r)) else {
            self.dropped.bad_reply_subject += 1;
            self.changes += 1;
            tracing::warn!(
                reply,
                dropped = self.dropped.total(),
                "dropping a version request whose reply subject is not an inbox"
            );
            return;
        };
        let answer = VersionReply {
            id: self.me.id.clone(),
            version: self.me.version.clone(),
            incarnation: self.me.incarnation,
            release: self.release.clone(),
        };
        self.publish(reply.to_owned(), protocol::encode(&answer));
    }

    fn on_reply(&mut self, round: u64, reply: VersionReply, now: Instant) {
        let change = self
            .view
            .heard(&reply.id, &reply.version, reply.incarnation, false, now);
        if change == Change::Ignored {
            return;
        }
        if change.is_material() {
            self.changes += 1;
            self.scheduler.collect_now(now);
        }
        if let Some(current) = self.round.as_mut().filter(|r| r.number == round) {
            current.reply_with_release(
                Process::new(&reply.id, reply.incarnation),
                &reply.version,
                reply.release,
            );
        }
    }

    fn role_changed(&mut self, change: RoleChange, now: Instant) {
        self.changes += 1;
        match change {
            RoleChange::BecameMonitor { fence } => {
                self.counters.lease_acquired += 1;
                tracing::info!(fence, "elected monitor");
                self.scheduler.collect_now(now);
            }
            RoleChange::SteppedDown { fence } => {
                self.counters.lease_lost += 1;
                tracing::warn!(fence, "no longer the monitor");
                self.round = None;
                self.record.abandon();
            }
        }
    }

    /// Applies a record read from KV (or written by this node): KV is the
    /// source of truth, and revisions only move forward.
    fn apply(&mut self, notice: SettledNotice) {
        let newer = self
            .announced
            .as_ref()
            .is_none_or(|a| notice.revision >= a.revision);
        if newer && self.announced.as_ref() != Some(&notice) {
            if self
                .recent
                .front()
                .is_none_or(|r| r.revision < notice.revision)
            {
                self.recent.push_front(notice.clone());
                self.recent.truncate(RECENT_RECORDS);
            }
            self.announced = Some(notice);
            self.changes += 1;
        }
    }
}

/// A KV value as written: sealed with `key`, if there is one.
fn seal(key: Option<&ClusterKey>, key_name: &str, value: Bytes) -> Bytes {
    match key {
        Some(key) => key.seal(key_name, &value),
        None => value,
    }
}

/// The lease key's value when `me` holds it.
fn holder(me: &Identity, key: Option<&ClusterKey>) -> Bytes {
    let value = protocol::encode(&LeaseHolder { id: me.id.clone() });
    seal(key, LEASE_KEY, value)
}
