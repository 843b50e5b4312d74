//! The NATS driver of a cluster node. It only moves bytes: messages and KV
//! results into the [`Coordinator`], the coordinator's actions out to NATS,
//! JetStream KV and the browsers' [`VersionHub`](super::hub::VersionHub).
//! Every decision is the coordinator's (in `version-observer-core`, tested
//! without NATS on simulated time).
//!
//! One task runs the loop. KV calls run in tasks of their own, bounded by
//! [`Timings::kv_timeout`], and report back over a channel, so a slow
//! JetStream never holds up presence handling; publishes are bounded too, so
//! a long outage (a full client queue) cannot hang the loop or the shutdown.

use super::{
    settings::{NatsSettings, StartError, UrlAuth},
    streams::Streams,
    unix_ms,
};
use async_nats::{
    jetstream::{
        self,
        context::{GetStreamErrorKind, PublishErrorKind},
        kv,
        message::PublishMessage,
        stream::{self, LastRawMessageErrorKind},
        ErrorCode,
    },
    Client, ConnectErrorKind, ConnectOptions, Event,
};
use futures::{FutureExt, StreamExt};
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use version_observer_core::{
    auth::MAC_HEADER,
    cluster::{Action, BucketSpec, Coordinator, Entry, Identity, KvError, LeaseCall},
    protocol::{Names, LEASE_KEY, STATE_KEY},
    status::ClusterStatus,
    timing::driver::{
        CONNECT_TIMEOUT, ERROR_LOG_INTERVAL, FLUSH_TIMEOUT, PUBLISH_TIMEOUT, RECONNECT_FIRST,
        RECONNECT_JITTER, RECONNECT_MAX, STARTUP_WAIT, STATUS_REFRESH,
    },
    Compat, NodeInfo, Release,
};

/// Messages handled in one go before the loop looks at its other inputs.
const BATCH: usize = 256;

/// A running cluster node.
pub(crate) struct ClusterNode {
    client: Client,
    status: watch::Receiver<ClusterStatus>,
    leave: CancellationToken,
    retire: mpsc::UnboundedSender<(Duration, Duration)>,
    /// Cancelled when the loop has ended (the node has left).
    finished: CancellationToken,
    task: JoinHandle<()>,
}

impl ClusterNode {
    /// Connects (in the background if NATS is not reachable yet) and starts
    /// the loop. Fails only on bad settings or refused credentials.
    pub(crate) async fn start(
        settings: NatsSettings,
        node: NodeInfo,
        compat: Compat,
        release: Release,
        streams: Arc<Streams>,
    ) -> Result<Self, StartError> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (client, connected) = connect(&settings, &node.id, events_tx).await?;
        // Random per process: it tells two processes with one id apart,
        // and never depends on the wall clock moving forward.
        let incarnation = fastrand::u64(1..);
        let mut coordinator = Coordinator::new(
            Identity {
                id: node.id.clone(),
                version: node.version.clone(),
                incarnation,
            },
            Names::new(&settings.cluster),
            client.new_inbox(),
            compat,
            settings.timings,
            Instant::now(),
        );
        if let Some(key) = settings.cluster_key()? {
            coordinator = coordinator.with_key(key);
        }
        coordinator = coordinator
            .with_replicas(settings.kv_replicas)
            .with_release(release);
        let (status_tx, status) = watch::channel(coordinator.status(Instant::now()));
        let (ready_tx, mut ready) = watch::channel(false);
        let leave = CancellationToken::new();
        let (retire, retire_rx) = mpsc::unbounded_channel();
        let finished = CancellationToken::new();
        let driver = Driver {
            js: jetstream::new(client.clone()),
            client: client.clone(),
            coordinator,
            kv_timeout: settings.timings.kv_timeout(),
            bucket: None,
            replicas_warned: false,
            nats_errors: Throttle::new(ERROR_LOG_INTERVAL),
            streams,
            status_tx,
            ready_tx,
            events,
            retire: retire_rx,
        };
        let task = {
            let (leave, finished) = (leave.clone(), finished.clone());
            tokio::spawn(async move {
                let _finished = finished.drop_guard();
                driver.run(leave).await
            })
        };
        if connected {
            let _ = tokio::time::timeout(STARTUP_WAIT, ready.wait_for(|r| *r)).await;
        }
        Ok(Self {
            client,
            status,
            leave,
            retire,
            finished,
            task,
        })
    }

    /// The node's NATS client (for the asset store).
    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    pub(crate) fn status(&self) -> watch::Receiver<ClusterStatus> {
        self.status.clone()
    }

    /// Starts retiring ([`Coordinator::begin_retire`]); the node leaves by
    /// itself when it is over ([`finished`](Self::finished)).
    pub(crate) fn retire(&self, retire_for: Duration, grace: Duration) {
        let _ = self.retire.send((retire_for, grace));
    }

    /// Resolves once the node has left its cluster (a retirement ended, or
    /// [`leave`](Self::leave)).
    pub(crate) async fn finished(&self) {
        self.finished.cancelled().await
    }

    /// Leaves gracefully: hands the lease back, says nodedown, flushes.
    pub(crate) async fn leave(self) {
        self.leave.cancel();
        let _ = self.task.await;
    }
}

