//! Building and running one node: `Application::build(config)` binds the port
//! and wires every part; `run_until_stopped` serves until the shutdown token is
//! cancelled, then ends every version stream and waits for the server to drain.

use crate::{
    cluster::transport::{ClusterError, ClusterNode},
    config::Config,
    http::{
        self,
        listener::{StreamContext, StreamListener},
        AppState,
    },
    hub::VersionHub,
};
use app::{
    signal::{ClusterView, Mode, NodeInfo},
    PageInfo,
};
use leptos::config::{Env, LeptosOptions};
use std::{future::IntoFuture, io, net::SocketAddr, path::PathBuf, sync::Arc};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the site folder {0} is missing its pkg/ bundle; build it first (cargo leptos build)")]
    MissingSite(PathBuf),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// A node, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// What the listener needs to serve version streams itself.
    streams: StreamContext,
    keepalive: std::time::Duration,
    hub: Arc<VersionHub>,
    cluster: Option<ClusterNode>,
    /// Cancelled by a signal or a test: the node should stop.
    shutdown: CancellationToken,
    /// Cancelled once the node has left its cluster: ends every stream.
    streams_stop: CancellationToken,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let version = config.version();
        let node = NodeInfo {
            id: config.node_id(),
            version: version.clone(),
        };
        if !config.site_root.join("pkg").is_dir() {
            // Without the bundle the page would render but never hydrate.
            tracing::warn!(site_root = %config.site_root.display(), "{}",
                StartupError::MissingSite(config.site_root.clone()));
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })?;

        let settings = config.cluster_settings();
        let (mode, view) = match settings {
            None => (
                Mode::Single,
                ClusterView::single_node(&version, config.compat),
            ),
            Some(_) => (
                Mode::Cluster,
                ClusterView {
                    state: app::signal::ClusterState::Unknown,
                    settled_version: None,
                    announced_version: None,
                    announced_revision: None,
                    compat: config.compat,
                },
            ),
        };
        let hub = Arc::new(VersionHub::new(node.clone(), mode, view));
        let cluster = match settings {
            Some(settings) => {
                Some(ClusterNode::start(settings, node.clone(), config.compat, hub.clone()).await?)
            }
            None => None,
        };
        let shutdown = CancellationToken::new();
        let streams_stop = CancellationToken::new();
        let state = AppState {
            leptos_options: leptos_options(&config, addr),
            hub: hub.clone(),
            page: PageInfo {
                node_id: node.id.clone(),
                version,
            },
            stream_slots: Arc::new(Semaphore::new(config.max_streams as usize)),
            shutdown: streams_stop.clone(),
            cluster: cluster.as_ref().map(ClusterNode::status),
        };
        let streams = StreamContext {
            hub: hub.clone(),
            slots: state.stream_slots.clone(),
            stop: streams_stop.clone(),
            tasks: TaskTracker::new(),
        };
        let router = http::router(state, config.max_inflight as usize);
        tracing::info!(
            node_id = %node.id, version = %node.version, compat = %config.compat,
            mode = ?mode, cluster = %config.cluster,
            nats = config.nats.as_deref().map(redact_url).unwrap_or_default(),
            %addr, "node listening on http://{addr}"
        );
        Ok(Self {
            listener,
            router,
            streams,
            keepalive: config.keepalive(),
            hub,
            cluster,
            shutdown,
            streams_stop,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Cancel it to stop the node gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn hub(&self) -> Arc<VersionHub> {
        self.hub.clone()
    }

    /// Serves until the shutdown token is cancelled; then leaves the cluster
    /// (nodedown, lease released, flushed), ends every stream, and drains.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let streams_stop = self.streams_stop.clone();
        let stream_tasks = self.streams.tasks.clone();
        let keepalive = {
            let (hub, interval, stop) = (self.hub.clone(), self.keepalive, streams_stop.clone());
            tokio::spawn(async move { hub.run_keepalive(interval, stop).await })
        };
        // Version streams on new connections are served by the listener itself;
        // the rest goes to axum (see `http::listener`).
        let listener = StreamListener::new(self.listener, self.streams);
        // `into_make_service`: serving the `Router` itself would make axum
        // rebuild its route table for every connection (`with_state(())` per
        // accept): kilobytes per open stream, and CPU on every accept.
        let server = tokio::spawn(
            axum::serve(listener, self.router.into_make_service())
                .with_graceful_shutdown(streams_stop.clone().cancelled_owned())
                .into_future(),
        );
        self.shutdown.cancelled().await;
        if let Some(cluster) = self.cluster {
            cluster.stop().await;
        }
        streams_stop.cancel();
        server.await.map_err(io::Error::other)??;
        stream_tasks.close();
        stream_tasks.wait().await;
        let _ = keepalive.await;
        tracing::info!("node stopped");
        Ok(())
    }
}

/// A NATS URL without its password or token, for logs.
fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &u[..scheme], &u[at + 1..])
            }
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Leptos' own runtime options. cargo-leptos passes `LEPTOS_*` variables when it
/// runs the node (`cargo leptos watch`); a node started directly uses ours.
fn leptos_options(config: &Config, addr: SocketAddr) -> LeptosOptions {
    let env = match std::env::var("LEPTOS_ENV").as_deref() {
        Ok("DEV") | Ok("dev") => Env::DEV,
        _ => Env::PROD,
    };
    let reload_port = std::env::var("LEPTOS_RELOAD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    LeptosOptions::builder()
        .output_name("version-observer")
        .site_root(config.site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .env(env)
        .reload_port(reload_port)
        .build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_redacted_for_logs() {
        assert_eq!(
            super::redact_url("nats://u:secret@h:4222"),
            "nats://***@h:4222"
        );
        assert_eq!(
            super::redact_url("tls://tok@a:1,nats://b:2"),
            "tls://***@a:1,nats://b:2"
        );
    }
}
