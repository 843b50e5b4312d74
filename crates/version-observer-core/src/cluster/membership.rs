//! The membership view: which nodes are alive and which version each runs.
//!
//! Fed by presence messages (nodeup, heartbeat, nodedown) and by replies to the
//! monitor's version requests; a node not heard from for `node_timeout` is gone
//! (that is how a `kill -9` is noticed). Time is passed in, never read, so the
//! view is plain data.
//!
//! The view is **warm** only after it has been observing for a whole
//! `node_timeout` without interruption: before that, a live node may simply not
//! have sent its first heartbeat yet, and a monitor deciding on a cold view
//! could see "everybody agrees" while an old node is still serving.

use semver::Version;
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

/// One node process. `incarnation` tells a restarted node (same id) from its
/// previous life, so a late heartbeat of the old process cannot revive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub version: Version,
    pub incarnation: u64,
    pub last_seen: Instant,
    pub leader: bool,
}

/// What a presence message did to the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A node we did not know (or a new incarnation of one) joined.
    Joined,
    /// A known node now reports another version.
    VersionChanged,
    /// A known node is still there; nothing else changed.
    Refreshed,
    /// The message was stale (an incarnation that already left) and was ignored.
    Ignored,
}

impl Change {
    /// Whether the set of members or their versions changed.
    pub fn is_material(self) -> bool {
        matches!(self, Change::Joined | Change::VersionChanged)
    }
}

/// How far the live members agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    /// Not observed long enough to know every live node.
    Unknown,
    /// Every live member runs this version.
    Settled(Version),
    /// Live members run these different versions.
    Mixed(BTreeSet<Version>),
}

#[derive(Debug, Clone)]
pub struct MembershipView {
    node_timeout: Duration,
    members: BTreeMap<String, Member>,
    /// Incarnations that announced nodedown, by id: their late messages are ignored.
    departed: BTreeMap<String, u64>,
    observing_since: Option<Instant>,
}

impl MembershipView {
    pub fn new(node_timeout: Duration) -> Self {
        Self {
            node_timeout,
            members: BTreeMap::new(),
            departed: BTreeMap::new(),
            observing_since: None,
        }
    }

    pub fn node_timeout(&self) -> Duration {
        self.node_timeout
    }

    /// Starts (or restarts, after a reconnect) observing: the view is cold for
    /// one `node_timeout` from `now`. Members already known are kept; they
    /// expire as usual if they stay silent.
    pub fn start_observing(&mut self, now: Instant) {
        self.observing_since = Some(now);
    }

    /// Stops observing (the connection is gone): the view is cold until
    /// [`start_observing`](Self::start_observing) and a full timeout after it.
    pub fn stop_observing(&mut self) {
        self.observing_since = None;
    }

    /// When the view becomes warm, if it is observing.
    pub fn warm_at(&self) -> Option<Instant> {
        self.observing_since.map(|since| since + self.node_timeout)
    }

    /// Whether every live node has had a full `node_timeout` to be heard.
    pub fn is_warm(&self, now: Instant) -> bool {
        self.observing_since
            .is_some_and(|since| now.saturating_duration_since(since) >= self.node_timeout)
    }

    /// A node announced itself (nodeup, heartbeat, or a reply to a version request).
    pub fn heard(
        &mut self,
        id: &str,
        version: &Version,
        incarnation: u64,
        leader: bool,
        now: Instant,
    ) -> Change {
        if self
            .departed
            .get(id)
            .is_some_and(|gone| incarnation <= *gone)
        {
            return Change::Ignored;
        }
        match self.members.get_mut(id) {
            Some(m) if incarnation < m.incarnation => Change::Ignored,
            Some(m) if incarnation == m.incarnation => {
                m.last_seen = m.last_seen.max(now);
                m.leader = leader;
                if m.version != *version {
                    m.version = version.clone();
                    Change::VersionChanged
                } else {
                    Change::Refreshed
                }
            }
            _ => {
                let member = Member {
                    id: id.to_owned(),
                    version: version.clone(),
                    incarnation,
                    last_seen: now,
                    leader,
                };
                self.members.insert(id.to_owned(), member);
                Change::Joined
            }
        }
    }

    /// A node announced nodedown; returns whether it was a member.
    pub fn left(&mut self, id: &str, incarnation: u64) -> bool {
        let gone = self.departed.entry(id.to_owned()).or_insert(incarnation);
        *gone = (*gone).max(incarnation);
        match self.members.get(id) {
            Some(m) if m.incarnation <= incarnation => self.members.remove(id).is_some(),
            _ => false,
        }
    }

