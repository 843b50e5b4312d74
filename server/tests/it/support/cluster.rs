//! The cluster tests start their processes through the lab (`vo-lab`): the
//! same nats-server and node processes as the demo, the browser tests and the
//! benchmarks. This module only fixes what these tests share: the cluster
//! name (and so every subject and bucket, through the protocol's [`Names`]),
//! fast timings, and panicking on a lab error.

use std::time::Duration;
pub use version_observer::core::protocol::Names;
use vo_lab::{timings, NodeConfig, Timings};
pub use vo_lab::{NatsServer, NodeProcess};

/// The cluster every test's nodes join.
pub const CLUSTER: &str = "test";

/// Fast timings so crash detection and failover fit in a test.
pub const TIMINGS: Timings = timings::FAST;
pub const NODE_TIMEOUT: Duration = TIMINGS.node_timeout;
pub const LEASE: Duration = TIMINGS.lease;

/// The subjects and buckets of [`CLUSTER`].
pub fn names() -> Names {
    Names::new(CLUSTER)
}

/// A nats-server with JetStream on a port it picked, killed on drop.
pub async fn nats() -> NatsServer {
    NatsServer::start().await.unwrap_or_else(|e| panic!("{e}"))
}

/// A node of [`CLUSTER`], started and serving HTTP.
pub async fn node(nats: &str, id: &str, version: &str) -> NodeProcess {
    node_with(nats, id, version, &[]).await
}

/// A node of [`CLUSTER`] with these extra flags.
pub async fn node_with(nats: &str, id: &str, version: &str, flags: &[&str]) -> NodeProcess {
    let config = NodeConfig::new(env!("CARGO_BIN_EXE_version-observer"), id, version)
        .nats(nats, CLUSTER)
        .timings(TIMINGS)
        .args(flags.iter().copied())
        .log_filter("info,version_observer=debug");
    NodeProcess::start(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A file in a scratch folder, removed on drop.
pub struct ScratchFile {
    pub path: std::path::PathBuf,
}

impl ScratchFile {
    pub fn new(name: &str, contents: &[u8]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vo-it-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        Self { path }
    }

    pub fn arg(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
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