/// Connects to NATS. A first attempt without retries tells refused
/// credentials (a start-up error, named once) from a server that is not
/// there yet (then the client keeps trying in the background). Returns the
/// client and whether it is connected already.
pub(crate) async fn connect(
    settings: &NatsSettings,
    node_id: &str,
    events: mpsc::UnboundedSender<Event>,
) -> Result<(Client, bool), StartError> {
    let (addrs, auth) = settings.server_addrs()?;
    let servers = settings.redacted_urls();
    // A probe, one attempt per server, only to tell refused credentials or
    // certificates from a server that is down; the node's own client (below)
    // retries for ever, at start and after every disconnection.
    let (probe_events, _) = mpsc::unbounded_channel();
    let probe = tokio::time::timeout(
        STARTUP_WAIT,
        connect_options(settings, node_id, &auth, &probe_events, true)
            .await?
            .connect(addrs.clone()),
    )
    .await;
    let reachable = match probe {
        Ok(Ok(probe)) => {
            drop(probe);
            true
        }
        Ok(Err(e))
            if matches!(
                e.kind(),
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication
            ) =>
        {
            return Err(StartError::Unauthorized {
                server: servers,
                reason: e.to_string(),
            });
        }
        // A certificate nobody trusts will not be trusted on the next try.
        Ok(Err(e))
            if e.kind() == ConnectErrorKind::Tls || e.to_string().contains("certificate") =>
        {
            return Err(StartError::Connect {
                server: servers,
                reason: e.to_string(),
            });
        }
        Ok(Err(e)) => {
            tracing::warn!(servers, error = %e, "NATS is not reachable yet; serving as `unknown` and retrying in the background");
            false
        }
        Err(_) => {
            tracing::warn!(
                servers,
                "NATS did not answer in time; serving as `unknown` and retrying in the background"
            );
            false
        }
    };
    let client = connect_options(settings, node_id, &auth, &events, false)
        .await?
        .retry_on_initial_connect()
        .connect(addrs)
        .await
        .map_err(|e| StartError::Connect {
            server: servers,
            reason: e.to_string(),
        })?;
    Ok((client, reachable))
}

