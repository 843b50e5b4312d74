//! The node's configuration, typed and layered: built-in defaults, then the
//! configuration file (`Leptos.toml` in the working directory when present,
//! or the file `--config` names), then `VO_*` environment variables, then
//! command-line flags; each layer wins over the ones before it. The file's
//! keys are the flags' long names (`listen = "0.0.0.0:3000"`,
//! `node-timeout-ms = 3000`), so there is one list of settings and one
//! validation for all layers: every value, wherever it comes from, is checked
//! here, and a bad one stops start-up with a message that names it (and the
//! file, when it came from there).

use clap::{parser::ValueSource, CommandFactory, FromArgMatches, Parser};
use semver::Version;
use std::{
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};
use version_observer::{
    core::{protocol, release::valid_notes_url, timing::streams},
    Compat, NatsSettings, ObserverBuilder, Release, Severity, Timings,
};

/// The version this binary was built as.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One version-observer node.
#[derive(Debug, Clone, Parser)]
#[command(name = "version-observer", version, about, long_about = None)]
pub struct Config {
    /// Configuration file: TOML, keys are these flags' long names
    /// [default: Leptos.toml in the working directory, if present].
    #[arg(long, env = "VO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

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

    /// How urgent reloading onto this node's version is, when the cluster
    /// announces it: optional or required (pages older than
    /// --min-supported-version are told required either way).
    #[arg(long, env = "VO_RELEASE_SEVERITY", value_name = "SEVERITY", default_value = "optional",
          value_parser = parse_severity)]
    pub release_severity: Severity,

    /// Release notes of this node's version, linked from the banner: an
    /// https:// or http:// URL, or a path on the site starting with '/'.
    #[arg(long, env = "VO_RELEASE_NOTES_URL", value_name = "URL", value_parser = parse_notes_url)]
    pub release_notes_url: Option<String>,

    /// The oldest page version that still works with this node's version:
    /// older pages are told the reload is required.
    #[arg(long, env = "VO_MIN_SUPPORTED_VERSION", value_name = "SEMVER", value_parser = parse_version)]
    pub min_supported_version: Option<Version>,

    /// Folder with the built site (the wasm, JS and CSS under pkg/).
    #[arg(
        long,
        env = "VO_SITE_ROOT",
        value_name = "DIR",
        default_value = "target/site"
    )]
    pub site_root: PathBuf,

    /// Most open version streams (SSE clients); more are refused with 503
    /// (by default, what the open-files limit allows, less a reserve, at most 100000).
    #[arg(long, env = "VO_MAX_STREAMS", value_name = "N", default_value_t = crate::limits::default_max_streams(),
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,

    /// Most requests other than streams handled at once; more are refused with 503.
    #[arg(long, env = "VO_MAX_INFLIGHT", value_name = "N", default_value_t = 1_024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_inflight: u32,

    /// How to reach the cluster: shared with the tools (`wait`, `status`).
    #[command(flatten)]
    pub connection: NatsArgs,

    /// Replicas of the cluster's KV bucket when this node creates it (a NATS
    /// cluster of 3 servers: 3).
    #[arg(long, env = "VO_KV_REPLICAS", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub kv_replicas: u8,

    /// Versions whose bundles (wasm, JS, CSS) the cluster's asset store
    /// keeps, so that any node can serve a page of one of them its own
    /// bundle; a starting node deletes older ones, never a version a live
    /// node runs (cluster mode; 0: no asset store, each node serves only
    /// its own bundle).
    #[arg(long, env = "VO_ASSET_VERSIONS", value_name = "N", default_value_t = ObserverBuilder::DEFAULT_KEEP_VERSIONS as u16,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub asset_versions: u16,

    /// The monitor's lease: a crashed monitor is replaced within about this long + 1 s.
    #[arg(long, env = "VO_LEASE_MS", value_name = "MS", default_value_t = ms(Timings::DEFAULT.lease),
          value_parser = range(1))]
    pub lease_ms: u64,

    /// How long a collection round waits for replies (one hung node cannot stall it longer).
    #[arg(long, env = "VO_ROUND_TIMEOUT_MS", value_name = "MS", default_value_t = ms(Timings::DEFAULT.round_timeout),
          value_parser = range(2))]
    pub round_timeout_ms: u64,

    /// The monitor re-checks the cluster at least this often, changes or
    /// not; every node checks this often that its bundle is still in the
    /// asset store.
    #[arg(long, env = "VO_SAFETY_INTERVAL_MS", value_name = "MS", default_value_t = ms(Timings::DEFAULT.safety_interval),
          value_parser = range(3))]
    pub safety_interval_ms: u64,

    /// Version affinity (cluster mode): on, a request from a page of a
    /// version this node cannot serve goes to a live node of a matching
    /// version, and its answer comes back unchanged; off, it gets 409
    /// stale_client, and this node serves no forwarded requests.
    #[arg(long, env = "VO_AFFINITY", value_name = "ON|OFF", default_value = "on",
          value_parser = parse_on_off)]
    pub affinity: bool,

    /// How long a forwarded request may take, there and back, before the
    /// browser gets a 409 saying so (it may have run; it is never retried).
    #[arg(long, env = "VO_FORWARD_TIMEOUT_MS", value_name = "MS",
          default_value_t = ms(ObserverBuilder::DEFAULT_FORWARD_TIMEOUT),
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub forward_timeout_ms: u64,

    /// Retire on SIGTERM instead of stopping at once (cluster mode): leave
    /// the load balancer (/readyz answers 503, page loads get 503), stop
    /// counting for settlement, and keep serving the forwarded requests of
    /// this version's open pages until none has needed it for
    /// --retire-grace, or for at most this long (90s, 15m, 1h; up to 24h).
    /// A second SIGTERM (or SIGINT) stops at once [default: off].
    #[arg(long, env = "VO_RETIRE_FOR", value_name = "DURATION", value_parser = parse_retire_for,
          requires = "nats")]
    pub retire_for: Option<Duration>,

    /// How long no open page must have needed a retiring node before it exits.
    #[arg(long, env = "VO_RETIRE_GRACE", value_name = "DURATION",
          default_value = "10s", value_parser = parse_retire_grace)]
    pub retire_grace: Duration,

    /// Address for the operators' routes, /api/cluster and /metrics
    /// [default: none, they are not served]. Keep it private (loopback, an
    /// internal network): the public --listen port never serves them.
    #[arg(long, env = "VO_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// File holding a token the admin listener then requires on every
    /// request (Authorization: Bearer <token>); 16 bytes or more.
    #[arg(
        long,
        env = "VO_ADMIN_TOKEN_FILE",
        value_name = "FILE",
        requires = "admin_listen"
    )]
    pub admin_token_file: Option<PathBuf>,

    /// Log format: text (for people) or json (one object per line, with the
    /// node id, cluster and role on every line, for log collectors).
    #[arg(
        long,
        env = "VO_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub log_format: crate::telemetry::LogFormat,

    /// Seconds between keep-alive comments on every version stream (one timer
    /// for the node). The default stays under the 55-60 s idle timeouts of
    /// common proxies and load balancers.
    #[arg(long, env = "VO_KEEPALIVE_SECS", value_name = "SECS", default_value_t = streams::KEEPALIVE.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive_secs: u64,

    /// Seconds a connection may pass no byte either way (idle between
    /// requests) before the node closes it; at least twice the keep-alive
    /// interval. Set it above the idle timeout of the load balancer in front.
    #[arg(long, env = "VO_IDLE_TIMEOUT_SECS", value_name = "SECS", default_value_t = ObserverBuilder::DEFAULT_IDLE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,
}

