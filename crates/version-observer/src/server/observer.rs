//! [`VersionObserver`]: one node's version signal, its streams, and (with
//! NATS) its cluster node, with one lifecycle: start, serve, stop.

use super::{
    assets::{Assets, Bundle},
    cluster::ClusterNode,
    hub::VersionHub,
    listener::StreamListener,
    settings::{ObserverBuilder, StartError},
    streams::Streams,
    unix_ms,
};
use crate::ui::PageInfo;
use std::{
    future::Future,
    sync::{atomic::Ordering, Arc},
};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use version_observer_core::{
    protocol::{RecordKind, SettledNotice, SettledRecord},
    status::{ClusterStatus, MemberStatus},
    timing::{
        assets::STARTUP_WAIT as ASSET_STARTUP_WAIT, driver::LEAVE_BOUND, fleet::HISTORY_SAMPLE,
    },
    ClusterState, ClusterView, Compat, Mode, NodeInfo, Release, Version,
};

/// One node's version observer: what it tells its browsers, the streams that
/// carry it, and, in cluster mode, the NATS node that decides it.
///
/// Cheap to clone (it is a handle). Build it with [`builder`](Self::builder),
/// add [its routes](crate::VersionObserverRoutes) to your router, give its
/// [`context`](Self::context) to your Leptos routes, serve, and
/// [`shutdown`](Self::shutdown) when done:
///
/// ```no_run
/// use axum::Router;
/// use version_observer::{VersionObserver, VersionObserverRoutes};
///
/// # async fn demo() -> anyhow::Result<()> {
/// let observer = VersionObserver::builder(env!("CARGO_PKG_VERSION").parse()?)
///     .start()
///     .await?;
/// let app: Router = Router::new().version_observer_routes(&observer);
/// let tcp = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(observer.listener(tcp), app.into_make_service())
///     .with_graceful_shutdown(observer.stop_on_signal())
///     .await?;
/// observer.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct VersionObserver {
    inner: Arc<Inner>,
}

struct Inner {
    page: PageInfo,
    mode: Mode,
    compat: Compat,
    /// This node's release metadata, non-empty and valid.
    release: Option<Release>,
    streams: Arc<Streams>,
    cluster: Option<watch::Receiver<ClusterStatus>>,
    /// The site's bundle, and in cluster mode the asset store.
    assets: Option<Arc<Assets>>,
    /// Cancelled to ask the observer to stop ([`VersionObserver::stop`]).
    stop_requested: CancellationToken,
    /// Cancelled by a second stop: a retirement ends at once.
    stop_now: CancellationToken,
    /// Set from the first stop: the node has left (or is leaving) the
    /// load balancer; readiness answers `503`.
    draining: std::sync::atomic::AtomicBool,
    /// Whether this node retires when stopped (cluster mode, `retire_for`).
    retires: bool,
    /// Version affinity, in a cluster with it on.
    affinity: Option<Arc<super::forward::Affinity>>,
    /// Open pages by version over the last hour, across the cluster.
    history: Arc<std::sync::Mutex<version_observer_core::history::PageHistory>>,
    /// Background work: the lifecycle, the keep-alive timer, the cluster node.
    tasks: TaskTracker,
}

impl VersionObserver {
    /// Starts building an observer for a node that runs `version` (your
    /// build's version, e.g. `env!("CARGO_PKG_VERSION").parse()?`).
    pub fn builder(version: Version) -> ObserverBuilder {
        ObserverBuilder::new(version)
    }