/// The client options: one attempt per server for the `probe`, for ever
/// for the node's client; credentials from the URL or the files the
/// settings name.
async fn connect_options(
    settings: &NatsSettings,
    node_id: &str,
    auth: &UrlAuth,
    events: &mpsc::UnboundedSender<Event>,
    probe: bool,
) -> Result<ConnectOptions, StartError> {
    let timings = settings.timings;
    let events = events.clone();
    let mut options = ConnectOptions::new()
        .name(format!("version-observer {node_id}"))
        // Silence (dropped packets) is noticed within about one node
        // timeout: two unanswered pings mark the connection stale.
        .ping_interval(timings.node_timeout / 2)
        .connection_timeout(timings.node_timeout.min(CONNECT_TIMEOUT))
        // The probe tries each server once, so that a server that is down
        // does not hold start-up; the node's client keeps trying for ever.
        .max_reconnects(if probe { Some(1) } else { None })
        .reconnect_delay_callback(|attempt| {
            // Capped, jittered exponential backoff.
            let base = RECONNECT_FIRST.saturating_mul(1 << attempt.min(5) as u32);
            let jitter = fastrand::u64(0..RECONNECT_JITTER.as_millis() as u64);
            base.min(RECONNECT_MAX) + Duration::from_millis(jitter)
        })
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                let _ = events.send(event);
            }
        });
    options = match auth {
        UrlAuth::None => options,
        UrlAuth::UserPassword(user, pass) => options.user_and_password(user.clone(), pass.clone()),
        UrlAuth::Token(token) => options.token(token.clone()),
    };
    if let Some(path) = &settings.root_certificates {
        if !path.is_file() {
            return Err(StartError::File {
                what: "CA certificates",
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        options = options.add_root_certificates(path.clone());
    }
    if let Some(path) = &settings.credentials {
        options = options
            .credentials_file(path)
            .await
            .map_err(|source| StartError::File {
                what: "NATS credentials file",
                path: path.clone(),
                source,
            })?;
    }
    Ok(options)
}

/// What a KV task reports back.
enum KvResult {
    Bucket(Result<Box<kv::Store>, KvError>),
    Lease(Result<u64, KvError>),
    Record(Result<Option<Entry>, KvError>),
    Written(Result<u64, KvError>),
}

struct Driver {
    client: Client,
    js: jetstream::Context,
    coordinator: Coordinator,
    kv_timeout: Duration,
    /// (lease, state), once open.
    bucket: Option<kv::Store>,
    /// A replica-count mismatch is warned about once.
    replicas_warned: bool,
    /// NATS errors while reconnecting are logged at most every half minute.
    nats_errors: Throttle,
    streams: Arc<Streams>,
    status_tx: watch::Sender<ClusterStatus>,
    ready_tx: watch::Sender<bool>,
    events: mpsc::UnboundedReceiver<Event>,
    retire: mpsc::UnboundedReceiver<(Duration, Duration)>,
}

impl Driver {
    async fn run(mut self, leave: CancellationToken) {
        let [all, inbox] = self.coordinator.subscriptions();
        let (mut all, mut inbox) = match (
            self.client.subscribe(all).await,
            self.client.subscribe(inbox).await,
        ) {
            (Ok(a), Ok(i)) => (a, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot subscribe to the cluster's subjects");
                return;
            }
        };
        let (kv_tx, mut kv_rx) = mpsc::unbounded_channel();
        if self.client.connection_state() == async_nats::connection::State::Connected {
            self.coordinator.handle_connected(Instant::now());
        }
        let mut leaving = false;
        let mut shown_changes = 0;
        let mut shown_at = Instant::now();
        let mut tabs_seen = None;
        loop {
            // The open tabs go out with the next heartbeat.
            let tabs = self.streams.tabs.generation();
            if tabs_seen != Some(tabs) {
                tabs_seen = Some(tabs);
                self.coordinator.set_tabs(self.streams.tabs.counts());
            }
            self.execute(&kv_tx).await;
            let now = Instant::now();
            self.coordinator.set_unix_time_ms(unix_ms());
            if self.coordinator.changes() != shown_changes
                || now.saturating_duration_since(shown_at) >= STATUS_REFRESH
            {
                shown_changes = self.coordinator.changes();
                shown_at = now;
                self.status_tx.send_replace(self.coordinator.status(now));
            }
            if self.coordinator.is_ready() {
                self.ready_tx
                    .send_if_modified(|r| !std::mem::replace(r, true));
            }
            if self.coordinator.has_left() {
                break;
            }
            // The coordinator's next deadline is never due right after a
            // call (one that passed since is handled at once, and consumed).
            let wake = self
                .coordinator
                .poll_timeout(now)
                .map_or(shown_at + STATUS_REFRESH, |t| {
                    t.min(shown_at + STATUS_REFRESH)
                });
            tokio::select! {
                _ = leave.cancelled(), if !leaving => {
                    leaving = true;
                    self.coordinator.begin_leave(Instant::now());
                }
                Some((retire_for, grace)) = self.retire.recv() => {
                    self.coordinator.begin_retire(Instant::now(), retire_for, grace);
                }
                Some(event) = self.events.recv() => self.on_event(event),
                Some(message) = all.next() => {
                    self.on_message(&message);
                    for _ in 0..BATCH {
                        let Some(Some(message)) = all.next().now_or_never() else { break };
                        self.on_message(&message);
                    }
                }
                Some(message) = inbox.next() => {
                    self.on_message(&message);
                    for _ in 0..BATCH {
                        let Some(Some(message)) = inbox.next().now_or_never() else { break };
                        self.on_message(&message);
                    }
                }
                Some(result) = kv_rx.recv() => self.on_kv(result),
                _ = tokio::time::sleep_until(wake.into()) => {
                    self.coordinator.handle_timeout(Instant::now());
                }
            }
        }
        self.execute(&kv_tx).await;
        // Only a connected client has anything to flush: with NATS down the
        // flush would only wait out its timeout.
        if self.client.connection_state() == async_nats::connection::State::Connected {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, self.client.flush()).await;
        }
    }

    fn on_event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Connected => {
                tracing::info!(cluster = %self.coordinator.names().cluster(), "connected to NATS");
                self.coordinator.handle_connected(now);
            }
            Event::Disconnected => {
                tracing::warn!("disconnected from NATS; cluster state unknown until it returns");
                self.coordinator.handle_disconnected(now);
            }
            Event::ServerError(e) => {
                if let Some(repeats) = self.nats_errors.bump() {
                    tracing::warn!(error = %e, repeats, "NATS server error");
                }
            }
            Event::ClientError(e) => {
                if let Some(repeats) = self.nats_errors.bump() {
                    tracing::warn!(error = %e, repeats, "NATS client error (retrying)");
                }
            }
            other => tracing::debug!(event = %other, "NATS event"),
        }
    }

    fn on_message(&mut self, message: &async_nats::Message) {
        let mac = message
            .headers
            .as_ref()
            .and_then(|h| h.get(MAC_HEADER))
            .map(|v| v.as_str());
        self.coordinator.handle_message(
            message.subject.as_str(),
            message.reply.as_ref().map(|r| r.as_str()),
            &message.payload,
            mac,
            Instant::now(),
        );
    }

    fn on_kv(&mut self, result: KvResult) {
        let now = Instant::now();
        match result {
            KvResult::Bucket(Ok(store)) => {
                self.bucket = Some(*store);
                self.coordinator.handle_buckets(Ok(()), now);
            }
            KvResult::Bucket(Err(e)) => self.coordinator.handle_buckets(Err(e), now),
            KvResult::Lease(r) => self.coordinator.handle_lease(r, now),
            KvResult::Record(r) => self.coordinator.handle_record(r, now),
            KvResult::Written(r) => self.coordinator.handle_record_written(r, now),
        }
    }

    /// Carries out what the coordinator asks for.
    async fn execute(&mut self, kv_tx: &mpsc::UnboundedSender<KvResult>) {
        while let Some(action) = self.coordinator.poll_action() {
            match action {
                Action::View(view) => {
                    self.streams.hub.publish(view);
                }
                Action::Publish {
                    subject,
                    reply,
                    payload,
                    mac,
                } => {
                    let mut headers = async_nats::HeaderMap::new();
                    if let Some(mac) = mac {
                        headers.insert(MAC_HEADER, mac.as_str());
                    }
                    let publish = match reply {
                        Some(reply) => self
                            .client
                            .publish_with_reply_and_headers(subject, reply, headers, payload)
                            .left_future(),
                        None => self
                            .client
                            .publish_with_headers(subject, headers, payload)
                            .right_future(),
                    };
                    let sent = tokio::time::timeout(PUBLISH_TIMEOUT, publish).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        tracing::debug!("a message was not sent (NATS unreachable)");
                    }
                }
                Action::OpenBucket(spec) => {
                    let js = self.js.clone();
                    let warned = self.replicas_warned;
                    self.replicas_warned = true;
                    self.spawn_kv(kv_tx, KvResult::Bucket, async move {
                        open_bucket(&js, spec, !warned).await.map(Box::new)
                    });
                }
                Action::Lease(call) => {
                    let Some(store) = self.bucket.clone() else {
                        let _ = kv_tx.send(KvResult::Lease(Err(unavailable("no bucket"))));
                        continue;
                    };
                    let js = self.js.clone();
                    self.spawn_kv(kv_tx, KvResult::Lease, async move {
                        let subject = key_subject(&store, LEASE_KEY);
                        let message = match call {
                            LeaseCall::Create { value, ttl } => {
                                let expected = free_lease_sequence(&store, &subject).await?;
                                PublishMessage::build()
                                    .payload(value)
                                    .expected_last_subject_sequence(expected)
                                    .ttl(ttl)
                            }
                            LeaseCall::Update {
                                revision,
                                value,
                                ttl,
                            } => PublishMessage::build()
                                .payload(value)
                                .expected_last_subject_sequence(revision)
                                .ttl(ttl),
                            LeaseCall::Delete { revision, ttl } => PublishMessage::build()
                                .header(KV_OPERATION, "DEL")
                                .expected_last_subject_sequence(revision)
                                .ttl(ttl),
                        };
                        publish(&js, subject, message).await
                    });
                }
                Action::ReadRecord => {
                    let Some(store) = self.bucket.clone() else {
                        let _ = kv_tx.send(KvResult::Record(Err(unavailable("no bucket"))));
                        continue;
                    };
                    self.spawn_kv(kv_tx, KvResult::Record, async move {
                        let entry = store.entry(STATE_KEY).await.map_err(unavailable)?;
                        Ok(entry.map(|e| Entry {
                            revision: e.revision,
                            value: (e.operation == kv::Operation::Put).then_some(e.value),
                        }))
                    });
                }
                Action::WriteRecord {
                    fence,
                    expected_revision,
                    value,
                } => {
                    let Some(store) = self.bucket.clone() else {
                        let _ = kv_tx.send(KvResult::Written(Err(unavailable("no bucket"))));
                        continue;
                    };
                    let js = self.js.clone();
                    self.spawn_kv(kv_tx, KvResult::Written, async move {
                        // Lands only if the monitor's fencing renewal is still
                        // the bucket's last message: no other monitor since.
                        let message = PublishMessage::build()
                            .payload(value)
                            .expected_last_sequence(fence)
                            .expected_last_subject_sequence(expected_revision);
                        publish(&js, key_subject(&store, STATE_KEY), message).await
                    });
                }
            }
        }
    }

    /// Runs one KV call in a task of its own, bounded by the KV timeout.
    fn spawn_kv<T: Send + 'static>(
        &self,
        results: &mpsc::UnboundedSender<KvResult>,
        wrap: fn(Result<T, KvError>) -> KvResult,
        call: impl Future<Output = Result<T, KvError>> + Send + 'static,
    ) {
        let (results, timeout) = (results.clone(), self.kv_timeout);
        tokio::spawn(async move {
            let result = tokio::time::timeout(timeout, call)
                .await
                .unwrap_or_else(|_| Err(unavailable("timed out")));
            let _ = results.send(wrap(result));
        });
    }
}

