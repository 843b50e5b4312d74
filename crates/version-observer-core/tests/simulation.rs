//! The coordinator on simulated time: several nodes, an in-memory message bus
//! and an in-memory bucket with NATS' semantics (one stream for both keys,
//! sequences, expected last sequences, per-message TTLs), driven only
//! through the coordinator's public API, as a real driver would. KV calls
//! land on the server half a round trip after they are sent, whatever the
//! caller does meanwhile. Every scenario runs in microseconds of real time.

use bytes::Bytes;
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};
use version_observer_core::{
    auth::ClusterKey,
    cluster::{Action, BucketSpec, Coordinator, Entry, Identity, KvError, LeaseCall},
    protocol::{
        self, Names, Presence, PresenceKind, SettledNotice, SettledRecord, VersionRequest,
        LEASE_KEY, STATE_KEY,
    },
    ClusterState, ClusterView, Compat, Release, Severity, Timings, Version,
};

const LATENCY: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

/// A key's last message in the cluster's stream.
#[derive(Debug, Clone)]
struct Msg {
    seq: u64,
    /// `None`: a delete marker.
    value: Option<Bytes>,
    /// Its per-message time to live runs out here.
    expires: Option<Instant>,
}

/// The cluster's bucket as NATS keeps it: one stream, whose sequence every
/// write to any key advances; a message with a TTL disappears when it runs
/// out (and leaves no trace in the sequence); a publish can demand the
/// stream's last sequence and the key's last sequence.
#[derive(Debug, Default)]
struct Stream {
    last_seq: u64,
    keys: BTreeMap<&'static str, Msg>,
}

impl Stream {
    fn last(&self, key: &str, now: Instant) -> Option<&Msg> {
        self.keys
            .get(key)
            .filter(|m| m.expires.is_none_or(|t| now < t))
    }

    fn publish(
        &mut self,
        key: &'static str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
        expected_last: Option<u64>,
        expected_subject: Option<u64>,
        now: Instant,
    ) -> Result<u64, KvError> {
        if expected_last.is_some_and(|e| e != self.last_seq) {
            return Err(KvError::Conflict("wrong last sequence".into()));
        }
        let current = self.last(key, now).map_or(0, |m| m.seq);
        if expected_subject.is_some_and(|e| e != current) {
            return Err(KvError::Conflict("wrong last subject sequence".into()));
        }
        self.last_seq += 1;
        let msg = Msg {
            seq: self.last_seq,
            value,
            expires: ttl.map(|t| now + t),
        };
        self.keys.insert(key, msg);
        Ok(self.last_seq)
    }

    /// What the driver's create does: take the key if it has no live value.
    fn create(
        &mut self,
        key: &'static str,
        value: Bytes,
        ttl: Duration,
        now: Instant,
    ) -> Result<u64, KvError> {
        let expected = match self.last(key, now) {
            Some(m) if m.value.is_some() => return Err(KvError::Conflict("held".into())),
            Some(marker) => marker.seq,
            None => 0,
        };
        self.publish(key, Some(value), Some(ttl), None, Some(expected), now)
    }

    fn read(&self, key: &str, now: Instant) -> Option<Entry> {
        self.last(key, now).map(|m| Entry {
            revision: m.seq,
            value: m.value.clone(),
        })
    }
}

struct Node {
    coord: Coordinator,
    inbox: String,
    running: bool,
    /// Connected to the bus (a partitioned node is running but cut off).
    linked: bool,
    /// Frozen (SIGSTOP): it neither handles nor acts until resumed.
    paused: bool,
    /// What arrived while it was frozen.
    backlog: Vec<Delivery>,
    views: Vec<ClusterView>,
}

enum Delivery {
    Message {
        to: usize,
        subject: String,
        reply: Option<String>,
        payload: Bytes,
        mac: Option<String>,
    },
    /// A KV call reaching the server, which applies it on arrival (even if
    /// the caller has been paused or cut off since it was sent).
    KvCall(usize, Action),
    Buckets(usize, Result<(), KvError>),
    Lease(usize, Result<u64, KvError>),
    Record(usize, Result<Option<Entry>, KvError>),
    Written(usize, Result<u64, KvError>),
}

struct Sim {
    epoch: Instant,
    now: Instant,
    timings: Timings,
    names: Names,
    nodes: Vec<Node>,
    queue: Vec<(Instant, u64, Delivery)>,
    order: u64,
    stream: Stream,
    /// Every bucket a node asked to open.
    opened: Vec<BucketSpec>,
    /// Record writes are held on their way while this is set.
    hold_writes: bool,
    held: Vec<(usize, u64, u64, Bytes)>,
    /// Every publish: (time, subject, payload).
    log: Vec<(Instant, String, Bytes)>,
    /// Extra delay of KV calls (a slow JetStream), for every node...
    kv_delay: Duration,
    /// ...but those named here.
    kv_delay_of: Vec<(usize, Duration)>,
    /// The cluster key nodes started from now on get.
    key: Option<ClusterKey>,
    /// Rewrites the `release` of every version reply from this node id
    /// (a forged or tampered reply) into this JSON.
    tamper_release: Option<(String, serde_json::Value)>,
}

impl Sim {
    fn new() -> Self {
        Self::with_timings(Timings::DEFAULT)
    }

    fn with_timings(timings: Timings) -> Self {
        let now = Instant::now();
        Self {
            epoch: now,
            now,
            timings,
            names: Names::new("c"),
            nodes: Vec::new(),
            queue: Vec::new(),
            order: 0,
            stream: Stream::default(),
            opened: Vec::new(),
            hold_writes: false,
            held: Vec::new(),
            log: Vec::new(),
            kv_delay: Duration::ZERO,
            kv_delay_of: Vec::new(),
            key: None,
            tamper_release: None,
        }
    }

    /// Starts a node; returns its index.
    fn start(&mut self, id: &str, version: &str) -> usize {
        self.start_with(id, version, Compat::Major)
    }

    fn start_with(&mut self, id: &str, version: &str, compat: Compat) -> usize {
        self.start_full(id, version, compat, None)
    }

    /// Starts a node with release metadata.
    fn start_release(&mut self, id: &str, version: &str, release: Release) -> usize {
        self.start_full(id, version, Compat::Major, Some(release))
    }

    fn start_full(
        &mut self,
        id: &str,
        version: &str,
        compat: Compat,
        release: Option<Release>,
    ) -> usize {
        let index = self.nodes.len();
        let inbox = format!("_INBOX.n{index}");
        let me = Identity {
            id: id.into(),
            version: v(version),
            incarnation: 1_000 + index as u64,
        };
        let mut coord = Coordinator::new(
            me,
            self.names.clone(),
            inbox.clone(),
            compat,
            self.timings,
            self.now,
        );
        if let Some(key) = &self.key {
            coord = coord.with_key(key.clone());
        }
        if let Some(release) = release {
            coord = coord.with_release(release);
        }
        coord.handle_connected(self.now);
        self.nodes.push(Node {
            coord,
            inbox,
            running: true,
            linked: true,
            paused: false,
            backlog: Vec::new(),
            views: Vec::new(),
        });
        self.drain(index);
        index
    }

