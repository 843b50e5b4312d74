//! The version-observer lab: real processes on loopback, started one way for
//! everyone who needs a cluster (the demo, the Rust cluster tests, the
//! Playwright scenes through `vo-lab serve`, and the benchmarks).
//!
//! - [`nats`]: a `nats-server` with JetStream on a port it picks itself, its
//!   store in a scratch folder;
//! - [`nats_cluster`]: several of them joined by routes into one JetStream
//!   cluster, each of which can be killed and restarted;
//! - [`proxy`]: a TCP proxy in front of a server that can pass, close
//!   (a refusing partition) or go silent (a partition dropping packets);
//! - [`node`]: one `version-observer` process, its flags, and its HTTP views;
//! - [`timings`]: the cluster timings nodes get: the product's defaults (the
//!   core's `Timings::DEFAULT`) or a shorter preset for tests;
//! - [`nginx`]: Debian's nginx as a round-robin, SSE-friendly load balancer (or
//!   a static file server, to compare with);
//! - [`lab`]: all three together, with named node slots behind nginx and a log
//!   of every announcement seen on NATS;
//! - [`control`]: the HTTP API `vo-lab serve` puts in front of a [`Lab`];
//! - [`process`], [`scratch`], [`tools`], [`wait`]: the plumbing.
//!
//! Everything a lab starts is killed when its handle is dropped.

pub mod control;
pub mod credentials;
pub mod lab;
pub mod metrics;
pub mod nats;
pub mod nats_cluster;
pub mod nginx;
pub mod node;
pub mod process;
pub mod proxy;
pub mod scratch;
pub mod timings;
pub mod tools;
pub mod wait;

pub use lab::{Lab, LabConfig};
pub use nats::{NatsOptions, NatsServer};
pub use nats_cluster::NatsCluster;
pub use nginx::Nginx;
pub use node::{NodeConfig, NodeProcess};
pub use proxy::{FaultProxy, ProxyMode};
pub use timings::Timings;

use std::{path::PathBuf, process::ExitStatus};

/// Why the lab could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot start {program}: {source} (is it installed? scripts/test.sh installs it)")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) before it was ready; its log:\n{logs}")]
    Exited {
        name: String,
        status: ExitStatus,
        logs: String,
    },
    #[error(
        "{name} did not stop within {grace_ms} ms of SIGTERM, so it was killed; its log:\n{logs}"
    )]
    StopTimeout {
        name: String,
        grace_ms: u128,
        logs: String,
    },
    #[error("{name} exited with {status} after SIGTERM; its log:\n{logs}")]
    UncleanStop {
        name: String,
        status: ExitStatus,
        logs: String,
    },
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("no node slot named {0:?}")]
    UnknownNode(String),
    #[error("node {0} is already running")]
    NodeRunning(String),
    #[error("node {0} is not running")]
    NodeNotRunning(String),
    #[error("NATS: {0}")]
    Nats(String),
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// A free TCP port on 127.0.0.1, for the processes that cannot pick their
/// own and report it (the example app, nginx, the lab's node slots). It is
/// drawn from below the kernel's ephemeral range (`ip_local_port_range`,
/// where outgoing connections and port-0 listeners get theirs), then bound
/// once to check: a port from that range could be taken by any connection
/// meanwhile (a node started later on a slot's port once failed with
/// "Address already in use"); below it, only another explicit pick can.
pub fn free_port() -> Result<u16, LabError> {
    let ephemeral = ephemeral_range_start().unwrap_or(32_768);
    let low = ephemeral.saturating_sub(20_000).max(1_024);
    if low >= ephemeral {
        // No room below the range: any port, as the kernel picks one.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| LabError::io("cannot find a free port", e))?;
        return listener
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| LabError::io("cannot find a free port", e));
    }
    for _ in 0..1_000 {
        let port = fastrand::u16(low..ephemeral);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(LabError::io(
        "cannot find a free port",
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free port in {low}..{ephemeral}"),
        ),
    ))
}

/// The first port of the kernel's ephemeral range, if it says.
fn ephemeral_range_start() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod free_port_tests {
    use super::*;

    #[test]
    fn a_free_port_is_below_the_ephemeral_range_and_binds() {
        let ephemeral = ephemeral_range_start().unwrap_or(32_768);
        for _ in 0..50 {
            let port = free_port().unwrap();
            assert!(
                port < ephemeral,
                "{port} in the ephemeral range from {ephemeral}"
            );
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
