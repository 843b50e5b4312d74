//! Cluster coordination. The algorithm is plain data and functions with no
//! I/O, so it can be read and tested on its own:
//!
//! - [`membership`]: who is alive and which version each runs;
//! - [`election`]: the single monitor, elected with a KV lease;
//! - [`monitor`]: collection rounds and the "is this news?" decision.

pub use version_observer_core::cluster::{election, membership, monitor};
pub use version_observer_core::protocol;
pub mod transport;
