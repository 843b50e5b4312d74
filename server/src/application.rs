//! Building and running one node: `Application::build(config)` checks the
//! site, starts the version observer and binds the port; `run_until_stopped`
//! serves until the observer is stopped (a signal, or a test), then lets it
//! leave the cluster, end its streams and drain.

use crate::{config::Config, http};
use leptos::config::{Env, LeptosOptions};
use std::{io, net::SocketAddr, path::PathBuf};
use tokio::net::TcpListener;
use version_observer::{StartError, VersionObserver};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the site folder {0} has no pkg/ bundle (wasm, JS, CSS): build it first (scripts/run.sh does), or point --site-root at a built site")]
    MissingSite(PathBuf),
    #[error(transparent)]
    Observer(#[from] StartError),
}

/// A node, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    observer: VersionObserver,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        // Without the bundle the page would render but never hydrate.
        if !config.site_root.join("pkg").is_dir() {
            return Err(StartupError::MissingSite(config.site_root.clone()));
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
        let mut builder = VersionObserver::builder(config.version())
            .compat(config.compat)
            .nats_opt(config.nats_settings())
            .max_streams(config.max_streams)
            .keepalive(config.keepalive());
        if let Some(id) = &config.node_id {
            builder = builder.node_id(id);
        }
        let observer = builder.start().await?;
        let router = http::router(
            &observer,
            leptos_options(&config, addr),
            config.max_inflight as usize,
        );
        let page = observer.page_info();
        tracing::info!(
            node_id = %page.node_id, version = %page.version, compat = %config.compat,
            mode = ?observer.mode(), cluster = %config.cluster,
            nats = config.nats.as_deref().map(version_observer::server::redact_urls).unwrap_or_default(),
            %addr, "node listening on http://{addr}"
        );
        Ok(Self {
            listener,
            router,
            observer,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The node's version observer: [`VersionObserver::stop`] stops the node.
    pub fn observer(&self) -> &VersionObserver {
        &self.observer
    }

    /// Serves until the observer is stopped; it then leaves the cluster
    /// (lease released, nodedown, flushed) and ends every stream, and only
    /// then does the server stop accepting and drain.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        axum::serve(
            self.observer.listener(self.listener),
            // `into_make_service`: serving the `Router` itself would make axum
            // rebuild its route table for every connection.
            self.router.into_make_service(),
        )
        .with_graceful_shutdown(self.observer.stopped())
        .await?;
        self.observer.shutdown().await;
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