    /// SIGTERM: leave gracefully (lease back, nodedown), then stop.
    fn stop(&mut self, node: usize) {
        let now = self.now;
        self.nodes[node].coord.begin_leave(now);
        self.drain(node);
        let deadline = self.now + ms(2_000);
        while !self.nodes[node].coord.has_left() && self.now < deadline {
            self.advance_to_next(deadline);
        }
        assert!(self.nodes[node].coord.has_left(), "node {node} left");
        self.nodes[node].running = false;
    }

    /// SIGTERM with retiring on: the node keeps serving its version's
    /// pages until none has needed it for `grace`, or `retire_for` is up.
    fn retire(&mut self, node: usize, retire_for: Duration, grace: Duration) {
        let now = self.now;
        self.nodes[node].coord.begin_retire(now, retire_for, grace);
        self.drain(node);
    }

    /// What `node`'s next heartbeats say of its open tabs.
    fn tabs(&mut self, node: usize, tabs: &[(&str, u64)]) {
        let tabs = tabs.iter().map(|(v, n)| ((*v).to_owned(), *n)).collect();
        self.nodes[node].coord.set_tabs(tabs);
    }

    /// kill -9.
    fn kill(&mut self, node: usize) {
        self.nodes[node].running = false;
    }

    fn partition(&mut self, node: usize) {
        self.nodes[node].linked = false;
        let now = self.now;
        self.nodes[node].coord.handle_disconnected(now);
        self.drain(node);
    }

    fn heal(&mut self, node: usize) {
        self.nodes[node].linked = true;
        let now = self.now;
        self.nodes[node].coord.handle_connected(now);
        self.drain(node);
    }

    fn send(&mut self, at: Instant, delivery: Delivery) {
        self.order += 1;
        self.queue.push((at, self.order, delivery));
    }

    /// Publishes as an outsider (a forger, a test), without a MAC.
    fn inject(&mut self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        self.inject_signed(subject, reply, payload, None);
    }

    /// Publishes as an outsider, with this MAC.
    fn inject_signed(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        payload: &[u8],
        mac: Option<String>,
    ) {
        let payload = Bytes::copy_from_slice(payload);
        self.route(subject.into(), reply.map(Into::into), payload, mac);
    }

    fn route(
        &mut self,
        subject: String,
        reply: Option<String>,
        payload: Bytes,
        mac: Option<String>,
    ) {
        let payload = match &self.tamper_release {
            Some((id, release)) if subject.starts_with("_INBOX.") => {
                let mut reply: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                if reply["id"] == id.as_str() {
                    reply["release"] = release.clone();
                    Bytes::from(serde_json::to_vec(&reply).unwrap())
                } else {
                    payload
                }
            }
            _ => payload,
        };
        self.log.push((self.now, subject.clone(), payload.clone()));
        let cluster = "vo.c.";
        for to in 0..self.nodes.len() {
            let n = &self.nodes[to];
            let wants = subject.starts_with(cluster)
                || subject
                    .strip_prefix(&n.inbox)
                    .is_some_and(|rest| rest.starts_with('.'));
            if wants {
                let at = self.now + LATENCY;
                self.send(
                    at,
                    Delivery::Message {
                        to,
                        subject: subject.clone(),
                        reply: reply.clone(),
                        payload: payload.clone(),
                        mac: mac.clone(),
                    },
                );
            }
        }
    }

    /// Carries out every action a node has queued.
    fn drain(&mut self, node: usize) {
        let wall = 1_700_000_000_000 + (self.now - self.epoch).as_millis() as u64;
        self.nodes[node].coord.set_unix_time_ms(wall);
        while let Some(action) = self.nodes[node].coord.poll_action() {
            let n = &self.nodes[node];
            if !n.running || n.paused {
                continue;
            }
            let linked = n.linked;
            let now = self.now;
            match action {
                Action::View(view) => self.nodes[node].views.push(view),
                _ if !linked => {} // cut off: nothing leaves the node
                Action::Publish {
                    subject,
                    reply,
                    payload,
                    mac,
                } => self.route(subject, reply, payload, mac),
                kv_call => {
                    // Half the round trip there, half back.
                    let half = (LATENCY + self.kv_delay(node)) / 2;
                    self.send(now + half, Delivery::KvCall(node, kv_call));
                }
            }
        }
    }

    fn kv_delay(&self, node: usize) -> Duration {
        self.kv_delay_of
            .iter()
            .find(|(n, _)| *n == node)
            .map_or(self.kv_delay, |(_, d)| *d)
    }

    /// The KV server applies a call on arrival and answers half a round trip later.
    fn apply_kv(&mut self, node: usize, call: Action) {
        let now = self.now;
        let at = now + (LATENCY + self.kv_delay(node)) / 2;
        let answer = match call {
            Action::OpenBucket(spec) => {
                self.opened.push(spec);
                Delivery::Buckets(node, Ok(()))
            }
            Action::Lease(call) => Delivery::Lease(
                node,
                match call {
                    LeaseCall::Create { value, ttl } => {
                        self.stream.create(LEASE_KEY, value, ttl, now)
                    }
                    LeaseCall::Update {
                        revision,
                        value,
                        ttl,
                    } => self.stream.publish(
                        LEASE_KEY,
                        Some(value),
                        Some(ttl),
                        None,
                        Some(revision),
                        now,
                    ),
                    LeaseCall::Delete { revision, ttl } => {
                        self.stream
                            .publish(LEASE_KEY, None, Some(ttl), None, Some(revision), now)
                    }
                },
            ),
            Action::ReadRecord => Delivery::Record(node, Ok(self.stream.read(STATE_KEY, now))),
            Action::WriteRecord {
                fence,
                expected_revision,
                value,
            } => {
                if self.hold_writes {
                    // Held back on its way to the server (a pause, a
                    // stalled socket, a reconnect queue): it lands when
                    // the test lets it go.
                    self.held.push((node, fence, expected_revision, value));
                    return;
                }
                let result = self.stream.publish(
                    STATE_KEY,
                    Some(value),
                    None,
                    Some(fence),
                    Some(expected_revision),
                    now,
                );
                Delivery::Written(node, result)
            }
            Action::Publish { .. } | Action::View(_) => unreachable!("not a KV call"),
        };
        self.send(at, answer);
    }

    /// SIGCONT: the node handles what arrived while it was frozen.
    fn resume(&mut self, node: usize) {
        self.nodes[node].paused = false;
        let now = self.now;
        for delivery in std::mem::take(&mut self.nodes[node].backlog) {
            self.send(now, delivery);
        }
    }

    /// Lets the held record writes reach the server now; returns what the
    /// server made of each.
    fn release_held_writes(&mut self) -> Vec<Result<u64, KvError>> {
        self.hold_writes = false;
        let now = self.now;
        let mut results = Vec::new();
        for (node, fence, expected, value) in std::mem::take(&mut self.held) {
            let result = self.stream.publish(
                STATE_KEY,
                Some(value),
                None,
                Some(fence),
                Some(expected),
                now,
            );
            results.push(result.clone());
            self.send(now + LATENCY, Delivery::Written(node, result));
        }
        results
    }

