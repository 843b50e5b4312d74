//! Retiring: a node told to stop that keeps serving the pages of its
//! version for a while, instead of dying under them.
//!
//! A retiring node has left the load balancer (its readiness answers
//! `503`, page loads are refused), says so in its presence messages, no
//! longer counts for settlement (so the new version is announced as soon
//! as every *serving* node runs it) and no longer stands for the monitor
//! lease (a retiring monitor hands it back first). It keeps answering the
//! requests other nodes forward to its version ([`crate::affinity`]), and
//! exits when no open page has needed it for a grace period (by default
//! [`DEFAULT_RETIRE_GRACE`](crate::timing::DEFAULT_RETIRE_GRACE)), or when its
//! time to retire runs out, whichever comes first.
//!
//! Which open pages need it ([`needs_me`]) comes from the tab counts every
//! member's heartbeats carry, by page version: a page of exactly its
//! version that no serving member runs exactly (Leptos derives server
//! function URLs from the build), or a page it is compatible with that no
//! serving member is compatible with. While the node cannot tell (it is
//! not connected, or its view is not warm), it assumes it is needed.
//!
//! Plain data, time passed in: [`Retirement`] says when it is over and when
//! to look again ([`next_deadline`](Retirement::next_deadline)).

use super::membership::Process;
use crate::compat::Compat;
use semver::Version;
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// Why a retirement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireEnd {
    /// No open page needed the node for the whole grace period.
    Drained,
    /// Its time to retire ran out, pages or not.
    TimedOut,
}

/// One node's retirement. See the [module docs](self).
///
/// ```
/// use std::time::{Duration, Instant};
/// use version_observer_core::cluster::retire::{RetireEnd, Retirement};
/// let t0 = Instant::now();
/// let mut retirement = Retirement::new(t0, Duration::from_secs(600), Duration::from_secs(10));
/// retirement.observe(t0, true); // an old tab is still open
/// assert_eq!(retirement.end(t0 + Duration::from_secs(60)), None);
/// let closed = t0 + Duration::from_secs(61);
/// retirement.observe(closed, false);
/// assert_eq!(retirement.next_deadline(), closed + Duration::from_secs(10));
/// assert_eq!(retirement.end(closed + Duration::from_secs(10)), Some(RetireEnd::Drained));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    started: Instant,
    until: Instant,
    grace: Duration,
    /// Since when no open page has needed this node (`None`: one does now).
    quiet_since: Option<Instant>,
}

impl Retirement {
    /// A retirement that starts at `now`, lasts at most `retire_for`, and
    /// ends early once no page has needed the node for `grace`. Until the
    /// first [`observe`](Self::observe), the node counts as needed.
    pub fn new(now: Instant, retire_for: Duration, grace: Duration) -> Self {
        Self {
            started: now,
            until: now + retire_for,
            grace,
            quiet_since: None,
        }
    }

    /// When it started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When it ends at the latest.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// Whether some open page needs this node at `now` (or it cannot tell).
    pub fn observe(&mut self, now: Instant, needed: bool) {
        match (needed, self.quiet_since) {
            (true, _) => self.quiet_since = None,
            (false, None) => self.quiet_since = Some(now),
            (false, Some(_)) => {}
        }
    }

    /// Whether it is over at `now`, and why.
    pub fn end(&self, now: Instant) -> Option<RetireEnd> {
        if self.quiet_since.is_some_and(|q| now >= q + self.grace) {
            Some(RetireEnd::Drained)
        } else if now >= self.until {
            Some(RetireEnd::TimedOut)
        } else {
            None
        }
    }

    /// When [`end`](Self::end) could next change its answer.
    pub fn next_deadline(&self) -> Instant {
        match self.quiet_since {
            Some(quiet) => self.until.min(quiet + self.grace),
            None => self.until,
        }
    }
}

