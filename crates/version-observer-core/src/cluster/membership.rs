//! The membership view: which nodes are alive and which version each runs.
//!
//! Fed by presence messages (nodeup, heartbeat, nodedown) and by replies to the
//! monitor's version requests; a node not heard from for `node_timeout` is gone
//! (that is how a `kill -9` is noticed). Time is passed in, never read, so the
//! view is plain data.
//!
//! A member is one **process**: a node id and the random incarnation the
//! process drew at start. Two live processes with the same id (a copied
//! deployment template) are two members, so both versions count; a restarted
//! node is a new member, and its previous process leaves by nodedown or
//! expires. A nodedown removes exactly the process it names; it is
//! remembered for half a node timeout, so a heartbeat of that process still
//! in flight cannot bring it back, but a forged nodedown cannot hide a live
//! process for longer than that: its next heartbeats are heard again. The
//! set of departures is bounded by time and by size.
//!
//! The view is **warm** only after it has been observing for a whole
//! `node_timeout` without interruption: before that, a live node may simply not
//! have sent its first heartbeat yet, and a monitor deciding on a cold view
//! could see "everybody agrees" while an old node is still serving.
//!
//! Every message passes through the view, so its per-message work does not
//! grow with the cluster: members are also indexed by when they were last
//! heard from (the next to expire first) and counted per version, and
//! departures are indexed by when they are forgotten. Hearing from a member,
//! expiring the silent ones, the next expiry and the agreement cost
//! O(log members), not a scan.

use crate::protocol::MAX_TAB_VERSIONS;
use semver::Version;
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

/// The most departures remembered at once (they also expire).
pub const MAX_DEPARTED: usize = 4_096;

/// The most versions whose last expiry is remembered (the latest kept).
pub const MAX_EXPIRED_VERSIONS: usize = 64;

/// One node process: its id, and the incarnation it drew at start.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Process {
    /// The node id.
    pub id: String,
    /// The process's incarnation (random per process).
    pub incarnation: u64,
}

impl Process {
    /// The process `incarnation` of node `id`.
    pub fn new(id: &str, incarnation: u64) -> Self {
        Self {
            id: id.to_owned(),
            incarnation,
        }
    }
}

/// A live process, as the view knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node id.
    pub id: String,
    /// The version it last said it runs.
    pub version: Version,
    /// Its incarnation.
    pub incarnation: u64,
    /// When it was last heard from (nodeup, heartbeat or reply).
    pub last_seen: Instant,
    /// Whether its last presence message said it holds the monitor lease
    /// (`leader` on the wire).
    pub monitor: bool,
    /// Its open tabs by page version, as its last presence message said
    /// (at most [`MAX_TAB_VERSIONS`] entries).
    pub tabs: BTreeMap<String, u64>,
    /// Whether its last presence message said it is retiring: it still
    /// serves forwarded requests, but no longer counts for settlement.
    pub retiring: bool,
}

impl Member {
    /// Which process it is.
    pub fn process(&self) -> Process {
        Process::new(&self.id, self.incarnation)
    }

    /// How a status shows it at `now`, holding the lease or not as `monitor`
    /// says (its own word, or the reporting node's clock for itself).
    pub fn status(&self, now: Instant, monitor: bool) -> crate::status::MemberStatus {
        crate::status::MemberStatus {
            id: self.id.clone(),
            incarnation: self.incarnation,
            version: self.version.clone(),
            last_seen_ms_ago: u64::try_from(
                now.saturating_duration_since(self.last_seen).as_millis(),
            )
            .unwrap_or(u64::MAX),
            leader: monitor,
            tabs: self.tabs.clone(),
            retiring: self.retiring,
        }
    }
}

/// What a presence message did to the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A process the view did not know joined.
    Joined,
    /// A known process now reports another version.
    VersionChanged,
    /// A known process started (or, after a forged message, stopped)
    /// retiring: it counts for settlement no longer (or again).
    RetiringChanged,
    /// A known process is still there; nothing else changed.
    Refreshed,
    /// The message was from a process that just left, and was ignored.
    Ignored,
}

