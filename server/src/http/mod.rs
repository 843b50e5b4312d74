//! The node's HTTP interface, built on version-observer's public API: the
//! observer's routes, plus the node's own page, health check, static site
//! files, page cache and request limit.
//!
//! | route                      | what                                             |
//! |----------------------------|--------------------------------------------------|
//! | `GET /`                    | the page (Leptos SSR once, then from memory; hydrated by WASM) |
//! | `GET /api/version`         | the observer: this node and its cluster view     |
//! | `GET /api/version/events`  | the observer: the same, as Server-Sent Events    |
//! | `GET /readyz`              | the observer: readiness (`503` once stopping or retiring) |
//! | `GET /healthz`             | liveness                                         |
//! | `GET /pkg/{name}`          | the bundle (the observer's asset routes): hashed names immutable, from the cluster's asset store when another version's |
//! | other files                | the built site (assets)                          |
//!
//! The operators' routes (`/api/cluster`, `/api/fleet/events`, `/metrics`)
//! and the fleet view (`/fleet`, `/fleet/events`) are served only on the admin listener
//! ([`admin`], `--admin-listen`); here `/fleet` is a plain 404.
//!
//! Overload is refused, never queued without bound: streams beyond
//! `--max-streams` (the observer) and other requests beyond
//! `--max-inflight` (one limit for the whole node, [`limit`]) get a 503
//! with `Retry-After`.

pub mod admin;
mod limit;
mod page_cache;

use app::{shell, App};
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::set_header::SetResponseHeaderLayer;
use version_observer::{VersionObserver, VersionObserverRoutes};

/// Builds the node's router.
pub fn router(observer: &VersionObserver, options: LeptosOptions, max_inflight: usize) -> Router {
    let pages = Router::new()
        .route("/healthz", get(healthz))
        // The fleet view is the admin listener's ([`admin`]), never the public port's.
        .route(app::FLEET_PATH, get(|| async { StatusCode::NOT_FOUND }))
        .leptos_routes_with_context(&options, generate_route_list(App), observer.context(), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .layer(axum::middleware::from_fn_with_state(
            page_cache::PageCache::default(),
            page_cache::serve,
        ))
        // Outside the page cache, so it sees every request: a page's
        // request from another version goes to a node of that version (or
        // gets a 409), and a retiring node refuses page loads.
        .layer(observer.request_guard())
        // Browsers must revalidate pages and unhashed files: after a deploy
        // the same URL serves a different build. (The bundle's hashed files,
        // below, are immutable and say so themselves.)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
        .with_state(options);
    Router::new()
        .version_observer_routes(observer)
        .version_observer_asset_routes(observer)
        .merge(pages)
        .layer(axum::middleware::from_fn_with_state(
            limit::InflightLimit::new(max_inflight, {
                let observer = observer.clone();
                move || observer.count_refused_request()
            }),
            limit::enforce,
        ))
}

/// `GET /healthz`: the process serves HTTP.
async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}",
    )
}
