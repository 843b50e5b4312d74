//! `GET /api/version/events`: the version signal as Server-Sent Events.
//!
//! The first event is sent as soon as the client connects and carries the
//! current report, so a browser that (re)connects after an announcement knows
//! at once. Then one event per change. Each event has an `id` (the hub's
//! sequence number); the first also carries a `retry:` hint with
//! per-connection jitter (a browser keeps it for later reconnects), so that
//! after a node restart its many tabs do not all reconnect in the same
//! instant. Every keep-alive interval each idle stream gets a comment (one
//! timer for the whole node, see [`VersionHub::run`]).
//!
//! A stream reaches the node one of two ways, and both send the bytes of
//! [`events`]:
//! - on a new connection (how load balancers and most clients open one), the
//!   observer's listener serves it itself, lean ([`super::listener`]);
//! - on a connection that already carried another request, through axum and
//!   hyper: [`version_events`] below.

use super::{
    hub::{Snapshot, VersionHub},
    routes::overloaded,
    streams::Streams,
};
use axum::{
    body::Body,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::{convert::Infallible, time::Duration};
use tokio_util::sync::CancellationToken;
use version_observer_core::timing::streams::RETRY_BASE;

/// What an idle stream sends every keep-alive interval: an empty comment.
pub(crate) const KEEPALIVE: &[u8] = b":\n\n";

/// A reconnect hint for one connection.
fn retry_hint() -> Duration {
    RETRY_BASE + RETRY_BASE.mul_f64(fastrand::f64())
}

/// A stream's first event: the retry hint and the report in `snapshot`.
pub(crate) fn first_event(snapshot: &Snapshot) -> Bytes {
    let mut event = format!("retry: {}\n", retry_hint().as_millis()).into_bytes();
    event.extend_from_slice(&snapshot.event);
    Bytes::from(event)
}

/// Everything a stream sends, until `stop` is cancelled or the hub is gone:
/// the retry hint and the current report at once, each change, and a comment
/// at every keep-alive tick of the hub. Change events are the hub's shared
/// bytes; the stream owns no timer.
pub(crate) fn events(
    hub: &VersionHub,
    stop: CancellationToken,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let mut reports = hub.subscribe();
    let mut ticks = hub.keepalive();
    ticks.mark_unchanged();
    let first = first_event(&reports.borrow_and_update());
    let rest = futures::stream::unfold(
        (reports, ticks, stop),
        |(mut reports, mut ticks, stop)| async move {
            let next = tokio::select! {
                _ = stop.cancelled() => return None,
                changed = reports.changed() => match changed {
                    Ok(()) => reports.borrow_and_update().event.clone(),
                    Err(_) => return None,
                },
                ticked = ticks.changed() => match ticked {
                    Ok(()) => Bytes::from_static(KEEPALIVE),
                    Err(_) => return None,
                },
            };
            Some((next, (reports, ticks, stop)))
        },
    );
    futures::stream::iter([first]).chain(rest)
}

/// The headers every stream response carries.
pub(crate) const HEADERS: [(header::HeaderName, &str); 3] = [
    (header::CONTENT_TYPE, "text/event-stream"),
    (header::CACHE_CONTROL, "no-cache"),
    // Tell reverse proxies (nginx) not to buffer the stream.
    (header::HeaderName::from_static("x-accel-buffering"), "no"),
];

/// The stream's response for a tab of `page`, through axum: its events
/// while a slot is free, `503` otherwise (or once the node retires).
pub(crate) fn stream_response(streams: &Streams, page: Option<&semver::Version>) -> Response {
    let Some(slot) = streams.try_slot(page) else {
        return overloaded();
    };
    let body = events(&streams.hub, streams.end.clone())
        // The slot is released when the stream is dropped (client gone or shutdown).
        .map(move |bytes| {
            let _held = &slot;
            Ok::<_, Infallible>(bytes)
        });
    let mut response = Body::from_stream(body).into_response();
    for (name, value) in HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}
