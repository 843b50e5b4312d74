//! Building and running one node: `Application::build(config)` binds the port
//! and wires every part; `run_until_stopped` serves until the shutdown token is
//! cancelled, then ends every version stream and waits for the server to drain.

use crate::{
    config::Config,
    http::{self, AppState},
    hub::VersionHub,
};
use app::{
    signal::{ClusterView, Mode, NodeInfo},
    PageInfo,
};
use leptos::config::{Env, LeptosOptions};
use std::{io, net::SocketAddr, path::PathBuf, sync::Arc};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the site folder {0} is missing its pkg/ bundle; build it first (scripts/build.sh)")]
    MissingSite(PathBuf),
}

/// A node, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    hub: Arc<VersionHub>,
    shutdown: CancellationToken,
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

        let hub = Arc::new(VersionHub::new(
            node.clone(),
            Mode::Single,
            ClusterView::single_node(&version, config.compat),
        ));
        let shutdown = CancellationToken::new();
        let state = AppState {
            leptos_options: leptos_options(&config, addr),
            hub: hub.clone(),
            page: PageInfo {
                node_id: node.id.clone(),
                version,
            },
            stream_slots: Arc::new(Semaphore::new(config.max_streams as usize)),
            keepalive: config.keepalive(),
            shutdown: shutdown.clone(),
        };
        let router = http::router(state, config.max_inflight as usize);
        tracing::info!(
            node_id = %node.id, version = %node.version, compat = %config.compat,
            mode = "single", %addr, "node listening on http://{addr}"
        );
        Ok(Self {
            listener,
            router,
            hub,
            shutdown,
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

    pub async fn run_until_stopped(self) -> io::Result<()> {
        let shutdown = self.shutdown.clone();
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        tracing::info!("node stopped");
        Ok(())
    }
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
