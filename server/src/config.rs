//! The node's configuration: command-line flags, each also read from a `VO_*`
//! environment variable (a flag wins over its variable). Every value is checked
//! here, so a bad one stops start-up with a message that names it.

use app::compat::Compat;
use clap::Parser;
use semver::Version;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// The version this binary was built as.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One version-observer node.
#[derive(Debug, Clone, Parser)]
#[command(name = "version-observer", version, about, long_about = None)]
pub struct Config {
    /// Address to serve HTTP on (port 0 picks a free port).
    #[arg(long, env = "VO_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// The version this node reports and renders into its pages
    /// [default: the version it was built as]. Any semantic version, e.g. 1.2.3
    /// or 2.0.0-rc.1+build.5; lets one build stand in for any version in demos and tests.
    #[arg(long, env = "VO_APP_VERSION", value_name = "SEMVER", value_parser = parse_version)]
    pub app_version: Option<Version>,

    /// This node's name in the cluster [default: <hostname>-<pid>-<random>].
    /// Letters, digits, '.', '_' and '-', at most 64.
    #[arg(long, env = "VO_NODE_ID", value_name = "NAME", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// Which version changes make open pages stale: major (a change of the
    /// leftmost non-zero component), minor, patch or exact.
    #[arg(long, env = "VO_COMPAT", value_name = "MODE", default_value = "major")]
    pub compat: Compat,

    /// Folder with the built site (the wasm, JS and CSS under pkg/).
    #[arg(
        long,
        env = "VO_SITE_ROOT",
        value_name = "DIR",
        default_value = "target/site"
    )]
    pub site_root: PathBuf,

    /// Most open version streams (SSE clients); more are refused with 503.
    #[arg(long, env = "VO_MAX_STREAMS", value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,

    /// Most requests other than streams handled at once; more are refused with 503.
    #[arg(long, env = "VO_MAX_INFLIGHT", value_name = "N", default_value_t = 1_024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_inflight: u32,

    /// NATS server URL: puts the node in cluster mode (absent: a single node).
    /// User and password or a token may be in the URL (nats://user:pass@host:4222);
    /// tls:// for TLS. Several URLs may be given, comma-separated.
    #[arg(long, env = "VO_NATS", value_name = "URL")]
    pub nats: Option<String>,

    /// NATS credentials file (JWT and NKey seed), for decentralized auth.
    #[arg(long, env = "VO_NATS_CREDS", value_name = "FILE", requires = "nats")]
    pub nats_creds: Option<PathBuf>,

    /// Cluster name: namespaces every subject and KV bucket, so several apps or
    /// environments can share one NATS.
    #[arg(long, env = "VO_CLUSTER", value_name = "NAME", default_value = "default",
          value_parser = parse_cluster_name)]
    pub cluster: String,

    /// A node not heard from for this long is gone (crash detection).
    #[arg(long, env = "VO_NODE_TIMEOUT_MS", value_name = "MS", default_value_t = 3_000,
          value_parser = clap::value_parser!(u64).range(300..=600_000))]
    pub node_timeout_ms: u64,

    /// The monitor's lease: a crashed monitor is replaced within about this long + 1 s.
    #[arg(long, env = "VO_LEASE_MS", value_name = "MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(500..=600_000))]
    pub lease_ms: u64,

    /// How long a collection round waits for replies (one hung node cannot stall it longer).
    #[arg(long, env = "VO_ROUND_TIMEOUT_MS", value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub round_timeout_ms: u64,

    /// The monitor re-checks the cluster at least this often, changes or not.
    #[arg(long, env = "VO_SAFETY_INTERVAL_MS", value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub safety_interval_ms: u64,

    /// Seconds between keep-alive comments on every version stream (one timer
    /// for the node). The default stays under the 55-60 s idle timeouts of
    /// common proxies and load balancers.
    #[arg(long, env = "VO_KEEPALIVE_SECS", value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive_secs: u64,
}

impl Config {
    /// The version this node runs as.
    pub fn version(&self) -> Version {
        self.app_version.clone().unwrap_or_else(|| {
            Version::parse(BUILD_VERSION).expect("Cargo package versions are semver")
        })
    }