impl Change {
    /// Whether the set of members or their versions changed.
    pub fn is_material(self) -> bool {
        matches!(
            self,
            Change::Joined | Change::VersionChanged | Change::RetiringChanged
        )
    }
}

/// How far the live members agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    /// Not observed long enough to know every live node, or no member.
    Unknown,
    /// Every live serving member runs this version.
    Settled(Version),
    /// Live serving members run these different versions.
    Mixed(BTreeSet<Version>),
}

/// Which processes are alive and which version each runs (see the module docs).
///
/// ```
/// use std::time::{Duration, Instant};
/// use version_observer_core::cluster::membership::{Agreement, MembershipView};
/// use version_observer_core::Version;
/// let (t0, timeout) = (Instant::now(), Duration::from_secs(3));
/// let mut view = MembershipView::new(timeout);
/// view.start_observing(t0);
/// view.heard("web-1", &Version::new(1, 0, 0), 7, false, t0);
/// assert_eq!(view.agreement(t0), Agreement::Unknown); // still cold
/// let warm = t0 + timeout;
/// view.heard("web-1", &Version::new(1, 0, 0), 7, false, warm);
/// assert_eq!(view.agreement(warm), Agreement::Settled(Version::new(1, 0, 0)));
/// ```
#[derive(Debug, Clone)]
pub struct MembershipView {
    node_timeout: Duration,
    members: BTreeMap<Process, Member>,
    /// Every member by when it was last heard from: the next to expire first.
    by_last_seen: BTreeSet<(Instant, Process)>,
    /// How many serving (not retiring) members run each version (no zero
    /// counts): what settlement is about.
    versions: BTreeMap<Version, usize>,
    /// Open tabs by page version, summed over every member (what their
    /// last presence messages said), kept as they change.
    tabs: BTreeMap<String, u64>,
    /// The retiring members.
    retiring: BTreeSet<Process>,
    /// Processes that said nodedown, until when their late messages are ignored.
    departed: BTreeMap<Process, Instant>,
    /// The same departures by when they are forgotten.
    departed_by_until: BTreeSet<(Instant, Process)>,
    /// When a member of each version last expired (went silent, with no
    /// nodedown): it may be cut off rather than gone. At most
    /// [`MAX_EXPIRED_VERSIONS`] versions, the latest kept.
    expired: BTreeMap<Version, Instant>,
    observing_since: Option<Instant>,
}

impl MembershipView {
    /// An empty view, cold until [`start_observing`](Self::start_observing),
    /// that drops members not heard from for `node_timeout`.
    pub fn new(node_timeout: Duration) -> Self {
        Self {
            node_timeout,
            members: BTreeMap::new(),
            by_last_seen: BTreeSet::new(),
            versions: BTreeMap::new(),
            tabs: BTreeMap::new(),
            retiring: BTreeSet::new(),
            departed: BTreeMap::new(),
            departed_by_until: BTreeSet::new(),
            expired: BTreeMap::new(),
            observing_since: None,
        }
    }

    /// How long a member may stay silent before it expires, which is also
    /// how long the view must observe before it is warm.
    pub fn node_timeout(&self) -> Duration {
        self.node_timeout
    }

