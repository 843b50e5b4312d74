//! The server side (feature `ssr`): the observer, its routes, its lean
//! stream listener and the NATS cluster node.
//!
//! - [`observer`]: [`VersionObserver`], its builder and lifecycle;
//! - [`settings`]: [`ObserverBuilder`] and [`NatsSettings`], checked at start;
//! - [`routes`]: [`VersionObserverRoutes`], the extension trait on `Router`;
//! - [`assets`]: [`assets::Bundle`], the site's content-hashed bundle, its caching headers and the cluster's asset store;
//! - [`listener`]: [`StreamListener`], version streams served without hyper's buffers;
//! - [`metrics`]: what `GET /metrics` exports;
//! - [`fleet`]: [`fleet::FleetWatch`], a cluster watched from outside (deploy gates);
//! - `hub`: the node's report, fanned out to every stream;
//! - `fanout`: lean streams, written by one task (one `write` per socket);
//! - `sse`: the event stream's bytes;
//! - `cluster`: the NATS driver of the sans-IO coordinator.

pub mod assets;
mod cluster;
mod fanout;
pub mod fleet;
mod forward;
pub mod guard;
mod hub;
pub mod listener;
pub mod metrics;
pub mod observer;
pub mod routes;
pub mod settings;
mod signal;
pub use signal::shutdown_signal;
mod sse;
mod streams;

pub use assets::Bundle;
pub use listener::{Connection, StreamListener};
pub use observer::VersionObserver;
pub use routes::VersionObserverRoutes;
pub use settings::{
    default_node_id, redact_urls, NatsSettings, ObserverBuilder, StartError, DEFAULT_CLUSTER,
};

#[cfg(test)]
mod forward_tests;
#[cfg(test)]
mod tests;
