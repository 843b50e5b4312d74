//! Cluster coordination as plain data: no I/O, no clock, no runtime.
//!
//! - [`membership`]: who is alive and which version each runs;
//! - [`election`]: the single monitor, elected with a KV lease;
//! - [`monitor`]: collection rounds and the "is this news?" decision;
//! - [`retire`]: a node told to stop that keeps serving the pages of its
//!   version until none needs it;
//! - [`coordinator`]: one node's whole side of the protocol: messages, KV
//!   results and the time go in (`handle_*`), actions come out
//!   ([`Coordinator::poll_action`]), and [`Coordinator::poll_timeout`] says
//!   when to call back. A thin driver (in the `version-observer` crate)
//!   moves the bytes over NATS. It is built from the parts above and from
//!   these, internal, each with its own state, next deadline and tests:
//!   `lease.rs` (the lease's KV calls: acquire, renew, fence, release),
//!   `buckets.rs` (opening the cluster's bucket), `record.rs` (reading the
//!   record; reading, fencing and writing it as monitor), `heartbeat.rs`,
//!   and `inbound.rs` (the checks everything received passes);
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