    fn deliver(&mut self, delivery: Delivery) {
        let now = self.now;
        if let Delivery::KvCall(node, call) = delivery {
            self.apply_kv(node, call);
            return;
        }
        let node = match &delivery {
            Delivery::KvCall(..) => unreachable!(),
            Delivery::Message { to, .. } => *to,
            Delivery::Buckets(n, _)
            | Delivery::Lease(n, _)
            | Delivery::Record(n, _)
            | Delivery::Written(n, _) => *n,
        };
        let n = &mut self.nodes[node];
        if n.paused && n.running {
            // A frozen process reads what was sent to it once it resumes.
            n.backlog.push(delivery);
            return;
        }
        if !n.running || !n.linked {
            return;
        }
        match delivery {
            Delivery::Message {
                subject,
                reply,
                payload,
                mac,
                ..
            } => n
                .coord
                .handle_message(&subject, reply.as_deref(), &payload, mac.as_deref(), now),
            Delivery::Buckets(_, r) => n.coord.handle_buckets(r, now),
            Delivery::Lease(_, r) => n.coord.handle_lease(r, now),
            Delivery::Record(_, r) => n.coord.handle_record(r, now),
            Delivery::Written(_, r) => n.coord.handle_record_written(r, now),
            Delivery::KvCall(..) => unreachable!(),
        }
        self.drain(node);
    }

    /// Moves to the next event (a delivery or a node's timeout), not past `limit`.
    fn advance_to_next(&mut self, limit: Instant) {
        let now = self.now;
        let next_delivery = self.queue.iter().map(|(t, o, _)| (*t, *o)).min();
        let next_timeout = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.running && !n.paused)
            .filter_map(|(i, n)| n.coord.poll_timeout(now).map(|t| (t.max(now), i)))
            .min();
        let candidates = [next_delivery.map(|(t, _)| t), next_timeout.map(|(t, _)| t)];
        let Some(next) = candidates.into_iter().flatten().min() else {
            self.now = limit;
            return;
        };
        if next > limit {
            self.now = limit;
            return;
        }
        self.now = next;
        if next_delivery.is_some_and(|(t, _)| t == next) {
            let (_, order) = next_delivery.unwrap();
            let index = self.queue.iter().position(|(_, o, _)| *o == order).unwrap();
            let (_, _, delivery) = self.queue.swap_remove(index);
            self.deliver(delivery);
        } else if let Some((_, node)) = next_timeout {
            let now = self.now;
            self.nodes[node].coord.handle_timeout(now);
            self.drain(node);
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        let mut steps = 0u64;
        while self.now < until {
            self.advance_to_next(until);
            steps += 1;
            assert!(steps < 2_000_000, "the simulation spins");
        }
    }

    /// Runs until `check` holds, or panics after `within`.
    fn run_until(
        &mut self,
        what: &str,
        within: Duration,
        check: impl Fn(&Sim) -> bool,
    ) -> Duration {
        let start = self.now;
        let until = start + within;
        let mut steps = 0u64;
        while !check(self) {
            assert!(self.now < until, "not within {within:?}: {what}");
            self.advance_to_next(until);
            steps += 1;
            assert!(steps < 2_000_000, "the simulation spins: {what}");
        }
        self.now - start
    }

    /// Every record published on the announce subject, in order.
    fn announcements(&self) -> Vec<SettledRecord> {
        let subject = self.names.announce();
        self.log
            .iter()
            .filter(|(_, s, _)| *s == subject)
            .filter_map(|(_, _, p)| protocol::decode::<SettledNotice>(p).ok())
            .map(|n| n.record)
            .collect()
    }

    fn record(&self) -> Option<SettledRecord> {
        self.stream
            .read(STATE_KEY, self.now)
            .and_then(|e| e.value)
            .map(|v| protocol::decode(&v).unwrap())
    }

    fn view(&self, node: usize) -> ClusterView {
        self.nodes[node].coord.view(self.now)
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].running && self.nodes[*i].coord.is_leader(self.now))
            .collect()
    }

    fn published_on(&self, subject: &str) -> usize {
        self.log.iter().filter(|(_, s, _)| s == subject).count()
    }
}

/// A cluster of `n` nodes on `version`, settled with its baseline recorded.
fn settled_cluster(n: usize, version: &str) -> Sim {
    let mut sim = Sim::new();
    for i in 0..n {
        sim.start(&format!("n{}", i + 1), version);
    }
    let want = v(version);
    sim.run_until("the baseline", ms(15_000), |s| {
        s.record().is_some_and(|r| r.version == want)
            && (0..n).all(|i| s.view(i).announced_version.as_ref() == Some(&want))
    });
    sim
}

#[test]
fn a_new_cluster_records_its_baseline_quietly() {
    let sim = settled_cluster(3, "0.1.0");
    let record = sim.record().unwrap();
    assert_eq!(record.kind, protocol::RecordKind::Baseline);
    assert!(
        record.at_ms > 1_700_000_000_000,
        "stamped by the wall clock"
    );
    assert!(sim.announcements().is_empty());
    assert_eq!(sim.leaders().len(), 1);
    for i in 0..3 {
        assert_eq!(sim.view(i).state, ClusterState::Settled);
    }
}

#[test]
fn a_rolling_deploy_is_announced_once_after_the_last_old_node_leaves() {
    let mut sim = settled_cluster(3, "0.1.0");
    let mut live = vec![0, 1, 2];
    for i in 0..3 {
        let old = live.remove(0);
        sim.stop(old);
        sim.run_for(ms(500));
        let new = sim.start(&format!("n{}", i + 1), "1.0.0");
        live.push(new);
        if i < 2 {
            // Mixed: nothing may be announced, whatever the timing.
            sim.run_for(ms(8_000));
            assert!(sim.announcements().is_empty(), "announced while mixed");
            assert_eq!(sim.view(new).state, ClusterState::Mixed);
        }
    }
    sim.run_until("the announcement", ms(10_000), |s| {
        !s.announcements().is_empty()
    });
    sim.run_for(ms(20_000));
    let announced = sim.announcements();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].version, v("1.0.0"));
    assert_eq!(announced[0].previous, Some(v("0.1.0")));
    for node in live {
        assert_eq!(sim.view(node).announced_version, Some(v("1.0.0")));
    }
    // The counters behind `/metrics`, over every process that ran.
    let counters: Vec<_> = sim.nodes.iter().map(|n| n.coord.counters()).collect();
    let sum = |f: fn(&version_observer_core::status::Counters) -> u64| -> u64 {
        counters.iter().map(f).sum()
    };
    assert_eq!(sum(|c| c.announcements_written), 1, "{counters:#?}");
    assert_eq!(sum(|c| c.baselines_written), 1, "{counters:#?}");
    assert!(
        sum(|c| c.lease_acquired) >= 2,
        "the lease moved: {counters:#?}"
    );
    assert!(sum(|c| c.rounds_mixed) >= 1, "{counters:#?}");
    assert!(sum(|c| c.rounds_settled) >= 2, "{counters:#?}");
    for c in &counters {
        assert_eq!(
            c.round_durations.count,
            c.rounds_settled + c.rounds_mixed + c.rounds_incomplete
        );
        assert!(c.nats_connects >= 1);
    }
}

#[test]
fn the_monitor_leaving_last_is_announced_within_a_few_round_trips() {
    // The last old node is the monitor, as in a real rolling deploy: its
    // SIGTERM hands the lease over, and the next monitor announces at once,
    // without waiting for any timer.
    let mut sim = settled_cluster(1, "0.1.0");
    let old = 0;
    sim.start("n2", "1.0.0");
    sim.start("n3", "1.0.0");
    sim.run_for(ms(5_000));
    assert_eq!(sim.leaders(), vec![old]);
    assert!(sim.announcements().is_empty());
    sim.stop(old);
    let took = sim.run_until("the announcement", ms(5_000), |s| {
        !s.announcements().is_empty()
    });
    assert!(took < ms(30), "announced {took:?} after the monitor left");
}

