//! Typed settings: how an observer is built ([`ObserverBuilder`]) and how
//! it reaches its cluster ([`NatsSettings`]). Everything is checked when the
//! observer starts, and a bad value stops it with a [`StartError`] naming
//! the value.

use super::observer::VersionObserver;
use std::{path::PathBuf, time::Duration};
use version_observer_core::{
    auth::ClusterKey,
    protocol::{valid_cluster_name, valid_node_id},
    release::ReleaseError,
    timing::{streams, TimingError},
    Compat, Release, Timings, Version,
};

/// Builds a [`VersionObserver`]; start from [`VersionObserver::builder`].
///
/// ```no_run
/// # async fn demo() -> Result<(), version_observer::StartError> {
/// use version_observer::{Compat, NatsSettings, VersionObserver};
/// let observer = VersionObserver::builder("2.1.0".parse().unwrap())
///     .node_id("web-1")
///     .compat(Compat::Minor)
///     .nats(NatsSettings::new("nats://nats.internal:4222").cluster("shop"))
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "call .start() to run the observer"]
pub struct ObserverBuilder {
    pub(crate) version: Version,
    pub(crate) node_id: Option<String>,
    pub(crate) compat: Compat,
    pub(crate) nats: Option<NatsSettings>,
    pub(crate) max_streams: u32,
    pub(crate) keepalive: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) release: Release,
    pub(crate) bundle: Option<super::assets::Bundle>,
    pub(crate) asset_versions: usize,
    pub(crate) affinity: bool,
    pub(crate) forward_timeout: Duration,
    pub(crate) retire_for: Option<Duration>,
    pub(crate) retire_grace: Duration,
}

impl ObserverBuilder {
    /// How long a connection handed to your app may stay idle by default
    /// ([`idle_timeout`](Self::idle_timeout)): 120 s.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = version_observer_core::timing::http::IDLE_TIMEOUT;
    /// How many versions' bundles the cluster's asset store keeps by default
    /// ([`asset_versions`](Self::asset_versions)).
    pub const DEFAULT_KEEP_VERSIONS: usize = version_observer_core::assets::DEFAULT_KEEP_VERSIONS;
    /// How long a forwarded request may take by default ([`forward_timeout`](Self::forward_timeout)).
    pub const DEFAULT_FORWARD_TIMEOUT: Duration =
        version_observer_core::timing::forward::DEFAULT_TIMEOUT;
    /// How long no page must have needed a retiring node by default ([`retire_grace`](Self::retire_grace)).
    pub const DEFAULT_RETIRE_GRACE: Duration = version_observer_core::timing::DEFAULT_RETIRE_GRACE;

    pub(crate) fn new(version: Version) -> Self {
        Self {
            version,
            node_id: None,
            compat: Compat::default(),
            nats: None,
            max_streams: streams::MAX_STREAMS,
            keepalive: streams::KEEPALIVE,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            release: Release::default(),
            bundle: None,
            asset_versions: Self::DEFAULT_KEEP_VERSIONS,
            affinity: true,
            forward_timeout: Self::DEFAULT_FORWARD_TIMEOUT,
            retire_for: None,
            retire_grace: Self::DEFAULT_RETIRE_GRACE,
        }
    }