    pub(crate) async fn start(settings: ObserverBuilder) -> Result<Self, StartError> {
        let node_id = settings.validate()?;
        let node = NodeInfo {
            id: node_id,
            version: settings.version.clone(),
        };
        let release = settings.release.clone().non_empty();
        let (mode, view) = match &settings.nats {
            // A single node announces its own version, and its own release.
            None => (
                Mode::Single,
                ClusterView::single_node(&node.version, settings.compat)
                    .with_release(release.clone()),
            ),
            Some(_) => (
                Mode::Cluster,
                ClusterView {
                    state: ClusterState::Unknown,
                    settled_version: None,
                    announced_version: None,
                    announced_revision: None,
                    compat: settings.compat,
                    announced_release: None,
                },
            ),
        };
        let streams = Arc::new(Streams::new(
            VersionHub::new(node.clone(), mode, view),
            settings.max_streams,
            // A stream served through the app writes a keep-alive every
            // interval: never idle that long.
            settings.idle_timeout.max(settings.keepalive * 2),
        ));
        let cluster = match &settings.nats {
            Some(nats) => Some(
                ClusterNode::start(
                    nats.clone(),
                    node.clone(),
                    settings.compat,
                    settings.release.clone(),
                    streams.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let stop_requested = CancellationToken::new();
        let tasks = TaskTracker::new();
        let assets = settings.bundle.clone().map(|bundle| {
            Arc::new(match (&cluster, &settings.nats) {
                // 0 versions: no asset store, each node serves its own bundle.
                (Some(node), Some(nats)) if settings.asset_versions > 0 => Assets::cluster(
                    bundle,
                    node.client(),
                    &version_observer_core::protocol::Names::new(&nats.cluster),
                    nats.kv_replicas,
                    settings.asset_versions,
                    node.status(),
                    nats.timings.safety_interval,
                ),
                _ => Assets::single(bundle),
            })
        });
        if let (Some(assets), Some(node_handle)) = (&assets, &cluster) {
            let (assets, stop, version) =
                (assets.clone(), stop_requested.clone(), node.version.clone());
            let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
            tasks.spawn(async move {
                let keep = assets.publish_until_done(&version, &stop).await;
                let _ = done_tx.send(());
                if keep {
                    assets.keep_in_store(&version, &stop).await;
                }
            });
            // Pages of this version must find their bundle on every node as
            // soon as this one serves them: wait (bounded) for it to be in
            // the store, unless NATS is not there yet.
            let connected =
                node_handle.client().connection_state() == async_nats::connection::State::Connected;
            if connected
                && tokio::time::timeout(ASSET_STARTUP_WAIT, done)
                    .await
                    .is_err()
            {
                tracing::warn!("the bundle is not in the asset store yet; serving anyway");
            }
        }
        {
            let streams = streams.clone();
            let interval = settings.keepalive;
            tasks.spawn(async move {
                let stop = streams.stopped.clone();
                streams.hub.run(interval, stop).await
            });
        }
        let status = cluster.as_ref().map(ClusterNode::status);
        let history = Arc::new(std::sync::Mutex::new(
            version_observer_core::history::PageHistory::default(),
        ));
        {
            // Open pages by version, across the cluster (the members'
            // heartbeats; a single node: its own streams), once a second.
            let (history, status, streams) = (history.clone(), status.clone(), streams.clone());
            let stop = streams.stopped.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(HISTORY_SAMPLE);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let tabs = match &status {
                        Some(status) => {
                            let mut sum = std::collections::BTreeMap::<String, u64>::new();
                            for member in &status.borrow().members {
                                for (page, n) in &member.tabs {
                                    *sum.entry(page.clone()).or_default() += n;
                                }
                            }
                            sum
                        }
                        None => streams.tabs.counts(),
                    };
                    history
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(unix_ms(), &tabs);
                }
            });
        }
        let forward_stop = CancellationToken::new();
        let affinity = match (&cluster, &settings.nats, &status) {
            (Some(node_handle), Some(nats), Some(status)) if settings.affinity => {
                let affinity = Arc::new(super::forward::Affinity::new(
                    node.id.clone(),
                    node.version.clone(),
                    version_observer_core::protocol::Names::new(&nats.cluster),
                    node_handle.client(),
                    nats.cluster_key()?,
                    settings.forward_timeout,
                    streams.clone(),
                    status.clone(),
                ));
                tasks.spawn(affinity.clone().serve(forward_stop.clone()));
                Some(affinity)
            }
            _ => None,
        };
        let retire = settings
            .retire_for
            .filter(|_| cluster.is_some())
            .map(|retire_for| (retire_for, settings.retire_grace));
        let stop_now = CancellationToken::new();
        {
            // The lifecycle: on stop, retire if asked to (until no page
            // needs this node, or a second stop), leave the cluster (lease
            // back, nodedown), then end every stream and the server.
            let (requested, stop_now, streams) =
                (stop_requested.clone(), stop_now.clone(), streams.clone());
            tasks.spawn(async move {
                requested.cancelled().await;
                if let Some(cluster) = cluster {
                    if let Some((retire_for, grace)) = retire {
                        // Its tabs reconnect to serving nodes.
                        streams.end.cancel();
                        cluster.retire(retire_for, grace);
                        tokio::select! {
                            _ = cluster.finished() => {}
                            _ = stop_now.cancelled() => {
                                tracing::info!("stopped again: ending the retirement now");
                            }
                        }
                    }
                    forward_stop.cancel();
                    if tokio::time::timeout(LEAVE_BOUND, cluster.leave())
                        .await
                        .is_err()
                    {
                        tracing::warn!("leaving the cluster took too long; stopping anyway");
                    }
                }
                forward_stop.cancel();
                streams.stopped.cancel();
            });
        }
        tracing::info!(node_id = %node.id, version = %node.version, compat = %settings.compat,
            mode = ?mode, "version observer started");
        Ok(Self {
            inner: Arc::new(Inner {
                page: PageInfo {
                    node_id: node.id,
                    version: node.version,
                },
                mode,
                compat: settings.compat,
                release,
                streams,
                cluster: status,
                assets,
                stop_requested,
                stop_now,
                draining: std::sync::atomic::AtomicBool::new(false),
                retires: retire.is_some(),
                affinity,
                history,
                tasks,
            }),
        })
    }