    /// How long a nodedown is remembered.
    pub fn departure_memory(&self) -> Duration {
        self.node_timeout / 2
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

    /// A process announced itself (nodeup, heartbeat, or a reply to a
    /// version request); `monitor`: whether it said it holds the monitor
    /// lease (a reply says nothing of it: `false`).
    pub fn heard(
        &mut self,
        id: &str,
        version: &Version,
        incarnation: u64,
        monitor: bool,
        now: Instant,
    ) -> Change {
        let process = Process::new(id, incarnation);
        if self
            .departed
            .get(&process)
            .is_some_and(|until| now < *until)
        {
            return Change::Ignored;
        }
        match self.members.get_mut(&process) {
            Some(m) => {
                if now > m.last_seen {
                    self.by_last_seen.remove(&(m.last_seen, process.clone()));
                    self.by_last_seen.insert((now, process));
                    m.last_seen = now;
                }
                m.monitor = monitor;
                if m.version != *version {
                    if !m.retiring {
                        count_out(&mut self.versions, &m.version);
                        *self.versions.entry(version.clone()).or_default() += 1;
                    }
                    m.version = version.clone();
                    Change::VersionChanged
                } else {
                    Change::Refreshed
                }
            }
            None => {
                let member = Member {
                    id: id.to_owned(),
                    version: version.clone(),
                    incarnation,
                    last_seen: now,
                    monitor,
                    tabs: BTreeMap::new(),
                    retiring: false,
                };
                *self.versions.entry(version.clone()).or_default() += 1;
                self.by_last_seen.insert((now, process.clone()));
                self.members.insert(process, member);
                Change::Joined
            }
        }
    }

    /// Takes `process` out of the members and their indexes.
    fn remove(&mut self, process: &Process) -> Option<Member> {
        let member = self.members.remove(process)?;
        self.by_last_seen
            .remove(&(member.last_seen, process.clone()));
        if member.retiring {
            self.retiring.remove(process);
        } else {
            count_out(&mut self.versions, &member.version);
        }
        sum_tabs(&mut self.tabs, &member.tabs, false);
        Some(member)
    }

    /// What a member's last presence message said of retiring (nothing for
    /// a process that is not a member): [`Change::RetiringChanged`] when it
    /// changed, [`Change::Refreshed`] otherwise.
    pub fn set_retiring(&mut self, id: &str, incarnation: u64, retiring: bool) -> Change {
        let Some(m) = self.members.get_mut(&Process::new(id, incarnation)) else {
            return Change::Ignored;
        };
        if m.retiring == retiring {
            return Change::Refreshed;
        }
        m.retiring = retiring;
        let process = m.process();
        if retiring {
            count_out(&mut self.versions, &m.version);
            self.retiring.insert(process);
        } else {
            *self.versions.entry(m.version.clone()).or_default() += 1;
            self.retiring.remove(&process);
        }
        Change::RetiringChanged
    }

    /// What a member's last presence message said of its open tabs (kept
    /// to [`MAX_TAB_VERSIONS`] entries; nothing for a process that is not a
    /// member).
    pub fn set_tabs(&mut self, id: &str, incarnation: u64, mut tabs: BTreeMap<String, u64>) {
        if let Some(m) = self.members.get_mut(&Process::new(id, incarnation)) {
            if tabs.len() > MAX_TAB_VERSIONS {
                tabs = tabs.into_iter().take(MAX_TAB_VERSIONS).collect();
            }
            if m.tabs != tabs {
                sum_tabs(&mut self.tabs, &m.tabs, false);
                sum_tabs(&mut self.tabs, &tabs, true);
                m.tabs = tabs;
            }
        }
    }

    /// A process announced nodedown; returns whether it was a member.
    pub fn left(&mut self, id: &str, incarnation: u64, now: Instant) -> bool {
        let process = Process::new(id, incarnation);
        self.forget_departures(now);
        if self.departed.len() >= MAX_DEPARTED {
            // Still full (a flood of nodedowns): forget the oldest.
            if let Some((_, oldest)) = self.departed_by_until.pop_first() {
                self.departed.remove(&oldest);
            }
        }
        let until = now + self.departure_memory();
        if let Some(before) = self.departed.insert(process.clone(), until) {
            self.departed_by_until.remove(&(before, process.clone()));
        }
        self.departed_by_until.insert((until, process.clone()));
        self.remove(&process).is_some()
    }

    /// Removes the members not heard from within `node_timeout` (and
    /// departures no longer remembered); returns the processes removed.
    pub fn expire(&mut self, now: Instant) -> Vec<Process> {
        let mut expired = Vec::new();
        while let Some((last_seen, process)) = self.by_last_seen.first() {
            if now.saturating_duration_since(*last_seen) < self.node_timeout {
                break;
            }
            let process = process.clone();
            if let Some(member) = self.remove(&process) {
                self.expired.insert(member.version, now);
                if self.expired.len() > MAX_EXPIRED_VERSIONS {
                    let oldest = self.expired.iter().min_by_key(|(_, at)| **at);
                    if let Some(oldest) = oldest.map(|(v, _)| v.clone()) {
                        self.expired.remove(&oldest);
                    }
                }
            }
            expired.push(process);
        }
        expired.sort();
        self.forget_departures(now);
        expired
    }

    /// Forgets the departures remembered until `now` or earlier.
    fn forget_departures(&mut self, now: Instant) {
        while let Some((until, process)) = self.departed_by_until.first() {
            if now < *until {
                break;
            }
            self.departed.remove(process);
            self.departed_by_until.pop_first();
        }
    }

    /// When a member of each version last expired (silent past the node
    /// timeout, with no nodedown): such a member may be cut off, not gone.
    pub fn expiries(&self) -> &BTreeMap<Version, Instant> {
        &self.expired
    }

    /// Since when the view has been observing (since the last connect).
    pub fn observing_since(&self) -> Option<Instant> {
        self.observing_since
    }

    /// How many nodedowns are remembered now.
    pub fn departures(&self) -> usize {
        self.departed.len()
    }

    /// The earliest moment a member could expire (when to call [`expire`](Self::expire) next).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_last_seen
            .first()
            .map(|(last_seen, _)| *last_seen + self.node_timeout)
    }