    /// This node's name in its cluster: 1 to 64 letters, digits, `.`, `_`
    /// or `-` (default: `<hostname>-<pid>-<random>`).
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }

    /// Which version changes make open pages stale [default: [`Compat::Major`]].
    pub fn compat(mut self, compat: Compat) -> Self {
        self.compat = compat;
        self
    }

    /// Coordinate with other nodes over NATS [default: none, a single node
    /// that is its own cluster].
    pub fn nats(mut self, nats: NatsSettings) -> Self {
        self.nats = Some(nats);
        self
    }

    /// Like [`nats`](Self::nats), for an optional setting.
    pub fn nats_opt(mut self, nats: Option<NatsSettings>) -> Self {
        self.nats = nats;
        self
    }

    /// Most open version streams; more are refused with `503` [default: 100,000].
    pub fn max_streams(mut self, max: u32) -> Self {
        self.max_streams = max;
        self
    }

    /// How often every open stream gets a keep-alive comment (one timer for
    /// the node) [default: 30 s, under common proxies' 60 s idle timeout].
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = interval;
        self
    }

    /// How long a connection that [`VersionObserver::listener`](super::VersionObserver::listener)
    /// hands to your app may pass no byte either way (idle between
    /// requests, or a handler that answers nothing for that long) before
    /// the listener closes it [default:
    /// [`DEFAULT_IDLE_TIMEOUT`](Self::DEFAULT_IDLE_TIMEOUT), 120 s, longer
    /// than common proxies' 60-75 s idle timeouts; never less than twice
    /// the keep-alive interval, so streams served by your app stay open].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), version_observer::StartError> {
    /// use std::time::Duration;
    /// use version_observer::VersionObserver;
    ///
    /// let observer = VersionObserver::builder("1.4.0".parse().unwrap())
    ///     .idle_timeout(Duration::from_secs(300)) // behind a 240 s load balancer
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// What this version's operators say about it [default: nothing:
    /// `optional`, no notes, no minimum]: how urgent reloading onto it is,
    /// where its release notes are, and the oldest page version that still
    /// works. It travels with this node's version replies into the
    /// cluster's record once the cluster settles on this version (a single
    /// node announces it with its own version), and browsers get it with
    /// the announcement (`announced_release` in the report), so the banner
    /// of an old page can say *required* and link the notes
    /// ([`PageKnowledge::staleness`](crate::PageKnowledge::staleness)).
    /// Give it to every node of the version. A notes URL that is not an
    /// `https://`/`http://` URL or a path starting with `/` (see
    /// [`Release::validate`]) stops [`start`](Self::start) with
    /// [`StartError::Release`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), version_observer::StartError> {
    /// use version_observer::{Release, Severity, Version, VersionObserver};
    /// let observer = VersionObserver::builder(Version::new(2, 0, 0))
    ///     .release(Release {
    ///         severity: Severity::Required,
    ///         notes_url: Some("https://example.com/releases/2.0.0".into()),
    ///         min_supported: Some(Version::new(1, 4, 0)),
    ///     })
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn release(mut self, release: Release) -> Self {
        self.release = release;
        self
    }

    /// The site's bundle ([`Bundle::find`](crate::Bundle::find)),
    /// served by [`version_observer_asset_routes`](crate::VersionObserverRoutes::version_observer_asset_routes)
    /// with caching headers that fit its names; in cluster mode also put
    /// into the cluster's asset store at start, so nodes of other versions
    /// can serve it to this version's pages (see [`Bundle`](crate::Bundle))
    /// [default: none].
    pub fn bundle(mut self, bundle: super::assets::Bundle) -> Self {
        self.bundle = Some(bundle);
        self
    }

    /// How many versions' bundles the cluster's asset store keeps: the
    /// most recently started ones, and every version a live node runs; a
    /// starting node deletes the rest (1 to 1000; 0: no asset store, each
    /// node serves only its own bundle) [default:
    /// [`DEFAULT_KEEP_VERSIONS`](Self::DEFAULT_KEEP_VERSIONS), 5].
    pub fn asset_versions(mut self, versions: usize) -> Self {
        self.asset_versions = versions;
        self
    }

    /// Version affinity, in a cluster [default: on]: a request from a page
    /// of a version this node cannot serve (the request guard would refuse
    /// it) goes to a live member of a matching version, and its answer
    /// comes back unchanged; a server function call prefers a member of
    /// the page's exact build. Off: such a request is refused with `409`,
    /// and this node serves no forwarded requests either. A single node
    /// has nobody to forward to. See
    /// [`request_guard`](crate::VersionObserver::request_guard).
    pub fn affinity(mut self, on: bool) -> Self {
        self.affinity = on;
        self
    }

    /// How long a forwarded request may take, there and back, before the
    /// browser gets a `409` saying so (the request may have run on the
    /// member: it is never retried) [default: 10 s].
    pub fn forward_timeout(mut self, timeout: Duration) -> Self {
        self.forward_timeout = timeout;
        self
    }

    /// Retire instead of stopping at once, in a cluster [default: off]:
    /// on the first stop ([`VersionObserver::stop`], SIGTERM), the node
    /// leaves the load balancer (its readiness route answers `503`, page
    /// loads get `503` with `Retry-After`), stops counting for settlement,
    /// hands the monitor lease over, and keeps serving requests forwarded
    /// to its version until no open page in the cluster has needed it for
    /// [`retire_grace`](Self::retire_grace), or for at most `retire_for`
    /// (1 s to 24 h). A second stop ends it at once. Keep your platform's
    /// kill timeout (Kubernetes' `terminationGracePeriodSeconds`) above it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), version_observer::StartError> {
    /// use std::time::Duration;
    /// use version_observer::{NatsSettings, VersionObserver};
    ///
    /// let observer = VersionObserver::builder("2.0.0".parse().unwrap())
    ///     .nats(NatsSettings::new("nats://nats:4222"))
    ///     .retire_for(Duration::from_secs(15 * 60))
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn retire_for(mut self, longest: Duration) -> Self {
        self.retire_for = Some(longest);
        self
    }

    /// Like [`retire_for`](Self::retire_for), for an optional setting.
    pub fn retire_for_opt(mut self, longest: Option<Duration>) -> Self {
        self.retire_for = longest;
        self
    }

    /// How long no open page must have needed a retiring node before it
    /// exits [default: 10 s, so a tab whose stream is reconnecting is seen
    /// again].
    pub fn retire_grace(mut self, grace: Duration) -> Self {
        self.retire_grace = grace;
        self
    }

    /// The settings the `VO_*` environment variables give, over the ones
    /// set so far: the reference node's variables for the same settings
    /// ([`env`](crate::env) lists them), so a host app is configured like it, without
    /// code of its own. Unset variables change nothing; a bad value is a
    /// [`StartError::Env`] naming the variable. `VO_NATS` puts the node in
    /// a cluster, with the NATS variables beside it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), version_observer::StartError> {
    /// use version_observer::VersionObserver;
    /// // VO_NATS=nats://nats:4222 VO_CLUSTER=shop VO_RETIRE_FOR=15m ./myapp
    /// let observer = VersionObserver::builder("2.0.0".parse().unwrap())
    ///     .with_env()?
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn with_env(self) -> Result<Self, StartError> {
        self.with_vars(|name| std::env::var(name).ok())
    }

    /// [`with_env`](Self::with_env), with `var` standing in for the
    /// environment.
    pub(crate) fn with_vars(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, StartError> {
        fn parse<T>(
            var: &impl Fn(&str) -> Option<String>,
            name: &'static str,
            read: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, StartError> {
            let Some(value) = var(name) else {
                return Ok(None);
            };
            read(value.trim())
                .map(Some)
                .map_err(|reason| StartError::Env {
                    name,
                    value,
                    reason,
                })
        }
        let number = |v: &str| v.parse::<u64>().map_err(|e| e.to_string());
        let millis = |v: &str| number(v).map(Duration::from_millis);
        let duration = |v: &str| {
            if v == "0" {
                Ok(Duration::ZERO)
            } else {
                version_observer_core::timing::parse_duration(v)
            }
        };
        if let Some(id) = parse(&var, env::NODE_ID, |v| Ok(v.to_owned()))? {
            self.node_id = Some(id);
        }
        if let Some(compat) = parse(&var, env::COMPAT, |v| {
            v.parse::<Compat>().map_err(|e| e.to_string())
        })? {
            self.compat = compat;
        }
        if let Some(n) = parse(&var, env::MAX_STREAMS, number)? {
            self.max_streams = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(secs) = parse(&var, env::KEEPALIVE_SECS, number)? {
            self.keepalive = Duration::from_secs(secs);
        }
        if let Some(secs) = parse(&var, env::IDLE_TIMEOUT_SECS, number)? {
            self.idle_timeout = Duration::from_secs(secs);
        }
        if let Some(severity) = parse(&var, env::RELEASE_SEVERITY, |v| v.parse())? {
            self.release.severity = severity;
        }
        if let Some(url) = parse(&var, env::RELEASE_NOTES_URL, |v| Ok(v.to_owned()))? {
            self.release.notes_url = Some(url);
        }
        if let Some(min) = parse(&var, env::MIN_SUPPORTED_VERSION, |v| {
            Version::parse(v).map_err(|e| e.to_string())
        })? {
            self.release.min_supported = Some(min);
        }
        if let Some(n) = parse(&var, env::ASSET_VERSIONS, number)? {
            self.asset_versions = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(on) = parse(&var, env::AFFINITY, |v| match v {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err("use on or off".into()),
        })? {
            self.affinity = on;
        }
        if let Some(timeout) = parse(&var, env::FORWARD_TIMEOUT_MS, millis)? {
            self.forward_timeout = timeout;
        }
        if let Some(longest) = parse(&var, env::RETIRE_FOR, duration)? {
            self.retire_for = (!longest.is_zero()).then_some(longest);
        }
        if let Some(grace) = parse(&var, env::RETIRE_GRACE, duration)? {
            self.retire_grace = grace;
        }
        if let Some(urls) = parse(&var, env::NATS, |v| Ok(v.to_owned()))? {
            let mut nats = self.nats.take().unwrap_or_else(|| NatsSettings::new(""));
            nats.urls = urls;
            self.nats = Some(nats);
        }
        if let Some(nats) = self.nats.as_mut() {
            if let Some(cluster) = parse(&var, env::CLUSTER, |v| Ok(v.to_owned()))? {
                nats.cluster = cluster;
            }
            if let Some(path) = parse(&var, env::NATS_CREDS, |v| Ok(PathBuf::from(v)))? {
                nats.credentials = Some(path);
            }
            if let Some(path) = parse(&var, env::NATS_CA, |v| Ok(PathBuf::from(v)))? {
                nats.root_certificates = Some(path);
            }
            if let Some(path) = parse(&var, env::CLUSTER_KEY_FILE, |v| Ok(PathBuf::from(v)))? {
                nats.key_file = Some(path);
            }
            if let Some(n) = parse(&var, env::KV_REPLICAS, number)? {
                nats.kv_replicas = usize::try_from(n).unwrap_or(usize::MAX);
            }
            let timings = &mut nats.timings;
            for (name, field) in [
                (env::NODE_TIMEOUT_MS, &mut timings.node_timeout),
                (env::LEASE_MS, &mut timings.lease),
                (env::ROUND_TIMEOUT_MS, &mut timings.round_timeout),
                (env::SAFETY_INTERVAL_MS, &mut timings.safety_interval),
            ] {
                if let Some(value) = parse(&var, name, millis)? {
                    *field = value;
                }
            }
        }
        Ok(self)
    }

    /// Checks the settings and starts the observer (and, with NATS, its
    /// cluster node, which connects in the background: a node starts and
    /// serves even while NATS is down).
    pub async fn start(self) -> Result<VersionObserver, StartError> {
        VersionObserver::start(self).await
    }

    pub(crate) fn validate(&self) -> Result<String, StartError> {
        let node_id = match &self.node_id {
            Some(id) => {
                valid_node_id(id).map_err(|reason| StartError::NodeId {
                    value: id.clone(),
                    reason,
                })?;
                id.clone()
            }
            None => default_node_id(),
        };
        if self.max_streams == 0 {
            return Err(StartError::Setting("max_streams must be at least 1".into()));
        }
        self.release.validate()?;
        if self.asset_versions > 1000 {
            return Err(StartError::Setting(format!(
                "asset versions {} is out of range: use 0 to 1000",
                self.asset_versions
            )));
        }
        if self.keepalive.is_zero() {
            return Err(StartError::Setting(
                "keepalive must be longer than 0".into(),
            ));
        }
        if self.idle_timeout.is_zero() {
            return Err(StartError::Setting(
                "idle_timeout must be longer than 0".into(),
            ));
        }
        if self.forward_timeout < Duration::from_millis(10)
            || self.forward_timeout > Duration::from_secs(600)
        {
            return Err(StartError::Setting(format!(
                "forward timeout {:?} is out of range: use 10 ms to 10 min",
                self.forward_timeout
            )));
        }
        if let Some(retire_for) = self.retire_for {
            if retire_for < Duration::from_secs(1) || retire_for > Duration::from_secs(86_400) {
                return Err(StartError::Setting(format!(
                    "retire-for {retire_for:?} is out of range: use 1 s to 24 h"
                )));
            }
        }
        if self.retire_grace > Duration::from_secs(3_600) {
            return Err(StartError::Setting(format!(
                "retire grace {:?} is out of range: use 0 to 1 h",
                self.retire_grace
            )));
        }
        if let Some(nats) = &self.nats {
            valid_cluster_name(&nats.cluster).map_err(|reason| StartError::Cluster {
                value: nats.cluster.clone(),
                reason,
            })?;
            nats.timings.validate()?;
            if !(1..=5).contains(&nats.kv_replicas) {
                return Err(StartError::Setting(format!(
                    "kv replicas {} is out of range: use 1 to 5",
                    nats.kv_replicas
                )));
            }
            nats.server_addrs()?;
            nats.cluster_key()?;
        }
        Ok(node_id)
    }
}

/// The environment variables [`ObserverBuilder::with_env`] reads, one per
/// setting: the names the reference node reads too.
///
/// ```
/// assert!(version_observer::env::ALL.contains(&version_observer::env::NATS));
/// assert_eq!(version_observer::env::NATS, "VO_NATS");
/// ```
pub mod env {
    /// [`ObserverBuilder::node_id`](super::ObserverBuilder::node_id).
    pub const NODE_ID: &str = "VO_NODE_ID";
    /// [`ObserverBuilder::compat`](super::ObserverBuilder::compat): `major`, `minor`, `patch` or `exact`.
    pub const COMPAT: &str = "VO_COMPAT";
    /// [`ObserverBuilder::max_streams`](super::ObserverBuilder::max_streams).
    pub const MAX_STREAMS: &str = "VO_MAX_STREAMS";
    /// [`ObserverBuilder::keepalive`](super::ObserverBuilder::keepalive), in seconds.
    pub const KEEPALIVE_SECS: &str = "VO_KEEPALIVE_SECS";
    /// [`ObserverBuilder::idle_timeout`](super::ObserverBuilder::idle_timeout), in seconds.
    pub const IDLE_TIMEOUT_SECS: &str = "VO_IDLE_TIMEOUT_SECS";
    /// The release's severity ([`ObserverBuilder::release`](super::ObserverBuilder::release)): `optional` or `required`.
    pub const RELEASE_SEVERITY: &str = "VO_RELEASE_SEVERITY";
    /// The release's notes URL.
    pub const RELEASE_NOTES_URL: &str = "VO_RELEASE_NOTES_URL";
    /// The release's minimum supported version.
    pub const MIN_SUPPORTED_VERSION: &str = "VO_MIN_SUPPORTED_VERSION";
    /// [`ObserverBuilder::asset_versions`](super::ObserverBuilder::asset_versions).
    pub const ASSET_VERSIONS: &str = "VO_ASSET_VERSIONS";
    /// [`ObserverBuilder::affinity`](super::ObserverBuilder::affinity): `on` or `off`.
    pub const AFFINITY: &str = "VO_AFFINITY";
    /// [`ObserverBuilder::forward_timeout`](super::ObserverBuilder::forward_timeout), in milliseconds.
    pub const FORWARD_TIMEOUT_MS: &str = "VO_FORWARD_TIMEOUT_MS";
    /// [`ObserverBuilder::retire_for`](super::ObserverBuilder::retire_for): `90s`, `15m`, `1h` (`0`: off).
    pub const RETIRE_FOR: &str = "VO_RETIRE_FOR";
    /// [`ObserverBuilder::retire_grace`](super::ObserverBuilder::retire_grace): `10s`, or `0`.
    pub const RETIRE_GRACE: &str = "VO_RETIRE_GRACE";
    /// [`ObserverBuilder::nats`](super::ObserverBuilder::nats): the NATS URL(s); a cluster node.
    pub const NATS: &str = "VO_NATS";
    /// [`NatsSettings::cluster`](super::NatsSettings::cluster).
    pub const CLUSTER: &str = "VO_CLUSTER";
    /// [`NatsSettings::credentials_file`](super::NatsSettings::credentials_file).
    pub const NATS_CREDS: &str = "VO_NATS_CREDS";
    /// [`NatsSettings::root_certificates`](super::NatsSettings::root_certificates).
    pub const NATS_CA: &str = "VO_NATS_CA";
    /// [`NatsSettings::cluster_key_file`](super::NatsSettings::cluster_key_file).
    pub const CLUSTER_KEY_FILE: &str = "VO_CLUSTER_KEY_FILE";
    /// [`NatsSettings::kv_replicas`](super::NatsSettings::kv_replicas).
    pub const KV_REPLICAS: &str = "VO_KV_REPLICAS";
    /// The cluster's node timeout, in milliseconds ([`Timings`](crate::Timings)).
    pub const NODE_TIMEOUT_MS: &str = "VO_NODE_TIMEOUT_MS";
    /// The monitor's lease, in milliseconds.
    pub const LEASE_MS: &str = "VO_LEASE_MS";
    /// A collection round's timeout, in milliseconds.
    pub const ROUND_TIMEOUT_MS: &str = "VO_ROUND_TIMEOUT_MS";
    /// The monitor's safety interval, in milliseconds.
    pub const SAFETY_INTERVAL_MS: &str = "VO_SAFETY_INTERVAL_MS";

    /// Every variable, for documentation and tests.
    pub const ALL: [&str; 23] = [
        NODE_ID,
        COMPAT,
        MAX_STREAMS,
        KEEPALIVE_SECS,
        IDLE_TIMEOUT_SECS,
        RELEASE_SEVERITY,
        RELEASE_NOTES_URL,
        MIN_SUPPORTED_VERSION,
        ASSET_VERSIONS,
        AFFINITY,
        FORWARD_TIMEOUT_MS,
        RETIRE_FOR,
        RETIRE_GRACE,
        NATS,
        CLUSTER,
        NATS_CREDS,
        NATS_CA,
        CLUSTER_KEY_FILE,
        KV_REPLICAS,
        NODE_TIMEOUT_MS,
        LEASE_MS,
        ROUND_TIMEOUT_MS,
        SAFETY_INTERVAL_MS,
    ];
}

/// How a node reaches its cluster over NATS.
///
/// ```
/// use version_observer::{NatsSettings, Timings};
/// use std::time::Duration;
/// let nats = NatsSettings::new("nats://user:secret@nats-1:4222,nats://nats-2:4222")
///     .cluster("shop-prod")
///     .timings(Timings { lease: Duration::from_secs(10), ..Timings::DEFAULT });
/// ```
#[derive(Clone)]
pub struct NatsSettings {
    pub(crate) urls: String,
    pub(crate) cluster: String,
    pub(crate) credentials: Option<PathBuf>,
    pub(crate) root_certificates: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) kv_replicas: usize,
    pub(crate) timings: Timings,
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("urls", &redact_urls(&self.urls))
            .field("cluster", &self.cluster)
            .field("credentials", &self.credentials)
            .field("root_certificates", &self.root_certificates)
            .field("key_file", &self.key_file)
            .field("kv_replicas", &self.kv_replicas)
            .field("timings", &self.timings)
            .finish()
    }
}

impl NatsSettings {
    /// The cluster name nodes use unless told otherwise
    /// ([`cluster`](Self::cluster)).
    pub const DEFAULT_CLUSTER: &str = "default";

    /// One NATS URL or several, comma-separated (a NATS cluster):
    /// `nats://host:4222`, `tls://host:4222`, with a user and password
    /// (`nats://user:pass@host:4222`) or a token (`nats://token@host:4222`)
    /// in the first URL that has any.
    pub fn new(urls: impl Into<String>) -> Self {
        Self {
            urls: urls.into(),
            cluster: Self::DEFAULT_CLUSTER.into(),
            credentials: None,
            root_certificates: None,
            key_file: None,
            kv_replicas: 1,
            timings: Timings::DEFAULT,
        }
    }

    /// Namespaces every subject and KV bucket, so several apps or
    /// environments can share one NATS: 1 to 32 letters, digits, `_` or `-`
    /// [default: `default`].
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = name.into();
        self
    }

    /// A NATS credentials file (a user JWT and its NKey seed, as `nsc`
    /// writes it).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials = Some(path.into());
        self
    }

    /// A PEM file of CA certificates to trust for `tls://` servers (for a
    /// private CA).
    pub fn root_certificates(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_certificates = Some(path.into());
        self
    }

    /// A file holding the cluster's shared secret (at least 16 bytes; e.g.
    /// `openssl rand -base64 32 > cluster.key`): every message and KV value
    /// is then authenticated (HMAC-SHA256), and nodes drop, count and log
    /// what is not. Every node of the cluster needs the same key.
    pub fn cluster_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Replicas of the cluster's KV bucket, when a node creates it: with a
    /// NATS cluster of three servers, 3 keeps the lease and the record
    /// through the loss of one (1 to 5) [default: 1].
    pub fn kv_replicas(mut self, replicas: usize) -> Self {
        self.kv_replicas = replicas;
        self
    }

    /// The key in [`cluster_key_file`](Self::cluster_key_file), read and checked.
    pub(crate) fn cluster_key(&self) -> Result<Option<ClusterKey>, StartError> {
        let Some(path) = &self.key_file else {
            return Ok(None);
        };
        let secret = std::fs::read(path).map_err(|source| StartError::File {
            what: "cluster key file",
            path: path.clone(),
            source,
        })?;
        ClusterKey::new(&secret)
            .map(Some)
            .map_err(|e| StartError::Setting(format!("cluster key file {}: {e}", path.display())))
    }

    /// The cluster's timings; every node of a cluster should use the same
    /// [default: [`Timings::DEFAULT`]].
    pub fn timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// The cluster name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster
    }

    /// The URLs without any password or token, for logs.
    pub fn redacted_urls(&self) -> String {
        redact_urls(&self.urls)
    }

    /// Every server address, checked; and the credentials found in them.
    pub(crate) fn server_addrs(
        &self,
    ) -> Result<(Vec<async_nats::ServerAddr>, UrlAuth), StartError> {
        let mut addrs = Vec::new();
        let mut auth = UrlAuth::None;
        for url in self.urls.split(',').map(str::trim) {
            let bad = |reason: String| StartError::NatsUrl {
                value: redact_urls(url),
                reason,
            };
            if url.is_empty() {
                return Err(bad("empty URL in the list".into()));
            }
            if !url.contains("://") {
                return Err(bad("expected nats://host:port or tls://host:port".into()));
            }
            let addr: async_nats::ServerAddr = url
                .parse()
                .map_err(|e: std::io::Error| bad(e.to_string()))?;
            if !matches!(addr.scheme(), "nats" | "tls" | "ws" | "wss") {
                return Err(bad(format!(
                    "unknown scheme {:?}: use nats:// or tls://",
                    addr.scheme()
                )));
            }
            if addr.host().is_empty() {
                return Err(bad("no host".into()));
            }
            if matches!(auth, UrlAuth::None) {
                auth = match (addr.username(), addr.password()) {
                    (Some(user), Some(pass)) => UrlAuth::UserPassword(decode(user), decode(pass)),
                    (Some(token), None) => UrlAuth::Token(decode(token)),
                    _ => UrlAuth::None,
                };
            }
            addrs.push(addr);
        }
        Ok((addrs, auth))
    }
}