/// Whether open pages still need this retiring node (`me`, of version
/// `version`): `tabs` are open tabs by page version across the cluster
/// (labels that are not versions: `unknown` pages named none and cannot be
/// routed; `other` stands for versions beyond the per-node label cap and
/// counts as a page only some retiring node can serve), `serving` the
/// versions live serving members run, `retiring` every retiring member
/// (this one included or not).
///
/// A page needs a retiring node when no serving member runs its exact
/// build (Leptos derives server function URLs from the build) and, failing
/// that, none is compatible with it. Then one retiring node is enough: the
/// **keeper**, the first (by node id, then incarnation) of the retiring
/// members of the page's exact version, or, without one, of those
/// compatible with it. The others can leave: in a rolling deploy, every
/// old node but one goes once its grace period is over.
///
/// ```
/// use std::collections::BTreeMap;
/// use version_observer_core::{cluster::{membership::Process, retire::needs_me}, Compat, Version};
/// let (me, v1) = (Process::new("web-1", 7), Version::new(1, 0, 0));
/// let serving: BTreeMap<Version, usize> = [(Version::new(2, 0, 0), 3)].into();
/// let tabs: BTreeMap<String, u64> = [("1.0.0".into(), 1), ("2.0.0".into(), 40)].into();
/// assert!(needs_me(&me, &v1, Compat::Major, &serving, &[], &tabs));
/// // Another retiring 1.0.0 node that comes first keeps the old tabs.
/// let other = (Process::new("web-0", 3), v1.clone());
/// assert!(!needs_me(&me, &v1, Compat::Major, &serving, &[other], &tabs));
/// ```
pub fn needs_me(
    me: &Process,
    version: &Version,
    compat: Compat,
    serving: &BTreeMap<Version, usize>,
    retiring: &[(Process, Version)],
    tabs: &BTreeMap<String, u64>,
) -> bool {
    // Every retiring member, this one included, in order.
    let mut all: Vec<(&Process, &Version)> = retiring.iter().map(|(p, v)| (p, v)).collect();
    if !all.iter().any(|(p, _)| *p == me) {
        all.push((me, version));
    }
    all.sort();
    let keeper = |fits: &dyn Fn(&Version) -> bool| {
        all.iter()
            .find(|(_, v)| fits(v))
            .is_some_and(|(p, _)| *p == me)
    };
    tabs.iter().filter(|(_, n)| **n > 0).any(|(label, _)| {
        let Ok(page) = label.parse::<Version>() else {
            // Unknown versions: the first retiring member keeps them.
            return label == "other" && keeper(&|_| true);
        };
        if serving.contains_key(&page) {
            return false;
        }
        if all.iter().any(|(_, v)| **v == page) {
            return keeper(&|v| *v == page);
        }
        if serving.keys().any(|v| compat.compatible(&page, v)) {
            return false;
        }
        keeper(&|v| compat.compatible(&page, v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn which_pages_need_a_retiring_node() {
        use Compat::*;
        // (me, compat, serving versions, other retiring members, open pages, needed)
        type Row = (
            &'static str,
            Compat,
            &'static [&'static str],
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, u64)],
            bool,
        );
        let table: &[Row] = &[
            // The page's own build is gone from the serving nodes: needed.
            ("1.0.0", Major, &["2.0.0"], &[], &[("1.0.0", 1)], true),
            // No open page of it: not needed.
            ("1.0.0", Major, &["2.0.0"], &[], &[("2.0.0", 9)], false),
            ("1.0.0", Major, &["2.0.0"], &[], &[], false),
            ("1.0.0", Major, &["2.0.0"], &[], &[("1.0.0", 0)], false),
            // A serving node of the exact build takes them.
            (
                "1.0.0",
                Major,
                &["1.0.0", "2.0.0"],
                &[],
                &[("1.0.0", 3)],
                false,
            ),
            // A patch deploy: compatible serving nodes exist, but the exact
            // build is wanted (server function URLs).
            ("1.0.0", Major, &["1.0.1"], &[], &[("1.0.0", 1)], true),
            // A page of another old build it is compatible with, which no
            // serving node is: needed...
            ("1.0.1", Major, &["2.0.0"], &[], &[("1.0.0", 1)], true),
            // ...unless a serving node is compatible with it...
            (
                "1.0.1",
                Major,
                &["1.2.0", "2.0.0"],
                &[],
                &[("1.0.0", 1)],
                false,
            ),
            // ...or a retiring node of its exact build keeps it.
            (
                "1.0.1",
                Major,
                &["2.0.0"],
                &[("z9", "1.0.0")],
                &[("1.0.0", 1)],
                false,
            ),
            // A page it cannot serve: not its business.
            ("1.0.0", Major, &["2.0.0"], &[], &[("3.0.0", 1)], false),
            ("1.0.0", Minor, &["2.0.0"], &[], &[("1.1.0", 1)], false),
            // Labels that are not versions.
            ("1.0.0", Major, &["2.0.0"], &[], &[("unknown", 5)], false),
            ("1.0.0", Major, &["2.0.0"], &[], &[("other", 1)], true),
            (
                "1.0.0",
                Major,
                &["2.0.0"],
                &[("a0", "0.9.0")],
                &[("other", 1)],
                false,
            ),
            // No serving node at all: every page it can serve needs it.
            ("1.0.0", Major, &[], &[], &[("1.3.0", 1)], true),
            // One retiring node per page is enough: the first by id.
            (
                "1.0.0",
                Major,
                &["2.0.0"],
                &[("a0", "1.0.0")],
                &[("1.0.0", 4)],
                false,
            ),
            (
                "1.0.0",
                Major,
                &["2.0.0"],
                &[("z9", "1.0.0")],
                &[("1.0.0", 4)],
                true,
            ),
            // An exact keeper comes before a compatible one, whatever the ids.
            (
                "1.0.0",
                Major,
                &["2.0.0"],
                &[("a0", "1.0.5")],
                &[("1.0.0", 1)],
                true,
            ),
            (
                "1.0.5",
                Major,
                &["2.0.0"],
                &[("z9", "1.0.0")],
                &[("1.0.0", 1)],
                false,
            ),
        ];
        let me = Process::new("m5", 1);
        for (version, compat, serving, retiring, tabs, needed) in table {
            let serving: BTreeMap<Version, usize> = serving.iter().map(|s| (v(s), 1)).collect();
            let retiring: Vec<(Process, Version)> = retiring
                .iter()
                .map(|(id, version)| (Process::new(id, 1), v(version)))
                .collect();
            let tabs: BTreeMap<String, u64> =
                tabs.iter().map(|(l, n)| ((*l).to_owned(), *n)).collect();
            assert_eq!(
                needs_me(&me, &v(version), *compat, &serving, &retiring, &tabs),
                *needed,
                "{version} {compat:?} serving {serving:?} retiring {retiring:?} tabs {tabs:?}"
            );
            // Listing this node among the retiring changes nothing.
            let mut with_me = retiring.clone();
            with_me.push((me.clone(), v(version)));
            assert_eq!(
                needs_me(&me, &v(version), *compat, &serving, &with_me, &tabs),
                *needed
            );
        }
    }

    #[test]
    fn a_retirement_ends_after_a_quiet_grace_period_or_its_time() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = Retirement::new(t0, s(100), s(10));
        // Needed until told otherwise.
        assert_eq!(r.next_deadline(), t0 + s(100));
        assert_eq!(r.end(t0 + s(50)), None);
        // Quiet, then needed again: the grace period starts over.
        r.observe(t0 + s(1), false);
        r.observe(t0 + s(5), false);
        assert_eq!(r.next_deadline(), t0 + s(11));
        assert_eq!(r.end(t0 + s(10)), None);
        r.observe(t0 + s(10), true);
        assert_eq!(r.end(t0 + s(11)), None);
        assert_eq!(r.next_deadline(), t0 + s(100));
        r.observe(t0 + s(20), false);
        assert_eq!(r.end(t0 + s(29)), None);
        assert_eq!(r.end(t0 + s(30)), Some(RetireEnd::Drained));
        // Never quiet: its time runs out.
        let mut busy = Retirement::new(t0, s(100), s(10));
        busy.observe(t0 + s(99), true);
        assert_eq!(busy.end(t0 + s(99)), None);
        assert_eq!(busy.end(t0 + s(100)), Some(RetireEnd::TimedOut));
        // A grace period that would end after its time: its time wins.
        let mut late = Retirement::new(t0, s(100), s(10));
        late.observe(t0 + s(95), false);
        assert_eq!(late.next_deadline(), t0 + s(100));
        assert_eq!(late.end(t0 + s(100)), Some(RetireEnd::TimedOut));
    }
}
