//! The HTTP API `vo-lab serve` puts in front of a [`Lab`], so a test in
//! another language (Playwright's TypeScript) drives the same cluster code as
//! the demo and the Rust tests. Local tooling, not a product interface: errors
//! carry the lab's full message (a node's log included) to help a failing test.
//!
//! | route                      | what                                             |
//! |----------------------------|--------------------------------------------------|
//! | `GET /status`              | [`LabStatus`](crate::lab::LabStatus)             |
//! | `POST /nodes/{id}/start`   | body `{"version":"1.0.0"}`, optionally `"site_root":"<dir>"` (another build's site); returns once it serves |
//! | `POST /nodes/{id}/stop`    | SIGTERM, waits for a clean exit                  |
//! | `POST /nodes/{id}/retire`  | SIGTERM, returns once the node says it is retiring (`/readyz` 503) or has exited; a retiring node exits by itself |
//! | `POST /nodes/{id}/kill`    | `kill -9`                                        |
//! | `GET /nodes/{id}/logs`     | the node's log                                   |
//! | `POST /shutdown`           | stops everything and exits                       |

use crate::{Lab, LabError};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::{Mutex, Notify};

#[derive(Clone)]
struct Control {
    lab: Arc<Mutex<Lab>>,
    shutdown: Arc<Notify>,
}

#[derive(Deserialize)]
struct Start {
    version: String,
    /// Another build's site (`--site-root`), for mixed-build tests.
    #[serde(default)]
    site_root: Option<String>,
}

/// The control routes; `shutdown` is notified by `POST /shutdown`.
pub fn router(lab: Arc<Mutex<Lab>>, shutdown: Arc<Notify>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/nodes/{id}/start", post(start))
        .route("/nodes/{id}/stop", post(stop))
        .route("/nodes/{id}/retire", post(retire))
        .route("/nodes/{id}/kill", post(kill))
        .route("/nodes/{id}/logs", get(logs))
        .route("/shutdown", post(shut_down))
        .with_state(Control { lab, shutdown })
}

async fn status(State(c): State<Control>) -> Response {
    Json(c.lab.lock().await.status().await).into_response()
}

async fn start(
    State(c): State<Control>,
    Path(id): Path<String>,
    Json(body): Json<Start>,
) -> Response {
    let extra: Vec<String> = match body.site_root {
        Some(dir) => vec!["--site-root".into(), dir],
        None => Vec::new(),
    };
    match c
        .lab
        .lock()
        .await
        .start_node_with(&id, &body.version, &extra)
        .await
    {
        Ok(node) => Json(node).into_response(),
        Err(e) => error(e),
    }
}

async fn stop(State(c): State<Control>, Path(id): Path<String>) -> Response {
    done(c.lab.lock().await.stop_node(&id).await)
}

async fn retire(State(c): State<Control>, Path(id): Path<String>) -> Response {
    done(c.lab.lock().await.retire_node(&id).await)
}

async fn kill(State(c): State<Control>, Path(id): Path<String>) -> Response {
    done(c.lab.lock().await.kill_node(&id).await)
}

async fn logs(State(c): State<Control>, Path(id): Path<String>) -> Response {
    match c.lab.lock().await.node_logs(&id) {
        Some(text) => text.into_response(),
        None => error(LabError::UnknownNode(id)),
    }
}

async fn shut_down(State(c): State<Control>) -> Response {
    c.shutdown.notify_one();
    StatusCode::ACCEPTED.into_response()
}

fn done(result: Result<(), LabError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

fn error(e: LabError) -> Response {
    let status = match e {
        LabError::UnknownNode(_) => StatusCode::NOT_FOUND,
        LabError::NodeRunning(_) | LabError::NodeNotRunning(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}