/// Credentials written into a URL.
#[derive(Clone)]
pub(crate) enum UrlAuth {
    None,
    UserPassword(String, String),
    Token(String),
}

impl std::fmt::Debug for UrlAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlAuth::None => "None",
            UrlAuth::UserPassword(..) => "UserPassword(***)",
            UrlAuth::Token(_) => "Token(***)",
        })
    }
}

/// Percent-decoding of a URL's user or password part.
fn decode(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| part.to_owned())
}

/// URLs without their password or token, for logs and errors.
pub fn redact_urls(urls: &str) -> String {
    urls.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &u[..scheme], &u[at + 1..])
            }
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The node id a node gets when none is set: `<hostname>-<pid>-<random>`
/// (a new one at every call).
///
/// ```
/// let id = version_observer::default_node_id();
/// assert!(version_observer::core::protocol::valid_node_id(&id).is_ok());
/// ```
pub fn default_node_id() -> String {
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

/// Why an observer could not start. Every variant names the value at fault
/// (never a password or token).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The node id is not 1 to 64 letters, digits, `.`, `_` or `-`.
    #[error("invalid node id {value:?}: {reason}")]
    NodeId {
        /// The id given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The cluster name is not 1 to 32 letters, digits, `_` or `-`.
    #[error("invalid cluster name {value:?}: {reason}")]
    Cluster {
        /// The name given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A NATS URL does not parse.
    #[error("invalid NATS URL {value:?}: {reason}")]
    NatsUrl {
        /// The URL given, without its password or token.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A cluster timing is out of its range.
    #[error("invalid timing: {0}")]
    Timing(#[from] TimingError),
    /// Another setting is out of its range.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// The release metadata ([`ObserverBuilder::release`]) is refused: its
    /// notes URL is not an `https://`/`http://` URL or a path on the site.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// A file the settings name cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    File {
        /// Which file it is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// An environment variable ([`ObserverBuilder::with_env`]) holds a
    /// value that is not one of the setting's.
    #[error("invalid {name}={value:?}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// NATS refused the node's credentials.
    #[error("NATS at {server} refused this node's credentials ({reason}); check the user and password, token or credentials file")]
    Unauthorized {
        /// The servers, without passwords or tokens.
        server: String,
        /// What the server said.
        reason: String,
    },
    /// NATS cannot be used at all (e.g. a TLS failure).
    #[error("cannot use NATS at {server}: {reason}")]
    Connect {
        /// The servers, without passwords or tokens.
        server: String,
        /// What went wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_named_without_secrets() {
        let ok = NatsSettings::new("nats://a:4222, tls://b:4443,nats://c");
        assert_eq!(ok.server_addrs().unwrap().0.len(), 3);
        for bad in [
            "",
            "nats://",
            "localhost:4222",
            "http://h:1",
            "nats://h:99999",
            "nats://a:1,,nats://b:2",
        ] {
            let err = NatsSettings::new(bad)
                .server_addrs()
                .unwrap_err()
                .to_string();
            assert!(err.contains("invalid NATS URL"), "{bad}: {err}");
        }
        let err = NatsSettings::new("nats://u:secret@h:bad")
            .server_addrs()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("***@h:bad"), "{err}");
    }

    #[test]
    fn credentials_come_from_the_url() {
        let (_, auth) = NatsSettings::new("nats://alice:s%40cret@h:4222")
            .server_addrs()
            .unwrap();
        assert!(matches!(auth, UrlAuth::UserPassword(u, p) if u == "alice" && p == "s@cret"));
        let (_, auth) = NatsSettings::new("nats://h1:4222,nats://tok@h2:4222")
            .server_addrs()
            .unwrap();
        assert!(matches!(auth, UrlAuth::Token(t) if t == "tok"));
        let (_, auth) = NatsSettings::new("nats://h:4222").server_addrs().unwrap();
        assert!(matches!(auth, UrlAuth::None));
    }

    #[test]
    fn urls_are_redacted_for_logs() {
        assert_eq!(redact_urls("nats://u:secret@h:4222"), "nats://***@h:4222");
        assert_eq!(
            redact_urls("tls://tok@a:1,nats://b:2"),
            "tls://***@a:1,nats://b:2"
        );
        let debug = format!("{:?}", NatsSettings::new("nats://u:secret@h:4222"));
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn generated_node_ids_are_valid() {
        let id = default_node_id();
        assert!(valid_node_id(&id).is_ok(), "{id}");
    }

    #[test]
    fn bad_settings_are_named() {
        let b = ObserverBuilder::new(Version::new(1, 0, 0));
        let err = b.clone().node_id("a b").validate().unwrap_err().to_string();
        assert!(err.contains("\"a b\""), "{err}");
        let err = b
            .clone()
            .nats(NatsSettings::new("nats://h:1").cluster("a.b"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"a.b\""), "{err}");
        let err = b
            .nats(NatsSettings::new("nats://h:1").timings(Timings {
                lease: Duration::from_millis(1),
                ..Timings::DEFAULT
            }))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("lease"), "{err}");
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_environment_configures_what_it_names_and_nothing_else() {
        let base = ObserverBuilder::new(Version::new(1, 0, 0)).node_id("from-code");
        let same = base.clone().with_vars(vars(&[])).unwrap();
        assert_eq!(format!("{same:?}"), format!("{base:?}"));
        let set = base
            .with_vars(vars(&[
                ("VO_NATS", "nats://nats:4222"),
                ("VO_CLUSTER", "shop"),
                ("VO_NODE_ID", "web-2"),
                ("VO_RETIRE_FOR", "15m"),
                ("VO_RETIRE_GRACE", "0"),
                ("VO_AFFINITY", "off"),
                ("VO_FORWARD_TIMEOUT_MS", "2500"),
                ("VO_LEASE_MS", "8000"),
                ("VO_COMPAT", "minor"),
                ("VO_MIN_SUPPORTED_VERSION", "0.9.0"),
            ]))
            .unwrap();
        assert_eq!(set.node_id.as_deref(), Some("web-2"));
        assert_eq!(set.retire_for, Some(Duration::from_secs(900)));
        assert_eq!(set.retire_grace, Duration::ZERO);
        assert!(!set.affinity);
        assert_eq!(set.forward_timeout, Duration::from_millis(2500));
        assert_eq!(set.compat, Compat::Minor);
        assert_eq!(set.release.min_supported, Some(Version::new(0, 9, 0)));
        let nats = set.nats.expect("VO_NATS makes a cluster node");
        assert_eq!(nats.urls, "nats://nats:4222");
        assert_eq!(nats.cluster, "shop");
        assert_eq!(nats.timings.lease, Duration::from_millis(8000));
        assert_eq!(nats.timings.node_timeout, Timings::DEFAULT.node_timeout);
        // Without VO_NATS, the NATS variables have nothing to set.
        let single = ObserverBuilder::new(Version::new(1, 0, 0))
            .with_vars(vars(&[("VO_CLUSTER", "shop")]))
            .unwrap();
        assert!(single.nats.is_none());
    }

    #[test]
    fn a_bad_environment_value_names_its_variable() {
        for (name, value) in [
            ("VO_RETIRE_FOR", "soon"),
            ("VO_AFFINITY", "maybe"),
            ("VO_LEASE_MS", "5s"),
            ("VO_COMPAT", "loose"),
        ] {
            let builder = ObserverBuilder::new(Version::new(1, 0, 0));
            let builder = if name == "VO_LEASE_MS" {
                builder.nats(NatsSettings::new("nats://n:4222"))
            } else {
                builder
            };
            let err = builder.with_vars(vars(&[(name, value)])).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name) && text.contains(value), "{text}");
        }
    }
}