#[test]
fn two_live_processes_with_one_id_both_count() {
    // A copied deployment template: a new node started with the id of an
    // old one that is still running. The deploy must not settle early.
    let mut sim = settled_cluster(2, "0.1.0");
    sim.start("n1", "1.0.0"); // n1 again, while the old n1 still runs
    sim.stop(1); // n2 leaves
    sim.start("n2", "1.0.0");
    sim.run_for(ms(15_000));
    assert!(
        sim.announcements().is_empty(),
        "announced with an old n1 alive"
    );
    let status = sim.nodes[3].coord.status(sim.now);
    let n1s: Vec<_> = status.members.iter().filter(|m| m.id == "n1").collect();
    assert_eq!(n1s.len(), 2, "{status:?}");
    assert_eq!(sim.view(3).state, ClusterState::Mixed);
    // The old n1 stops: now everything runs 1.0.0.
    sim.stop(0);
    sim.run_until("the announcement", ms(10_000), |s| {
        !s.announcements().is_empty()
    });
    assert_eq!(sim.announcements().len(), 1);
}

/// A cluster of `n` nodes sharing a key, settled on `version`.
fn keyed_cluster(n: usize, version: &str, key: &ClusterKey) -> Sim {
    let mut sim = Sim::new();
    sim.key = Some(key.clone());
    for i in 0..n {
        sim.start(&format!("n{}", i + 1), version);
    }
    let want = v(version);
    sim.run_until("the baseline", ms(15_000), |s| {
        (0..n).all(|i| s.view(i).announced_version.as_ref() == Some(&want))
    });
    sim
}

#[test]
fn with_a_cluster_key_only_signed_messages_count() {
    let key = ClusterKey::new(b"a-shared-secret-of-the-cluster").unwrap();
    let mut sim = keyed_cluster(2, "1.0.0", &key);
    let forged = Presence {
        id: "intruder".into(),
        version: v("9.0.0"),
        incarnation: 1,
        leader: false,
        tabs: Default::default(),
        retiring: false,
    };
    let up = sim.names.presence(PresenceKind::Up);
    let payload = protocol::encode(&forged);
    // Unsigned, signed with another key, and signed for another subject.
    let other = ClusterKey::new(b"not-the-cluster-secret-at-all").unwrap();
    sim.inject(&up, None, &payload);
    sim.inject_signed(&up, None, &payload, Some(other.sign(&up, &payload)));
    let elsewhere = key.sign("vo.c.node.heartbeat", &payload);
    sim.inject_signed(&up, None, &payload, Some(elsewhere));
    // A forged request asking for replies.
    let request = protocol::encode(&VersionRequest {
        leader: "x".into(),
        round: 1,
    });
    let before = sim.log.len();
    sim.inject(
        &sim.names.version_request(),
        Some("_INBOX.forger.1"),
        &request,
    );
    sim.run_for(ms(100));
    for i in 0..2 {
        assert_eq!(sim.nodes[i].coord.dropped().unauthenticated, 4, "node {i}");
        assert_eq!(sim.nodes[i].coord.status(sim.now).members.len(), 2);
    }
    assert!(
        sim.log[before..]
            .iter()
            .all(|(_, s, _)| s != "_INBOX.forger.1"),
        "nobody answers an unsigned request"
    );
    // A properly signed newcomer is a member.
    sim.inject_signed(&up, None, &payload, Some(key.sign(&up, &payload)));
    sim.run_for(ms(50));
    assert_eq!(sim.nodes[0].coord.status(sim.now).members.len(), 3);
}

#[test]
fn with_a_cluster_key_a_forged_record_never_reaches_browsers_and_is_replaced() {
    let key = ClusterKey::new(b"a-shared-secret-of-the-cluster").unwrap();
    let mut sim = keyed_cluster(2, "1.0.0", &key);
    // Someone with KV write access but no key writes an announcement.
    let forged = SettledRecord {
        version: v("9.0.0"),
        previous: Some(v("1.0.0")),
        kind: protocol::RecordKind::Announcement,
        fence: 0,
        leader: "forger".into(),
        at_ms: 0,
        release: None,
    };
    let now = sim.now;
    let value = protocol::encode(&forged);
    let revision = sim
        .stream
        .publish(STATE_KEY, Some(value), None, None, None, now)
        .unwrap();
    let notice = protocol::encode(&SettledNotice {
        revision,
        record: forged,
    });
    let settled = sim.names.settled();
    let mac = key.sign(&settled, &notice);
    sim.inject_signed(&settled, None, &notice, Some(mac));
    sim.run_for(ms(15_000));
    for i in 0..2 {
        let views = &sim.nodes[i].views;
        assert!(views
            .iter()
            .all(|view| view.announced_version != Some(v("9.0.0"))));
        assert!(sim.nodes[i].coord.dropped().unauthenticated >= 1);
    }
    // The monitor wrote an authentic record over it.
    let sealed = sim.stream.read(STATE_KEY, sim.now).unwrap().value.unwrap();
    let opened = key.open("settled", &sealed).expect("sealed with the key");
    let record: SettledRecord = protocol::decode(opened).unwrap();
    assert_eq!(record.version, v("1.0.0"));
    assert_eq!(record.kind, protocol::RecordKind::Baseline);
}

#[test]
fn a_deposed_monitors_delayed_write_never_lands() {
    // The old monitor renews its lease (the fence) and sends its record
    // write, which is held up on its way; the monitor itself freezes past its
    // lease. Another node takes the lease. Only then does the old write reach
    // the server: it must fail, though the record itself has not changed yet
    // (a compare-and-set on the record alone would let it land).
    let mut sim = settled_cluster(1, "0.1.0");
    sim.start("n2", "1.0.0");
    sim.start("n3", "1.0.0");
    sim.run_for(ms(5_000));
    sim.hold_writes = true;
    sim.stop(0);
    sim.run_until("a held announcement write", ms(5_000), |s| {
        !s.held.is_empty()
    });
    let writer = sim.held[0].0;
    sim.hold_writes = false; // later writes go through; the first stays held
    sim.nodes[writer].paused = true;
    sim.run_until("another monitor", ms(15_000), |s| {
        s.leaders().iter().any(|l| *l != writer)
    });
    let record_before = sim.stream.read(STATE_KEY, sim.now).unwrap().revision;
    let results = sim.release_held_writes();
    assert!(
        matches!(results[..], [Err(KvError::Conflict(_))]),
        "the deposed monitor's write landed: {results:?}"
    );
    assert_eq!(
        sim.stream.read(STATE_KEY, sim.now).unwrap().revision,
        record_before
    );
    sim.resume(writer);
    sim.run_until("the announcement", ms(10_000), |s| {
        !s.announcements().is_empty()
    });
    sim.run_for(ms(10_000));
    let announced = sim.announcements();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_ne!(announced[0].leader, format!("n{writer}"));
    assert_eq!(sim.record().unwrap().version, v("1.0.0"));
}

