//! The JSON endpoints.

use super::AppState;
use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

/// `GET /api/version`: this node, its mode and its cluster view.
pub async fn version(State(state): State<AppState>) -> Response {
    let snapshot = state.hub.current();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        snapshot.json.to_string(),
    )
        .into_response()
}

/// `GET /healthz`: the process serves HTTP.
pub async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}",
    )
}
