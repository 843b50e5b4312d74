//! The NATS side of a cluster node. It only moves messages: presence in and
//! out, version requests answered, KV reads and writes for the lease and the
//! settled record. Every decision is made by [`membership`](super::membership),
//! [`election`](super::election) and [`monitor`](super::monitor).
//!
//! Three tasks per node:
//! - **presence**: nodeup on every (re)connect, heartbeats every `timeout / 3`,
//!   nodedown on graceful stop;
//! - **responder**: answers version requests at once, whatever else is busy;
//! - **coordinator**: the membership view, the election, and (while leader)
//!   the collection rounds and announcements; it publishes the node's cluster
//!   view to the [`VersionHub`](crate::hub::VersionHub).

use super::{
    election::{Election, ElectionAction, RoleChange},
    membership::{Agreement, MembershipView},
    monitor::{self, Backoff, Decision, RoundOutcome, Scheduler},
    protocol::{self, *},
};
use crate::hub::VersionHub;
use app::{
    compat::Compat,
    signal::{ClusterState, ClusterView, NodeInfo},
};
use async_nats::{
    jetstream::{self, kv},
    Client, ConnectOptions, Event,
};
use futures::{FutureExt, StreamExt};
use semver::Version;
use serde::Serialize;
use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

/// How a node reaches and paces its cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub url: String,
    pub creds: Option<PathBuf>,
    pub cluster: String,
    pub node_timeout: Duration,
    pub lease: Duration,
    pub round_timeout: Duration,
    pub safety_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read NATS credentials {path}: {source}")]
    Credentials {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
}

/// A member as `GET /api/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    pub id: String,
    pub version: Version,
    pub last_seen_ms_ago: u64,
    pub leader: bool,
}

/// The body of `GET /api/cluster`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub node_id: String,
    pub connected: bool,
    pub leader: Option<String>,
    pub this_node_leads: bool,
    pub state: ClusterState,
    pub settled_version: Option<Version>,
    pub announced: Option<SettledNotice>,
    pub members: Vec<MemberStatus>,
    /// The last collection round this node ran as monitor.
    pub last_round: Option<RoundStats>,
}

/// One collection round, as `GET /api/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundStats {
    pub round: u64,
    /// Members the view expected to reply.
    pub expected: usize,
    pub replies: usize,
    /// `settled`, `mixed` or `incomplete`.
    pub outcome: &'static str,
    /// From publishing the request to the last reply (or the deadline).
    pub collect_ms: f64,
}

/// A running cluster node; [`stop`](Self::stop) leaves the cluster gracefully.
pub struct ClusterNode {
    status: watch::Receiver<ClusterStatus>,
    /// The coordinator stops first: it hands the lease back...
    coordinator_stop: CancellationToken,
    coordinator: tokio::task::JoinHandle<()>,
    /// ...then presence says nodedown, so whoever hears it can take the lease at once.
    messaging_stop: CancellationToken,
    messaging: JoinSet<()>,
    client: Client,
}

