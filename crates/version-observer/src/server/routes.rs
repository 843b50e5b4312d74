//! The observer's HTTP routes, added to a host app's axum router
//! ([`VersionObserverRoutes`], whose docs list them).

use super::{observer::VersionObserver, sse};
use axum::{
    extract::{Path, RawQuery, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use version_observer_core::{paths, timing::fleet::EVENTS_INTERVAL as FLEET_INTERVAL};

/// Adds the observer's routes to a router, whatever its state type: an
/// extension trait, like leptos_axum's `LeptosRoutes`.
///
/// Public (browsers need them), [`version_observer_routes`](VersionObserverRoutes::version_observer_routes):
///
/// | route                      | what                                             |
/// |----------------------------|--------------------------------------------------|
/// | `GET /api/version`         | this node and its cluster view, as JSON          |
/// | `GET /api/version/events`  | the same, as Server-Sent Events (`?page=<version>`: the tab's page version, counted in the metrics) |
/// | `GET /readyz`              | readiness: `200 {"status":"ready"}`, or `503` with `Retry-After` once the node is stopping or retiring |
///
/// For operators, [`version_observer_admin_routes`](VersionObserverRoutes::version_observer_admin_routes):
/// serve them on a separate, private listener (the reference node's
/// `--admin-listen`), not next to your pages.
///
/// | route                      | what                                             |
/// |----------------------------|--------------------------------------------------|
/// | `GET /api/cluster`         | members, monitor, state and record, as JSON      |
/// | `GET /api/fleet/events`    | the same, as Server-Sent Events, every half second |
/// | `GET /metrics`             | Prometheus metrics ([`VersionObserver::metrics_text`]) |
///
/// ```no_run
/// use axum::Router;
/// use version_observer::{VersionObserver, VersionObserverRoutes};
/// # fn demo(observer: VersionObserver) {
/// // What browsers use, next to your pages:
/// let app: Router = Router::new().version_observer_routes(&observer);
/// // For operators, on a listener of their own (loopback, a private network):
/// let admin: Router = Router::new().version_observer_admin_routes(&observer);
/// # }
/// ```
pub trait VersionObserverRoutes {
    /// Adds `GET /api/version`, `GET /api/version/events` and `GET /readyz`
    /// (readiness: `503` once the node stops or retires), served by
    /// `observer`.
    fn version_observer_routes(self, observer: &VersionObserver) -> Self;

    /// Adds the operators' routes, `GET /api/cluster`,
    /// `GET /api/fleet/events` and `GET /metrics`, served by `observer`.
    /// Keep them off the public port.
    fn version_observer_admin_routes(self, observer: &VersionObserver) -> Self;

    /// Adds `GET <pkg>/{name}` for the bundle given to
    /// [`ObserverBuilder::bundle`](super::ObserverBuilder::bundle) (nothing
    /// without one): hashed names with `Cache-Control: public,
    /// max-age=31536000, immutable`, other names with `no-cache`, the
    /// bundle's plain names (`<output>.css`) as this build's files, and in
    /// cluster mode other versions' hashed files from the cluster's asset
    /// store (see [`Bundle`](crate::Bundle)). Deeper paths
    /// (`<pkg>/snippets/…`) are left to the router's other routes or
    /// fallback.
    fn version_observer_asset_routes(self, observer: &VersionObserver) -> Self;
}

impl<S> VersionObserverRoutes for Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn version_observer_routes(self, observer: &VersionObserver) -> Self {
        self.merge(
            Router::new()
                .route(paths::VERSION, get(version))
                .route(paths::EVENTS, get(version_events))
                .route(paths::READY, get(ready))
                .with_state(observer.clone()),
        )
    }

    fn version_observer_asset_routes(self, observer: &VersionObserver) -> Self {
        let Some(bundle) = observer.bundle() else {
            return self;
        };
        self.merge(
            Router::new()
                .route(&format!("{}/{{name}}", bundle.url_path()), get(bundle_file))
                .with_state(observer.clone()),
        )
    }

    fn version_observer_admin_routes(self, observer: &VersionObserver) -> Self {
        self.merge(
            Router::new()
                .route(paths::CLUSTER, get(cluster))
                .route(paths::FLEET_EVENTS, get(fleet_events))
                .route(paths::METRICS, get(metrics))
                .with_state(observer.clone()),
        )
    }
}

/// `GET /api/version`: this node, its mode and its cluster view.
async fn version(State(observer): State<VersionObserver>) -> Response {
    let snapshot = observer.streams().hub.current();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        snapshot.json.to_string(),
    )
        .into_response()
}

/// `GET /api/version/events` on a connection that already served another
/// request (a new connection's is the listener's): the stream, through axum.
async fn version_events(
    State(observer): State<VersionObserver>,
    RawQuery(query): RawQuery,
) -> Response {
    let page = query
        .as_deref()
        .and_then(version_observer_core::stream_request::page_version);
    sse::stream_response(observer.streams(), page.as_ref())
}

/// `GET <pkg>/{name}`: the bundle's files ([`super::assets`]).
async fn bundle_file(
    State(observer): State<VersionObserver>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Response {
    match observer.assets() {
        Some(assets) => assets.respond(&name, request).await,
        None => super::assets::not_found(),
    }
}

/// `GET /readyz`: whether this node takes new traffic.
async fn ready(State(observer): State<VersionObserver>) -> Response {
    let (status, body) = if observer.is_ready() {
        (StatusCode::OK, r#"{"status":"ready"}"#)
    } else if observer.is_retiring() {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"retiring"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"stopping"}"#)
    };
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    if status != StatusCode::OK {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    response
}

/// `GET /api/cluster`: every member, the monitor, the state and the record.
async fn cluster(State(observer): State<VersionObserver>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(observer.cluster_status()),
    )
        .into_response()
}

/// `GET /api/fleet/events`: the node's cluster status as an event at once
/// and every [`FLEET_INTERVAL`] (members' ages change all the time), until
/// the client leaves or the node stops.
async fn fleet_events(State(observer): State<VersionObserver>) -> Response {
    let stop = observer.streams().stopped.clone();
    let mut tick = tokio::time::interval(FLEET_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let events = futures::stream::unfold(
        (observer, tick, stop),
        |(observer, mut tick, stop)| async move {
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tick.tick() => {}
            }
            let json = serde_json::to_string(&observer.cluster_status()).ok()?;
            let event = bytes::Bytes::from(format!("data: {json}\n\n"));
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (observer, tick, stop),
            ))
        },
    );
    let mut response = axum::body::Body::from_stream(events).into_response();
    for (name, value) in sse::HEADERS {
        response
            .headers_mut()
            .insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// `GET /metrics`: the Prometheus text format.
async fn metrics(State(observer): State<VersionObserver>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        observer.metrics_text(),
    )
        .into_response()
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