/// Lets a repeated log line through at most once per period.
struct Throttle {
    period: Duration,
    last: Option<Instant>,
    repeats: u64,
}

impl Throttle {
    fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            repeats: 0,
        }
    }

    /// Counts one; returns how many there were since the last line, when
    /// it is time for a line.
    fn bump(&mut self) -> Option<u64> {
        self.repeats += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.period)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.repeats))
    }
}

fn unavailable(e: impl std::fmt::Display) -> KvError {
    KvError::Unavailable(e.to_string())
}

/// The header that marks a KV delete.
const KV_OPERATION: &str = "KV-Operation";

/// The subject of a key in the bucket.
fn key_subject(store: &kv::Store, key: &str) -> String {
    format!("{}{}", store.prefix, key)
}

/// The sequence the lease key must still have for this node to take it:
/// that of its last message when it is a delete marker, 0 when it has none
/// (never set, or expired); a live holder makes it a conflict.
async fn free_lease_sequence(store: &kv::Store, subject: &str) -> Result<u64, KvError> {
    match store.stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => {
            let marker = message
                .headers
                .get(KV_OPERATION)
                .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"))
                || message.headers.get("Nats-Marker-Reason").is_some();
            if marker {
                Ok(message.sequence)
            } else {
                Err(KvError::Conflict("the lease is held".into()))
            }
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
        Err(e) => Err(unavailable(e)),
    }
}

