//! Test support: one [`Coordinator`] in a random world, driven as a real
//! driver would drive it. Other members come, beat, upgrade, retire, leave
//! and crash; a peer competes for the lease and asks for versions; a KV
//! bucket with NATS' semantics (one stream, expected sequences, a lease
//! with a time to live) answers late, refuses, fails or times out; the
//! connection drops and returns; forged and malformed messages arrive;
//! the node may retire or leave. Everything comes from one seeded
//! [`schedule`](super::schedule), so a failing seed replays exactly.
//!
//! The world calls `handle_timeout` exactly when
//! [`poll_timeout`](Coordinator::poll_timeout) says, and checks after every
//! call that the next deadline lies in the future: a deadline the
//! coordinator does not act on would make a driver spin.

use super::{
    coordinator::{Action, Coordinator, Entry, Identity, KvError, LeaseCall},
    schedule::seeded,
};
use crate::{
    auth::ClusterKey,
    compat::Compat,
    protocol::{self, *},
    timing::Timings,
};
use bytes::Bytes;
use semver::Version;
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// What the world needs of the machine it drives (the coordinator, or a
/// pair of them run side by side).
pub(crate) trait Machine {
    fn handle_connected(&mut self, now: Instant);
    fn handle_disconnected(&mut self, now: Instant);
    fn handle_message(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        payload: &[u8],
        mac: Option<&str>,
        now: Instant,
    );
    fn handle_buckets(&mut self, result: Result<(), KvError>, now: Instant);
    fn handle_lease(&mut self, result: Result<u64, KvError>, now: Instant);
    fn handle_record(&mut self, result: Result<Option<Entry>, KvError>, now: Instant);
    fn handle_record_written(&mut self, result: Result<u64, KvError>, now: Instant);
    fn handle_timeout(&mut self, now: Instant);
    fn begin_leave(&mut self, now: Instant);
    fn begin_retire(&mut self, now: Instant, retire_for: Duration, grace: Duration);
    fn set_tabs(&mut self, tabs: BTreeMap<String, u64>);
    fn set_unix_time_ms(&mut self, unix_ms: u64);
    fn poll_action(&mut self) -> Option<Action>;
    fn poll_timeout(&self, now: Instant) -> Option<Instant>;
    fn has_left(&self) -> bool;
    /// Which of its deadlines are due at `now` (for failure messages).
    fn explain(&self, now: Instant) -> String;
}

impl Machine for Coordinator {
    fn handle_connected(&mut self, now: Instant) {
        Coordinator::handle_connected(self, now)
    }
    fn handle_disconnected(&mut self, now: Instant) {
        Coordinator::handle_disconnected(self, now)
    }
    fn handle_message(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        payload: &[u8],
        mac: Option<&str>,
        now: Instant,
    ) {
        Coordinator::handle_message(self, subject, reply, payload, mac, now)
    }
    fn handle_buckets(&mut self, result: Result<(), KvError>, now: Instant) {
        Coordinator::handle_buckets(self, result, now)
    }
    fn handle_lease(&mut self, result: Result<u64, KvError>, now: Instant) {
        Coordinator::handle_lease(self, result, now)
    }
    fn handle_record(&mut self, result: Result<Option<Entry>, KvError>, now: Instant) {
        Coordinator::handle_record(self, result, now)
    }
    fn handle_record_written(&mut self, result: Result<u64, KvError>, now: Instant) {
        Coordinator::handle_record_written(self, result, now)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Coordinator::handle_timeout(self, now)
    }
    fn begin_leave(&mut self, now: Instant) {
        Coordinator::begin_leave(self, now)
    }
    fn begin_retire(&mut self, now: Instant, retire_for: Duration, grace: Duration) {
        Coordinator::begin_retire(self, now, retire_for, grace)
    }
    fn set_tabs(&mut self, tabs: BTreeMap<String, u64>) {
        Coordinator::set_tabs(self, tabs)
    }
    fn set_unix_time_ms(&mut self, unix_ms: u64) {
        Coordinator::set_unix_time_ms(self, unix_ms)
    }
    fn poll_action(&mut self) -> Option<Action> {
        Coordinator::poll_action(self)
    }
    fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        Coordinator::poll_timeout(self, now)
    }
    fn has_left(&self) -> bool {
        Coordinator::has_left(self)
    }
    fn explain(&self, now: Instant) -> String {
        let due: Vec<_> = self
            .timers(now)
            .into_iter()
            .filter(|(_, at)| at.is_some_and(|at| at <= now))
            .map(|(timer, _)| timer)
            .collect();
        format!("due: {due:?}")
    }
}

