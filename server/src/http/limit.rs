//! One limit on requests in flight for the whole node (`--max-inflight`).
//!
//! A `tower` concurrency limit added with `Router::layer` would be one limit
//! *per route*; this middleware holds one semaphore for every route. Version
//! streams are exempt: they are long-lived and have their own limit
//! (`--max-streams`, in the observer).

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;
use tokio::sync::Semaphore;
use version_observer::core::paths;

/// The node's permits for requests in flight, and what a refusal is
/// counted with (the observer's metrics).
#[derive(Clone)]
pub struct InflightLimit {
    permits: Arc<Semaphore>,
    on_refusal: Arc<dyn Fn() + Send + Sync>,
}

impl InflightLimit {
    pub fn new(max: usize, on_refusal: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            on_refusal: Arc::new(on_refusal),
        }
    }
}

/// Refuses a request with 503 when every permit is taken.
pub async fn enforce(State(limit): State<InflightLimit>, request: Request, next: Next) -> Response {
    if request.uri().path() == paths::EVENTS {
        return next.run(request).await;
    }
    let Ok(_permit) = limit.permits.clone().try_acquire_owned() else {
        (limit.on_refusal)();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "2")],
            "overloaded, retry shortly\n",
        )
            .into_response();
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, middleware::from_fn_with_state, routing::get, Router};
    use std::time::Duration;
    use tower::ServiceExt;

    #[tokio::test]
    async fn one_limit_for_every_route() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let slow = {
            let gate = gate.clone();
            move || async move {
                gate.notified().await;
                "done"
            }
        };
        let app = Router::new()
            .route("/a", get(slow))
            .route("/b", get(|| async { "b" }))
            .route(paths::EVENTS, get(|| async { "stream" }))
            .layer(from_fn_with_state(InflightLimit::new(1, || {}), enforce));
        let held = tokio::spawn(
            app.clone()
                .oneshot(Request::get("/a").body(Body::empty()).unwrap()),
        );
        // Wait until /a holds the only permit.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let status = loop {
            let response = app
                .clone()
                .oneshot(Request::get("/b").body(Body::empty()).unwrap())
                .await
                .unwrap();
            if response.status() == StatusCode::SERVICE_UNAVAILABLE
                || tokio::time::Instant::now() > deadline
            {
                break response.status();
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "another route shares the limit"
        );
        let stream = app
            .clone()
            .oneshot(Request::get(paths::EVENTS).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK, "streams are exempt");
        gate.notify_one();
        assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
        let after = app
            .oneshot(Request::get("/b").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(after.status(), StatusCode::OK, "the permit came back");
    }
}