/// How a node, or a tool watching its cluster, reaches the cluster: the
/// NATS flags, declared once for both.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL: puts a node in cluster mode (absent: a single node).
    /// User and password or a token may be in the URL (nats://user:pass@host:4222);
    /// tls:// for TLS. Several URLs may be given, comma-separated.
    #[arg(long, env = "VO_NATS", value_name = "URL")]
    pub nats: Option<String>,

    /// NATS credentials file (JWT and NKey seed), for decentralized auth.
    #[arg(long, env = "VO_NATS_CREDS", value_name = "FILE", requires = "nats")]
    pub nats_creds: Option<PathBuf>,

    /// PEM file of CA certificates to trust for tls:// NATS servers (a private CA).
    #[arg(long, env = "VO_NATS_CA", value_name = "FILE", requires = "nats")]
    pub nats_ca: Option<PathBuf>,

    /// File with the cluster's shared secret (16+ bytes): every cluster
    /// message is then authenticated (HMAC), and unauthenticated ones are dropped.
    #[arg(
        long,
        env = "VO_CLUSTER_KEY_FILE",
        value_name = "FILE",
        requires = "nats"
    )]
    pub cluster_key_file: Option<PathBuf>,

    /// Cluster name: namespaces every subject and KV bucket, so several apps or
    /// environments can share one NATS.
    #[arg(long, env = "VO_CLUSTER", value_name = "NAME", default_value = NatsSettings::DEFAULT_CLUSTER,
          value_parser = parse_cluster_name)]
    pub cluster: String,

    /// A node not heard from for this long is gone (crash detection); a
    /// tool's view of the cluster is complete after hearing for this long.
    #[arg(long, env = "VO_NODE_TIMEOUT_MS", value_name = "MS", default_value_t = ms(Timings::DEFAULT.node_timeout),
          value_parser = range(0))]
    pub node_timeout_ms: u64,
}