/// The cluster's name in the world.
pub(crate) const CLUSTER: &str = "c";
/// The node's reply inbox.
pub(crate) const INBOX: &str = "_INBOX.me";
/// The one-way delay of a message.
const LATENCY: Duration = Duration::from_millis(1);

/// A coordinator for the world's node: `1.0.0`, keyed or not.
pub(crate) fn coordinator(timings: Timings, key: Option<&ClusterKey>, t0: Instant) -> Coordinator {
    let me = Identity {
        id: "me".into(),
        version: Version::new(1, 0, 0),
        incarnation: 7,
    };
    let coordinator = Coordinator::new(
        me,
        Names::new(CLUSTER),
        INBOX.into(),
        Compat::Major,
        timings,
        t0,
    );
    match key {
        Some(key) => coordinator.with_key(key.clone()),
        None => coordinator,
    }
}

/// The timings a seed runs with: the defaults, or short ones (more
/// expiries, elections and rounds per simulated second).
pub(crate) fn timings(seed: u64) -> Timings {
    if seed.is_multiple_of(2) {
        Timings::DEFAULT
    } else {
        Timings {
            node_timeout: Duration::from_millis(300),
            lease: Duration::from_millis(500),
            round_timeout: Duration::from_millis(40),
            safety_interval: Duration::from_millis(700),
        }
    }
}

/// The key a seed runs with, if any.
pub(crate) fn key(seed: u64) -> Option<ClusterKey> {
    seed.is_multiple_of(3)
        .then(|| ClusterKey::new(b"a-random-world-cluster-key").unwrap())
}

enum Delivery {
    Message {
        subject: String,
        reply: Option<String>,
        payload: Bytes,
        mac: Option<String>,
    },
    Buckets(Result<(), KvError>),
    Lease(Result<u64, KvError>),
    Record(Result<Option<Entry>, KvError>),
    Written(Result<u64, KvError>),
}

#[derive(Debug, Clone)]
struct Peer {
    id: String,
    incarnation: u64,
    version: Version,
    alive: bool,
    retiring: bool,
}

/// A key's last message in the bucket's stream.
#[derive(Debug, Clone)]
struct Msg {
    seq: u64,
    value: Option<Bytes>,
    expires: Option<Instant>,
}

/// The cluster's bucket: one stream for the lease and the record.
#[derive(Debug, Default)]
struct Bucket {
    last_seq: u64,
    lease: Option<Msg>,
    record: Option<Msg>,
}

impl Bucket {
    fn lease(&self, now: Instant) -> Option<&Msg> {
        self.lease
            .as_ref()
            .filter(|m| m.expires.is_none_or(|t| now < t))
    }

