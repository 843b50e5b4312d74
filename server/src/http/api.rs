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

/// `GET /api/cluster`: every member, the leader, the state and the last
/// announcement. A single node answers with itself as the whole cluster.
pub async fn cluster(State(state): State<AppState>) -> Response {
    let body = match &state.cluster {
        Some(status) => serde_json::to_value(&*status.borrow()),
        None => {
            let report = state.hub.current().report;
            serde_json::to_value(serde_json::json!({
                "cluster": null,
                "node_id": report.node.id,
                "connected": false,
                "leader": report.node.id,
                "this_node_leads": true,
                "state": report.cluster.state,
                "settled_version": report.cluster.settled_version,
                "announced": null,
                "members": [{
                    "id": report.node.id,
                    "version": report.node.version,
                    "last_seen_ms_ago": 0,
                    "leader": true,
                }],
            }))
        }
    };
    match body {
        Ok(body) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the cluster status");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error\n",
            )
                .into_response()
        }
    }
}

/// `GET /healthz`: the process serves HTTP.
pub async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}",
    )
}
