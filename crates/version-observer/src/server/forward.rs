//! Version affinity, the server's half: a request from a page of another
//! version goes to a live member that runs a matching one, over NATS
//! request-reply, and its answer comes back unchanged. The rules (which
//! requests, which members, the frames) are the core's
//! [`affinity`](version_observer_core::affinity); this module moves them.
//!
//! - **Sending** ([`Affinity::forward`], called by the request guard): the
//!   body is read (bounded by what a NATS message may carry), the request
//!   framed, MAC'd with a cluster key, and sent to the target version's
//!   subject, where every node of that version listens in one queue group:
//!   NATS hands it to one of them, or says at once that there is none
//!   ("no responders"; then the next target is tried). One answer is
//!   waited for, at most the forwarding timeout, never retried.
//! - **Serving** ([`Affinity::serve`]): each forwarded request is checked
//!   (MAC, frame, version, replay), then passed to this node's own router
//!   over an in-process connection of its [listener](super::StreamListener),
//!   marked with a secret only this process knows, so the request guard
//!   serves it here and never forwards it again; the router's answer is
//!   framed and sent back. A node serves forwarded requests only if it
//!   serves through `observer.listener(tcp)`.

use super::{listener::Connection, streams::Streams, unix_ms};
use async_nats::{client::RequestErrorKind, Client, HeaderMap};
use axum::{
    body::Body,
    http::{header::HeaderName, HeaderValue, Request, Response, StatusCode},
};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::{Duration, Instant},
};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use version_observer_core::{
    affinity::{
        self, Declined, ForwardRequest, ForwardResponse, Frame, Replay, ReplayGuard,
        FORWARDED_HEADER,
    },
    auth::{ClusterKey, MAC_HEADER},
    protocol::{self, Names},
    skew::ForwardFailure,
    status::{ClusterStatus, DurationHistogram},
    timing::forward::{REPLAY_WINDOW, SUBSCRIBE_RETRY},
    Version,
};

/// What a message carries besides the body: the frame's head and NATS'
/// headers, kept free below the server's largest payload.
const HEAD_ROOM: usize = 16 * 1024;
/// Forwarded requests served at once by one node; more are declined (the
/// sender answers as when no member takes them).
const MAX_SERVING: usize = 256;
/// Nonces remembered within the window.
const REPLAY_MEMORY: usize = 100_000;

/// What became of a request the guard passed on.
pub(crate) enum Forwarded {
    /// A member of a matching version answered: pass this on as it is.
    Answer(Response<Body>),
    /// No member ran it: here is the request back, whole.
    NotRun(ForwardFailure, Request<Body>),
    /// It may have run on a member, but there is no answer to pass on.
    MayHaveRun(ForwardFailure),
}

/// What this node counts about forwarding (exported by `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct ForwardStats {
    /// Requests this node passed on: (target version, outcome) → count.
    pub(crate) sent: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// How long answered forwards took, request to answer.
    pub(crate) latency: Mutex<DurationHistogram>,
    /// `409`s (and `502`/`504`s) after forwarding failed, by reason.
    pub(crate) failed: [AtomicU64; 4],
    /// Forwarded requests this node ran for others.
    pub(crate) served: AtomicU64,
    /// Forwarded requests this node declined or dropped, by reason.
    pub(crate) declined: Mutex<BTreeMap<&'static str, u64>>,
}

impl ForwardStats {
    fn sent(&self, target: &Version, outcome: &'static str) {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        *sent.entry((target.to_string(), outcome)).or_default() += 1;
    }

    pub(crate) fn failed(&self, reason: ForwardFailure) {
        let at = ForwardFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.failed[at].fetch_add(1, Ordering::Relaxed);
    }

    fn declined(&self, reason: &'static str) {
        let mut declined = self.declined.lock().unwrap_or_else(|e| e.into_inner());
        *declined.entry(reason).or_default() += 1;
    }
}

