//! The server side (feature `ssr`): the observer, its routes, its lean
//! stream listener and the NATS cluster node. Private: what a host uses is
//! re-exported once, at the crate root.
//!
//! - `observer`: [`VersionObserver`], its builder and lifecycle;
//! - `settings`: [`ObserverBuilder`] and [`NatsSettings`], checked at start;
//! - `routes`: [`VersionObserverRoutes`], the extension trait on `Router`;
//! - `guard`: [`RequestGuardLayer`], the request guard;
//! - `assets`: [`Bundle`], the site's content-hashed bundle, its caching headers and the cluster's asset store;
//! - `listener`: [`StreamListener`], version streams served without hyper's buffers;
//! - `metrics`: what `GET /metrics` exports;
//! - `fleet`: [`FleetWatch`], a cluster watched from outside (deploy gates);
//! - `forward`: version affinity, requests passed to a member of their version;
//! - `hub`: the node's report, fanned out to every stream;
//! - `fanout`: lean streams, written by one task (one `write` per socket);
//! - `sse`: the event stream's bytes;
//! - `cluster`: the NATS driver of the sans-IO coordinator.

mod assets;
mod cluster;
mod fanout;
mod fleet;
mod forward;
mod guard;
mod hub;
mod listener;
mod metrics;
mod observer;
mod routes;
mod settings;
mod signal;
mod sse;
mod streams;

pub use assets::{Bundle, BundleError};
pub use fleet::FleetWatch;
pub use guard::{RequestGuard, RequestGuardLayer};
pub use listener::{Connection, StreamListener};
pub use observer::VersionObserver;
pub use routes::VersionObserverRoutes;
pub use settings::{default_node_id, env, redact_urls, NatsSettings, ObserverBuilder, StartError};
pub use signal::shutdown_signal;

/// The wall clock, in milliseconds since the Unix epoch (0 before 1970): the
/// clock of the cluster's records, forwarded frames and the page history.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod forward_tests;
#[cfg(test)]
mod tests;