#[test]
fn a_compatible_deploy_is_not_announced() {
    let mut sim = settled_cluster(2, "1.0.0");
    sim.stop(0);
    sim.start("n1", "1.1.0");
    sim.stop(1);
    let n2 = sim.start("n2", "1.1.0");
    sim.run_until("settled on 1.1.0", ms(10_000), |s| {
        s.view(n2).settled_version == Some(v("1.1.0"))
    });
    sim.run_for(ms(15_000));
    assert!(sim.announcements().is_empty());
    assert_eq!(sim.record().unwrap().version, v("1.0.0"));
}

#[test]
fn a_crashed_old_node_is_noticed_after_the_node_timeout() {
    let mut sim = settled_cluster(2, "0.1.0");
    let leader = sim.leaders()[0];
    let other = 1 - leader;
    let new = sim.start("n3", "1.0.0");
    sim.run_for(ms(4_000));
    sim.stop(leader);
    sim.run_for(ms(4_000));
    assert!(sim.announcements().is_empty());
    let killed_at = sim.now;
    sim.kill(other);
    sim.run_until("the announcement", ms(15_000), |s| {
        !s.announcements().is_empty()
    });
    let took = sim.now - killed_at;
    let timeout = sim.timings.node_timeout;
    assert!(
        took >= timeout,
        "announced {took:?} after the crash, before the timeout"
    );
    assert!(took < timeout + sim.timings.lease + ms(2_000), "{took:?}");
    assert_eq!(sim.view(new).announced_version, Some(v("1.0.0")));
}

#[test]
fn a_crashed_monitor_is_replaced_within_the_lease() {
    let mut sim = settled_cluster(3, "1.0.0");
    let leader = sim.leaders()[0];
    sim.kill(leader);
    let took = sim.run_until("a new monitor", ms(15_000), |s| {
        s.leaders().iter().any(|l| *l != leader)
    });
    let lease = sim.timings.lease;
    assert!(took <= lease + ms(600), "took {took:?}");
    sim.run_for(ms(10_000));
    assert_eq!(sim.leaders().len(), 1);
}

#[test]
fn a_monitor_that_stops_hands_the_lease_over_at_once() {
    let mut sim = settled_cluster(3, "1.0.0");
    let leader = sim.leaders()[0];
    let writes = sim.stream.last_seq;
    sim.stop(leader);
    let took = sim.run_until("a new monitor", ms(5_000), |s| !s.leaders().is_empty());
    assert!(took < ms(100), "took {took:?}");
    // The release came before the nodedown.
    let down = sim.names.presence(PresenceKind::Down);
    assert_eq!(sim.published_on(&down), 1);
    assert!(sim.stream.last_seq > writes);
}

#[test]
fn a_handover_is_immediate_even_when_an_acquire_is_in_flight() {
    // The followers' KV calls are slow and the monitor's are fast, so a
    // follower's periodic attempt, refused before the release, can still be
    // on its way back when the monitor's nodedown arrives.
    for offset in (0..700).step_by(10) {
        // One follower: nobody else can step in.
        let mut sim = settled_cluster(2, "1.0.0");
        let leader = sim.leaders()[0];
        sim.kv_delay = ms(150);
        sim.kv_delay_of = vec![(leader, Duration::ZERO)];
        sim.run_for(ms(offset));
        sim.stop(leader);
        let took = sim.run_until("a new monitor", ms(5_000), |s| !s.leaders().is_empty());
        assert!(
            took <= ms(400),
            "offset {offset} ms: the handover took {took:?}, an attempt interval more than KV calls"
        );
    }
}

#[test]
fn exactly_one_monitor_at_a_time() {
    let mut sim = settled_cluster(5, "1.0.0");
    for _ in 0..50 {
        sim.run_for(ms(200));
        assert!(sim.leaders().len() <= 1, "{:?}", sim.leaders());
    }
}

#[test]
fn a_forged_request_cannot_make_nodes_publish_on_cluster_subjects() {
    let mut sim = settled_cluster(3, "1.0.0");
    let down = sim.names.presence(PresenceKind::Down);
    let request = protocol::encode(&VersionRequest {
        leader: "forger".into(),
        round: 1,
    });
    for target in [
        down.as_str(),
        "vo.c.announce",
        "$KV.vo_c_state.settled",
        "$JS.API.STREAM.DELETE.KV_vo_c_state",
    ] {
        let before = sim.log.len();
        sim.inject(&sim.names.version_request(), Some(target), &request);
        sim.run_for(ms(100));
        let replies = sim.log[before..]
            .iter()
            .filter(|(_, s, _)| s == target)
            .count();
        assert_eq!(replies, 0, "a node replied on {target}");
    }
    assert!(sim.nodes[0].coord.dropped().bad_reply_subject >= 4);
    sim.run_for(ms(10_000));
    for i in 0..3 {
        assert_eq!(sim.view(i).state, ClusterState::Settled);
        assert_eq!(sim.nodes[i].coord.status(sim.now).members.len(), 3);
    }
}

#[test]
fn a_forged_notice_never_reaches_browsers() {
    let mut sim = settled_cluster(2, "1.0.0");
    let forged = SettledNotice {
        revision: 1_000_000,
        record: SettledRecord {
            version: v("9.0.0"),
            previous: Some(v("1.0.0")),
            kind: protocol::RecordKind::Announcement,
            fence: 999,
            leader: "forger".into(),
            at_ms: 0,
            release: None,
        },
    };
    let payload = protocol::encode(&forged);
    sim.inject(&sim.names.announce(), None, &payload);
    sim.inject(&sim.names.settled(), None, &payload);
    sim.run_for(ms(10_000));
    for i in 0..2 {
        assert_eq!(sim.view(i).announced_version, Some(v("1.0.0")));
        assert!(sim.nodes[i]
            .views
            .iter()
            .all(|view| view.announced_version != Some(v("9.0.0"))));
    }
}

#[test]
fn malformed_messages_are_counted_and_dropped() {
    let mut sim = settled_cluster(2, "1.0.0");
    for subject in [
        "vo.c.node.heartbeat",
        "vo.c.node.down",
        "vo.c.version.request",
        "vo.c.settled",
    ] {
        sim.inject(subject, Some("_INBOX.x"), b"{not json");
    }
    sim.inject("vo.c.node.up", None, &vec![b'x'; protocol::MAX_PAYLOAD + 1]);
    sim.run_for(ms(100));
    for i in 0..2 {
        assert_eq!(sim.nodes[i].coord.dropped().malformed, 5);
        assert_eq!(sim.nodes[i].coord.status(sim.now).dropped_messages, 5);
    }
    sim.run_for(ms(5_000));
    assert_eq!(sim.view(0).state, ClusterState::Settled);
}

#[test]
fn a_partitioned_node_says_unknown_and_catches_up_when_it_returns() {
    let mut sim = settled_cluster(3, "0.1.0");
    let cut = (0..3).find(|i| !sim.leaders().contains(i)).unwrap();
    sim.partition(cut);
    assert_eq!(sim.view(cut).state, ClusterState::Unknown);
    assert_eq!(sim.view(cut).announced_version, Some(v("0.1.0")));
    // Meanwhile the others move on to 1.0.0.
    let others: Vec<usize> = (0..3).filter(|i| *i != cut).collect();
    for old in others {
        sim.stop(old);
        sim.start(&format!("m{old}"), "1.0.0");
    }
    // The cut-off node still runs 0.1.0 but is not heard: after its
    // timeout the others settle on 1.0.0 and announce it.
    sim.run_until("the announcement", ms(20_000), |s| {
        !s.announcements().is_empty()
    });
    sim.heal(cut);
    sim.run_until("the returning node learns it", ms(1_000), |s| {
        s.view(cut).announced_version == Some(v("1.0.0"))
    });
}