/// One node's forwarding: both halves. See the [module docs](self).
pub(crate) struct Affinity {
    node_id: String,
    version: Version,
    names: Names,
    client: Client,
    key: Option<ClusterKey>,
    timeout: Duration,
    /// The value of [`FORWARDED_HEADER`] that marks a request this process
    /// passes to its own router: random, never leaves the process.
    marker: HeaderValue,
    streams: Arc<Streams>,
    status: watch::Receiver<ClusterStatus>,
    server_fns: OnceLock<BTreeSet<String>>,
    replay: Mutex<ReplayGuard>,
    serving: Arc<Semaphore>,
    pub(crate) stats: ForwardStats,
}

impl Affinity {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        node_id: String,
        version: Version,
        names: Names,
        client: Client,
        key: Option<ClusterKey>,
        timeout: Duration,
        streams: Arc<Streams>,
        status: watch::Receiver<ClusterStatus>,
    ) -> Self {
        let marker = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        Self {
            node_id,
            version,
            names,
            client,
            key,
            timeout,
            marker: HeaderValue::from_str(&marker).expect("hex is a header value"),
            streams,
            status,
            server_fns: OnceLock::new(),
            replay: Mutex::new(ReplayGuard::new(REPLAY_WINDOW, REPLAY_MEMORY)),
            serving: Arc::new(Semaphore::new(MAX_SERVING)),
            stats: ForwardStats::default(),
        }
    }

    /// Whether `value` (a request's [`FORWARDED_HEADER`]) is this
    /// process's own mark: the request came through [`serve`](Self::serve).
    pub(crate) fn is_own_mark(&self, value: &HeaderValue) -> bool {
        let (a, b) = (value.as_bytes(), self.marker.as_bytes());
        // Constant time: the mark is a secret.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The versions live members run (this node's own left out), from the
    /// membership view: serving and retiring ones.
    pub(crate) fn live_versions(&self) -> Vec<Version> {
        let status = self.status.borrow();
        let mut versions: Vec<Version> = status
            .members
            .iter()
            .map(|m| m.version.clone())
            .filter(|v| *v != self.version)
            .collect();
        versions.sort();
        versions.dedup();
        versions
    }

    /// Whether `path` is one of the app's server functions (Leptos'
    /// registry, read once).
    pub(crate) fn is_server_fn(&self, path: &str) -> bool {
        self.server_fns
            .get_or_init(|| {
                server_fn::axum::server_fn_paths()
                    .map(|(path, _)| path.to_owned())
                    .collect()
            })
            .contains(path)
    }

    /// The largest body a forwarded request may have: what the NATS server
    /// takes in one message, less room for the rest of the frame.
    fn max_body(&self) -> usize {
        (self.client.server_info().max_payload).saturating_sub(HEAD_ROOM)
    }

    /// Passes `request` (from a page of another version) to a member of
    /// the first of `targets` that has one.
    pub(crate) async fn forward(&self, request: Request<Body>, targets: &[Version]) -> Forwarded {
        let limit = self.max_body();
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Forwarded::NotRun(ForwardFailure::TooLarge, Request::from_parts(parts, body));
        }
        let body = match read_bounded(body, limit).await {
            Ok(bytes) => bytes,
            Err(Unread::TooLarge(whole)) => {
                return Forwarded::NotRun(
                    ForwardFailure::TooLarge,
                    Request::from_parts(parts, whole),
                )
            }
            Err(Unread::Broken) => {
                // The browser's body broke off: nothing to run anywhere.
                return Forwarded::NotRun(
                    ForwardFailure::Failed,
                    Request::from_parts(parts, Body::empty()),
                );
            }
        };
        let headers: Vec<(String, Vec<u8>)> = parts
            .headers
            .iter()
            .filter(|(name, _)| affinity::travels(name.as_str()))
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        let uri = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
        for target in targets {
            let frame = Frame::Request(ForwardRequest {
                from: self.node_id.clone(),
                target: target.clone(),
                at_ms: unix_ms(),
                nonce: fastrand::u64(..),
                method: parts.method.as_str().to_owned(),
                uri: uri.clone(),
                headers: headers.clone(),
                body: body.to_vec(),
            });
            let subject = self.names.forward(target);
            let payload = Bytes::from(frame.encode());
            let mut nats_headers = HeaderMap::new();
            if let Some(key) = &self.key {
                nats_headers.insert(MAC_HEADER, key.sign(&subject, &payload).as_str());
            }
            let sent = Instant::now();
            let answer = self
                .client
                .send_request(
                    subject,
                    async_nats::Request::new()
                        .payload(payload)
                        .headers(nats_headers)
                        .timeout(Some(self.timeout)),
                )
                .await;
            let message = match answer {
                Ok(message) => message,
                Err(e) => match e.kind() {
                    RequestErrorKind::NoResponders => {
                        self.stats.sent(target, "no_member");
                        continue;
                    }
                    RequestErrorKind::TimedOut => {
                        self.stats.sent(target, "timeout");
                        tracing::warn!(%target, timeout = ?self.timeout, "a forwarded request got no answer in time");
                        return Forwarded::MayHaveRun(ForwardFailure::Timeout);
                    }
                    RequestErrorKind::MaxPayloadExceeded => {
                        self.stats.sent(target, "too_large");
                        return Forwarded::NotRun(
                            ForwardFailure::TooLarge,
                            Request::from_parts(parts, Body::from(body)),
                        );
                    }
                    _ => {
                        self.stats.sent(target, "failed");
                        tracing::warn!(%target, error = %e, "cannot forward a request");
                        return Forwarded::MayHaveRun(ForwardFailure::Failed);
                    }
                },
            };
            let mac = message
                .headers
                .as_ref()
                .and_then(|h| h.get(MAC_HEADER))
                .map(|v| v.as_str());
            if let Some(key) = &self.key {
                if !mac
                    .is_some_and(|mac| key.verify(message.subject.as_str(), &message.payload, mac))
                {
                    self.stats.sent(target, "failed");
                    tracing::warn!(%target, "dropping a forwarded answer without a valid cluster MAC");
                    return Forwarded::MayHaveRun(ForwardFailure::Failed);
                }
            }
            match Frame::decode(&message.payload) {
                Ok(Frame::Response(answer)) => match response(answer) {
                    Some(response) => {
                        self.stats.sent(target, "answered");
                        self.stats
                            .latency
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .observe_ms(sent.elapsed().as_secs_f64() * 1000.0);
                        return Forwarded::Answer(response);
                    }
                    None => {
                        self.stats.sent(target, "failed");
                        tracing::warn!(%target, "dropping a forwarded answer with a bad status or header");
                        return Forwarded::MayHaveRun(ForwardFailure::Failed);
                    }
                },
                Ok(Frame::Declined(declined)) if declined.ran() => {
                    self.stats.sent(target, "failed");
                    tracing::warn!(%target, "a forwarded request ran, but its answer could not come back");
                    return Forwarded::MayHaveRun(ForwardFailure::Failed);
                }
                Ok(Frame::Declined(declined)) => {
                    self.stats.sent(target, "declined");
                    tracing::debug!(%target, reason = declined.as_str(), "a member declined a forwarded request");
                    continue;
                }
                Ok(Frame::Request(_)) | Err(_) => {
                    self.stats.sent(target, "failed");
                    tracing::warn!(%target, "dropping an unreadable forwarded answer");
                    return Forwarded::MayHaveRun(ForwardFailure::Failed);
                }
            }
        }
        Forwarded::NotRun(
            ForwardFailure::NoMember,
            Request::from_parts(parts, Body::from(body)),
        )
    }

    /// Serves the requests forwarded to this node's version until `stop`:
    /// subscribes (in the version's queue group) once this node's listener
    /// can take in-process connections.
    pub(crate) async fn serve(self: Arc<Self>, stop: CancellationToken) {
        let local = tokio::select! {
            _ = stop.cancelled() => return,
            local = self.streams.local_connections() => local,
        };
        let subject = self.names.forward(&self.version);
        let mut subscription = loop {
            match self
                .client
                .queue_subscribe(subject.clone(), subject.clone())
                .await
            {
                Ok(subscription) => break subscription,
                Err(e) => {
                    tracing::warn!(%subject, error = %e, "cannot subscribe to forwarded requests yet");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(SUBSCRIBE_RETRY) => {}
                    }
                }
            }
        };
        tracing::debug!(%subject, "serving forwarded requests");
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => break,
                message = subscription.next() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            let Some(reply) = message
                .reply
                .as_ref()
                .map(|r| r.as_str().to_owned())
                .filter(|r| protocol::is_reply_inbox(r))
            else {
                self.stats.declined("bad_reply_subject");
                tracing::warn!("dropping a forwarded request whose reply subject is not an inbox");
                continue;
            };
            if let Some(key) = &self.key {
                let mac = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(MAC_HEADER))
                    .map(|v| v.as_str());
                if !mac
                    .is_some_and(|mac| key.verify(message.subject.as_str(), &message.payload, mac))
                {
                    self.stats.declined("unauthenticated");
                    tracing::warn!("dropping a forwarded request without a valid cluster MAC");
                    continue;
                }
            }
            let Ok(permit) = self.serving.clone().try_acquire_owned() else {
                self.stats.declined("busy");
                self.reply(&reply, &Frame::Declined(Declined::Busy)).await;
                continue;
            };
            let (this, local) = (self.clone(), local.clone());
            self.streams.tasks.spawn(async move {
                let answer = this.run(&message.payload, &local).await;
                this.reply(&reply, &answer).await;
                drop(permit);
            });
        }
        let _ = subscription.unsubscribe().await;
    }

    /// One forwarded request, from its frame to the answer to send back.
    async fn run(&self, payload: &[u8], local: &LocalConnections) -> Frame {
        let request = match Frame::decode(payload) {
            Ok(Frame::Request(request)) => request,
            Ok(_) | Err(_) => {
                self.stats.declined("malformed");
                tracing::warn!("dropping a malformed forwarded request");
                return Frame::Declined(Declined::Refused);
            }
        };
        if request.target != self.version {
            self.stats.declined("wrong_version");
            return Frame::Declined(Declined::WrongVersion);
        }
        if self.key.is_some() {
            let checked = self.replay.lock().unwrap_or_else(|e| e.into_inner()).check(
                request.nonce,
                request.at_ms,
                unix_ms(),
            );
            if let Err(why) = checked {
                let reason = match why {
                    Replay::Stale => "stale",
                    Replay::Repeated => "replayed",
                    Replay::Full => "busy",
                };
                self.stats.declined(reason);
                tracing::warn!(from = %request.from, reason, "refusing a forwarded request");
                return Frame::Declined(Declined::Refused);
            }
        }
        let Some(http) = self.http_request(&request) else {
            self.stats.declined("malformed");
            tracing::warn!(from = %request.from, "dropping a forwarded request with a bad method, URI or header");
            return Frame::Declined(Declined::Refused);
        };
        let limit = self.max_body();
        match tokio::time::timeout(self.timeout, local.exchange(http, limit)).await {
            Ok(Ok(answer)) => {
                self.stats.served.fetch_add(1, Ordering::Relaxed);
                Frame::Response(answer)
            }
            Ok(Err(Exchange::NotRun(e))) => {
                self.stats.declined("not_served");
                tracing::warn!(error = %e, "cannot pass a forwarded request to this node's router");
                Frame::Declined(Declined::Busy)
            }
            Ok(Err(Exchange::AnswerLost(e))) => {
                self.stats.declined("answer_lost");
                tracing::warn!(error = %e, "a forwarded request ran, but its answer cannot be sent back");
                Frame::Declined(Declined::AnswerLost)
            }
            Err(_) => {
                self.stats.declined("answer_lost");
                tracing::warn!(timeout = ?self.timeout, "a forwarded request did not finish in time here");
                Frame::Declined(Declined::AnswerLost)
            }
        }
    }

    /// The request as this node's router takes it, marked as forwarded.
    fn http_request(&self, request: &ForwardRequest) -> Option<Request<Body>> {
        let mut builder = Request::builder()
            .method(request.method.as_str())
            .uri(request.uri.as_str());
        let headers = builder.headers_mut()?;
        for (name, value) in &request.headers {
            if !affinity::travels(name) {
                continue;
            }
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            );
        }
        headers.insert(FORWARDED_HEADER, self.marker.clone());
        builder.body(Body::from(request.body.clone())).ok()
    }

    /// Sends `frame` to `reply` (MAC'd with a cluster key); a failure is
    /// the sender's timeout.
    async fn reply(&self, reply: &str, frame: &Frame) {
        let payload = Bytes::from(frame.encode());
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.key {
            headers.insert(MAC_HEADER, key.sign(reply, &payload).as_str());
        }
        if let Err(e) = self
            .client
            .publish_with_headers(reply.to_owned(), headers, payload)
            .await
        {
            tracing::warn!(error = %e, "cannot answer a forwarded request");
        }
    }
}