    /// The site's bundle given to [`ObserverBuilder::bundle`], if any.
    pub fn bundle(&self) -> Option<&Bundle> {
        self.inner.assets.as_deref().map(Assets::bundle)
    }

    pub(crate) fn assets(&self) -> Option<&Assets> {
        self.inner.assets.as_deref()
    }

    /// This node's id and version, as rendered into pages.
    pub fn page_info(&self) -> &PageInfo {
        &self.inner.page
    }

    /// `single` or `cluster`.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// What this node tells its browsers right now.
    pub fn report(&self) -> version_observer_core::VersionReport {
        (*self.inner.streams.hub.current().report).clone()
    }

    /// Whether this node is its cluster's monitor right now (holds the
    /// lease, by its own clock). A single node is its own monitor.
    pub fn is_monitor(&self) -> bool {
        self.inner
            .cluster
            .as_ref()
            .is_none_or(|status| status.borrow().this_node_leads)
    }

    /// Whether this node runs a cluster node (it was built with NATS).
    pub(crate) fn is_clustered(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// Provides this node's [`PageInfo`] to the components that render a
    /// page: hand it to `leptos_routes_with_context`.
    ///
    /// ```no_run
    /// # use axum::Router;
    /// # use leptos::prelude::*;
    /// # use leptos_axum::{generate_route_list, LeptosRoutes};
    /// # fn demo(observer: version_observer::VersionObserver, options: LeptosOptions) {
    /// # #[component] fn App() -> impl IntoView { () }
    /// # fn shell(_: LeptosOptions) -> impl IntoView { () }
    /// let app: Router = Router::new()
    ///     .leptos_routes_with_context(&options, generate_route_list(App), observer.context(), {
    ///         let options = options.clone();
    ///         move || shell(options.clone())
    ///     })
    ///     .with_state(options);
    /// # }
    /// ```
    pub fn context(&self) -> impl Fn() + Clone + Send + Sync + 'static {
        let page = self.inner.page.clone();
        move || leptos::prelude::provide_context(page.clone())
    }

    /// Wraps `tcp` so that version streams on new connections are served by
    /// the observer itself, holding only the socket (about 2 KiB each rather
    /// than hyper's 16 KiB of buffers); every other connection goes to your
    /// router as usual. Optional: plain `axum::serve(tcp, app)` works too.
    pub fn listener(&self, tcp: TcpListener) -> StreamListener {
        StreamListener::new(tcp, self.inner.streams.clone())
    }

    /// Asks the observer to stop: it leaves its cluster (hands the monitor
    /// lease back, says nodedown), then ends every stream. With
    /// [`retire_for`](crate::ObserverBuilder::retire_for) in a cluster, it
    /// retires first (it keeps serving the forwarded requests of its
    /// version's open pages until none needs it); calling `stop` again
    /// ends that at once. Returns at once; [`stopped`](Self::stopped)
    /// resolves when it is done.
    pub fn stop(&self) {
        let inner = &self.inner;
        inner.draining.store(true, Ordering::Relaxed);
        if inner.stop_requested.is_cancelled() {
            inner.stop_now.cancel();
        }
        inner.stop_requested.cancel();
    }

    /// Whether this node is ready for new traffic: it is not stopping or
    /// retiring (what `GET /readyz` answers, for load balancers and
    /// Kubernetes' readiness probe).
    pub fn is_ready(&self) -> bool {
        !self.inner.draining.load(Ordering::Relaxed)
    }

    /// Whether this node is retiring: stopped, it serves only the
    /// forwarded requests of its version's pages until none needs it.
    pub fn is_retiring(&self) -> bool {
        self.inner.retires && !self.is_ready()
    }