#[test]
fn a_member_that_joins_while_the_record_is_read_is_waited_for() {
    let mut sim = settled_cluster(2, "0.1.0");
    sim.stop(0);
    sim.stop(1);
    // Two new nodes; KV answers are slow, so the decision's read takes long.
    sim.kv_delay = ms(400);
    sim.start("a", "1.0.0");
    sim.start("b", "1.0.0");
    // Step until the monitor has finished a settled round and is reading.
    sim.run_until("a settled round", ms(15_000), |s| {
        s.nodes.iter().any(|n| {
            n.running
                && n.coord
                    .status(s.now)
                    .last_round
                    .is_some_and(|r| r.outcome == "settled")
        })
    });
    // An old node joins right now, before the read returns.
    let old = Presence {
        id: "late".into(),
        version: v("0.1.0"),
        incarnation: 1,
        leader: false,
        tabs: Default::default(),
        retiring: false,
    };
    let up = sim.names.presence(PresenceKind::Up);
    let joined = sim.now;
    sim.inject(&up, None, &protocol::encode(&old));
    // It never speaks again, so it expires after the node timeout; only
    // then may 1.0.0 be announced.
    sim.run_until("the announcement", ms(20_000), |s| {
        !s.announcements().is_empty()
    });
    let after = sim.now - joined;
    assert!(
        after >= sim.timings.node_timeout,
        "announced {after:?} after an old node joined, while it was in the view"
    );
}

#[test]
fn presence_is_handled_while_kv_is_slow() {
    let mut sim = settled_cluster(3, "1.0.0");
    sim.kv_delay = ms(1_200);
    sim.run_for(ms(20_000));
    for i in 0..3 {
        assert_eq!(sim.view(i).state, ClusterState::Settled, "node {i}");
        assert_eq!(sim.nodes[i].coord.status(sim.now).members.len(), 3);
    }
}

#[test]
fn a_stopping_node_is_not_counted_after_its_nodedown() {
    let mut sim = settled_cluster(2, "0.1.0");
    sim.start("n3", "1.0.0");
    sim.run_for(ms(4_000));
    let leader = sim.leaders()[0];
    let old_follower = (0..2).find(|i| *i != leader).unwrap();
    let now = sim.now;
    sim.nodes[old_follower].coord.begin_leave(now);
    sim.drain(old_follower);
    // It keeps running (draining its connections) but must not answer rounds.
    sim.run_for(ms(200));
    let request = protocol::encode(&VersionRequest {
        leader: "x".into(),
        round: 1,
    });
    let before = sim.log.len();
    sim.inject(
        &sim.names.version_request(),
        Some("_INBOX.probe.1"),
        &request,
    );
    sim.run_for(ms(50));
    let answers: Vec<_> = sim.log[before..]
        .iter()
        .filter(|(_, s, _)| s == "_INBOX.probe.1")
        .filter_map(|(_, _, p)| protocol::decode::<protocol::VersionReply>(p).ok())
        .map(|r| r.id)
        .collect();
    assert!(
        !answers.contains(&format!("n{}", old_follower + 1)),
        "{answers:?}"
    );
}

#[test]
fn open_tabs_travel_with_heartbeats_and_records_are_remembered() {
    let mut sim = settled_cluster(2, "1.0.0");
    sim.nodes[0]
        .coord
        .set_tabs([("1.0.0".to_owned(), 2), ("0.9.0".to_owned(), 1)].into());
    sim.run_until("n1's tabs at n2", ms(5_000), |s| {
        s.nodes[1].coord.status(s.now).members.iter().any(|m| {
            m.id == "n1" && m.tabs.get("1.0.0") == Some(&2) && m.tabs.get("0.9.0") == Some(&1)
        })
    });
    // A major deploy: the baseline, then the announcement, newest first.
    sim.stop(0);
    sim.stop(1);
    sim.run_for(ms(500));
    let new = sim.start("n3", "2.0.0");
    sim.run_until("the announcement", ms(15_000), |s| {
        !s.announcements().is_empty()
    });
    sim.run_for(ms(1_000));
    let recent = sim.nodes[new].coord.status(sim.now).recent_records;
    let versions: Vec<String> = recent
        .iter()
        .map(|n| n.record.version.to_string())
        .collect();
    assert_eq!(versions, ["2.0.0", "1.0.0"], "{recent:?}");
    assert!(recent[0].revision > recent[1].revision);
}

/// Rolls the nodes of a settled 0.1.0 cluster of three onto 1.0.0, one by
/// one, the new nodes started with these releases; returns the live nodes.
fn roll_onto_one_oh(sim: &mut Sim, releases: [Option<Release>; 3]) -> Vec<usize> {
    let mut live = vec![0, 1, 2];
    for (i, release) in releases.into_iter().enumerate() {
        let old = live.remove(0);
        sim.stop(old);
        sim.run_for(ms(500));
        let id = format!("n{}", i + 1);
        let new = match release {
            Some(release) => sim.start_release(&id, "1.0.0", release),
            None => sim.start(&id, "1.0.0"),
        };
        live.push(new);
    }
    sim.run_until("the announcement", ms(20_000), |s| {
        !s.announcements().is_empty()
    });
    sim.run_for(ms(10_000));
    live
}

#[test]
fn a_rolling_deploy_carries_the_new_nodes_release_into_the_record() {
    let mut sim = settled_cluster(3, "0.1.0");
    assert_eq!(sim.record().unwrap().release, None, "the baseline has none");
    let required = Release {
        severity: Severity::Required,
        notes_url: Some("https://example.com/releases/1.0.0".into()),
        min_supported: None,
    };
    // The three new nodes were given different releases (a mistake, but
    // one the monitor must settle the same way every time): the merge takes
    // the most severe severity, the highest minimum, and the notes of the
    // lowest node id (n1).
    let other = Release {
        severity: Severity::Optional,
        notes_url: Some("/notes".into()),
        min_supported: Some(v("0.5.0")),
    };
    let third = Release {
        severity: Severity::Optional,
        notes_url: Some("/other-notes".into()),
        min_supported: Some(v("0.2.0")),
    };
    let live = roll_onto_one_oh(&mut sim, [Some(required.clone()), Some(other), Some(third)]);
    let want = Release {
        min_supported: Some(v("0.5.0")),
        ..required
    };
    let announced = sim.announcements();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].version, v("1.0.0"));
    assert_eq!(announced[0].release, Some(want.clone()));
    assert_eq!(sim.record().unwrap().release, Some(want.clone()));
    for node in live {
        let view = sim.view(node);
        assert_eq!(view.announced_version, Some(v("1.0.0")));
        assert_eq!(view.announced_release, Some(want.clone()), "node {node}");
        // A page still on 0.1.0 must reload, with the notes.
        let stale = version_observer_core::banner::staleness(&v("0.1.0"), &view).unwrap();
        assert!(stale.required());
        assert_eq!(
            stale.notes_url(),
            Some("https://example.com/releases/1.0.0")
        );
    }
}