    /// The members, in order of id, then incarnation.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The live processes.
    pub fn processes(&self) -> BTreeSet<Process> {
        self.members.keys().cloned().collect()
    }

    /// The live processes that serve (are not retiring): those a
    /// collection round waits for.
    pub fn serving_processes(&self) -> BTreeSet<Process> {
        self.members
            .iter()
            .filter(|(_, m)| !m.retiring)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The retiring members, in order of process (id, then incarnation).
    pub fn retiring(&self) -> impl Iterator<Item = &Member> {
        self.retiring.iter().filter_map(|p| self.members.get(p))
    }

    /// Open tabs by page version across every live member.
    pub fn tabs(&self) -> &BTreeMap<String, u64> {
        &self.tabs
    }

    /// The versions live serving members run, with how many run each.
    pub fn serving_versions(&self) -> &BTreeMap<Version, usize> {
        &self.versions
    }

    /// The member that is this process, if it is one.
    pub fn get(&self, id: &str, incarnation: u64) -> Option<&Member> {
        self.members.get(&Process::new(id, incarnation))
    }

    /// The member that last said it holds the monitor lease, if any.
    pub fn monitor(&self) -> Option<&Member> {
        self.members.values().find(|m| m.monitor)
    }

    /// How far the serving members agree at `now` (retiring ones do not
    /// count): [`Agreement::Unknown`] while the view is cold or has no
    /// serving member. Silent members count until [`expire`](Self::expire)
    /// removes them.
    pub fn agreement(&self, now: Instant) -> Agreement {
        if !self.is_warm(now) || self.versions.is_empty() {
            return Agreement::Unknown;
        }
        match self.versions.first_key_value() {
            Some((only, _)) if self.versions.len() == 1 => Agreement::Settled(only.clone()),
            _ => Agreement::Mixed(self.versions.keys().cloned().collect()),
        }
    }
}

/// Adds (`add`) or takes out one member's tab counts from the sum.
fn sum_tabs(sum: &mut BTreeMap<String, u64>, tabs: &BTreeMap<String, u64>, add: bool) {
    for (label, n) in tabs {
        if *n == 0 {
            continue;
        } else if add {
            *sum.entry(label.clone()).or_default() += n;
        } else if let Some(total) = sum.get_mut(label) {
            *total = total.saturating_sub(*n);
            if *total == 0 {
                sum.remove(label);
            }
        }
    }
}

/// One member fewer runs `version`.
fn count_out(versions: &mut BTreeMap<Version, usize>, version: &Version) {
    if let Some(n) = versions.get_mut(version) {
        *n -= 1;
        if *n == 0 {
            versions.remove(version);
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
        assert!(view.get("a", 1).is_some());
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
        assert!(Change::Joined.is_material() && Change::VersionChanged.is_material());
        assert!(!Change::Refreshed.is_material() && !Change::Ignored.is_material());
    }

    #[test]
    fn two_processes_with_one_id_are_two_members() {
        // A copied deployment template: two live processes named "web".
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("web", &v("1.0.0"), 11, false, t0);
        assert_eq!(
            view.heard("web", &v("0.9.0"), 22, false, t0),
            Change::Joined
        );
        let t = t0 + TIMEOUT - ms(1);
        view.heard("web", &v("1.0.0"), 11, false, t);
        view.heard("web", &v("0.9.0"), 22, false, t);
        assert_eq!(
            view.agreement(t0 + TIMEOUT),
            Agreement::Mixed([v("0.9.0"), v("1.0.0")].into()),
            "both count: no deploy settles early"
        );
        assert_eq!(view.processes().len(), 2);
    }

    #[test]
    fn a_restart_is_a_new_member_and_the_old_process_leaves_or_expires() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("n1", &v("0.1.0"), 5, false, t0);
        // kill -9, restarted on 1.0.0 with a new incarnation.
        view.heard("n1", &v("1.0.0"), 9, false, t0 + ms(100));
        assert_eq!(view.processes().len(), 2);
        view.heard("n1", &v("1.0.0"), 9, false, t0 + ms(2_500));
        assert_eq!(view.expire(t0 + TIMEOUT), vec![Process::new("n1", 5)]);
        assert_eq!(view.agreement(t0 + TIMEOUT), Agreement::Settled(v("1.0.0")));
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
        assert_eq!(view.monitor().unwrap().id, "n1");
        assert!(view.left("n1", 1, t));
        assert_eq!(view.agreement(t), Agreement::Settled(v("1.0.0")));
        assert_eq!(view.monitor(), None);
    }

    #[test]
    fn a_departed_process_stays_gone_while_its_late_messages_may_arrive() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("n1", &v("0.1.0"), 7, false, t0);
        assert!(view.left("n1", 7, t0));
        // A heartbeat that was in flight when it left.
        assert_eq!(
            view.heard("n1", &v("0.1.0"), 7, false, t0 + ms(5)),
            Change::Ignored
        );
        assert!(view.get("n1", 7).is_none());
        // Leaving twice is harmless; a nodedown for an unknown process too.
        assert!(!view.left("n1", 7, t0));
        assert!(!view.left("ghost", 1, t0));
        // The same id restarted is welcome at once.
        assert_eq!(
            view.heard("n1", &v("1.0.0"), 8, false, t0 + ms(6)),
            Change::Joined
        );
    }