    /// Open pages by version over the last hour, across the cluster (what
    /// its members' heartbeats said, sampled every second; a single node:
    /// its own streams), for a fleet view's drain curve.
    ///
    /// ```no_run
    /// # fn demo(observer: version_observer::VersionObserver) {
    /// let history = observer.page_history();
    /// println!("{} versions, at most {} tabs", history.versions().len(), history.peak());
    /// # }
    /// ```
    pub fn page_history(&self) -> version_observer_core::history::PageHistory {
        self.inner
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn affinity(&self) -> Option<&Arc<super::forward::Affinity>> {
        self.inner.affinity.as_ref()
    }

    /// Whether `mark` (a request's forwarded header) is this process's own.
    pub(crate) fn is_own_forward_mark(&self, mark: &axum::http::HeaderValue) -> bool {
        self.affinity().is_some_and(|a| a.is_own_mark(mark))
    }

    /// Resolves once the observer has left its cluster and its streams are
    /// ending: hand it to axum's `with_graceful_shutdown`, so the node stops
    /// taking requests only after the cluster knows it is gone.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.streams.stopped.clone().cancelled_owned()
    }

    /// [`stop`](Self::stop) on the first SIGINT or SIGTERM (a retiring
    /// node stops at once on the next one), and resolve like
    /// [`stopped`](Self::stopped).
    pub fn stop_on_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let observer = self.clone();
        async move {
            tokio::select! {
                signal = super::signal::shutdown_signal() => {
                    tracing::info!(signal, retiring = observer.inner.retires, "stopping");
                    observer.stop();
                }
                _ = observer.inner.stop_requested.cancelled() => {}
            }
            tokio::select! {
                signal = super::signal::shutdown_signal() => {
                    tracing::info!(signal, "stopping at once");
                    observer.stop();
                }
                _ = observer.stopped() => {}
            }
            observer.stopped().await
        }
    }

    /// Stops (if not asked already) and waits until everything the observer
    /// runs has finished: the cluster node, the keep-alive timer and every
    /// stream served by its [`listener`](Self::listener).
    pub async fn shutdown(self) {
        self.stop();
        let inner = &self.inner;
        inner.tasks.close();
        inner.tasks.wait().await;
        inner.streams.tasks.close();
        inner.streams.tasks.wait().await;
        tracing::info!("version observer stopped");
    }

    /// This node's view of its cluster (`GET /api/cluster`). A single node is
    /// its own cluster: it leads, and its version is its baseline.
    pub fn cluster_status(&self) -> ClusterStatus {
        if let Some(status) = &self.inner.cluster {
            return status.borrow().clone();
        }
        let page = &self.inner.page;
        ClusterStatus {
            cluster: None,
            node_id: page.node_id.clone(),
            connected: false,
            leader: Some(page.node_id.clone()),
            this_node_leads: true,
            state: ClusterState::Settled,
            settled_version: Some(page.version.clone()),
            announced: Some(SettledNotice {
                revision: 0,
                record: SettledRecord {
                    version: page.version.clone(),
                    previous: None,
                    kind: RecordKind::Baseline,
                    fence: 0,
                    leader: page.node_id.clone(),
                    at_ms: 0,
                    release: self.inner.release.clone(),
                },
            }),
            members: vec![MemberStatus {
                id: page.node_id.clone(),
                incarnation: 0,
                version: page.version.clone(),
                last_seen_ms_ago: 0,
                leader: true,
                tabs: self.inner.streams.tabs.counts(),
                retiring: false,
            }],
            last_round: None,
            dropped_messages: 0,
            counters: Default::default(),
            recent_records: Vec::new(),
        }
    }

    /// The compatibility policy this node applies.
    pub fn compat(&self) -> Compat {
        self.inner.compat
    }

    /// Counts a request your app refused because the node was overloaded
    /// (a concurrency limit's 503): exported with the observer's own
    /// refusals as `version_observer_refused_total{reason="requests"}`.
    ///
    /// ```no_run
    /// # fn demo(observer: version_observer::VersionObserver) {
    /// // in your limit's refusal path:
    /// observer.count_refused_request();
    /// # }
    /// ```
    pub fn count_refused_request(&self) {
        self.inner
            .streams
            .refused_requests
            .fetch_add(1, Ordering::Relaxed);
    }

    /// This node's release metadata, if it was given one
    /// ([`ObserverBuilder::release`](crate::ObserverBuilder::release)).
    ///
    /// ```no_run
    /// # fn demo(observer: version_observer::VersionObserver) {
    /// let minimum = observer.release().and_then(|r| r.min_supported.clone());
    /// # }
    /// ```
    pub fn release(&self) -> Option<&Release> {
        self.inner.release.as_ref()
    }

    /// Counts a `409` of the request guard, and why it was not forwarded.
    pub(crate) fn count_refused_stale_client(
        &self,
        forward: Option<version_observer_core::skew::ForwardFailure>,
    ) {
        self.inner
            .streams
            .refused_stale_clients
            .fetch_add(1, Ordering::Relaxed);
        if let (Some(reason), Some(affinity)) = (forward, self.affinity()) {
            affinity.stats.failed(reason);
        }
    }

    /// This node's metrics in the Prometheus text format (what
    /// [`version_observer_admin_routes`](crate::VersionObserverRoutes::version_observer_admin_routes)
    /// serves at `GET /metrics`), encoded from a snapshot taken at each
    /// call:
    ///
    /// | metric | type | labels | what |
    /// |--------|------|--------|------|
    /// | `version_observer_node_info` | gauge (1) | `node_id`, `version`, `mode` | this node |
    /// | `version_observer_streams` | gauge | | version streams open now |
    /// | `version_observer_stream_limit` | gauge | | `max_streams` |
    /// | `version_observer_tabs` | gauge | `page_version` | open streams by the version of the page that opened them (`unknown`: none named; `other`: beyond 32 distinct versions) |
    /// | `version_observer_refused_total` | counter | `reason` | refused: with 503, `streams` (at `max_streams`), `open_files` (at the open-files limit), `requests` (by the host app, [`count_refused_request`](Self::count_refused_request)); with 409, `stale_client` (the request guard, [`request_guard`](Self::request_guard)) |
    /// | `version_observer_nats_connected` | gauge | | 1 while connected to NATS (cluster mode only, as all below) |
    /// | `version_observer_nats_connects_total` | counter | | connections to NATS, the first included (reconnects = this − 1) |
    /// | `version_observer_cluster_state` | gauge | `state` | 1 for this node's current view: `settled`, `mixed` or `unknown` |
    /// | `version_observer_members` | gauge | | live members in this node's view |
    /// | `version_observer_monitor` | gauge | | 1 while this node holds the monitor lease |
    /// | `version_observer_lease_acquisitions_total` | counter | | times this node became the monitor |
    /// | `version_observer_lease_losses_total` | counter | | times it stopped being the monitor without handing the lease back |
    /// | `version_observer_records_written_total` | counter | `kind` | records written as monitor: `announcement`, `baseline` |
    /// | `version_observer_rounds_total` | counter | `outcome` | collection rounds: `settled`, `mixed`, `incomplete` |
    /// | `version_observer_round_duration_seconds` | histogram | | from a round's request to its last reply (or deadline) |
    /// | `version_observer_messages_dropped_total` | counter | `reason` | cluster messages dropped: `malformed`, `bad_reply_subject`, `unknown_subject`, `unauthenticated`, and `bad_release` (a reply's or record's release metadata that failed its check: the metadata was dropped, the message kept) |
    /// | `version_observer_retiring` | gauge | | 1 while this node retires |
    /// | `version_observer_retiring_members` | gauge | | retiring members in this node's view |
    /// | `version_observer_forwarded_total` | counter | `from_version`, `to_version`, `outcome` | requests this node passed on to a member of `to_version` (version affinity; with it on, as all below): `answered`, `no_member` (nobody of that version took it), `declined`, `timeout`, `too_large`, `failed` |
    /// | `version_observer_forward_duration_seconds` | histogram | | from sending a forwarded request to its answer |
    /// | `version_observer_forward_refusals_total` | counter | `reason` | requests answered `409` (or `502`/`504`) because forwarding failed: `no_member`, `too_large`, `timeout`, `failed` |
    /// | `version_observer_forwarded_in_total` | counter | `outcome` | requests forwarded to this node: `served`, or why they were not (`busy`, `malformed`, `unauthenticated`, `replayed`, `stale`, `wrong_version`, `not_served`, `answer_lost`) |
    ///
    /// ```no_run
    /// # fn demo(observer: version_observer::VersionObserver) {
    /// let text = observer.metrics_text();
    /// assert!(text.contains("version_observer_streams"));
    /// # }
    /// ```
    pub fn metrics_text(&self) -> String {
        super::metrics::encode(self)
    }

    pub(crate) fn streams(&self) -> &Arc<Streams> {
        &self.inner.streams
    }
}

impl std::fmt::Debug for VersionObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionObserver")
            .field("node", &self.inner.page)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}