#[test]
fn a_compatible_deploy_with_a_release_stays_silent() {
    let mut sim = settled_cluster(2, "1.0.0");
    let required = Release {
        severity: Severity::Required,
        ..Release::default()
    };
    for i in 0..2 {
        sim.stop(i);
        sim.start_release(&format!("n{}", i + 1), "1.1.0", required.clone());
        sim.run_for(ms(3_000));
    }
    sim.run_for(ms(20_000));
    assert!(sim.announcements().is_empty());
    assert_eq!(sim.record().unwrap().version, v("1.0.0"));
    assert_eq!(sim.view(2).announced_release, None);
    assert_eq!(sim.view(3).state, ClusterState::Settled);
}

#[test]
fn a_forged_release_in_a_reply_is_dropped_and_counted() {
    let mut sim = settled_cluster(3, "0.1.0");
    let genuine = Release {
        severity: Severity::Optional,
        notes_url: Some("/releases/1.0.0".into()),
        min_supported: None,
    };
    // Every reply of n1 (the lowest id, whose notes would win) carries a
    // script URL and an impossible minimum instead.
    sim.tamper_release = Some((
        "n1".into(),
        serde_json::json!({
            "severity": "required",
            "notes_url": "javascript:alert(document.cookie)",
            "min_supported": "99.0.0"
        }),
    ));
    let live = roll_onto_one_oh(
        &mut sim,
        [
            Some(genuine.clone()),
            Some(genuine.clone()),
            Some(genuine.clone()),
        ],
    );
    // n1's replies still counted (the version was announced, nothing
    // stalled), but their release was dropped: the record has the others'.
    let announced = sim.announcements();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].release, Some(genuine.clone()));
    assert_eq!(sim.record().unwrap().release, Some(genuine.clone()));
    let bad: u64 = sim
        .nodes
        .iter()
        .map(|n| n.coord.dropped().bad_release)
        .sum();
    assert!(bad >= 1, "counted");
    assert!(sim.nodes.iter().all(|n| n.coord.dropped().malformed == 0));
    for node in live {
        assert_eq!(sim.view(node).announced_release, Some(genuine.clone()));
        assert!(sim.nodes[node].views.iter().all(|view| view
            .announced_release
            .as_ref()
            .is_none_or(|r| r.severity == Severity::Optional)));
    }
}

#[test]
fn an_invalid_release_in_the_record_never_reaches_browsers() {
    let mut sim = settled_cluster(2, "1.0.0");
    // Someone with KV write access (no cluster key) writes a record whose
    // release links to a script.
    let now = sim.now;
    let record = br#"{"version":"2.0.0","previous":"1.0.0","kind":"announcement","fence":0,"leader":"forger","at_ms":0,"release":{"severity":"required","notes_url":"javascript:alert(1)"}}"#;
    sim.stream
        .publish(
            STATE_KEY,
            Some(Bytes::from_static(record)),
            None,
            None,
            None,
            now,
        )
        .unwrap();
    sim.run_for(ms(6_000));
    for i in 0..2 {
        assert!(sim.nodes[i]
            .views
            .iter()
            .all(|view| view.announced_release.is_none()));
        assert!(sim.nodes[i].coord.dropped().bad_release >= 1, "node {i}");
    }
}

/// A rolling deploy 0.1.0 -> 1.0.0 of three nodes with retiring on: each
/// old node retires as its replacement starts; one old tab stays open (its
/// stream on a new node).
fn retiring_deploy(sim: &mut Sim, retire_for: Duration) -> (Vec<usize>, Vec<usize>) {
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let n = sim.start(&format!("m{}", i + 1), "1.0.0");
        if i == 0 {
            sim.tabs(n, &[("0.1.0", 1)]);
        }
        new.push(n);
        sim.retire(i, retire_for, ms(2_000));
        old.push(i);
        sim.run_for(ms(4_000));
    }
    (old, new)
}

#[test]
fn retiring_nodes_do_not_hold_the_cluster_mixed_and_stay_while_a_page_needs_them() {
    let mut sim = settled_cluster(3, "0.1.0");
    let (old, new) = retiring_deploy(&mut sim, Duration::from_secs(600));
    // Every serving node runs 1.0.0: announced once, although the three old
    // nodes still run (retiring).
    sim.run_until("the announcement", ms(10_000), |s| {
        !s.announcements().is_empty()
    });
    sim.run_for(ms(10_000));
    assert_eq!(sim.announcements().len(), 1);
    assert_eq!(sim.announcements()[0].version, v("1.0.0"));
    for &n in &new {
        let view = sim.view(n);
        assert_eq!(view.state, ClusterState::Settled, "{view:?}");
        assert_eq!(view.settled_version, Some(v("1.0.0")));
    }
    // The first two retired while another node still served 0.1.0: nobody
    // needed them, they left. The old tab needs the last one: it stays.
    assert!(sim.nodes[old[0]].coord.has_left());
    assert!(sim.nodes[old[1]].coord.has_left());
    let last = old[2];
    assert!(!sim.nodes[last].coord.has_left(), "left under an open page");
    assert!(sim.nodes[last].coord.is_retiring());
    let status = sim.nodes[new[0]].coord.status(sim.now);
    let member = status.members.iter().find(|m| m.id == "n3").unwrap();
    assert!(member.retiring, "{member:?}");
    assert!(
        sim.leaders().iter().all(|l| new.contains(l)),
        "{:?}",
        sim.leaders()
    );
    // The tab reloads onto 1.0.0: the retiring node leaves after the grace
    // period, within a heartbeat or two.
    sim.tabs(new[0], &[("1.0.0", 1)]);
    let took = sim.run_until("the retiring node leaves", ms(10_000), |s| {
        s.nodes[last].coord.has_left()
    });
    assert!(took >= ms(2_000), "left before the grace period: {took:?}");
    assert!(
        took <= ms(2_000) + sim.timings.heartbeat_interval() * 2 + ms(50),
        "{took:?}"
    );
    sim.run_for(ms(10_000));
    assert_eq!(
        sim.announcements().len(),
        1,
        "the departures changed nothing"
    );
}

#[test]
fn a_retiring_node_leaves_when_its_time_runs_out_pages_or_not() {
    let mut sim = settled_cluster(3, "0.1.0");
    let (old, _new) = retiring_deploy(&mut sim, Duration::from_secs(20));
    let last = old[2];
    // It retired 4 s ago, and the old tab stays open.
    sim.run_for(ms(15_000));
    assert!(!sim.nodes[last].coord.has_left());
    let took = sim.run_until("the last old node leaves", ms(5_000), |s| {
        s.nodes[last].coord.has_left()
    });
    assert!(took >= ms(900), "{took:?}");
}

#[test]
fn a_retiring_monitor_hands_the_lease_over_and_the_next_one_announces_at_once() {
    let mut sim = settled_cluster(1, "0.1.0");
    let old = 0;
    sim.start("n2", "1.0.0");
    sim.start("n3", "1.0.0");
    sim.tabs(1, &[("0.1.0", 1)]);
    sim.run_for(ms(5_000));
    assert_eq!(sim.leaders(), vec![old]);
    sim.retire(old, Duration::from_secs(600), ms(2_000));
    let took = sim.run_until("the announcement", ms(5_000), |s| {
        !s.announcements().is_empty()
    });
    assert!(
        took < ms(30),
        "announced {took:?} after the monitor retired"
    );
    assert_eq!(sim.announcements()[0].version, v("1.0.0"));
    assert!(!sim.leaders().contains(&old));
    assert!(
        !sim.nodes[old].coord.has_left(),
        "still needed by the open tab"
    );
    // A retiring node never stands for the lease again.
    sim.run_for(ms(30_000));
    assert!(!sim.leaders().contains(&old));
    assert_eq!(sim.leaders().len(), 1);
}