impl ClusterNode {
    /// Connects (in the background: a node starts even while NATS is down) and
    /// starts the tasks.
    pub async fn start(
        settings: ClusterSettings,
        node: NodeInfo,
        compat: Compat,
        hub: Arc<VersionHub>,
    ) -> Result<Self, ClusterError> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut options = ConnectOptions::new()
            .name(format!("version-observer {}", node.id))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| {
                // Capped, jittered exponential backoff.
                let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(5) as u32);
                base.min(Duration::from_secs(2)) + Duration::from_millis(fastrand::u64(0..100))
            })
            .event_callback(move |event| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            });
        if let Some(path) = &settings.creds {
            options = options.credentials_file(path).await.map_err(|source| {
                ClusterError::Credentials {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        let client = options
            .connect(settings.url.as_str())
            .await
            .map_err(|source| ClusterError::Connect {
                url: settings.url.clone(),
                source,
            })?;

        let names = Names::new(&settings.cluster);
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let me = Me {
            id: node.id.clone(),
            version: node.version.clone(),
            incarnation,
        };
        let leader_flag = Arc::new(AtomicBool::new(false));
        let coordinator_stop = CancellationToken::new();
        let messaging_stop = CancellationToken::new();
        let (connected_tx, connected_rx) = watch::channel(false);
        let initial = ClusterStatus {
            cluster: settings.cluster.clone(),
            node_id: node.id.clone(),
            connected: false,
            leader: None,
            this_node_leads: false,
            state: ClusterState::Unknown,
            settled_version: None,
            announced: None,
            members: Vec::new(),
            last_round: None,
        };
        let (status_tx, status_rx) = watch::channel(initial);
        let (ready_tx, ready_rx) = watch::channel(false);

        let mut messaging = JoinSet::new();
        messaging.spawn(presence_task(
            client.clone(),
            names.clone(),
            me.clone(),
            settings.node_timeout / 3,
            leader_flag.clone(),
            connected_rx.clone(),
            messaging_stop.clone(),
        ));
        messaging.spawn(responder_task(
            client.clone(),
            names.clone(),
            me.clone(),
            messaging_stop.clone(),
        ));
        let coordinator = Coordinator {
            client: client.clone(),
            js: jetstream::new(client.clone()),
            names,
            me,
            compat,
            view: MembershipView::new(settings.node_timeout),
            election: Election::new(settings.lease, Instant::now()),
            scheduler: Scheduler::new(
                settings.safety_interval,
                Backoff {
                    first: Duration::from_millis(100),
                    max: Duration::from_secs(1),
                    attempts: 5,
                },
                Instant::now(),
            ),
            settings,
            buckets: None,
            next_bucket_attempt: Instant::now(),
            connected: false,
            announced: None,
            rounds: 0,
            round: None,
            last_round: None,
            hub,
            leader_flag,
            connected_tx,
            status_tx,
            ready_tx,
            changes: 1,
            published_changes: 0,
            published_at: Instant::now(),
            was_warm: false,
        };
        let coordinator = tokio::spawn(coordinator.run(events_rx, coordinator_stop.clone()));
        // A browser that connects right after start-up must get the settled
        // version at once: give the first connection and record read a moment
        // (bounded: with NATS down the node serves anyway, state `unknown`).
        let mut ready = ready_rx;
        let _ = tokio::time::timeout(STARTUP_WAIT, ready.wait_for(|r| *r)).await;
        Ok(Self {
            status: status_rx,
            coordinator_stop,
            coordinator,
            messaging_stop,
            messaging,
            client,
        })
    }

    pub fn status(&self) -> watch::Receiver<ClusterStatus> {
        self.status.clone()
    }

    /// Leaves gracefully, in this order: gives the lease back (and waits for
    /// the server to confirm), then announces nodedown, then flushes. A
    /// follower that hears the nodedown can therefore take the lease at once.
    pub async fn stop(mut self) {
        self.coordinator_stop.cancel();
        let _ = self.coordinator.await;
        self.messaging_stop.cancel();
        while self.messaging.join_next().await.is_some() {}
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
    }
}

#[derive(Debug, Clone)]
struct Me {
    id: String,
    version: Version,
    incarnation: u64,
}

impl Me {
    fn presence(&self, leader: bool) -> Presence {
        Presence {
            id: self.id.clone(),
            version: self.version.clone(),
            incarnation: self.incarnation,
            leader,
        }
    }
}

async fn presence_task(
    client: Client,
    names: Names,
    me: Me,
    interval: Duration,
    leader: Arc<AtomicBool>,
    mut connected: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = connected.changed() => {
                if changed.is_err() { break; }
                if *connected.borrow_and_update() {
                    let up = encode(&me.presence(leader.load(Ordering::Relaxed)));
                    if let Err(e) = client.publish(names.presence(PresenceKind::Up), up).await {
                        tracing::warn!(error = %e, "cannot announce nodeup");
                    }
                }
            }
            _ = ticker.tick() => {
                let beat = encode(&me.presence(leader.load(Ordering::Relaxed)));
                if let Err(e) = client.publish(names.presence(PresenceKind::Heartbeat), beat).await {
                    tracing::debug!(error = %e, "heartbeat not sent");
                }
            }
        }
    }
    let down = encode(&me.presence(false));
    if let Err(e) = client
        .publish(names.presence(PresenceKind::Down), down)
        .await
    {
        tracing::warn!(error = %e, "cannot announce nodedown");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
}

async fn responder_task(client: Client, names: Names, me: Me, stop: CancellationToken) {
    let mut requests = match client.subscribe(names.version_request()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to version requests");
            return;
        }
    };
    let reply = encode(&VersionReply {
        id: me.id.clone(),
        version: me.version.clone(),
        incarnation: me.incarnation,
    });
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            m = requests.next() => match m { Some(m) => m, None => break },
        };
        if let Err(e) = protocol::decode::<VersionRequest>(&message.payload) {
            tracing::warn!(subject = %message.subject, error = %e, "dropping a malformed version request");
            continue;
        }
        let Some(inbox) = message.reply else {
            tracing::warn!("dropping a version request without a reply subject");
            continue;
        };
        if let Err(e) = client.publish(inbox, reply.clone()).await {
            tracing::debug!(error = %e, "version reply not sent");
        }
    }
}

