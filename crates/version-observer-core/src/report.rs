//! The version signal: what a node tells its browsers, as JSON, both in
//! `GET /api/version` and in every event of `GET /api/version/events`.
//!
//! ```
//! use version_observer_core::{ClusterView, Compat, Mode, NodeInfo, VersionReport, Version};
//! let version = Version::new(1, 0, 0);
//! let report = VersionReport {
//!     node: NodeInfo { id: "web-1".into(), version: version.clone() },
//!     mode: Mode::Single,
//!     cluster: ClusterView::single_node(&version, Compat::Major),
//! };
//! let json = serde_json::to_string(&report).unwrap();
//! assert!(json.contains(r#""state":"settled""#));
//! ```

use crate::{compat::Compat, release::Release};
use semver::Version;
use serde::{Deserialize, Serialize};

/// How far the live nodes agree on one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    /// Every live node runs the same version.
    Settled,
    /// Live nodes run different versions: a deploy is in progress.
    Mixed,
    /// This node cannot tell (coordination is unreachable or still warming up).
    Unknown,
}

/// The cluster as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// How far the live nodes agree, as far as this node can tell.
    pub state: ClusterState,
    /// The version every live node runs, when `state` is `settled`.
    pub settled_version: Option<Version>,
    /// The version the cluster last announced (or its first settled version, the
    /// baseline): the version browsers are expected to run.
    pub announced_version: Option<Version>,
    /// The KV revision of that record: a larger one is newer news. `None`
    /// for a single node (which announces only its own version) and before
    /// any record was read.
    #[serde(default)]
    pub announced_revision: Option<u64>,
    /// The policy that decides which differences from `announced_version` make a page stale.
    pub compat: Compat,
    /// What the announced version's operators said about it (severity,
    /// release notes, minimum supported version), validated
    /// ([`Release::validate`]); left out when they said nothing, and absent
    /// in reports of older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_release: Option<Release>,
}

impl ClusterView {
    /// A lone node is its own cluster: settled and announced on its own version.
    pub fn single_node(version: &Version, compat: Compat) -> Self {
        Self {
            state: ClusterState::Settled,
            settled_version: Some(version.clone()),
            announced_version: Some(version.clone()),
            announced_revision: None,
            compat,
            announced_release: None,
        }
    }

    /// This view with `release` as the announced version's release (a
    /// single node announces its own); an empty or invalid release is left
    /// out.
    ///
    /// ```
    /// use version_observer_core::{ClusterView, Compat, Release, Severity, Version};
    /// let release = Release { severity: Severity::Required, ..Release::default() };
    /// let view = ClusterView::single_node(&Version::new(2, 0, 0), Compat::Major)
    ///     .with_release(Some(release.clone()));
    /// assert_eq!(view.announced_release, Some(release));
    /// let json = serde_json::to_string(&view).unwrap();
    /// assert!(json.contains(r#""announced_release":{"severity":"required"}"#), "{json}");
    /// ```
    pub fn with_release(mut self, release: Option<Release>) -> Self {
        self.announced_release = release
            .filter(|r| r.validate().is_ok())
            .and_then(Release::non_empty);
        self
    }
}

/// One node's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id: unique within its cluster, shown in logs and status pages.
    pub id: String,
    /// The version the node runs.
    pub version: Version,
}

/// The body of `GET /api/version` and the data of each server-sent event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReport {
    /// The node that answered.
    pub node: NodeInfo,
    /// `single` (no coordination) or `cluster` (NATS).
    pub mode: Mode,
    /// The cluster as that node sees it ([`ClusterView::single_node`] for a
    /// single node).
    pub cluster: ClusterView,
}

/// Whether a node coordinates with others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The node runs alone, without NATS: it is its own cluster.
    Single,
    /// The node coordinates with the other nodes of its cluster over NATS.
    Cluster,
}
