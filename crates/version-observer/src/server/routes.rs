//! The observer's HTTP routes, added to a host app's axum router.
//!
//! | route                      | what                                             |
//! |----------------------------|--------------------------------------------------|
//! | `GET /api/version`         | this node and its cluster view, as JSON          |
//! | `GET /api/version/events`  | the same, as Server-Sent Events                  |
//! | `GET /api/cluster`         | members, monitor, state and record, as JSON      |

use super::{observer::VersionObserver, sse};
use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use version_observer_core::paths;

/// Adds the observer's routes to a router, whatever its state type: an
/// extension trait, like leptos_axum's `LeptosRoutes`.
///
/// ```no_run
/// use axum::Router;
/// use version_observer::{VersionObserver, VersionObserverRoutes};
/// # fn demo(observer: VersionObserver) {
/// let app: Router = Router::new().version_observer_routes(&observer);
/// # }
/// ```
pub trait VersionObserverRoutes {
    /// Adds `GET /api/version`, `GET /api/version/events` and
    /// `GET /api/cluster`, served by `observer`.
    fn version_observer_routes(self, observer: &VersionObserver) -> Self;
}

impl<S> VersionObserverRoutes for Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn version_observer_routes(self, observer: &VersionObserver) -> Self {
        self.merge(routes(observer))
    }
}

/// The routes on their own, with their state applied.
fn routes<S>(observer: &VersionObserver) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(paths::VERSION, get(version))
        .route(paths::EVENTS, get(sse::version_events))
        .route(paths::CLUSTER, get(cluster))
        .with_state(observer.clone())
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

/// `GET /api/cluster`: every member, the monitor, the state and the record.
async fn cluster(State(observer): State<VersionObserver>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(observer.cluster_status()),
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