struct Buckets {
    lease: kv::Store,
    state: kv::Store,
}

struct Coordinator {
    client: Client,
    js: jetstream::Context,
    names: Names,
    me: Me,
    compat: Compat,
    settings: ClusterSettings,
    view: MembershipView,
    election: Election,
    scheduler: Scheduler,
    buckets: Option<Buckets>,
    /// When to try opening the buckets again, if they are not open.
    next_bucket_attempt: Instant,
    connected: bool,
    announced: Option<SettledNotice>,
    /// Rounds started so far (numbers each round's request).
    rounds: u64,
    /// The round in progress, while this node is monitor.
    round: Option<monitor::Round>,
    last_round: Option<RoundStats>,
    hub: Arc<VersionHub>,
    leader_flag: Arc<AtomicBool>,
    connected_tx: watch::Sender<bool>,
    status_tx: watch::Sender<ClusterStatus>,
    /// Set once the first record read after connecting is done.
    ready_tx: watch::Sender<bool>,
    /// Counts changes to anything the view or the status shows, so they are
    /// rebuilt only when something changed (not on every heartbeat), plus
    /// every [`STATUS_REFRESH`] for the members' ages.
    changes: u64,
    published_changes: u64,
    published_at: Instant,
    was_warm: bool,
}

const STARTUP_WAIT: Duration = Duration::from_secs(2);
const RECORD_REFRESH: Duration = Duration::from_secs(5);
const STATUS_REFRESH: Duration = Duration::from_secs(1);
const BUCKET_RETRY: Duration = Duration::from_millis(500);
/// The coordinator never spins faster than this, whatever a deadline says.
const MIN_WAKE: Duration = Duration::from_millis(1);