    /// This node's id, generated once per process when not configured.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(default_node_id)
    }

    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs)
    }

    /// The cluster settings, when the node runs in cluster mode.
    pub fn cluster_settings(&self) -> Option<crate::cluster::transport::ClusterSettings> {
        let url = self.nats.clone()?;
        Some(crate::cluster::transport::ClusterSettings {
            url,
            creds: self.nats_creds.clone(),
            cluster: self.cluster.clone(),
            node_timeout: Duration::from_millis(self.node_timeout_ms),
            lease: Duration::from_millis(self.lease_ms),
            round_timeout: Duration::from_millis(self.round_timeout_ms),
            safety_interval: Duration::from_millis(self.safety_interval_ms),
        })
    }

    /// A configuration with every default, for tests and embedding.
    pub fn defaults() -> Self {
        Self::parse_from(["version-observer"])
    }
}

fn parse_version(value: &str) -> Result<Version, String> {
    Version::parse(value.trim()).map_err(|e| {
        format!("not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.4.0): {e}")
    })
}

fn parse_node_id(value: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if value.is_empty() || value.len() > 64 || !value.chars().all(ok_char) {
        return Err("use 1 to 64 letters, digits, '.', '_' or '-'".into());
    }
    Ok(value.to_owned())
}

fn parse_cluster_name(value: &str) -> Result<String, String> {
    crate::cluster::protocol::valid_cluster_name(value)?;
    Ok(value.to_owned())
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    let host = if host.is_empty() { "node".into() } else { host };
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("version-observer").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = Config::defaults();
        assert_eq!(c.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.compat, Compat::Major);
        assert_eq!(c.version(), Version::parse(BUILD_VERSION).unwrap());
        assert_eq!(c.site_root, PathBuf::from("target/site"));
        assert_eq!(c.keepalive(), std::time::Duration::from_secs(30));
        assert!(c.cluster_settings().is_none(), "single node by default");
    }

    #[test]
    fn nats_puts_the_node_in_cluster_mode() {
        let c = parse(&[
            "--nats",
            "nats://u:p@127.0.0.1:4222",
            "--cluster",
            "shop",
            "--lease-ms",
            "2000",
        ])
        .unwrap();
        let s = c.cluster_settings().unwrap();
        assert_eq!(s.url, "nats://u:p@127.0.0.1:4222");
        assert_eq!(s.cluster, "shop");
        assert_eq!(s.lease, Duration::from_millis(2_000));
        assert_eq!(s.node_timeout, Duration::from_millis(3_000));
    }

    #[test]
    fn accepts_pre_release_and_build_metadata() {
        let c = parse(&["--app-version", "1.0.0-rc.1+abc"]).unwrap();
        assert_eq!(c.version().to_string(), "1.0.0-rc.1+abc");
    }

    #[test]
    fn rejects_a_bad_version_naming_it() {
        for bad in ["1.0", "v1.0.0", "latest", "1.0.0.0", ""] {
            let err = parse(&["--app-version", bad]).unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
            assert!(err.contains("--app-version"), "{err}");
        }
    }

    #[test]
    fn rejects_bad_modes_and_ids_naming_them() {
        let err = parse(&["--compat", "semver"]).unwrap_err().to_string();
        assert!(err.contains("semver"), "{err}");
        let err = parse(&["--node-id", "a b"]).unwrap_err().to_string();
        assert!(err.contains("'a b'"), "{err}");
        let err = parse(&["--listen", "localhost"]).unwrap_err().to_string();
        assert!(err.contains("'localhost'"), "{err}");
        let err = parse(&["--max-streams", "0"]).unwrap_err().to_string();
        assert!(err.contains("'0'"), "{err}");
        let err = parse(&["--cluster", "a.b"]).unwrap_err().to_string();
        assert!(err.contains("'a.b'"), "{err}");
        let err = parse(&["--nats-creds", "x.creds"]).unwrap_err().to_string();
        assert!(err.contains("--nats"), "creds need a URL: {err}");
    }

    #[test]
    fn generated_node_ids_are_valid_and_distinct() {
        let (a, b) = (default_node_id(), default_node_id());
        assert!(parse_node_id(&a).is_ok(), "{a}");
        assert_eq!(a.rsplit_once('-').unwrap().0, b.rsplit_once('-').unwrap().0);
    }
}
