//! Cluster coordination as plain data: no I/O, no clock, no runtime.
//!
//! - [`membership`]: who is alive and which version each runs;
//! - [`election`]: the single monitor, elected with a KV lease;
//! - [`monitor`]: collection rounds and the "is this news?" decision;
//! - [`coordinator`]: one node's whole side of the protocol, built from the
//!   three above: messages, KV results and the time go in
//!   (`handle_*`), actions come out ([`Coordinator::poll_action`]), and
//!   [`Coordinator::poll_timeout`] says when to call back. A thin driver (in
//!   the `version-observer` crate) moves the bytes over NATS.
//! - [`retire`]: a node told to stop that keeps serving the pages of its
//!   version until none needs it;
//! - [`watcher`]: the cluster seen from outside (members, rollout, record),
//!   for deploy gates and fleet views; it never publishes.

mod buckets;
pub mod coordinator;
pub mod election;
mod heartbeat;
mod inbound;
mod lease;
pub mod membership;
pub mod monitor;
mod record;
pub mod retire;
#[cfg(test)]
mod schedule;
pub mod watcher;
#[cfg(test)]
mod world;

pub use coordinator::{Action, BucketSpec, Coordinator, Entry, Identity, KvError, LeaseCall};
