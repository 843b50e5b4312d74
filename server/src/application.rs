//! Building and running one node: `Application::build(config)` checks the
//! site, starts the version observer and binds the port; `run_until_stopped`
//! serves until the observer is stopped (a signal, or a test), then lets it
//! leave the cluster, end its streams and drain.

use crate::{config::Config, http};
use leptos::config::{Env, LeptosOptions};
use std::{future::IntoFuture, io, net::SocketAddr, path::PathBuf};
use tokio::net::TcpListener;
use version_observer::{Bundle, BundleError, StartError, VersionObserver};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the site folder {0} has no pkg/ bundle (wasm, JS, CSS): build it first (scripts/run.sh does), or point --site-root at a built site")]
    MissingSite(PathBuf),
    #[error(transparent)]
    Observer(#[from] StartError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    AdminToken(#[from] http::admin::TokenError),
}

/// A node, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// The admin listener and its router, with `--admin-listen`.
    admin: Option<(TcpListener, axum::Router)>,
    observer: VersionObserver,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        // Without the bundle the page would render but never hydrate.
        if !config.site_root.join("pkg").is_dir() {
            return Err(StartupError::MissingSite(config.site_root.clone()));
        }
        // The bundle's names: content-hashed (cargo-leptos' hash file), or plain.
        let bundle = Bundle::find(&config.site_root, SITE_PKG_DIR, OUTPUT_NAME)?;
        let listener = bind(config.listen).await?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })?;
        let token = config
            .admin_token_file
            .as_deref()
            .map(http::admin::AdminToken::read)
            .transpose()?;
        let admin_listener = match config.admin_listen {
            Some(admin) => Some(bind(admin).await?),
            None => None,
        };
        let mut builder = VersionObserver::builder(config.version())
            .compat(config.compat)
            .nats_opt(config.nats_settings())
            .max_streams(config.max_streams)
            .keepalive(config.keepalive())
            .idle_timeout(config.idle_timeout())
            .release(config.release())
            .bundle(bundle)
            .asset_versions(usize::from(config.asset_versions))
            .affinity(config.affinity)
            .forward_timeout(std::time::Duration::from_millis(config.forward_timeout_ms))
            .retire_for_opt(config.retire_for)
            .retire_grace(config.retire_grace);
        if let Some(id) = &config.node_id {
            builder = builder.node_id(id);
        }
        let observer = builder.start().await?;
        crate::telemetry::set_role({
            let observer = observer.clone();
            move || match (observer.mode(), observer.is_monitor()) {
                (version_observer::Mode::Single, _) => "single",
                _ if observer.is_retiring() => "retiring",
                (_, true) => "monitor",
                (_, false) => "member",
            }
        });
        let router = http::router(
            &observer,
            leptos_options(&config, addr, observer.bundle()),
            config.max_inflight as usize,
        );
        let admin =
            admin_listener.map(|listener| (listener, http::admin::router(&observer, token)));
        let page = observer.page_info();
        tracing::info!(
            node_id = %page.node_id, version = %page.version, compat = %config.compat,
            mode = ?observer.mode(), cluster = %config.connection.cluster,
            nats = config.connection.nats.as_deref().map(version_observer::redact_urls).unwrap_or_default(),
            %addr, "node listening on http://{addr}"
        );
        if let Some(admin) = admin.as_ref().and_then(|(l, _)| l.local_addr().ok()) {
            tracing::info!(%admin, token = config.admin_token_file.is_some(),
                "admin routes (/fleet, /api/cluster, /metrics) on http://{admin}");
        }
        Ok(Self {
            listener,
            router,
            admin,
            observer,
        })
    }

    /// The admin listener's address, with `--admin-listen`.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
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
        let admin = self.admin.map(|(listener, router)| {
            tokio::spawn(
                axum::serve(listener, router.into_make_service())
                    .with_graceful_shutdown(self.observer.stopped())
                    .into_future(),
            )
        });
        axum::serve(
            self.observer.listener(self.listener),
            // `into_make_service`: serving the `Router` itself would make axum
            // rebuild its route table for every connection.
            self.router.into_make_service(),
        )
        .with_graceful_shutdown(self.observer.stopped())
        .await?;
        if let Some(admin) = admin {
            match admin.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "the admin listener failed"),
                Err(e) => tracing::warn!(error = %e, "the admin listener's task failed"),
                Ok(Ok(())) => {}
            }
        }
        self.observer.shutdown().await;
        tracing::info!("node stopped");
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// The site's output name (`[[workspace.metadata.leptos]]`'s `name`).
const OUTPUT_NAME: &str = "version-observer";
/// The bundle's folder in the site, and its URL path.
const SITE_PKG_DIR: &str = "pkg";

/// Leptos' own runtime options. cargo-leptos passes `LEPTOS_*` variables when it
/// runs the node (`cargo leptos watch`); a node started directly uses ours.
/// With a hashed bundle, Leptos' hydration scripts name the hashed files,
/// read from the bundle's hash file (an absolute path: Leptos joins it to
/// the executable's folder).
fn leptos_options(config: &Config, addr: SocketAddr, bundle: Option<&Bundle>) -> LeptosOptions {
    let env = match std::env::var("LEPTOS_ENV").as_deref() {
        Ok("DEV") | Ok("dev") => Env::DEV,
        _ => Env::PROD,
    };
    let reload_port = std::env::var("LEPTOS_RELOAD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let hash_file = bundle.and_then(Bundle::hash_file);
    LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(config.site_root.to_string_lossy().into_owned())
        .site_pkg_dir(SITE_PKG_DIR)
        .hash_files(hash_file.is_some())
        .hash_file(
            hash_file
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "hash.txt".into())
                .into(),
        )
        .site_addr(addr)
        .env(env)
        .reload_port(reload_port)
        .build()
}
