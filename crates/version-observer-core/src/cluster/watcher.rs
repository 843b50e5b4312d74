//! A cluster seen from outside: a [`Watcher`] hears the nodes' presence
//! messages and reads the settled record, as a member would, but never
//! publishes and never joins. Deploy gates (`version-observer wait`) and
//! fleet views (`version-observer status`) are built on it. Plain data, no
//! I/O: its driver passes messages, the record and the time in.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use version_observer_core::{
//!     cluster::watcher::{Gate, Watcher},
//!     protocol::{encode, Names, Presence, PresenceKind},
//!     Compat, Version,
//! };
//! let names = Names::new("shop");
//! let mut watcher = Watcher::new(names.clone(), Duration::from_secs(3), None);
//! let t0 = Instant::now();
//! watcher.handle_connected(t0);
//! let hello = Presence { id: "web-1".into(), version: "2.0.0".parse().unwrap(), incarnation: 1, leader: true, tabs: Default::default(), retiring: false };
//! watcher.handle_message(&names.presence(PresenceKind::Heartbeat), &encode(&hello), None, t0);
//! let target: Version = "2.0.0".parse().unwrap();
//! // Not before every live node has had a node timeout to be heard.
//! assert!(matches!(watcher.gate(&target, Compat::Major, t0), Gate::Waiting(_)));
//! ```

use super::{
    inbound::{Inbound, Listener, Message},
    membership::MembershipView,
};
use crate::{
    auth::ClusterKey,
    compat::Compat,
    protocol::{Names, PresenceKind, SettledNotice},
    status::{Dropped, MemberStatus},
};
use semver::Version;
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Instant};

/// The cluster as a [`Watcher`] sees it at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    /// The cluster's name.
    pub cluster: String,
    /// Whether every live node has had a full node timeout to be heard
    /// since the watcher connected; before that the members are partial.
    pub complete: bool,
    /// The live members, in order of id (retiring ones say so).
    pub members: Vec<MemberStatus>,
    /// How many live serving members (not retiring) run each version.
    pub versions: BTreeMap<Version, usize>,
    /// How many retiring members run each version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retiring: BTreeMap<Version, usize>,
    /// Open tabs across the cluster, by the version of their page (the sum
    /// of what the members' heartbeats said).
    #[serde(default)]
    pub tabs: BTreeMap<String, u64>,
    /// The settled record (the last announcement or the baseline), if any
    /// was read.
    pub record: Option<SettledNotice>,
}

impl Fleet {
    /// `2.0.0 ×2, 1.0.0 ×1`: the rollout in one line (newest first), and
    /// the retiring nodes after it (`; retiring 1.0.0 ×1`).
    pub fn rollout(&self) -> String {
        let list = |versions: &BTreeMap<Version, usize>| {
            versions
                .iter()
                .rev()
                .map(|(v, n)| format!("{v} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut line = if self.versions.is_empty() {
            "no serving nodes".to_owned()
        } else {
            list(&self.versions)
        };
        if !self.retiring.is_empty() {
            line.push_str(&format!("; retiring {}", list(&self.retiring)));
        }
        line
    }

    /// The open tabs of pages of exactly `version`, across the cluster:
    /// what a retiring member of that version is still there for.
    pub fn pages_of(&self, version: &Version) -> u64 {
        self.tabs.get(&version.to_string()).copied().unwrap_or(0)
    }
}

/// Where a cluster stands with respect to a target version.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Every live node runs the target, and the record says so (or the
    /// target is compatible with the record: no announcement is due).
    Settled(Fleet),
    /// Not yet.
    Waiting(Fleet),
}

/// Watches one cluster. See the [module docs](self).
#[derive(Debug)]
pub struct Watcher {
    names: Names,
    inbound: Inbound,
    view: MembershipView,
    record: Option<SettledNotice>,
    dropped: Dropped,
}

impl Watcher {
    /// A watcher of the cluster `names`, whose nodes run with `node_timeout`
    /// (a node silent that long is gone), authenticating messages with
    /// `key` if the cluster has one.
    pub fn new(names: Names, node_timeout: std::time::Duration, key: Option<ClusterKey>) -> Self {
        Self {
            inbound: Inbound::new(names.clone(), Listener::Watcher, key),
            names,
            view: MembershipView::new(node_timeout),
            record: None,
            dropped: Dropped::default(),
        }
    }