/// The answer of a member, as the browser gets it; `None` if its status or
/// a header is not valid HTTP.
fn response(answer: ForwardResponse) -> Option<Response<Body>> {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).ok()?;
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        if !affinity::travels(&name) {
            continue;
        }
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_bytes(&value).ok()?,
        );
    }
    Some(response)
}

/// Why a body was not read whole.
enum Unread {
    /// Longer than the limit: the body as it was, with the part read put
    /// back in front.
    TooLarge(Body),
    /// The client's body broke off.
    Broken,
}

/// Reads `body` whole if it is at most `limit` bytes.
async fn read_bounded(body: Body, limit: usize) -> Result<Bytes, Unread> {
    let mut body = body;
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Unread::Broken);
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing to forward
        };
        read.extend_from_slice(&data);
        if read.len() > limit {
            let head =
                futures::stream::once(async move { Ok::<_, axum::Error>(Bytes::from(read)) });
            let rest = body.into_data_stream();
            return Err(Unread::TooLarge(Body::from_stream(head.chain(rest))));
        }
    }
    Ok(Bytes::from(read))
}

/// Why an in-process exchange failed.
enum Exchange {
    /// The request never reached the router.
    NotRun(String),
    /// It ran, but its answer cannot be passed back (too large, broken).
    AnswerLost(String),
}

