//! The HTTP paths a node serves, named once for the server, the browser and
//! the tools.

/// JSON: this node and its cluster view ([`VersionReport`](crate::report::VersionReport)).
pub const VERSION: &str = "/api/version";
/// Server-Sent Events: the same report, at once and on every change.
pub const EVENTS: &str = "/api/version/events";
/// JSON: members, monitor, state and record ([`ClusterStatus`](crate::status::ClusterStatus)).
pub const CLUSTER: &str = "/api/cluster";
