//! # version-observer
//!
//! Tell open browser tabs of a Leptos app when its servers have settled on
//! an incompatible version, and offer a reload: once, at the right moment,
//! even while a rolling deploy runs mixed versions across a cluster.
//!
//! - **In the browser**: [`VersionBanner`] (the default UI) or
//!   [`use_version_observer`] (signals for your own UI), and
//!   [`ReloadOnNavigation`] (the next navigation of a stale page loads the
//!   new version); [`AutomaticReload`] with a [`ReloadStrategy`] for automatic
//!   reloads that never lose unsaved input ([`use_unsaved_input`],
//!   [`use_kept_signal`]) and never loop.
//! - **On the server** (feature `ssr`): a [`VersionObserver`] built from
//!   typed settings, its routes for your axum router
//!   ([`VersionObserverRoutes`]), an optional lean [`StreamListener`], and,
//!   with [`NatsSettings`], a cluster node that coordinates with the others
//!   over NATS: only a version that every live node runs, and that is
//!   incompatible with the last announced one, is announced.
//!
//! Features: `ssr` for your server build, `hydrate` for your wasm build
//! (never both), as in any Leptos app.
//!
//! What the page pays: [`VersionBanner`] with its default parts (one stream
//! per browser, the request guard's half in the page, [`GuardedError`])
//! adds about 15 KB brotli to a host app's wasm; every optional part is a
//! component or hook of its own ([`AutomaticReload`], [`ReloadOnNavigation`],
//! [`use_version_observer`], [`use_kept_signal`]), so a page that does not
//! use it carries none of its code. The README's "Add it to your app" lists
//! what each costs.
//!
//! ```no_run
//! # #[cfg(feature = "ssr")]
//! # async fn server() -> anyhow::Result<()> {
//! use axum::Router;
//! use version_observer::{VersionObserver, VersionObserverRoutes};
//!
//! let observer = VersionObserver::builder(env!("CARGO_PKG_VERSION").parse()?)
//!     .start()
//!     .await?;
//! let app: Router = Router::new()
//!     // your routes, with `observer.context()` for your Leptos routes
//!     .version_observer_routes(&observer);
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(observer.listener(tcp), app.into_make_service())
//!     .with_graceful_shutdown(observer.stop_on_signal())
//!     .await?;
//! observer.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The protocol, the compatibility policy and the cluster state machines
//! live in [`core`] (`version-observer-core`): plain data, no I/O.

#![warn(missing_docs, missing_debug_implementations)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate's docs link the server's items, which exist with `ssr` only:
// docs.rs builds with it; a build of the browser's half alone
// (`--features hydrate`) keeps those links as text.
#![cfg_attr(not(feature = "ssr"), allow(rustdoc::broken_intra_doc_links))]

// The README's example, compiled as a doc test (it is the server's side).
#[cfg(all(doctest, feature = "ssr"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use version_observer_core as core;
pub use version_observer_core::{
    banner::{PageKnowledge, Staleness},
    reload::{Immediate, ReloadStrategy},
    status::ClusterStatus,
    ClusterState, ClusterView, Compat, Mode, NodeInfo, Release, Severity, Timings, Version,
    VersionReport,
};

mod guarded;
mod ui;
pub use guarded::{GuardedEncoding, GuardedError, StaleClient};
pub use ui::{
    reload_page, use_kept_signal, use_unsaved_input, use_version_observer,
    use_version_observer_with_options, AutomaticReload, BannerTexts, PageInfo, ReloadOnNavigation,
    UnsavedInput, UseVersionObserverOptions, UseVersionObserverReturn, VersionBanner,
};

#[cfg(feature = "hydrate")]
mod browser;

// The server side: private, so that each public item has one path, here.
#[cfg(feature = "ssr")]
mod server;
#[cfg(feature = "ssr")]
pub use server::{
    default_node_id, env, redact_urls, shutdown_signal, Bundle, BundleError, Connection,
    FleetWatch, NatsSettings, ObserverBuilder, RequestGuard, RequestGuardLayer, StartError,
    StreamListener, VersionObserver, VersionObserverRoutes,
};
