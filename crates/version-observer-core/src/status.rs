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
