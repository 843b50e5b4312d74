//! The cluster tests start their processes through the lab (`vo-lab`): the
//! same nats-server and node processes as the demo, the browser tests and the
//! benchmarks. This module only fixes what these tests share: the cluster
//! name, fast timings, and panicking on a lab error.

pub use vo_lab::{NatsServer, NodeProcess};
use vo_lab::{NodeConfig, Timings};

/// Fast timings so crash detection and failover fit in a test.
pub const TIMINGS: Timings = Timings::FAST;
pub const NODE_TIMEOUT_MS: u64 = TIMINGS.node_timeout_ms;
pub const LEASE_MS: u64 = TIMINGS.lease_ms;

/// A nats-server with JetStream on a free port, killed on drop.
pub async fn nats() -> NatsServer {
    NatsServer::start().await.unwrap_or_else(|e| panic!("{e}"))
}

/// A node of the cluster `test`, started and serving HTTP.
pub async fn node(nats: &str, id: &str, version: &str) -> NodeProcess {
    let config = NodeConfig::new(env!("CARGO_BIN_EXE_version-observer"), id, version)
        .nats(nats, "test")
        .timings(TIMINGS)
        .log_filter("info,version_observer=debug");
    NodeProcess::start(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `check` until it returns `Some`; panics naming `what` after `timeout`.
pub async fn eventually<T>(
    what: &str,
    timeout: std::time::Duration,
    check: impl AsyncFnMut() -> Option<T>,
) -> T {
    vo_lab::wait::eventually(what, timeout, check)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