/// How this node passes requests to its own router: new in-process
/// connections handed to its listener's accept loop.
#[derive(Clone)]
pub(crate) struct LocalConnections {
    pub(crate) accept: tokio::sync::mpsc::Sender<(Connection, SocketAddr)>,
    pub(crate) idle_timeout: Duration,
}

impl LocalConnections {
    /// One request, one in-process HTTP/1.1 connection: the router sees it
    /// as it would any other, every layer included.
    async fn exchange(
        &self,
        request: Request<Body>,
        limit: usize,
    ) -> Result<ForwardResponse, Exchange> {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        self.accept
            .send((Connection::local(theirs, self.idle_timeout), peer))
            .await
            .map_err(|_| Exchange::NotRun("the listener is gone".into()))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(ours))
                .await
                .map_err(|e| Exchange::NotRun(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let answer = sender.send_request(request).await;
        let result = match answer {
            Err(e) if e.is_canceled() => Err(Exchange::NotRun(e.to_string())),
            Err(e) => Err(Exchange::AnswerLost(e.to_string())),
            Ok(response) => {
                let (parts, body) = response.into_parts();
                match read_bounded(Body::new(body), limit).await {
                    Ok(body) => Ok(ForwardResponse {
                        status: parts.status.as_u16(),
                        headers: parts
                            .headers
                            .iter()
                            .filter(|(name, _)| affinity::travels(name.as_str()))
                            .map(|(name, value)| {
                                (name.as_str().to_owned(), value.as_bytes().to_vec())
                            })
                            .collect(),
                        body: body.to_vec(),
                    }),
                    Err(Unread::TooLarge(_)) => Err(Exchange::AnswerLost(format!(
                        "the answer is over {limit} bytes"
                    ))),
                    Err(Unread::Broken) => Err(Exchange::AnswerLost("the answer broke off".into())),
                }
            }
        };
        driver.abort();
        result
    }
}
