//! The HTTP paths a node serves, named once for the server, the browser and
//! the tools. [`VERSION`], [`EVENTS`] and [`READY`] are public (browsers and
//! load balancers use them);
//! [`CLUSTER`], [`FLEET_EVENTS`] and [`METRICS`] are for operators, served apart.

/// JSON: this node and its cluster view ([`VersionReport`](crate::report::VersionReport)).
pub const VERSION: &str = "/api/version";
/// Server-Sent Events: the same report, at once and on every change.
pub const EVENTS: &str = "/api/version/events";
/// Readiness, for load balancers and Kubernetes: `200` while the node
/// takes new traffic, `503` once it is stopping or retiring.
pub const READY: &str = "/readyz";
/// JSON: members, monitor, state and record ([`ClusterStatus`](crate::status::ClusterStatus)).
pub const CLUSTER: &str = "/api/cluster";
/// Server-Sent Events: this node's [`ClusterStatus`](crate::status::ClusterStatus)
/// at once and every half second, for live fleet views.
pub const FLEET_EVENTS: &str = "/api/fleet/events";
/// The Prometheus metrics of one node (text exposition format).
pub const METRICS: &str = "/metrics";
/// The query parameter with which a tab names its page's version when it
/// opens [`EVENTS`] (`/api/version/events?page=1.2.3`), so that the node can
/// count open tabs per page version.
pub const PAGE_PARAM: &str = "page";
