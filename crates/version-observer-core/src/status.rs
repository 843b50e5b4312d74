//! The body of `GET /api/cluster`: one node's view of its cluster, for
//! operators and tests.

use crate::{protocol::SettledNotice, report::ClusterState};
use semver::Version;
use serde::{Deserialize, Serialize};

/// A member as `GET /api/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The member's node id.
    pub id: String,
    /// Its process's incarnation: two members with one id are two processes.
    #[serde(default)]
    pub incarnation: u64,
    /// The version the member last reported.
    pub version: Version,
    /// How long ago the reporting node last heard from the member, in
    /// milliseconds (`0` for a single node's own entry).
    pub last_seen_ms_ago: u64,
    /// Whether the member holds the monitor lease: for the reporting node
    /// itself, by its own clock; for another member, as its last presence
    /// message said.
    pub leader: bool,
    /// Its open tabs by page version, as its last presence message said.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tabs: std::collections::BTreeMap<String, u64>,
    /// Whether it is retiring (left the load balancer, serving only the
    /// forwarded requests of pages that still need its version).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retiring: bool,
}

/// One node's view of its cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster's name; `null` for a single node.
    pub cluster: Option<String>,
    /// The id of the node reporting.
    pub node_id: String,
    /// Whether the node is connected to NATS (always `false` for a single node).
    pub connected: bool,
    /// The monitor, as far as this node knows.
    pub leader: Option<String>,
    /// Whether the reporting node holds the monitor lease, by its own clock
    /// (always `true` for a single node).
    pub this_node_leads: bool,
    /// How far the live members agree, as in the node's
    /// [`ClusterView`](crate::report::ClusterView).
    pub state: ClusterState,
    /// The version every live member runs when `state` is `settled`;
    /// `None` otherwise.
    pub settled_version: Option<Version>,
    /// The last record (baseline or announcement) this node read from KV,
    /// with its revision; for a single node, its own version as a baseline.
    pub announced: Option<SettledNotice>,
    /// The live members in order of id, as the node's membership view holds
    /// them (a single node lists only itself).
    pub members: Vec<MemberStatus>,
    /// The last collection round this node ran as monitor.
    pub last_round: Option<RoundStats>,
    /// Messages dropped because they were malformed or not allowed.
    pub dropped_messages: u64,
    /// Running totals since the node started (what `/metrics` exports).
    #[serde(default)]
    pub counters: Counters,
    /// The records (announcements and baselines) this node has seen since
    /// it started, newest first, at most
    /// [`RECENT_RECORDS`](crate::cluster::coordinator::RECENT_RECORDS).
    #[serde(default)]
    pub recent_records: Vec<SettledNotice>,
}

/// Running totals of one node's cluster protocol since it started: what a
/// node exports as Prometheus metrics. Plain data, counted by the
/// [`Coordinator`](crate::cluster::Coordinator) as things happen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Times the connection to NATS came up (the first time included).
    pub nats_connects: u64,
    /// Announcements this node wrote as monitor.
    pub announcements_written: u64,
    /// Baselines (first records, compatible updates) this node wrote.
    pub baselines_written: u64,
    /// Times this node became the monitor.
    pub lease_acquired: u64,
    /// Times it stopped being the monitor without handing the lease back.
    pub lease_lost: u64,
    /// Collection rounds that ended settled (all replies, one version).
    pub rounds_settled: u64,
    /// Rounds that ended with all replies but several versions.
    pub rounds_mixed: u64,
    /// Rounds whose deadline passed before every member replied.
    pub rounds_incomplete: u64,
    /// How long rounds took to collect.
    pub round_durations: DurationHistogram,
    /// Messages dropped, by reason.
    pub dropped: Dropped,
}

/// Messages dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// Payloads that did not decode.
    pub malformed: u64,
    /// Version requests whose reply subject is not an inbox.
    pub bad_reply_subject: u64,
    /// Messages on a subject no node publishes on (or a reply to no round).
    pub unknown_subject: u64,
    /// With a cluster key: messages and KV values without a valid MAC.
    pub unauthenticated: u64,
    /// Release metadata that failed its check (a version reply's or a
    /// record's): the metadata was dropped, the message itself kept.
    #[serde(default)]
    pub bad_release: u64,
}

impl Dropped {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.malformed
            + self.bad_reply_subject
            + self.unknown_subject
            + self.unauthenticated
            + self.bad_release
    }
}

/// A histogram of durations with fixed bucket bounds
/// ([`DurationHistogram::BOUNDS_MS`]), in the shape Prometheus exports.
///
/// ```
/// use version_observer_core::status::DurationHistogram;
/// let mut h = DurationHistogram::default();
/// h.observe_ms(3.0);
/// h.observe_ms(40_000.0);
/// assert_eq!(h.count, 2);
/// // Cumulative counts per upper bound, the last one being +Inf.
/// let cumulative = h.cumulative();
/// assert_eq!(cumulative.first(), Some(&(1.0, 0)));
/// assert_eq!(cumulative.iter().find(|(le, _)| *le == 5.0), Some(&(5.0, 1)));
/// assert_eq!(cumulative.last(), Some(&(f64::INFINITY, 2)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurationHistogram {
    /// Observations per bucket (not cumulative): `counts[i]` holds those
    /// above `BOUNDS_MS[i - 1]` and at most `BOUNDS_MS[i]`; the last one,
    /// those above every bound.
    pub counts: Vec<u64>,
    /// The sum of every observation, in milliseconds.
    pub sum_ms: f64,
    /// The number of observations.
    pub count: u64,
}

impl DurationHistogram {
    /// The buckets' upper bounds, in milliseconds.
    pub const BOUNDS_MS: [f64; 12] = [
        1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    ];

    /// Counts one duration.
    pub fn observe_ms(&mut self, ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        let bucket = Self::BOUNDS_MS
            .iter()
            .position(|&le| ms <= le)
            .unwrap_or(Self::BOUNDS_MS.len());
        if self.counts.len() != Self::BOUNDS_MS.len() + 1 {
            self.counts = vec![0; Self::BOUNDS_MS.len() + 1];
        }
        self.counts[bucket] += 1;
        self.sum_ms += ms;
        self.count += 1;
    }

    /// `(upper bound in ms, observations at most that long)`, ending with
    /// `(+Inf, count)`.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        Self::BOUNDS_MS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, le)| {
                total += self.counts.get(i).copied().unwrap_or(0);
                (le, total)
            })
            .collect()
    }
}

impl Default for DurationHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; Self::BOUNDS_MS.len() + 1],
            sum_ms: 0.0,
            count: 0,
        }
    }
}

/// One collection round, as `GET /api/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundStats {
    /// The round's number, counted from 1 by the node that ran it.
    pub round: u64,
    /// Members the view expected to reply.
    pub expected: usize,
    /// Replies counted, including those of nodes the view did not know, less
    /// those of members that left during the round.
    pub replies: usize,
    /// `settled`, `mixed` or `incomplete`.
    pub outcome: String,
    /// From publishing the request to the last reply (or the deadline), in
    /// milliseconds.
    pub collect_ms: f64,
}