    /// Removes the members not heard from within `node_timeout`; returns their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let timeout = self.node_timeout;
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| now.saturating_duration_since(m.last_seen) >= timeout)
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.members.remove(id);
        }
        expired
    }

    /// The earliest moment a member could expire (when to call [`expire`](Self::expire) next).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.members
            .values()
            .map(|m| m.last_seen + self.node_timeout)
            .min()
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member_ids(&self) -> BTreeSet<String> {
        self.members.keys().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<&Member> {
        self.members.get(id)
    }

    /// The member that last said it holds the monitor lease, if any.
    pub fn leader(&self) -> Option<&Member> {
        self.members.values().find(|m| m.leader)
    }

    pub fn agreement(&self, now: Instant) -> Agreement {
        if !self.is_warm(now) || self.members.is_empty() {
            return Agreement::Unknown;
        }
        let versions: BTreeSet<Version> =
            self.members.values().map(|m| m.version.clone()).collect();
        if versions.len() == 1 {
            Agreement::Settled(versions.into_iter().next().expect("one version"))
        } else {
            Agreement::Mixed(versions)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(3);

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn warm_view(t0: Instant) -> MembershipView {
        let mut view = MembershipView::new(TIMEOUT);
        view.start_observing(t0);
        view
    }

    #[test]
    fn cold_until_a_full_timeout_of_observation() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("a", &v("1.0.0"), 1, false, t0);
        assert_eq!(view.agreement(t0), Agreement::Unknown);
        assert_eq!(view.agreement(t0 + TIMEOUT - ms(1)), Agreement::Unknown);
        view.heard("a", &v("1.0.0"), 1, false, t0 + ms(2_000));
        assert_eq!(view.agreement(t0 + TIMEOUT), Agreement::Settled(v("1.0.0")));
        assert_eq!(view.warm_at(), Some(t0 + TIMEOUT));

        // A reconnect makes it cold again, members kept.
        view.stop_observing();
        assert_eq!(view.warm_at(), None);
        assert_eq!(view.agreement(t0 + TIMEOUT), Agreement::Unknown);
        view.start_observing(t0 + ms(4_000));
        assert_eq!(view.agreement(t0 + ms(4_000)), Agreement::Unknown);
        assert!(view.get("a").is_some());
    }

    #[test]
    fn joins_changes_and_refreshes() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        assert_eq!(view.heard("a", &v("0.1.0"), 1, false, t0), Change::Joined);
        assert_eq!(
            view.heard("a", &v("0.1.0"), 1, false, t0 + ms(1)),
            Change::Refreshed
        );
        assert_eq!(
            view.heard("a", &v("1.0.0"), 1, false, t0 + ms(2)),
            Change::VersionChanged
        );
        // A restart under the same id is a new member.
        assert_eq!(
            view.heard("a", &v("1.0.0"), 2, false, t0 + ms(3)),
            Change::Joined
        );
        // ...and the old process's late heartbeat is ignored.
        assert_eq!(
            view.heard("a", &v("0.1.0"), 1, false, t0 + ms(4)),
            Change::Ignored
        );
        assert_eq!(view.get("a").unwrap().version, v("1.0.0"));
        assert!(Change::Joined.is_material() && Change::VersionChanged.is_material());
        assert!(!Change::Refreshed.is_material() && !Change::Ignored.is_material());
    }

    #[test]
    fn mixed_then_settled_during_a_rolling_deploy() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("n1", &v("0.1.0"), 1, true, t0);
        view.heard("n2", &v("1.0.0"), 1, false, t0);
        view.heard("n3", &v("1.0.0"), 1, false, t0);
        let t = t0 + TIMEOUT;
        view.heard("n1", &v("0.1.0"), 1, true, t);
        view.heard("n2", &v("1.0.0"), 1, false, t);
        view.heard("n3", &v("1.0.0"), 1, false, t);
        assert_eq!(
            view.agreement(t),
            Agreement::Mixed([v("0.1.0"), v("1.0.0")].into_iter().collect())
        );
        assert_eq!(view.leader().unwrap().id, "n1");
        assert!(view.left("n1", 1));
        assert_eq!(view.agreement(t), Agreement::Settled(v("1.0.0")));
        assert_eq!(view.leader(), None);
    }

    #[test]
    fn a_departed_incarnation_stays_gone() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("n1", &v("0.1.0"), 7, false, t0);
        assert!(view.left("n1", 7));
        // A heartbeat that was in flight when it left.
        assert_eq!(
            view.heard("n1", &v("0.1.0"), 7, false, t0 + ms(5)),
            Change::Ignored
        );
        assert!(view.get("n1").is_none());
        // Leaving twice is harmless; a nodedown for an unknown node too.
        assert!(!view.left("n1", 7));
        assert!(!view.left("ghost", 1));
        // The same id restarted later is welcome.
        assert_eq!(
            view.heard("n1", &v("1.0.0"), 8, false, t0 + ms(6)),
            Change::Joined
        );
    }

    #[test]
    fn a_nodedown_of_an_old_incarnation_does_not_remove_the_new_one() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("n1", &v("1.0.0"), 9, false, t0);
        assert!(!view.left("n1", 8));
        assert!(view.get("n1").is_some());
    }

    #[test]
    fn silent_members_expire_after_the_timeout() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("alive", &v("1.0.0"), 1, false, t0);
        view.heard("crashed", &v("0.1.0"), 1, false, t0);
        assert_eq!(view.next_expiry(), Some(t0 + TIMEOUT));
        view.heard("alive", &v("1.0.0"), 1, false, t0 + ms(2_500));
        assert!(view.expire(t0 + TIMEOUT - ms(1)).is_empty());
        assert_eq!(view.expire(t0 + TIMEOUT), vec!["crashed".to_string()]);
        assert_eq!(
            view.member_ids(),
            ["alive".to_string()].into_iter().collect()
        );
        assert_eq!(view.agreement(t0 + TIMEOUT), Agreement::Settled(v("1.0.0")));
        assert_eq!(view.next_expiry(), Some(t0 + ms(2_500) + TIMEOUT));
    }

    #[test]
    fn an_empty_view_knows_nothing() {
        let t0 = Instant::now();
        let view = warm_view(t0);
        assert_eq!(view.agreement(t0 + TIMEOUT), Agreement::Unknown);
        assert_eq!(view.next_expiry(), None);
    }

    #[test]
    fn out_of_order_heartbeats_never_move_last_seen_back() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("a", &v("1.0.0"), 1, false, t0 + ms(100));
        view.heard("a", &v("1.0.0"), 1, false, t0);
        assert_eq!(view.get("a").unwrap().last_seen, t0 + ms(100));
    }
}
