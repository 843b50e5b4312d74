//! The HTTP interface of a node: the server-rendered page, the JSON API, the
//! version stream and the static site files.
//!
//! | route                      | what                                       |
//! |----------------------------|--------------------------------------------|
//! | `GET /`                    | the page (Leptos SSR once, then from memory; hydrated by WASM) |
//! | `GET /api/version`         | this node and its cluster view, as JSON     |
//! | `GET /api/version/events`  | the same, as Server-Sent Events             |
//! | `GET /api/cluster`         | members, leader, state (cluster mode)       |
//! | `GET /healthz`             | liveness                                    |
//! | `GET /pkg/*`, other files  | the built site (wasm, JS, CSS, assets)      |
//!
//! Overload is refused, never queued without bound: streams beyond
//! `--max-streams` and other requests beyond `--max-inflight` get a 503 with
//! `Retry-After`.

mod api;
pub mod listener;
mod page_cache;
mod sse;

use crate::hub::VersionHub;
use app::{shell, App, PageInfo};
use axum::{
    error_handling::HandleErrorLayer,
    extract::FromRef,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    BoxError, Router,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

/// What every handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub hub: Arc<VersionHub>,
    pub page: PageInfo,
    /// One permit per open version stream.
    pub stream_slots: Arc<Semaphore>,
    /// Cancelled when the node stops; ends every stream so shutdown can finish.
    pub shutdown: CancellationToken,
    /// The cluster status, in cluster mode.
    pub cluster: Option<tokio::sync::watch::Receiver<crate::cluster::transport::ClusterStatus>>,
}

/// Builds the node's router.
pub fn router(state: AppState, max_inflight: usize) -> Router {
    let routes = generate_route_list(App);
    let page = state.page.clone();
    let options = state.leptos_options.clone();

    let pages = Router::new()
        .route("/api/version", get(api::version))
        .route("/api/cluster", get(api::cluster))
        .route("/healthz", get(api::healthz))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(page.clone()),
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(
            page_cache::PageCache::default(),
            page_cache::serve,
        ))
        // Browsers must revalidate pages and bundles: after a deploy the same
        // URL serves a different build, and a stale cached wasm would not match
        // the new HTML it hydrates.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: BoxError| async { overloaded() }))
                .load_shed()
                .concurrency_limit(max_inflight),
        );

    Router::new()
        .route(app::EVENTS_PATH, get(sse::version_events))
        .merge(pages)
        .with_state(state)
}

/// The response for a node that is at capacity.
pub(crate) fn overloaded() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "2")],
        "overloaded, retry shortly\n",
    )
        .into_response()
}