impl Coordinator {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>, stop: CancellationToken) {
        let subscribe = |subject: String| {
            let client = self.client.clone();
            async move { client.subscribe(subject).await }
        };
        let (mut presence, mut settled) = match (
            subscribe(self.names.presence_all()).await,
            subscribe(self.names.settled()).await,
        ) {
            (Ok(p), Ok(s)) => (p, s),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot subscribe to cluster subjects");
                return;
            }
        };
        if self.client.connection_state() == async_nats::connection::State::Connected {
            self.on_connected().await;
        }
        let mut last_refresh = Instant::now();
        // The reply inbox of the round in progress, if any.
        let mut replies: Option<async_nats::Subscriber> = None;
        // Event-driven: every message is acted on at once, and between messages
        // the loop sleeps until the next deadline (a lease renewal, an expiry,
        // a round's end), so nothing waits for a polling tick, and a round
        // waiting for a silent node holds up nothing else.
        loop {
            let wake = self.next_wake(last_refresh + RECORD_REFRESH);
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(event) = events.recv() => match event {
                    Event::Connected => self.on_connected().await,
                    Event::Disconnected => self.on_disconnected(),
                    Event::ServerError(e) => tracing::warn!(error = %e, "NATS server error"),
                    other => tracing::debug!(event = %other, "NATS event"),
                },
                Some(message) = presence.next() => {
                    self.on_presence(&message.subject, &message.payload);
                    // Take what else has arrived before the per-pass work
                    // below, which scans every member: a thousand heartbeats
                    // a second must not mean a thousand scans.
                    while let Some(Some(message)) = presence.next().now_or_never() {
                        self.on_presence(&message.subject, &message.payload);
                    }
                }
                Some(message) = next_message(&mut replies) => {
                    self.on_reply(&message.payload);
                    while let Some(Some(message)) = next_message(&mut replies).now_or_never() {
                        self.on_reply(&message.payload);
                    }
                }
                Some(message) = settled.next() => match protocol::decode::<SettledNotice>(&message.payload) {
                    Ok(notice) => self.apply_notice(notice, false),
                    Err(e) => tracing::warn!(subject = %message.subject, error = %e, "dropping a malformed settled notice"),
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    if self.connected && last_refresh.elapsed() >= RECORD_REFRESH {
                        last_refresh = Instant::now();
                        self.refresh_record().await;
                    }
                }
            }
            if let Some(inbox) = self.tick().await {
                replies = Some(inbox);
            }
            if self.round.is_none() {
                replies = None;
            }
            self.publish_view();
        }
        self.leave().await;
    }

    /// The earliest moment something is due: `refresh` (the next KV re-read),
    /// the status refresh, the election's next step, a member's expiry, the
    /// view becoming warm, or (as monitor) the next round.
    fn next_wake(&self, refresh: Instant) -> Instant {
        let now = Instant::now();
        let mut wake = refresh.min(self.published_at + STATUS_REFRESH);
        let leads = self.election.is_leader(now);
        let election = self.election.next_deadline();
        if self.connected && self.buckets.is_some() {
            wake = election.map_or(wake, |d| wake.min(d));
        } else if self.connected {
            wake = wake.min(self.next_bucket_attempt);
        } else if leads {
            // Cut off: the lease cannot be renewed; step down on our own clock.
            wake = election.map_or(wake, |d| wake.min(d));
        }
        if let Some(expiry) = self.view.next_expiry() {
            wake = wake.min(expiry);
        }
        match (&self.round, self.view.warm_at()) {
            (Some(round), _) => wake = wake.min(round.deadline),
            (None, Some(warm)) if warm > now => wake = wake.min(warm),
            (None, Some(_)) if leads && self.connected => {
                wake = wake.min(self.scheduler.next_round())
            }
            _ => {}
        }
        wake.max(now + MIN_WAKE)
    }

    async fn on_connected(&mut self) {
        tracing::info!(url = %self.settings.url, cluster = %self.names.cluster(), "connected to NATS");
        self.connected = true;
        self.changes += 1;
        self.view.start_observing(Instant::now());
        let _ = self.connected_tx.send(true);
        match self.open_buckets().await {
            Ok(b) => self.buckets = Some(b),
            Err(e) => tracing::warn!(error = %e, "cannot open the cluster's KV buckets yet"),
        }
        self.refresh_record().await;
        self.publish_view();
        self.ready_tx.send_replace(true);
    }

    fn on_disconnected(&mut self) {
        tracing::warn!("disconnected from NATS; cluster state unknown until it returns");
        self.connected = false;
        self.changes += 1;
        self.view.stop_observing();
        let _ = self.connected_tx.send(false);
    }

    async fn open_buckets(&self) -> Result<Buckets, async_nats::Error> {
        let lease = self
            .open_bucket(kv::Config {
                bucket: self.names.lease_bucket(),
                description: "version-observer monitor lease".into(),
                history: 1,
                max_age: self.settings.lease,
                storage: jetstream::stream::StorageType::Memory,
                ..Default::default()
            })
            .await?;
        let state = self
            .open_bucket(kv::Config {
                bucket: self.names.state_bucket(),
                description: "version-observer last announced version".into(),
                history: 5,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await?;
        Ok(Buckets { lease, state })
    }

    async fn open_bucket(&self, config: kv::Config) -> Result<kv::Store, async_nats::Error> {
        match self.js.get_key_value(config.bucket.clone()).await {
            Ok(store) => Ok(store),
            Err(_) => Ok(self.js.create_key_value(config).await?),
        }
    }

    fn on_presence(&mut self, subject: &str, payload: &[u8]) {
        let Some(kind) = PresenceKind::from_subject(subject) else {
            tracing::warn!(%subject, "dropping a message on an unknown presence subject");
            return;
        };
        let presence = match protocol::decode::<Presence>(payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%subject, error = %e, "dropping a malformed presence message");
                return;
            }
        };
        let now = Instant::now();
        let material = match kind {
            PresenceKind::Down => {
                let was_monitor = self.view.get(&presence.id).is_some_and(|m| m.leader);
                if was_monitor {
                    // It handed the lease back before saying nodedown.
                    self.election.attempt_now(now);
                }
                let left = self.view.left(&presence.id, presence.incarnation);
                if let (true, Some(round)) = (left, self.round.as_mut()) {
                    round.departed(&presence.id);
                }
                left
            }
            PresenceKind::Up | PresenceKind::Heartbeat => self
                .view
                .heard(
                    &presence.id,
                    &presence.version,
                    presence.incarnation,
                    presence.leader,
                    now,
                )
                .is_material(),
        };
        if material {
            tracing::info!(node = %presence.id, version = %presence.version, event = kind.as_str(), "membership changed");
            self.changes += 1;
            self.scheduler.collect_now(now);
        }
    }

    /// Everything due now: expiries, the election, the end of a round, the
    /// start of the next one (whose reply inbox it returns).
    async fn tick(&mut self) -> Option<async_nats::Subscriber> {
        let now = Instant::now();
        let expired = self.view.expire(now);
        if !expired.is_empty() {
            tracing::info!(nodes = ?expired, "nodes timed out");
            self.changes += 1;
            self.scheduler.collect_now(now);
            if let Some(round) = self.round.as_mut() {
                expired.iter().for_each(|id| round.departed(id));
            }
        }
        let warm = self.view.is_warm(now);
        if warm != self.was_warm {
            self.was_warm = warm;
            self.changes += 1;
        }
        self.election.set_eligible(warm);
        if !self.connected {
            // The lease cannot be renewed; `poll` steps down on our own clock.
            if let (_, Some(change)) = self.election.poll(now) {
                self.role_changed(change);
            }
            return None;
        }
        self.run_election(now).await;
        let now = Instant::now();
        if !self.election.is_leader(now) {
            // Deposed mid-round: its outcome is not ours to act on.
            self.round = None;
            return None;
        }
        if self.round.as_ref().is_some_and(|r| r.is_over(now)) {
            self.finish_round().await;
        }
        let now = Instant::now();
        if self.round.is_none() && self.view.is_warm(now) && self.scheduler.is_due(now) {
            return self.start_round().await;
        }
        None
    }

    async fn run_election(&mut self, now: Instant) {
        let Some(lease) = self.buckets.as_ref().map(|b| b.lease.clone()) else {
            if now >= self.next_bucket_attempt {
                match self.open_buckets().await {
                    Ok(b) => self.buckets = Some(b),
                    Err(e) => {
                        tracing::debug!(error = %e, "KV buckets still unavailable");
                        self.next_bucket_attempt = Instant::now() + BUCKET_RETRY;
                    }
                }
            }
            return;
        };
        let (action, change) = self.election.poll(now);
        if let Some(change) = change {
            self.role_changed(change);
        }
        let holder = encode(&LeaseHolder {
            id: self.me.id.clone(),
        });
        let sent = Instant::now();
        let result = match action {
            ElectionAction::Wait => return,
            ElectionAction::Acquire => lease
                .create(LEASE_KEY, holder)
                .await
                .map_err(|e| e.to_string()),
            ElectionAction::Renew { revision } => lease
                .update(LEASE_KEY, holder, revision)
                .await
                .map_err(|e| e.to_string()),
        };
        let change = match result {
            Ok(revision) => self.election.won(revision, sent),
            Err(e) => {
                if matches!(action, ElectionAction::Renew { .. }) {
                    tracing::warn!(error = %e, "lease renewal failed");
                }
                self.election.lost(Instant::now())
            }
        };
        if let Some(change) = change {
            self.role_changed(change);
        }
    }

    fn role_changed(&mut self, change: RoleChange) {
        self.changes += 1;
        match change {
            RoleChange::BecameLeader { fence } => {
                tracing::info!(fence, "elected monitor");
                self.leader_flag.store(true, Ordering::Relaxed);
                self.scheduler.collect_now(Instant::now());
            }
            RoleChange::SteppedDown { fence } => {
                tracing::warn!(fence, "no longer the monitor");
                self.leader_flag.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Starts a collection round: one request to every node, with a reply
    /// inbox. Returns the inbox, which the event loop reads from; the round
    /// itself ([`monitor::Round`]) is finished by [`tick`](Self::tick).
    async fn start_round(&mut self) -> Option<async_nats::Subscriber> {
        self.rounds += 1;
        let members = self.view.member_ids();
        let inbox = self.client.new_inbox();
        let request = encode(&VersionRequest {
            leader: self.me.id.clone(),
            round: self.rounds,
        });
        let sent = async {
            let replies = self.client.subscribe(inbox.clone()).await?;
            self.client
                .publish_with_reply(self.names.version_request(), inbox, request)
                .await?;
            self.client.flush().await?;
            Ok::<_, async_nats::Error>(replies)
        };
        match sent.await {
            Ok(replies) => {
                self.round = Some(monitor::Round::new(
                    self.rounds,
                    members,
                    Instant::now(),
                    self.settings.round_timeout,
                ));
                Some(replies)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a collection round");
                self.scheduler.finished(
                    &RoundOutcome::Incomplete { missing: members },
                    Instant::now(),
                );
                None
            }
        }
    }

    /// A reply to the round in progress.
    fn on_reply(&mut self, payload: &[u8]) {
        let reply = match protocol::decode::<VersionReply>(payload) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(error = %e, "dropping a malformed version reply");
                return;
            }
        };
        let change = self.view.heard(
            &reply.id,
            &reply.version,
            reply.incarnation,
            false,
            Instant::now(),
        );
        if change == super::membership::Change::Ignored {
            return;
        }
        if change.is_material() {
            self.changes += 1;
        }
        if let Some(round) = self.round.as_mut() {
            round.reply(&reply.id, &reply.version);
        }
    }

    /// Ends the round in progress: its outcome schedules the next one and,
    /// if the cluster settled, leads to the decision.
    async fn finish_round(&mut self) {
        let Some(round) = self.round.take() else {
            return;
        };
        let outcome = round.outcome();
        let collect_ms = round.started.elapsed().as_secs_f64() * 1000.0;
        self.scheduler.finished(&outcome, Instant::now());
        tracing::debug!(round = round.number, ?outcome, collect_ms, "round");
        self.last_round = Some(RoundStats {
            round: round.number,
            expected: round.expected(),
            replies: round.replies(),
            outcome: match outcome {
                RoundOutcome::Settled(_) => "settled",
                RoundOutcome::Mixed(_) => "mixed",
                RoundOutcome::Incomplete { .. } => "incomplete",
            },
            collect_ms,
        });
        self.changes += 1;
        match &outcome {
            RoundOutcome::Settled(version) => self.settle(version.clone()).await,
            RoundOutcome::Mixed(versions) => tracing::info!(?versions, "versions mixed; waiting"),
            RoundOutcome::Incomplete { missing } => {
                tracing::info!(?missing, "members did not reply; retrying")
            }
        }
    }

    async fn settle(&mut self, version: Version) {
        let Some(buckets) = self.buckets.as_ref().map(|b| Buckets {
            lease: b.lease.clone(),
            state: b.state.clone(),
        }) else {
            return;
        };
        let current = match buckets.state.entry(STATE_KEY).await {
            Ok(entry) => entry.filter(|e| e.operation == kv::Operation::Put),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the settled record");
                return;
            }
        };
        let last =
            current
                .as_ref()
                .and_then(|e| match protocol::decode::<SettledRecord>(&e.value) {
                    Ok(r) => Some((e.revision, r)),
                    Err(err) => {
                        tracing::warn!(error = %err, "ignoring an unreadable settled record");
                        None
                    }
                });
        let (kind, previous) = match monitor::decide(
            &version,
            last.as_ref().map(|(_, r)| &r.version),
            self.compat,
        ) {
            Decision::NoNews => {
                if let Some((revision, record)) = last {
                    self.apply_notice(SettledNotice { revision, record }, true);
                }
                return;
            }
            Decision::Baseline(_) => (RecordKind::Baseline, None),
            Decision::Announce { previous, .. } => (RecordKind::Announcement, Some(previous)),
        };
        // Fencing: renew the lease right before writing. If another node took
        // it, the renewal fails and this (deposed) monitor writes nothing.
        let now = Instant::now();
        let Some(fence) = self.election.fence(now) else {
            return;
        };
        let holder = encode(&LeaseHolder {
            id: self.me.id.clone(),
        });
        let fence = match buckets.lease.update(LEASE_KEY, holder, fence).await {
            Ok(revision) => {
                self.election.won(revision, now);
                revision
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the lease before announcing; not announcing");
                if let Some(change) = self.election.lost(Instant::now()) {
                    self.role_changed(change);
                }
                return;
            }
        };
        let record = SettledRecord {
            version: version.clone(),
            previous,
            kind,
            fence,
            leader: self.me.id.clone(),
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        // Compare-and-set on the record too: two monitors can never both write
        // after reading the same record.
        let written = match current.as_ref().map(|entry| entry.revision) {
            Some(revision) => buckets
                .state
                .update(STATE_KEY, encode(&record), revision)
                .await
                .map_err(|e| e.to_string()),
            None => buckets
                .state
                .create(STATE_KEY, encode(&record))
                .await
                .map_err(|e| e.to_string()),
        };
        let revision = match written {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "the settled record changed under us; re-reading next round");
                self.scheduler.collect_now(Instant::now());
                return;
            }
        };
        let notice = SettledNotice { revision, record };
        let payload = encode(&notice);
        if let Err(e) = self
            .client
            .publish(self.names.settled(), payload.clone())
            .await
        {
            tracing::warn!(error = %e, "cannot publish the settled notice (nodes will read KV)");
        }
        if kind == RecordKind::Announcement {
            tracing::info!(version = %version, previous = ?notice.record.previous, fence, revision, "announcing a new version");
            if let Err(e) = self.client.publish(self.names.announce(), payload).await {
                tracing::warn!(error = %e, "cannot publish the announcement");
            }
        } else {
            tracing::info!(version = %version, fence, revision, "recorded the cluster's baseline version");
        }
        let _ = self.client.flush().await;
        self.apply_notice(notice, true);
    }

    async fn refresh_record(&mut self) {
        let Some(state) = self.buckets.as_ref().map(|b| b.state.clone()) else {
            return;
        };
        match state.entry(STATE_KEY).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                match protocol::decode::<SettledRecord>(&entry.value) {
                    Ok(record) => self.apply_notice(
                        SettledNotice {
                            revision: entry.revision,
                            record,
                        },
                        true,
                    ),
                    Err(e) => tracing::warn!(error = %e, "ignoring an unreadable settled record"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read the settled record"),
        }
    }

    /// Notices may arrive out of order with KV reads: the larger revision wins,
    /// except that the KV itself (`authoritative`) is the source of truth.
    fn apply_notice(&mut self, notice: SettledNotice, authoritative: bool) {
        let newer = self
            .announced
            .as_ref()
            .is_none_or(|a| notice.revision > a.revision);
        if newer || (authoritative && self.announced.as_ref() != Some(&notice)) {
            self.announced = Some(notice);
            self.changes += 1;
        }
    }

    /// Publishes the view to the hub (browsers) and the status (`/api/cluster`)
    /// when something changed since the last time, or the status is a second old.
    fn publish_view(&mut self) {
        let now = Instant::now();
        if self.changes == self.published_changes
            && now.saturating_duration_since(self.published_at) < STATUS_REFRESH
        {
            return;
        }
        self.published_changes = self.changes;
        self.published_at = now;
        let (state, settled_version) = match (self.connected, self.view.agreement(now)) {
            (true, Agreement::Settled(v)) => (ClusterState::Settled, Some(v)),
            (true, Agreement::Mixed(_)) => (ClusterState::Mixed, None),
            _ => (ClusterState::Unknown, None),
        };
        let announced_version = self.announced.as_ref().map(|n| n.record.version.clone());
        let view = ClusterView {
            state,
            settled_version: settled_version.clone(),
            announced_version,
            announced_revision: self.announced.as_ref().map(|n| n.revision),
            compat: self.compat,
        };
        if self.hub.publish(view.clone()) {
            tracing::debug!(?view.state, settled = ?view.settled_version, announced = ?view.announced_version, "view published to browsers");
        }
        let leads = self.election.is_leader(now);
        let members = self
            .view
            .members()
            .map(|m| MemberStatus {
                id: m.id.clone(),
                version: m.version.clone(),
                last_seen_ms_ago: now.saturating_duration_since(m.last_seen).as_millis() as u64,
                leader: if m.id == self.me.id { leads } else { m.leader },
            })
            .collect::<Vec<_>>();
        let leader = if leads {
            Some(self.me.id.clone())
        } else {
            self.view.leader().map(|m| m.id.clone())
        };
        let status = ClusterStatus {
            cluster: self.names.cluster().to_owned(),
            node_id: self.me.id.clone(),
            connected: self.connected,
            leader,
            this_node_leads: leads,
            state,
            settled_version,
            announced: self.announced.clone(),
            members,
            last_round: self.last_round.clone(),
        };
        self.status_tx.send_replace(status);
    }

    /// Graceful exit: hand the lease back so another node takes over at once.
    async fn leave(&mut self) {
        if let (Some(revision), Some(buckets)) =
            (self.election.resign(Instant::now()), &self.buckets)
        {
            self.leader_flag.store(false, Ordering::Relaxed);
            match buckets
                .lease
                .delete_expect_revision(LEASE_KEY, Some(revision))
                .await
            {
                Ok(()) => tracing::info!("released the monitor lease"),
                Err(e) => tracing::warn!(error = %e, "could not release the lease; it will expire"),
            }
        }
    }
}

/// The next message of an optional subscription; never, without one.
async fn next_message(sub: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match sub {
        Some(sub) => sub.next().await,
        None => std::future::pending().await,
    }
}