/// Publishes to the bucket and waits for the server's acknowledgement: the
/// new message's sequence, or a conflict if an expected sequence was wrong.
async fn publish(
    js: &jetstream::Context,
    subject: String,
    message: PublishMessage,
) -> Result<u64, KvError> {
    let conflict_or_unavailable = |e: jetstream::context::PublishError| {
        if e.kind() == PublishErrorKind::WrongLastSequence {
            KvError::Conflict(e.to_string())
        } else {
            unavailable(e)
        }
    };
    let ack = js
        .send_publish(subject, message)
        .await
        .map_err(conflict_or_unavailable)?
        .await
        .map_err(conflict_or_unavailable)?;
    Ok(ack.sequence)
}

/// Opens the bucket, creating it as `spec` says when it does not exist, and
/// checks that an existing one is safe to use: it must allow per-message
/// TTLs (the lease), and keep messages at least as long as a lease lives.
async fn open_bucket(
    js: &jetstream::Context,
    spec: BucketSpec,
    warn_replicas: bool,
) -> Result<kv::Store, KvError> {
    let stream_name = format!("KV_{}", spec.name);
    match js.get_stream(&stream_name).await {
        Ok(stream) => {
            let config = &stream.cached_info().config;
            if !config.allow_message_ttl {
                return Err(KvError::Incompatible(format!(
                    "bucket {} exists without per-message TTLs (made by another program or an older \
                     version-observer); delete it (`nats kv rm {}`) or use another --cluster",
                    spec.name, spec.name
                )));
            }
            if !config.max_age.is_zero() && config.max_age < spec.lease_ttl {
                return Err(KvError::Incompatible(format!(
                    "bucket {} keeps messages for {:?}, less than a lease lives ({:?}): a lease \
                     could vanish while its holder trusts it",
                    spec.name, config.max_age, spec.lease_ttl
                )));
            }
            if warn_replicas && config.num_replicas != spec.replicas {
                tracing::warn!(bucket = %spec.name, replicas = config.num_replicas,
                    wanted = spec.replicas, "the bucket exists with another replica count; using it as it is");
            }
        }
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            let created = js
                .create_stream(stream::Config {
                    name: stream_name,
                    description: Some(spec.description.into()),
                    subjects: vec![format!("$KV.{}.>", spec.name)],
                    max_messages_per_subject: 1,
                    storage: stream::StorageType::File,
                    num_replicas: spec.replicas,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    allow_message_ttl: true,
                    first_sequence: Some(spec.first_sequence.max(1)),
                    ..Default::default()
                })
                .await;
            match created {
                Ok(_) => tracing::info!(bucket = %spec.name, first_sequence = spec.first_sequence,
                    replicas = spec.replicas, "created the cluster's KV bucket"),
                // Another node may have created it in the meantime.
                Err(e) => tracing::debug!(error = %e, "bucket not created here"),
            }
        }
        Err(e) => return Err(unavailable(e)),
    }
    js.get_key_value(spec.name).await.map_err(unavailable)
}