    /// The one subject to subscribe to: every presence message.
    pub fn subscription(&self) -> String {
        self.names.presence_all()
    }

    /// The connection is up: the view is partial for one node timeout.
    pub fn handle_connected(&mut self, now: Instant) {
        self.view.start_observing(now);
    }

    /// The connection is lost: the view is partial until it is back and a
    /// node timeout has passed.
    pub fn handle_disconnected(&mut self) {
        self.view.stop_observing();
    }

    /// A message on [`subscription`](Self::subscription). Anything that is
    /// not an authentic presence message is dropped and counted.
    pub fn handle_message(
        &mut self,
        subject: &str,
        payload: &[u8],
        mac: Option<&str>,
        now: Instant,
    ) {
        let Some(Message::Presence(kind, presence)) =
            self.inbound
                .message(subject, payload, mac, &mut self.dropped)
        else {
            return;
        };
        match kind {
            PresenceKind::Down => {
                self.view.left(&presence.id, presence.incarnation, now);
            }
            PresenceKind::Up | PresenceKind::Heartbeat => {
                self.view.heard(
                    &presence.id,
                    &presence.version,
                    presence.incarnation,
                    presence.leader,
                    now,
                );
                self.view
                    .set_tabs(&presence.id, presence.incarnation, presence.tabs);
                self.view
                    .set_retiring(&presence.id, presence.incarnation, presence.retiring);
            }
        }
    }

    /// The settled record's latest value and its revision (`None`: no
    /// record, or it was deleted). A value that is not authentic or not a
    /// record is dropped and counted, and the last good one kept.
    pub fn handle_record(&mut self, entry: Option<(u64, &[u8])>) {
        let Some((revision, value)) = entry else {
            self.record = None;
            return;
        };
        if let Some(record) = self.inbound.record(revision, value, &mut self.dropped) {
            self.record = Some(record);
        }
    }

    /// Messages and values dropped so far.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// The cluster now.
    pub fn fleet(&mut self, now: Instant) -> Fleet {
        self.view.expire(now);
        let members: Vec<MemberStatus> = self
            .view
            .members()
            .map(|m| m.status(now, m.monitor))
            .collect();
        let mut retiring = BTreeMap::new();
        for m in members.iter().filter(|m| m.retiring) {
            *retiring.entry(m.version.clone()).or_default() += 1;
        }
        Fleet {
            cluster: self.names.cluster().to_owned(),
            complete: self.view.is_warm(now),
            members,
            versions: self.view.serving_versions().clone(),
            retiring,
            tabs: self.view.tabs().clone(),
            record: self.record.clone(),
        }
    }