    fn next(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    fn lease_call(&mut self, call: LeaseCall, now: Instant) -> Result<u64, KvError> {
        let held = self.lease(now).map(|m| (m.seq, m.value.is_some()));
        let conflict = || Err(KvError::Conflict("wrong revision".into()));
        let (value, ttl) = match call {
            LeaseCall::Create { value, ttl } => {
                if held.is_some_and(|(_, live)| live) {
                    return conflict();
                }
                (Some(value), ttl)
            }
            LeaseCall::Update {
                revision,
                value,
                ttl,
            } => {
                if held.map(|(seq, _)| seq) != Some(revision) {
                    return conflict();
                }
                (Some(value), ttl)
            }
            LeaseCall::Delete { revision, ttl } => {
                if held.map(|(seq, _)| seq) != Some(revision) {
                    return conflict();
                }
                (None, ttl)
            }
        };
        let seq = self.next();
        self.lease = Some(Msg {
            seq,
            value,
            expires: Some(now + ttl),
        });
        Ok(seq)
    }
}

/// One coordinator and everything around it. See the [module docs](self).
pub(crate) struct World<M: Machine> {
    pub(crate) node: M,
    names: Names,
    key: Option<ClusterKey>,
    timings: Timings,
    next: Box<dyn FnMut(u64) -> u64>,
    pub(crate) now: Instant,
    t0: Instant,
    connected: bool,
    queue: Vec<(Instant, u64, Delivery)>,
    order: u64,
    bucket: Bucket,
    peers: Vec<Peer>,
    incarnations: u64,
    next_event: Instant,
    /// Rounds the peer's monitor ran.
    peer_rounds: u64,
    /// Counts of what happened, to check the world reached every corner.
    pub(crate) seen: BTreeMap<&'static str, u64>,
}

impl<M: Machine> World<M> {
    /// A world around `node` (connected at `t0`), randomised by `seed`.
    pub(crate) fn new(node: M, seed: u64, t0: Instant) -> Self {
        let timings = timings(seed);
        let peers = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, id)| Peer {
                id: (*id).into(),
                incarnation: i as u64 + 1,
                version: Version::new(1, 0, 0),
                alive: true,
                retiring: false,
            })
            .collect();
        let mut world = Self {
            node,
            names: Names::new(CLUSTER),
            key: key(seed),
            timings,
            next: Box::new(seeded(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)),
            now: t0,
            t0,
            connected: true,
            queue: Vec::new(),
            order: 0,
            bucket: Bucket::default(),
            peers,
            incarnations: 10,
            next_event: t0,
            peer_rounds: 0,
            seen: BTreeMap::new(),
        };
        world.node.handle_connected(t0);
        world.drain();
        world.check("handle_connected");
        world
    }

    fn roll(&mut self, below: u64) -> u64 {
        (self.next)(below)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.roll(100) < percent
    }

    fn count(&mut self, what: &'static str) {
        *self.seen.entry(what).or_default() += 1;
    }

    fn send(&mut self, at: Instant, delivery: Delivery) {
        self.order += 1;
        self.queue.push((at, self.order, delivery));
    }

    /// Runs `steps` events (fewer if the node leaves).
    pub(crate) fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            if self.node.has_left() {
                self.count("left");
                return;
            }
            self.step();
        }
    }

    /// One event: the node's deadline, a delivery, or something the world does.
    fn step(&mut self) {
        let deadline = self.node.poll_timeout(self.now);
        let delivery = self.queue.iter().map(|(t, o, _)| (*t, *o)).min();
        let at = [deadline, delivery.map(|(t, _)| t), Some(self.next_event)]
            .into_iter()
            .flatten()
            .min()
            .expect("the world always has a next event");
        assert!(at >= self.now, "time went back");
        self.now = at;
        let now = self.now;
        self.node
            .set_unix_time_ms(1_700_000_000_000 + (now - self.t0).as_millis() as u64);
        if deadline == Some(at) {
            self.count("timeout");
            self.node.handle_timeout(now);
            self.drain();
            self.check("handle_timeout");
        } else if let Some((_, order)) = delivery.filter(|(t, _)| *t == at) {
            let index = self.queue.iter().position(|(_, o, _)| *o == order).unwrap();
            let (_, _, delivery) = self.queue.swap_remove(index);
            self.deliver(delivery);
        } else {
            self.world_event();
            let gap = self.roll(self.timings.heartbeat_interval().as_millis() as u64 / 2 + 1);
            self.next_event = now + Duration::from_millis(gap);
        }
    }

    /// After any call at `now`: the next deadline is in the future.
    fn check(&self, after: &str) {
        if let Some(at) = self.node.poll_timeout(self.now) {
            assert!(
                at > self.now,
                "after {after}, poll_timeout is {:?} from now, not in the future: {}",
                self.now.saturating_duration_since(at),
                self.node.explain(self.now)
            );
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        let now = self.now;
        let after = match delivery {
            Delivery::Message {
                subject,
                reply,
                payload,
                mac,
            } => {
                if !self.connected {
                    return;
                }
                self.node
                    .handle_message(&subject, reply.as_deref(), &payload, mac.as_deref(), now);
                "handle_message"
            }
            Delivery::Buckets(result) => {
                self.node.handle_buckets(result, now);
                "handle_buckets"
            }
            Delivery::Lease(result) => {
                self.node.handle_lease(result, now);
                "handle_lease"
            }
            Delivery::Record(result) => {
                self.node.handle_record(result, now);
                "handle_record"
            }
            Delivery::Written(result) => {
                self.node.handle_record_written(result, now);
                "handle_record_written"
            }
        };
        self.drain();
        self.check(after);
    }

    /// Carries out the node's actions.
    fn drain(&mut self) {
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::View(_) => self.count("view"),
                Action::Publish {
                    subject,
                    reply,
                    payload,
                    mac,
                } => {
                    if !self.connected {
                        continue;
                    }
                    self.published(&subject, reply.as_deref(), &payload);
                    // The node hears its own cluster messages and replies
                    // to its own inbox.
                    if subject.starts_with("vo.c.") || subject.starts_with(INBOX) {
                        let at = self.now + LATENCY;
                        self.send(
                            at,
                            Delivery::Message {
                                subject,
                                reply,
                                payload,
                                mac,
                            },
                        );
                    }
                }
                call => self.kv(call),
            }
        }
    }

    /// What peers do with what the node published.
    fn published(&mut self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        if subject == self.names.version_request() {
            self.count("round");
            let Some(reply) = reply else { return };
            for peer in self.peers.clone() {
                if !peer.alive || peer.retiring || self.chance(8) {
                    continue;
                }
                let answer = VersionReply {
                    id: peer.id.clone(),
                    version: peer.version.clone(),
                    incarnation: peer.incarnation,
                    release: None,
                };
                let delay = Duration::from_millis(self.roll(6) + 1);
                self.inject_at(self.now + delay, reply, None, protocol::encode(&answer));
            }
        } else if subject == self.names.announce() {
            self.count("announce");
        } else if subject == self.names.settled() {
            self.count("settled");
        } else if subject == self.names.presence(PresenceKind::Down) {
            self.count("nodedown");
        }
        let _ = payload;
    }

    /// A KV call reaches the bucket now and is answered a little later:
    /// or it fails, or it times out (the driver's bound) without landing.
    fn kv(&mut self, call: Action) {
        let now = self.now;
        if !self.connected || self.chance(3) {
            self.count("kv timeout");
            let at = now + self.timings.kv_timeout();
            let error = Err(KvError::Unavailable("timed out".into()));
            let answer = match call {
                Action::OpenBucket(_) => {
                    Delivery::Buckets(Err(KvError::Unavailable("down".into())))
                }
                Action::Lease(_) => Delivery::Lease(error),
                Action::ReadRecord => Delivery::Record(Err(KvError::Unavailable("down".into()))),
                _ => Delivery::Written(error),
            };
            self.send(at, answer);
            return;
        }
        // Mostly quick; now and then slow enough for the world to move
        // on meanwhile.
        let delay = if self.chance(10) {
            self.roll(300) + 20
        } else {
            self.roll(20) + 1
        };
        let at = now + Duration::from_millis(delay);
        let unavailable = self.chance(4);
        let answer = match call {
            Action::OpenBucket(_) => Delivery::Buckets(if unavailable {
                Err(KvError::Unavailable("no JetStream".into()))
            } else if self.chance(3) {
                Err(KvError::Incompatible("no per-message TTL".into()))
            } else {
                Ok(())
            }),
            Action::Lease(call) => Delivery::Lease(if unavailable {
                Err(KvError::Unavailable("stream lost".into()))
            } else {
                self.count("lease call");
                self.bucket.lease_call(call, now)
            }),
            Action::ReadRecord => Delivery::Record(if unavailable {
                Err(KvError::Unavailable("stream lost".into()))
            } else {
                Ok(self.bucket.record.as_ref().map(|m| Entry {
                    revision: m.seq,
                    value: m.value.clone(),
                }))
            }),
            Action::WriteRecord {
                fence,
                expected_revision,
                value,
            } => Delivery::Written(if unavailable {
                Err(KvError::Unavailable("stream lost".into()))
            } else if self.bucket.last_seq != fence
                || self.bucket.record.as_ref().map_or(0, |m| m.seq) != expected_revision
            {
                self.count("write refused");
                Err(KvError::Conflict("wrong last sequence".into()))
            } else {
                self.count("record written");
                let seq = self.bucket.next();
                self.bucket.record = Some(Msg {
                    seq,
                    value: Some(value),
                    expires: None,
                });
                Ok(seq)
            }),
            Action::Publish { .. } | Action::View(_) => unreachable!("not a KV call"),
        };
        self.send(at, answer);
    }

    /// A message from outside, signed with the cluster key if there is one
    /// (`forged`: with a wrong MAC).
    fn inject_at(&mut self, at: Instant, subject: &str, reply: Option<&str>, payload: Bytes) {
        let forged = self.key.is_some() && self.chance(3);
        let mac = match (&self.key, forged) {
            (Some(_), true) => Some("bm90IGEgbWFj".to_owned()),
            (Some(key), false) => Some(key.sign(subject, &payload)),
            (None, _) => None,
        };
        self.send(
            at,
            Delivery::Message {
                subject: subject.to_owned(),
                reply: reply.map(str::to_owned),
                payload,
                mac,
            },
        );
    }

    fn inject(&mut self, subject: &str, reply: Option<&str>, payload: Bytes) {
        self.inject_at(self.now + LATENCY, subject, reply, payload);
    }

    fn seal(&self, key_name: &str, value: Bytes) -> Bytes {
        match &self.key {
            Some(key) => key.seal(key_name, &value),
            None => value,
        }
    }

    fn presence(&mut self, peer: usize, kind: PresenceKind, monitor: bool) {
        let p = self.peers[peer].clone();
        let tabs = if self.chance(20) {
            [
                ("0.9.0".to_owned(), self.roll(3)),
                (p.version.to_string(), 2),
            ]
            .into()
        } else {
            BTreeMap::new()
        };
        let presence = Presence {
            id: p.id,
            version: p.version,
            incarnation: p.incarnation,
            leader: monitor,
            tabs,
            retiring: p.retiring,
        };
        let subject = self.names.presence(kind);
        self.inject(&subject, None, protocol::encode(&presence));
    }

    /// Something happens in the world.
    fn world_event(&mut self) {
        let now = self.now;
        let peer = self.roll(self.peers.len() as u64) as usize;
        let peer_holds = self.bucket.lease(now).is_some_and(|m| {
            m.value.as_deref() == Some(&self.seal(LEASE_KEY, lease_value(&self.peers[0].id))[..])
        });
        if self.roll(12_000) == 0 {
            self.count("retire");
            let retire_for = Duration::from_millis(self.roll(20_000) + 1);
            let grace = Duration::from_millis(self.roll(3_000) + 1);
            self.node.begin_retire(now, retire_for, grace);
            self.drain();
            self.check("begin_retire");
            return;
        }
        if self.roll(30_000) == 0 {
            self.count("leave");
            self.node.begin_leave(now);
            self.drain();
            self.check("begin_leave");
            return;
        }
        match self.roll(1_000) {
            0..=449 => {
                // A heartbeat (a dead peer comes back as a new process).
                if !self.peers[peer].alive {
                    self.incarnations += 1;
                    self.peers[peer].incarnation = self.incarnations;
                    self.peers[peer].alive = true;
                    self.peers[peer].retiring = false;
                    self.presence(peer, PresenceKind::Up, false);
                } else {
                    let monitor = peer == 0 && peer_holds;
                    self.presence(peer, PresenceKind::Heartbeat, monitor);
                }
            }
            450..=479 => {
                // A graceful stop: the peer monitor hands its lease back first.
                if self.peers[peer].alive {
                    let monitor = peer == 0 && peer_holds;
                    if monitor {
                        let seq = self.bucket.next();
                        self.bucket.lease = Some(Msg {
                            seq,
                            value: None,
                            expires: Some(now + Duration::from_secs(5)),
                        });
                    }
                    self.presence(peer, PresenceKind::Down, monitor);
                    self.peers[peer].alive = false;
                    self.count("peer left");
                }
            }
            480..=499 => {
                self.peers[peer].alive = false;
                self.count("peer crashed");
            }
            500..=539 => {
                // A deploy step: a peer now runs another version.
                let minor = self.roll(2);
                self.peers[peer].version = if self.chance(50) {
                    Version::new(1, minor, 0)
                } else {
                    Version::new(2, 0, 0)
                };
                if self.peers[peer].alive {
                    self.presence(peer, PresenceKind::Heartbeat, false);
                }
            }
            540..=559 => {
                self.peers[peer].retiring = !self.peers[peer].retiring;
                if self.peers[peer].alive {
                    self.presence(peer, PresenceKind::Heartbeat, false);
                }
            }
            560..=609 => {
                // The peer monitor takes a free lease, or renews its own.
                let value = self.seal(LEASE_KEY, lease_value(&self.peers[0].id));
                let ttl = Duration::from_secs(1);
                let held = self.bucket.lease(now).cloned();
                match held {
                    Some(m) if m.value.is_some() && !peer_holds => {}
                    Some(m) if peer_holds => {
                        let _ = self.bucket.lease_call(
                            LeaseCall::Update {
                                revision: m.seq,
                                value,
                                ttl,
                            },
                            now,
                        );
                    }
                    _ => {
                        if self
                            .bucket
                            .lease_call(LeaseCall::Create { value, ttl }, now)
                            .is_ok()
                        {
                            self.count("peer took the lease");
                        }
                    }
                }
            }
            610..=649 => {
                // The peer monitor asks for versions (or a forger does,
                // with a reply subject it must not get).
                self.peer_rounds += 1;
                let request = VersionRequest {
                    leader: "a".into(),
                    round: self.peer_rounds,
                };
                let reply = match self.roll(3) {
                    0 => Some(format!("_INBOX.a.{}", self.peer_rounds)),
                    1 => Some("vo.c.node.down".to_owned()),
                    _ => None,
                };
                let subject = self.names.version_request();
                self.inject(&subject, reply.as_deref(), protocol::encode(&request));
            }
            650..=689 => {
                // A notice: a hint to re-read (true or not).
                let notice = SettledNotice {
                    revision: self.roll(50),
                    record: SettledRecord {
                        version: Version::new(self.roll(3), 0, 0),
                        previous: None,
                        kind: RecordKind::Announcement,
                        fence: 1,
                        leader: "a".into(),
                        at_ms: 0,
                        release: None,
                    },
                };
                let subject = if self.chance(50) {
                    self.names.settled()
                } else {
                    self.names.announce()
                };
                self.inject(&subject, None, protocol::encode(&notice));
            }
            690..=729 => {
                // Somebody (the peer monitor, or a forger) writes the record.
                let record = SettledRecord {
                    version: Version::new(self.roll(3), 0, 0),
                    previous: None,
                    kind: RecordKind::Baseline,
                    fence: 1,
                    leader: "a".into(),
                    at_ms: 0,
                    release: None,
                };
                let value = if self.chance(20) {
                    Bytes::from_static(b"{not a record")
                } else {
                    self.seal(STATE_KEY, protocol::encode(&record))
                };
                let seq = self.bucket.next();
                self.bucket.record = Some(Msg {
                    seq,
                    value: Some(value),
                    expires: None,
                });
            }
            730..=769 => {
                // Garbage: malformed payloads, unknown subjects, stray replies.
                let subjects = [
                    "vo.c.node.up",
                    "vo.c.node.heartbeat",
                    "vo.c.node.down",
                    "vo.c.version.request",
                    "vo.c.settled",
                    "vo.c.other",
                    "_INBOX.me.x",
                    "_INBOX.me.1",
                ];
                let subject = subjects[self.roll(subjects.len() as u64) as usize];
                let payload = Bytes::from_static(b"{\"id\":\"x\"");
                self.inject(subject, Some("_INBOX.z"), payload);
            }
            770..=784 => {
                // The connection drops, or comes back.
                self.connected = !self.connected;
                if self.connected {
                    self.count("connected");
                    self.node.handle_connected(now);
                    self.drain();
                    self.check("handle_connected");
                } else {
                    self.count("disconnected");
                    self.node.handle_disconnected(now);
                    self.drain();
                    self.check("handle_disconnected");
                }
            }
            785..=789 => {
                // A stray lease answer (none is in flight): ignored.
                if !self
                    .queue
                    .iter()
                    .any(|(_, _, d)| matches!(d, Delivery::Lease(_)))
                {
                    self.count("stray answer");
                    self.node.handle_lease(Ok(1), now);
                    self.drain();
                    self.check("handle_lease");
                }
            }
            790..=829 => {
                let mut tabs = BTreeMap::new();
                if self.chance(50) {
                    tabs.insert("1.0.0".to_owned(), self.roll(4));
                }
                if self.chance(30) {
                    tabs.insert("0.9.0".to_owned(), self.roll(2));
                }
                self.node.set_tabs(tabs);
            }
            _ => {}
        }
    }
}