impl NatsArgs {
    /// The cluster's settings with these flags, and `timings` (a node's
    /// own; the tools use the defaults but the node timeout).
    pub fn settings(&self, timings: Timings) -> Option<NatsSettings> {
        let settings = NatsSettings::new(self.nats.clone()?)
            .cluster(&self.cluster)
            .timings(timings);
        Some(with_files(
            settings,
            self.nats_creds.as_deref(),
            self.nats_ca.as_deref(),
            self.cluster_key_file.as_deref(),
        ))
    }

    pub fn node_timeout(&self) -> Duration {
        Duration::from_millis(self.node_timeout_ms)
    }
}

impl Config {
    /// The version this node runs as.
    pub fn version(&self) -> Version {
        self.app_version.clone().unwrap_or_else(|| {
            Version::parse(BUILD_VERSION).expect("Cargo package versions are semver")
        })
    }

    /// What this node's operators say about its version, from the
    /// `--release-*` and `--min-supported-version` flags.
    pub fn release(&self) -> Release {
        Release {
            severity: self.release_severity,
            notes_url: self.release_notes_url.clone(),
            min_supported: self.min_supported_version.clone(),
        }
    }

    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// The cluster's timings.
    pub fn timings(&self) -> Timings {
        Timings {
            node_timeout: self.connection.node_timeout(),
            lease: Duration::from_millis(self.lease_ms),
            round_timeout: Duration::from_millis(self.round_timeout_ms),
            safety_interval: Duration::from_millis(self.safety_interval_ms),
        }
    }

    /// How the node reaches its cluster, in cluster mode.
    pub fn nats_settings(&self) -> Option<NatsSettings> {
        Some(
            self.connection
                .settings(self.timings())?
                .kv_replicas(usize::from(self.kv_replicas)),
        )
    }

    /// A configuration with every built-in default (no file, no environment
    /// variables but those set).
    pub fn defaults() -> Self {
        Self::parse_from(["version-observer"])
    }

    /// The node's configuration from this process's flags, environment and
    /// configuration file, or an error naming the bad value (and its file)
    /// if one is bad (`--help` and `--version` come back as errors too, as
    /// in clap: print them with [`clap::Error::print`]).
    pub fn load() -> Result<Self, clap::Error> {
        Self::load_from(std::env::args_os())
    }

    /// [`load`](Self::load) for these arguments (the first is the program name).
    pub fn load_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let matches = Self::command().try_get_matches_from(&args)?;
        let explicit = matches.get_one::<PathBuf>("config").cloned();
        let path = match explicit {
            Some(path) => path,
            None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
            None => return Self::from_arg_matches(&matches),
        };
        let from_file = file_args(&path, |id| {
            // A setting given as a flag or in the environment wins over the file.
            matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            )
        })?;
        let mut layered = args.clone();
        layered.extend(from_file.into_iter().map(OsString::from));
        Self::try_parse_from(&layered).map_err(|e| {
            Self::command().error(
                clap::error::ErrorKind::ValueValidation,
                format!(
                    "in {}: {}",
                    path.display(),
                    strip_error_prefix(&e.to_string())
                ),
            )
        })
    }
}