    #[test]
    fn a_forged_nodedown_hides_a_live_process_for_less_than_a_node_timeout() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        view.heard("n1", &v("1.0.0"), 7, false, t0);
        // Somebody who saw its incarnation forges its nodedown.
        assert!(view.left("n1", 7, t0 + ms(10)));
        // Its heartbeats are heard again well within a node timeout.
        let mut t = t0 + ms(10);
        let back = loop {
            t += TIMEOUT / 3;
            if view.heard("n1", &v("1.0.0"), 7, false, t) == Change::Joined {
                break t;
            }
            assert!(t < t0 + TIMEOUT * 2, "never heard again");
        };
        assert!(back - (t0 + ms(10)) < TIMEOUT, "hidden for {:?}", back - t0);
        // A nodedown naming an incarnation nobody runs hides nobody.
        assert!(!view.left("n1", 999, t));
        assert!(view.get("n1", 7).is_some());
    }

    #[test]
    fn departures_are_forgotten_and_bounded() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        for i in 0..(MAX_DEPARTED as u64 + 100) {
            view.left("flood", i, t0);
        }
        assert!(view.departures() <= MAX_DEPARTED);
        view.expire(t0 + view.departure_memory());
        assert_eq!(view.departures(), 0);
    }

    #[test]
    fn expiries_are_remembered_by_version_and_nodedowns_are_not() {
        let t0 = Instant::now();
        let mut view = warm_view(t0);
        assert_eq!(view.observing_since(), Some(t0));
        view.heard("cut", &v("2.0.0"), 1, false, t0);
        view.heard("stopped", &v("3.0.0"), 1, false, t0);
        assert!(view.left("stopped", 1, t0 + ms(10)));
        assert_eq!(view.expire(t0 + TIMEOUT), vec![Process::new("cut", 1)]);
        assert_eq!(
            view.expiries(),
            &BTreeMap::from([(v("2.0.0"), t0 + TIMEOUT)]),
            "the silent one may be cut off; the one that said nodedown is gone"
        );
        // Bounded: the latest expiries are kept.
        for i in 0..(MAX_EXPIRED_VERSIONS as u64 + 5) {
            let at = t0 + TIMEOUT + ms(i + 1);
            view.heard("churn", &Version::new(10, i, 0), i, false, at);
            view.expire(at + TIMEOUT);
        }
        assert_eq!(view.expiries().len(), MAX_EXPIRED_VERSIONS);
        assert!(!view.expiries().contains_key(&v("2.0.0")));
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
        assert_eq!(view.expire(t0 + TIMEOUT), vec![Process::new("crashed", 1)]);
        assert_eq!(
            view.processes(),
            [Process::new("alive", 1)].into_iter().collect()
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
        assert_eq!(view.get("a", 1).unwrap().last_seen, t0 + ms(100));
    }

    /// The view as plain scans over its members and departures, the way the
    /// indexes must answer.
    #[derive(Default)]
    struct Plain {
        members: BTreeMap<Process, (Version, Instant)>,
        departed: BTreeMap<Process, Instant>,
        retiring: BTreeSet<Process>,
        tabs: BTreeMap<Process, BTreeMap<String, u64>>,
    }

    impl Plain {
        fn heard(&mut self, p: Process, version: &Version, now: Instant) -> Change {
            if self.departed.get(&p).is_some_and(|until| now < *until) {
                return Change::Ignored;
            }
            match self.members.get_mut(&p) {
                Some((v, seen)) => {
                    *seen = (*seen).max(now);
                    if v != version {
                        *v = version.clone();
                        Change::VersionChanged
                    } else {
                        Change::Refreshed
                    }
                }
                None => {
                    self.members.insert(p, (version.clone(), now));
                    Change::Joined
                }
            }
        }

        fn left(&mut self, p: Process, now: Instant) -> bool {
            self.departed.retain(|_, until| now < *until);
            self.departed.insert(p.clone(), now + TIMEOUT / 2);
            self.forget(&p);
            self.members.remove(&p).is_some()
        }

        fn forget(&mut self, p: &Process) {
            self.retiring.remove(p);
            self.tabs.remove(p);
        }

        fn set_retiring(&mut self, p: Process, retiring: bool) {
            if self.members.contains_key(&p) {
                if retiring {
                    self.retiring.insert(p);
                } else {
                    self.retiring.remove(&p);
                }
            }
        }

        fn set_tabs(&mut self, p: Process, tabs: BTreeMap<String, u64>) {
            if self.members.contains_key(&p) {
                self.tabs.insert(p, tabs);
            }
        }

        fn tabs(&self) -> BTreeMap<String, u64> {
            let mut sum = BTreeMap::new();
            for tabs in self.tabs.values() {
                for (label, n) in tabs {
                    *sum.entry(label.clone()).or_default() += n;
                }
            }
            sum.retain(|_, n| *n > 0);
            sum
        }

        fn expire(&mut self, now: Instant) -> Vec<Process> {
            let expired: Vec<Process> = self
                .members
                .iter()
                .filter(|(_, (_, seen))| now.saturating_duration_since(*seen) >= TIMEOUT)
                .map(|(p, _)| p.clone())
                .collect();
            self.members.retain(|p, _| !expired.contains(p));
            expired.iter().for_each(|p| self.forget(p));
            self.departed.retain(|_, until| now < *until);
            expired
        }

        fn agreement(&self) -> Agreement {
            let versions: BTreeSet<Version> = self
                .members
                .iter()
                .filter(|(p, _)| !self.retiring.contains(p))
                .map(|(_, (v, _))| v.clone())
                .collect();
            match versions.len() {
                0 => Agreement::Unknown,
                1 => Agreement::Settled(versions.into_iter().next().unwrap()),
                _ => Agreement::Mixed(versions),
            }
        }
    }

    #[test]
    fn the_indexes_answer_what_a_plain_scan_would() {
        let mut next = crate::cluster::schedule::seeded(0x9e37_79b9_7f4a_7c15);
        let versions = [v("1.0.0"), v("1.1.0"), v("2.0.0")];
        let t0 = Instant::now();
        let mut now = t0;
        let (mut view, mut plain) = (warm_view(t0), Plain::default());
        now += TIMEOUT;
        for step in 0..20_000 {
            now += ms(next(120));
            let p = Process::new(&format!("n{}", next(12)), 1 + next(2));
            match next(10) {
                0 => assert_eq!(
                    view.left(&p.id, p.incarnation, now),
                    plain.left(p, now),
                    "step {step}"
                ),
                1 | 2 => assert_eq!(view.expire(now), plain.expire(now), "step {step}"),
                3 => {
                    let retiring = next(3) == 0;
                    view.set_retiring(&p.id, p.incarnation, retiring);
                    plain.set_retiring(p, retiring);
                }
                4 => {
                    let tabs: BTreeMap<String, u64> = (0..next(3))
                        .map(|_| (versions[next(3) as usize].to_string(), next(4)))
                        .collect();
                    view.set_tabs(&p.id, p.incarnation, tabs.clone());
                    plain.set_tabs(p, tabs);
                }
                _ => {
                    let version = &versions[next(3) as usize];
                    let heard = view.heard(&p.id, version, p.incarnation, false, now);
                    assert_eq!(heard, plain.heard(p, version, now), "step {step}");
                }
            }
            assert_eq!(view.agreement(now), plain.agreement(), "step {step}");
            assert_eq!(
                view.next_expiry(),
                plain
                    .members
                    .values()
                    .map(|(_, seen)| *seen + TIMEOUT)
                    .min(),
                "step {step}"
            );
            assert_eq!(
                view.processes(),
                plain.members.keys().cloned().collect(),
                "step {step}"
            );
            assert_eq!(view.departures(), plain.departed.len(), "step {step}");
            assert_eq!(*view.tabs(), plain.tabs(), "step {step}");
            assert_eq!(
                view.retiring()
                    .map(Member::process)
                    .collect::<BTreeSet<_>>(),
                plain.retiring,
                "step {step}"
            );
            assert_eq!(
                view.serving_processes(),
                plain
                    .members
                    .keys()
                    .filter(|p| !plain.retiring.contains(p))
                    .cloned()
                    .collect(),
                "step {step}"
            );
        }
    }
}