    /// Whether the cluster has settled on `target`: the view is complete,
    /// every live serving node (at least one) runs `target` (retiring ones
    /// are leaving, and do not count), and the record is `target`, or a
    /// version `target` is compatible with under `compat` (then nothing is
    /// to be announced).
    pub fn gate(&mut self, target: &Version, compat: Compat, now: Instant) -> Gate {
        let fleet = self.fleet(now);
        let all_on_target = fleet.versions.len() == 1 && fleet.versions.contains_key(target);
        let recorded = fleet.record.as_ref().is_some_and(|n| {
            n.record.version == *target || compat.compatible(&n.record.version, target)
        });
        if fleet.complete && all_on_target && recorded {
            Gate::Settled(fleet)
        } else {
            Gate::Waiting(fleet)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{self, encode, Presence, RecordKind, SettledRecord, STATE_KEY};
    use std::time::Duration;

    const TIMEOUT: Duration = Duration::from_secs(3);

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn presence(id: &str, version: &str, incarnation: u64) -> bytes::Bytes {
        encode(&Presence {
            id: id.into(),
            version: v(version),
            incarnation,
            leader: false,
            tabs: Default::default(),
            retiring: false,
        })
    }

    fn record(version: &str, kind: RecordKind) -> bytes::Bytes {
        encode(&SettledRecord {
            version: v(version),
            previous: None,
            kind,
            fence: 3,
            leader: "a".into(),
            at_ms: 0,
            release: None,
        })
    }

    struct Setup {
        names: Names,
        watcher: Watcher,
        t0: Instant,
    }

    fn setup(key: Option<ClusterKey>) -> Setup {
        let names = Names::new("shop");
        let mut watcher = Watcher::new(names.clone(), TIMEOUT, key);
        let t0 = Instant::now();
        watcher.handle_connected(t0);
        Setup { names, watcher, t0 }
    }

    impl Setup {
        fn beat(&mut self, id: &str, version: &str, at: Duration) {
            let subject = self.names.presence(PresenceKind::Heartbeat);
            self.watcher
                .handle_message(&subject, &presence(id, version, 1), None, self.t0 + at);
        }
    }

    #[test]
    fn the_gate_opens_only_when_every_node_runs_the_target_and_it_is_recorded() {
        let mut s = setup(None);
        let target = v("2.0.0");
        s.beat("a", "1.0.0", Duration::ZERO);
        s.beat("b", "2.0.0", Duration::ZERO);
        s.watcher
            .handle_record(Some((4, &record("1.0.0", RecordKind::Baseline))));
        let late = TIMEOUT + Duration::from_millis(1);
        // Mixed.
        s.beat("b", "2.0.0", late);
        s.beat("a", "1.0.0", late);
        let Gate::Waiting(fleet) = s.watcher.gate(&target, Compat::Major, s.t0 + late) else {
            panic!("settled while mixed")
        };
        assert!(fleet.complete);
        assert_eq!(fleet.rollout(), "2.0.0 ×1, 1.0.0 ×1");
        // a leaves; all on 2.0.0, but the record is still 1.0.0: an
        // announcement is due.
        s.watcher.handle_message(
            &s.names.presence(PresenceKind::Down),
            &presence("a", "1.0.0", 1),
            None,
            s.t0 + late,
        );
        assert!(matches!(
            s.watcher.gate(&target, Compat::Major, s.t0 + late),
            Gate::Waiting(_)
        ));
        s.watcher
            .handle_record(Some((5, &record("2.0.0", RecordKind::Announcement))));
        let Gate::Settled(fleet) = s.watcher.gate(&target, Compat::Major, s.t0 + late) else {
            panic!("not settled")
        };
        assert_eq!(fleet.record.unwrap().revision, 5);
        // Under `exact`, 2.0.0 recorded as 1.0.0 would be news; under
        // `major`, 1.1.0 over a 1.0.0 record is not.
        let mut s = setup(None);
        s.beat("a", "1.1.0", Duration::ZERO);
        s.watcher
            .handle_record(Some((2, &record("1.0.0", RecordKind::Baseline))));
        s.beat("a", "1.1.0", late);
        assert!(matches!(
            s.watcher.gate(&v("1.1.0"), Compat::Major, s.t0 + late),
            Gate::Settled(_)
        ));
        assert!(matches!(
            s.watcher.gate(&v("1.1.0"), Compat::Exact, s.t0 + late),
            Gate::Waiting(_)
        ));
    }

    #[test]
    fn no_gate_before_a_full_node_timeout_nor_with_no_nodes_nor_after_a_crash() {
        let mut s = setup(None);
        let target = v("1.0.0");
        s.watcher
            .handle_record(Some((1, &record("1.0.0", RecordKind::Baseline))));
        // Nobody: never settled.
        assert!(matches!(
            s.watcher.gate(&target, Compat::Major, s.t0 + TIMEOUT * 2),
            Gate::Waiting(_)
        ));
        s.beat("a", "1.0.0", TIMEOUT * 2);
        // An old node that crashed is gone after the timeout: then settled.
        s.beat("old", "0.9.0", TIMEOUT * 2);
        let half = TIMEOUT / 2;
        s.beat("a", "1.0.0", TIMEOUT * 2 + half);
        assert!(matches!(
            s.watcher
                .gate(&target, Compat::Major, s.t0 + TIMEOUT * 2 + half),
            Gate::Waiting(_)
        ));
        s.beat("a", "1.0.0", TIMEOUT * 3 + half);
        assert!(matches!(
            s.watcher
                .gate(&target, Compat::Major, s.t0 + TIMEOUT * 3 + half),
            Gate::Settled(_)
        ));
        // Disconnected: partial again.
        s.watcher.handle_disconnected();
        assert!(matches!(
            s.watcher
                .gate(&target, Compat::Major, s.t0 + TIMEOUT * 3 + half),
            Gate::Waiting(_)
        ));
    }

    #[test]
    fn open_tabs_are_added_up_across_members_and_bounded() {
        let mut s = setup(None);
        let subject = s.names.presence(PresenceKind::Heartbeat);
        let with_tabs = |id: &str, tabs: &[(&str, u64)]| {
            encode(&Presence {
                id: id.into(),
                version: v("2.0.0"),
                incarnation: 1,
                leader: false,
                tabs: tabs.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
                retiring: false,
            })
        };
        s.watcher.handle_message(
            &subject,
            &with_tabs("a", &[("1.0.0", 3), ("2.0.0", 1)]),
            None,
            s.t0,
        );
        s.watcher
            .handle_message(&subject, &with_tabs("b", &[("1.0.0", 2)]), None, s.t0);
        let fleet = s.watcher.fleet(s.t0);
        assert_eq!(fleet.tabs.get("1.0.0"), Some(&5));
        assert_eq!(fleet.tabs.get("2.0.0"), Some(&1));
        // The next heartbeat replaces a member's counts.
        s.watcher
            .handle_message(&subject, &with_tabs("a", &[]), None, s.t0);
        assert_eq!(s.watcher.fleet(s.t0).tabs.get("1.0.0"), Some(&2));
        // A member can claim at most MAX_TAB_VERSIONS versions.
        let many: Vec<(String, u64)> = (0..100).map(|i| (format!("1.{i}.0"), 1)).collect();
        let many: Vec<(&str, u64)> = many.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        s.watcher
            .handle_message(&subject, &with_tabs("c", &many), None, s.t0);
        let c = s
            .watcher
            .fleet(s.t0)
            .members
            .into_iter()
            .find(|m| m.id == "c")
            .unwrap();
        assert_eq!(c.tabs.len(), protocol::MAX_TAB_VERSIONS);
    }

    #[test]
    fn forged_and_malformed_input_is_dropped_and_counted() {
        let key = ClusterKey::new(b"0123456789abcdef-key").unwrap();
        let mut s = setup(Some(key.clone()));
        let subject = s.names.presence(PresenceKind::Heartbeat);
        let payload = presence("a", "9.9.9", 1);
        // No MAC, a wrong one, then a good one.
        s.watcher.handle_message(&subject, &payload, None, s.t0);
        s.watcher
            .handle_message(&subject, &payload, Some("bm90IGEgbWFj"), s.t0);
        let good = key.sign(&subject, b"not json");
        s.watcher
            .handle_message(&subject, b"not json", Some(&good), s.t0);
        let other = "vo.shop.version.request";
        s.watcher
            .handle_message(other, &payload, Some(&key.sign(other, &payload)), s.t0);
        s.watcher
            .handle_record(Some((7, &record("6.6.6", RecordKind::Announcement))));
        let dropped = s.watcher.dropped();
        assert_eq!(dropped.unauthenticated, 3);
        assert_eq!(dropped.malformed, 1);
        assert_eq!(dropped.unknown_subject, 1);
        let fleet = s.watcher.fleet(s.t0);
        assert!(fleet.members.is_empty());
        assert_eq!(fleet.record, None);
        // A sealed record is read.
        s.watcher.handle_record(Some((
            8,
            &key.seal(STATE_KEY, &record("2.0.0", RecordKind::Announcement)),
        )));
        assert_eq!(
            s.watcher.fleet(s.t0).record.unwrap().record.version,
            v("2.0.0")
        );
    }
}