/// `settings` with the NATS credentials file, the CA certificates and the
/// cluster key file that are given (the node's flags, and the tools').
pub(crate) fn with_files(
    mut settings: NatsSettings,
    creds: Option<&Path>,
    ca: Option<&Path>,
    key: Option<&Path>,
) -> NatsSettings {
    if let Some(creds) = creds {
        settings = settings.credentials_file(creds);
    }
    if let Some(ca) = ca {
        settings = settings.root_certificates(ca);
    }
    if let Some(key) = key {
        settings = settings.cluster_key_file(key);
    }
    settings
}

/// The configuration file read by default, from the working directory.
pub const DEFAULT_FILE: &str = "Leptos.toml";

/// The file's settings as `--flag=value` arguments, for the flags `wanted`
/// says the file may still set. Unknown keys and values that are not
/// strings or numbers are errors naming the key and the file.
fn file_args(path: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<String>, clap::Error> {
    let fail =
        |message: String| Config::command().error(clap::error::ErrorKind::InvalidValue, message);
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(format!(
            "cannot read the configuration file {}: {e}",
            path.display()
        ))
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| fail(format!("{} is not valid TOML: {e}", path.display())))?;
    let command = Config::command();
    let mut args = Vec::new();
    for (key, value) in table {
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && a.get_id() != "config")
        else {
            let known: Vec<&str> = command
                .get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|l| !matches!(*l, "config" | "help" | "version"))
                .collect();
            return Err(fail(format!(
                "unknown setting '{key}' in {}; the settings are the flags' long names: {}",
                path.display(),
                known.join(", ")
            )));
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(fail(format!(
                    "'{key}' in {} must be a string or a number, not {}",
                    path.display(),
                    other.type_str()
                )))
            }
        };
        if wanted(arg.get_id().as_str()) {
            args.push(format!("--{key}={value}"));
        }
    }
    Ok(args)
}

/// clap's own "error: " prefix, which the re-wrapped message gets again.
fn strip_error_prefix(message: &str) -> &str {
    let message = message.trim();
    let message = message.strip_prefix("error: ").unwrap_or(message);
    message
        .split("\n\nFor more information")
        .next()
        .unwrap_or(message)
}

/// A duration in whole milliseconds, for flag defaults.
pub(crate) const fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The allowed range of the `index`-th timing ([`Timings::RANGES_MS`]).
pub(crate) fn range(index: usize) -> clap::builder::RangedU64ValueParser {
    let (_, min, max) = Timings::RANGES_MS[index];
    clap::value_parser!(u64).range(min..=max)
}

pub(crate) fn parse_version(value: &str) -> Result<Version, String> {
    Version::parse(value.trim()).map_err(|e| {
        format!("not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.4.0): {e}")
    })
}

fn parse_severity(value: &str) -> Result<Severity, String> {
    value.parse()
}

fn parse_notes_url(value: &str) -> Result<String, String> {
    valid_notes_url(value).map_err(|e| e.reason.to_owned())?;
    Ok(value.to_owned())
}

fn parse_node_id(value: &str) -> Result<String, String> {
    protocol::valid_node_id(value)?;
    Ok(value.to_owned())
}

fn parse_on_off(value: &str) -> Result<bool, String> {
    match value.trim() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(format!("'{other}' is neither on nor off")),
    }
}

fn parse_retire_for(value: &str) -> Result<Duration, String> {
    let d = crate::tools::parse_duration(value)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(86_400) {
        return Err(format!("'{value}' is out of range: use 1s to 24h"));
    }
    Ok(d)
}

fn parse_retire_grace(value: &str) -> Result<Duration, String> {
    if value.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = crate::tools::parse_duration(value)?;
    if d > Duration::from_secs(3_600) {
        return Err(format!("'{value}' is out of range: use 0 to 1h"));
    }
    Ok(d)
}