fn lease_value(id: &str) -> Bytes {
    protocol::encode(&LeaseHolder { id: id.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events per seed, and seeds: about half a million events in all.
    const STEPS: u64 = 15_000;
    const SEEDS: u64 = 32;

    #[test]
    fn poll_timeout_is_never_due_right_after_a_call() {
        let mut seen: BTreeMap<&'static str, u64> = BTreeMap::new();
        for seed in 0..SEEDS {
            let t0 = Instant::now();
            let node = coordinator(timings(seed), key(seed).as_ref(), t0);
            let mut world = World::new(node, seed, t0);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                world.run(STEPS);
            }));
            if let Err(panic) = outcome {
                eprintln!("seed {seed} failed at {:?}", world.now - t0);
                std::panic::resume_unwind(panic);
            }
            for (what, n) in world.seen {
                *seen.entry(what).or_default() += n;
            }
        }
        // The schedules reached every corner.
        for what in [
            "round",
            "record written",
            "announce",
            "settled",
            "write refused",
            "peer took the lease",
            "kv timeout",
            "connected",
            "disconnected",
            "retire",
            "leave",
            "left",
            "nodedown",
            "stray answer",
        ] {
            assert!(
                seen.get(what).is_some_and(|n| *n > 0),
                "never: {what} ({seen:?})"
            );
        }
    }
}
