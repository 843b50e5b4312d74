//! The body of `GET /api/cluster`: one node's view of its cluster, for
//! operators and tests.

use crate::{protocol::SettledNotice, report::ClusterState};
use semver::Version;
use serde::{Deserialize, Serialize};

/// A member as `GET /api/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: String,
    pub version: Version,
    pub last_seen_ms_ago: u64,
    pub leader: bool,
}

/// One node's view of its cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster's name; `null` for a single node.
    pub cluster: Option<String>,
    pub node_id: String,
    /// Whether the node is connected to NATS (always `false` for a single node).
    pub connected: bool,
    /// The monitor, as far as this node knows.
    pub leader: Option<String>,
    pub this_node_leads: bool,
    pub state: ClusterState,
    pub settled_version: Option<Version>,
    /// The last record (baseline or announcement) this node read from KV,
    /// with its revision; for a single node, its own version as a baseline.
    pub announced: Option<SettledNotice>,
    pub members: Vec<MemberStatus>,
    /// The last collection round this node ran as monitor.
    pub last_round: Option<RoundStats>,
    /// Messages dropped because they were malformed or not allowed.
    pub dropped_messages: u64,
}

/// One collection round, as `GET /api/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundStats {
    pub round: u64,
    /// Members the view expected to reply.
    pub expected: usize,
    pub replies: usize,
    /// `settled`, `mixed` or `incomplete`.
    pub outcome: String,
    /// From publishing the request to the last reply (or the deadline).
    pub collect_ms: f64,
}