#[test]
fn a_retiring_member_never_causes_an_announcement() {
    let mut sim = settled_cluster(2, "1.0.0");
    // A node of another version that retires at once (a canary stopped),
    // and stays because a tab of its version is open.
    let canary = sim.start("canary", "2.0.0");
    sim.tabs(canary, &[("2.0.0", 1)]);
    sim.run_for(ms(5_000));
    assert_eq!(sim.view(0).state, ClusterState::Mixed);
    sim.retire(canary, Duration::from_secs(600), ms(2_000));
    sim.run_for(ms(15_000));
    assert!(sim.announcements().is_empty());
    assert!(!sim.nodes[canary].coord.has_left());
    assert_eq!(sim.view(0).state, ClusterState::Settled);
    assert_eq!(sim.view(0).settled_version, Some(v("1.0.0")));
    // The serving nodes leave: only a retiring one is left, which decides
    // nothing and announces nothing.
    sim.stop(0);
    sim.stop(1);
    sim.run_for(ms(15_000));
    assert!(sim.announcements().is_empty());
    assert_eq!(sim.view(canary).state, ClusterState::Unknown);
    assert!(sim.leaders().is_empty(), "{:?}", sim.leaders());
}

#[test]
fn a_cut_off_retiring_node_does_not_take_silence_for_no_pages() {
    let mut sim = settled_cluster(3, "0.1.0");
    let (old, new) = retiring_deploy(&mut sim, Duration::from_secs(600));
    let last = old[2];
    sim.partition(last);
    // Cut off, it cannot see the tab close, and must not conclude that
    // nobody needs it.
    sim.tabs(new[0], &[]);
    sim.run_for(ms(20_000));
    assert!(!sim.nodes[last].coord.has_left());
    sim.heal(last);
    let took = sim.run_until("it leaves once it can see", ms(15_000), |s| {
        s.nodes[last].coord.has_left()
    });
    // Not before its view is warm again and the grace period has passed.
    assert!(took >= sim.timings.node_timeout + ms(2_000), "{took:?}");
}

#[test]
fn a_second_stop_ends_a_retirement_at_once() {
    let mut sim = settled_cluster(3, "0.1.0");
    let (old, _new) = retiring_deploy(&mut sim, Duration::from_secs(600));
    assert!(!sim.nodes[old[2]].coord.has_left());
    sim.stop(old[2]);
    assert!(sim.nodes[old[2]].coord.has_left());
}

#[test]
fn old_nodes_that_retire_together_leave_one_keeper_for_the_old_pages() {
    // A fast rolling deploy: each old node retires before the one before it
    // has finished its grace period. One keeper is enough for the old tab.
    let mut sim = settled_cluster(3, "0.1.0");
    let mut new = Vec::new();
    for i in 0..3 {
        let n = sim.start(&format!("m{}", i + 1), "1.0.0");
        if i == 0 {
            sim.tabs(n, &[("0.1.0", 1)]);
        }
        new.push(n);
        sim.retire(i, Duration::from_secs(600), ms(2_000));
        sim.run_for(ms(300));
    }
    sim.run_until("all but one old node leave", ms(10_000), |s| {
        (0..3).filter(|o| s.nodes[*o].coord.has_left()).count() == 2
    });
    sim.run_for(ms(10_000));
    // The keeper is the first by id: n1.
    assert!(!sim.nodes[0].coord.has_left(), "the keeper left");
    assert!(sim.nodes[1].coord.has_left() && sim.nodes[2].coord.has_left());
    // The keeper gone (kill -9): nobody is left to keep the tab, and
    // nothing else changes.
    sim.kill(0);
    sim.run_for(ms(10_000));
    assert_eq!(sim.announcements().len(), 1);
    assert!(new
        .iter()
        .all(|n| sim.view(*n).state == ClusterState::Settled));
}

#[test]
fn partitions_mid_deploy_never_announce_a_rollback_nobody_made() {
    // What vo-bench's random fault schedule found (seed 1010): the old node
    // cut off, so the new version is announced; then the new node cut off
    // and the old one back, alone: without the rollback hold it announced
    // 0.1.0, then 1.0.0 again once the new node returned.
    let mut sim = settled_cluster(2, "0.1.0");
    let new = sim.start("n3", "1.0.0");
    sim.run_for(ms(5_000));
    sim.stop(0);
    let old = 1;
    sim.partition(old);
    sim.run_until("the new version, the old node cut off", ms(20_000), |s| {
        !s.announcements().is_empty()
    });
    sim.heal(old);
    sim.partition(new);
    // The old node alone settles on 0.1.0 for longer than the node timeout
    // and the safety interval: still, no rollback within the hold.
    sim.run_for(sim.timings.rollback_hold() - ms(1_000));
    sim.heal(new);
    sim.run_for(ms(10_000));
    sim.stop(old);
    sim.run_for(sim.timings.rollback_hold() * 2);
    let announced: Vec<Version> = sim.announcements().into_iter().map(|r| r.version).collect();
    assert_eq!(announced, vec![v("1.0.0")]);
    assert_eq!(sim.view(new).announced_version, Some(v("1.0.0")));
}

#[test]
fn a_rollback_is_announced_at_once_when_the_new_nodes_leave_and_later_when_they_vanish() {
    // Deployed and announced: 1.0.0. Rolled back: the old version's nodes
    // start and the new ones stop (nodedown): announced within rounds.
    let mut sim = settled_cluster(1, "0.1.0");
    let new = sim.start("n2", "1.0.0");
    sim.run_for(ms(5_000));
    sim.stop(0);
    sim.run_until("the deploy", ms(10_000), |s| s.announcements().len() == 1);
    let old = sim.start("n3", "0.1.0");
    sim.run_for(sim.timings.rollback_hold());
    sim.stop(new);
    let took = sim.run_until("the rollback", ms(5_000), |s| s.announcements().len() == 2);
    assert!(took < ms(2_000), "{took:?}");
    assert_eq!(sim.record().unwrap().version, v("0.1.0"));
    // Again, but the new node crashes (no nodedown): the rollback waits
    // out the hold from its expiry, then is announced.
    let new = sim.start("n4", "2.0.0");
    sim.run_for(ms(5_000));
    sim.stop(old);
    sim.run_until("2.0.0", ms(10_000), |s| s.announcements().len() == 3);
    sim.start("n5", "0.1.0");
    sim.run_for(sim.timings.rollback_hold());
    sim.kill(new);
    let took = sim.run_until(
        "the rollback after the crash",
        sim.timings.rollback_hold() * 2,
        |s| s.announcements().len() == 4,
    );
    let hold = sim.timings.rollback_hold() + sim.timings.node_timeout;
    assert!(took >= sim.timings.rollback_hold(), "{took:?}");
    assert!(took <= hold + sim.timings.safety_interval, "{took:?}");
    assert_eq!(sim.record().unwrap().version, v("0.1.0"));
}