#[cfg(test)]
mod tests {
    //! The bucket operations against a real nats-server: the fence, the
    //! lease's per-message TTL, and the checks of an existing bucket.

    use super::*;
    use bytes::Bytes;
    use vo_lab::NatsServer;

    const LEASE_TTL: Duration = Duration::from_secs(1);

    fn spec(name: &str, first_sequence: u64) -> BucketSpec {
        BucketSpec {
            name: name.into(),
            description: "test",
            replicas: 1,
            first_sequence,
            lease_ttl: LEASE_TTL,
        }
    }

    async fn server() -> (NatsServer, jetstream::Context) {
        let nats = NatsServer::start().await.expect("nats-server starts");
        let client = async_nats::connect(nats.url()).await.unwrap();
        (nats, jetstream::new(client))
    }

    async fn acquire(
        js: &jetstream::Context,
        store: &kv::Store,
        who: &str,
    ) -> Result<u64, KvError> {
        let subject = key_subject(store, LEASE_KEY);
        let expected = free_lease_sequence(store, &subject).await?;
        let message = PublishMessage::build()
            .payload(Bytes::from(who.to_owned()))
            .expected_last_subject_sequence(expected)
            .ttl(LEASE_TTL);
        publish(js, subject, message).await
    }

    async fn renew(
        js: &jetstream::Context,
        store: &kv::Store,
        revision: u64,
    ) -> Result<u64, KvError> {
        let message = PublishMessage::build()
            .payload(Bytes::from_static(b"a"))
            .expected_last_subject_sequence(revision)
            .ttl(LEASE_TTL);
        publish(js, key_subject(store, LEASE_KEY), message).await
    }