pub(crate) fn parse_cluster_name(value: &str) -> Result<String, String> {
    protocol::valid_cluster_name(value)?;
    Ok(value.to_owned())
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
        assert_eq!(c.idle_timeout(), std::time::Duration::from_secs(120));
        assert!(c.nats_settings().is_none(), "single node by default");
        assert_eq!(c.timings(), Timings::DEFAULT);
        assert_eq!(c.max_streams, crate::limits::default_max_streams());
        assert!(c.max_streams <= streams::MAX_STREAMS);
        assert_eq!(c.release(), Release::default());
    }

    #[test]
    fn release_flags_make_the_release() {
        let c = parse(&[
            "--release-severity",
            "required",
            "--release-notes-url",
            "https://example.com/releases/2.0.0",
            "--min-supported-version",
            "1.4.0",
        ])
        .unwrap();
        assert_eq!(
            c.release(),
            Release {
                severity: Severity::Required,
                notes_url: Some("https://example.com/releases/2.0.0".into()),
                min_supported: Some(Version::new(1, 4, 0)),
            }
        );
        let c = parse(&["--release-notes-url", "/notes"]).unwrap();
        assert_eq!(c.release().notes_url.as_deref(), Some("/notes"));
        assert_eq!(c.release().severity, Severity::Optional);
    }

    #[test]
    fn rejects_bad_release_flags_naming_them() {
        for (flag, bad) in [
            ("--release-severity", "urgent"),
            ("--release-severity", "Required"),
            ("--release-notes-url", "javascript:alert(1)"),
            ("--release-notes-url", "//evil.example"),
            ("--release-notes-url", "notes.html"),
            ("--min-supported-version", "1.4"),
        ] {
            let err = parse(&[flag, bad]).unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
            assert!(err.contains(flag), "{err}");
        }
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
        let s = c.nats_settings().unwrap();
        assert_eq!(s.redacted_urls(), "nats://***@127.0.0.1:4222");
        assert_eq!(s.cluster_name(), "shop");
        assert_eq!(c.timings().lease, Duration::from_millis(2_000));
        assert_eq!(c.timings().node_timeout, Timings::DEFAULT.node_timeout);
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

    /// A scratch configuration file, removed on drop.
    struct File(PathBuf);

    impl File {
        fn new(text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "vo-config-{}-{:x}.toml",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::write(&path, text).unwrap();
            Self(path)
        }

        fn arg(&self) -> String {
            format!("--config={}", self.0.display())
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn load(args: &[&str]) -> Result<Config, clap::Error> {
        Config::load_from(std::iter::once("version-observer").chain(args.iter().copied()))
    }

    #[test]
    fn the_file_sets_what_flags_do_not() {
        let file = File::new(
            "listen = \"127.0.0.1:4000\"\napp-version = \"2.0.0\"\nnats = \"nats://n:4222\"\nlease-ms = 8000\ncluster = \"shop\"\n",
        );
        let c = load(&[&file.arg()]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(c.version(), Version::new(2, 0, 0));
        assert_eq!(c.timings().lease, Duration::from_millis(8_000));
        assert_eq!(c.nats_settings().unwrap().cluster_name(), "shop");
        // A flag wins over the file.
        let c = load(&[&file.arg(), "--lease-ms", "9000"]).unwrap();
        assert_eq!(c.timings().lease, Duration::from_millis(9_000));
        assert_eq!(c.listen, "127.0.0.1:4000".parse().unwrap());
    }

    #[test]
    fn bad_file_values_are_named_with_the_file() {
        let file = File::new("app-version = \"1.0\"\n");
        let err = load(&[&file.arg()]).unwrap_err().to_string();
        assert!(err.contains("'1.0'"), "{err}");
        assert!(err.contains(&file.0.display().to_string()), "{err}");
        let file = File::new("lisen = \"x\"\n");
        let err = load(&[&file.arg()]).unwrap_err().to_string();
        assert!(err.contains("unknown setting 'lisen'"), "{err}");
        assert!(err.contains("listen"), "the known names are listed: {err}");
        let file = File::new("listen = [1]\n");
        let err = load(&[&file.arg()]).unwrap_err().to_string();
        assert!(err.contains("'listen'"), "{err}");
        let file = File::new("listen = \n");
        let err = load(&[&file.arg()]).unwrap_err().to_string();
        assert!(err.contains("not valid TOML"), "{err}");
        let err = load(&["--config", "/nonexistent/vo.toml"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/vo.toml"), "{err}");
    }
}
