//! `GET /api/version/events`: the version signal as Server-Sent Events.
//!
//! The first event is sent as soon as the client connects and carries the
//! current report, so a browser that (re)connects after an announcement knows
//! at once. Then one event per change. Each event has an `id` (the hub's
//! sequence number) and a `retry:` hint with per-connection jitter, so that
//! after a node restart its many tabs do not all reconnect in the same instant.
//! A stream holds no task or timer of its own beyond the keep-alive.

use super::{overloaded, AppState};
use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use futures::StreamExt;
use std::{convert::Infallible, time::Duration};
use tokio_stream::wrappers::WatchStream;

/// Reconnect delay hint: this much, plus up to the same again at random.
const RETRY_BASE: Duration = Duration::from_millis(1_000);

pub async fn version_events(State(state): State<AppState>) -> Response {
    let Ok(slot) = state.stream_slots.clone().try_acquire_owned() else {
        tracing::warn!("refusing a version stream: --max-streams reached");
        return overloaded();
    };
    let retry = RETRY_BASE + RETRY_BASE.mul_f64(fastrand::f64());
    let events = WatchStream::new(state.hub.subscribe())
        .map(move |snapshot| {
            Ok::<_, Infallible>(
                Event::default()
                    .id(snapshot.seq.to_string())
                    .retry(retry)
                    .data(&*snapshot.json),
            )
        })
        .take_until(state.shutdown.clone().cancelled_owned())
        // The slot is released when the stream is dropped (client gone or shutdown).
        .chain(
            futures::stream::iter(std::iter::once(slot)).filter_map(|slot| async move {
                drop(slot);
                None
            }),
        );
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.keepalive))
        .into_response();
    // Tell reverse proxies (nginx) not to buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