    async fn write(
        js: &jetstream::Context,
        store: &kv::Store,
        fence: u64,
        expected: u64,
    ) -> Result<u64, KvError> {
        let message = PublishMessage::build()
            .payload(Bytes::from_static(b"{}"))
            .expected_last_sequence(fence)
            .expected_last_subject_sequence(expected);
        publish(js, key_subject(store, STATE_KEY), message).await
    }

    #[tokio::test]
    async fn a_deposed_monitors_write_fails_even_if_the_record_is_unchanged() {
        let (_nats, js) = server().await;
        let store = open_bucket(&js, spec("fence", 1), true).await.unwrap();
        let a = acquire(&js, &store, "a").await.unwrap();
        assert!(
            matches!(acquire(&js, &store, "b").await, Err(KvError::Conflict(_))),
            "held"
        );
        let fence = renew(&js, &store, a).await.unwrap();
        // A freezes with its write still to send; its lease runs out (TTL)
        // and B takes it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let b = loop {
            match acquire(&js, &store, "b").await {
                Ok(b) => break b,
                Err(KvError::Conflict(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
                }
                Err(e) => panic!("B never took the expired lease: {e}"),
            }
        };
        // The record has not changed (revision 0: none), yet A's write must fail.
        assert!(matches!(
            write(&js, &store, fence, 0).await,
            Err(KvError::Conflict(_))
        ));
        // B's own fenced write lands.
        let b_fence = renew(&js, &store, b).await.unwrap();
        let written = write(&js, &store, b_fence, 0).await.unwrap();
        assert_eq!(written, b_fence + 1);
        // A's renewal of its lost lease fails too.
        assert!(matches!(
            renew(&js, &store, fence).await,
            Err(KvError::Conflict(_))
        ));
    }

    #[tokio::test]
    async fn a_released_lease_is_free_at_once_and_sequences_start_where_asked() {
        let (_nats, js) = server().await;
        let store = open_bucket(&js, spec("release", 500), true).await.unwrap();
        let a = acquire(&js, &store, "a").await.unwrap();
        assert_eq!(
            a, 500,
            "a bucket made anew starts above every revision seen"
        );
        let delete = PublishMessage::build()
            .header(KV_OPERATION, "DEL")
            .expected_last_subject_sequence(a)
            .ttl(LEASE_TTL);
        publish(&js, key_subject(&store, LEASE_KEY), delete)
            .await
            .unwrap();
        let b = acquire(&js, &store, "b")
            .await
            .expect("free after the delete marker");
        assert!(b > a);
    }

    #[tokio::test]
    async fn an_existing_bucket_without_ttls_or_with_a_short_max_age_is_refused() {
        let (_nats, js) = server().await;
        js.create_key_value(kv::Config {
            bucket: "old_style".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let err = open_bucket(&js, spec("old_style", 1), true)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KvError::Incompatible(m) if m.contains("old_style") && m.contains("per-message TTL")),
            "{err}"
        );
        js.create_stream(stream::Config {
            name: "KV_short".into(),
            subjects: vec!["$KV.short.>".into()],
            allow_message_ttl: true,
            max_age: Duration::from_millis(500),
            ..Default::default()
        })
        .await
        .unwrap();
        let err = open_bucket(&js, spec("short", 1), true).await.unwrap_err();
        assert!(
            matches!(&err, KvError::Incompatible(m) if m.contains("short")),
            "{err}"
        );
    }
}
