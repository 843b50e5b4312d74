//! The monitor's algorithm: when to collect versions, what a collection round
//! says, and whether the cluster has news.
//!
//! 1. A **round** asks every node for its version (request-reply, scatter-gather
//!    with a deadline) and compares the replies with the membership view taken
//!    when it started: [`assess`].
//!    - a member that did not reply: `Incomplete`, retry with backoff, a bounded
//!      number of times; after that wait for the membership to change (a dead
//!      node expires from the view after `node_timeout`, which starts a round);
//!    - replies that differ: `Mixed`, a deploy is in progress: wait;
//!    - all equal: `Settled`.
//! 2. A settled version is **news** only if it is incompatible with the last
//!    announced one: [`decide`]. The first settled version of a new cluster is
//!    its baseline, recorded but not announced. Rollbacks are news too, but
//!    only once no member of the announced version can merely be cut off:
//!    [`rollback_held`].
//! 3. Rounds run when the membership changes, when this node becomes the monitor,
//!    and every `safety_interval` as a safety net: [`Scheduler`].
//!
//! No I/O and no clock here: the transport feeds results and `now` in.

use super::membership::Process;
use crate::{compat::Compat, release::Release};
use semver::Version;
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

/// What one collection round found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// Every expected member replied, all with this version.
    Settled(Version),
    /// Every expected member replied, with these different versions.
    Mixed(BTreeSet<Version>),
    /// These members did not reply before the deadline.
    Incomplete {
        /// The expected members that gave no reply; empty when nobody was
        /// expected and nobody replied.
        missing: BTreeSet<Process>,
    },
}

/// Compares the replies of a round with the members expected to give one.
/// Replies from nodes the view did not know are counted (they are alive).
pub fn assess(expected: &BTreeSet<Process>, replies: &BTreeMap<Process, Version>) -> RoundOutcome {
    let missing: BTreeSet<Process> = expected
        .difference(&replies.keys().cloned().collect())
        .cloned()
        .collect();
    if !missing.is_empty() || replies.is_empty() {
        return RoundOutcome::Incomplete { missing };
    }
    let versions: BTreeSet<Version> = replies.values().cloned().collect();
    if versions.len() == 1 {
        RoundOutcome::Settled(versions.into_iter().next().expect("one version"))
    } else {
        RoundOutcome::Mixed(versions)
    }
}

/// A collection round in progress: who must still answer, and what was
/// answered. The transport feeds it replies and departures as they happen and
/// asks whether it is over; it never waits on it, so a node that does not
/// answer delays nothing but this round's own verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// The round's number; its replies come to `<inbox>.<number>`.
    pub number: u64,
    /// When it started (its version request was published).
    pub started: Instant,
    /// `started` plus the round timeout: from then on the round is over,
    /// whoever has not answered.
    pub deadline: Instant,
    /// The members expected to answer (the view when it started, less any
    /// that left or expired since).
    members: BTreeSet<Process>,
    replies: BTreeMap<Process, Version>,
    /// The release metadata of the replies that carried any.
    releases: BTreeMap<Process, Release>,
    /// How many of `members` have answered: a round checks whether it is
    /// complete after every reply, without a pass over its members.
    answered: usize,
}

impl Round {
    /// Round `number`, started at `started`, waiting for an answer from each
    /// of `members` until `started + timeout`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use version_observer_core::{cluster::{membership::Process, monitor::{Round, RoundOutcome}}, Version};
    /// let t0 = Instant::now();
    /// let (a, b) = (Process::new("a", 1), Process::new("b", 1));
    /// let members = [a.clone(), b.clone()].into();
    /// let mut round = Round::new(1, members, t0, Duration::from_millis(500));
    /// round.reply(a, &Version::new(1, 0, 0));
    /// assert!(!round.is_over(t0));
    /// round.reply(b, &Version::new(1, 0, 0));
    /// assert!(round.is_over(t0));
    /// assert_eq!(round.outcome(), RoundOutcome::Settled(Version::new(1, 0, 0)));
    /// ```
    pub fn new(
        number: u64,
        members: BTreeSet<Process>,
        started: Instant,
        timeout: Duration,
    ) -> Self {
        Self {
            number,
            started,
            deadline: started + timeout,
            members,
            replies: BTreeMap::new(),
            releases: BTreeMap::new(),
            answered: 0,
        }
    }

    /// A reply arrived. One from a node the view did not know counts too: it
    /// is alive, so its version matters.
    pub fn reply(&mut self, process: Process, version: &Version) {
        self.reply_with_release(process, version, None);
    }

    /// A reply that carried release metadata (already checked,
    /// [`Release::validate`]); like [`reply`](Self::reply) otherwise.
    pub fn reply_with_release(
        &mut self,
        process: Process,
        version: &Version,
        release: Option<Release>,
    ) {
        match release {
            Some(release) => self.releases.insert(process.clone(), release),
            None => self.releases.remove(&process),
        };
        let member = self.members.contains(&process);
        if self.replies.insert(process, version.clone()).is_none() && member {
            self.answered += 1;
        }
    }

    /// A member left or expired during the round: it is not waited for, and
    /// its answer, if it gave one, no longer counts.
    pub fn departed(&mut self, process: &Process) {
        let member = self.members.remove(process);
        if self.replies.remove(process).is_some() && member {
            self.answered -= 1;
        }
        self.releases.remove(process);
    }

    /// The release of the answers that count so far, merged by
    /// [`Release::merge`] (the same whatever the order of the answers);
    /// for a settled round, the settled version's release.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use version_observer_core::{cluster::{membership::Process, monitor::Round}, Release, Severity, Version};
    /// let (a, b) = (Process::new("a", 1), Process::new("b", 1));
    /// let mut round = Round::new(1, [a.clone(), b.clone()].into(), Instant::now(), Duration::from_millis(500));
    /// let required = Release { severity: Severity::Required, ..Release::default() };
    /// round.reply_with_release(a, &Version::new(2, 0, 0), Some(required.clone()));
    /// round.reply(b, &Version::new(2, 0, 0));
    /// assert_eq!(round.release(), Some(required));
    /// ```
    pub fn release(&self) -> Option<Release> {
        Release::merge(
            self.replies
                .keys()
                .map(|p| (p.id.as_str(), self.releases.get(p))),
        )
    }

    /// Every expected member answered (and somebody did).
    pub fn is_complete(&self) -> bool {
        !self.replies.is_empty() && self.answered == self.members.len()
    }

    /// Whether the round has its verdict at `now`: every expected member
    /// answered, or the deadline has passed.
    pub fn is_over(&self, now: Instant) -> bool {
        self.is_complete() || now >= self.deadline
    }

    /// How many members are expected to answer (those that departed during
    /// the round are not).
    pub fn expected(&self) -> usize {
        self.members.len()
    }

    /// How many answers count so far, including those of nodes the view did
    /// not know.
    pub fn replies(&self) -> usize {
        self.replies.len()
    }

    /// What the answers so far say ([`assess`]); the verdict once
    /// [`is_over`](Self::is_over).
    pub fn outcome(&self) -> RoundOutcome {
        assess(&self.members, &self.replies)
    }
}

/// What the monitor should record after a settled round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No version was ever recorded: record this one as the baseline, quietly.
    Baseline(Version),
    /// Incompatible with the last announced version: announce it.
    Announce {
        /// The settled version to announce.
        version: Version,
        /// The last recorded version, which it replaces.
        previous: Version,
    },
    /// Compatible with the last announced version: nothing to say.
    NoNews,
}

/// Whether `settled` is news, given the last recorded version.
pub fn decide(settled: &Version, last: Option<&Version>, compat: Compat) -> Decision {
    match last {
        None => Decision::Baseline(settled.clone()),
        Some(last) if compat.compatible(last, settled) => Decision::NoNews,
        Some(last) => Decision::Announce {
            version: settled.clone(),
            previous: last.clone(),
        },
    }
}

/// Until when an announcement of `settled` is held, if it is a rollback
/// (older than the `announced` version) that members of the announced
/// version might still undo: one of them expired (went silent past the node
/// timeout, with no nodedown: cut off, frozen or crashed, nobody can tell)
/// less than `hold` ago (`expiries`: when a member of each version last
/// expired), or this node has been observing for less than `hold`
/// (`observing_since`: it cannot know who left how before). Members of the
/// announced version that left with nodedown hold nothing, so a rollback
/// deploy that stops the new nodes is announced at once.
///
/// Without it, a partition during a deploy could announce the new version
/// (the old nodes cut off), then the old one (the new nodes cut off, the old
/// back), then the new one again: each tab told to reload twice.
///
/// ```
/// use std::{collections::BTreeMap, time::{Duration, Instant}};
/// use version_observer_core::{cluster::monitor::rollback_held, Compat, Version};
/// let (t0, hold) = (Instant::now(), Duration::from_secs(30));
/// let (old, new) = (Version::new(1, 0, 0), Version::new(2, 0, 0));
/// let now = t0 + Duration::from_secs(60);
/// // A 2.0.0 node went silent 5 s ago: the rollback to 1.0.0 waits.
/// let expiries = BTreeMap::from([(new.clone(), now - Duration::from_secs(5))]);
/// let held = rollback_held(&old, &new, Compat::Major, &expiries, Some(t0), hold, now);
/// assert_eq!(held, Some(now + Duration::from_secs(25)));
/// // An upgrade is never held.
/// assert_eq!(rollback_held(&new, &old, Compat::Major, &expiries, Some(t0), hold, now), None);
/// ```
pub fn rollback_held(
    settled: &Version,
    announced: &Version,
    compat: Compat,
    expiries: &BTreeMap<Version, Instant>,
    observing_since: Option<Instant>,
    hold: Duration,
    now: Instant,
) -> Option<Instant> {
    if settled.cmp_precedence(announced).is_ge() {
        return None;
    }
    let expired = expiries
        .iter()
        .filter(|(version, _)| compat.compatible(version, announced))
        .map(|(_, at)| *at)
        .max();
    let until = [expired, observing_since]
        .into_iter()
        .flatten()
        .max()
        .map(|since| since + hold)
        // Not observing at all: nothing is known; the next connect starts over.
        .unwrap_or(now + hold);
    (now < until).then_some(until)
}

/// Retry policy for incomplete rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry; each further retry waits twice as
    /// long as the one before.
    pub first: Duration,
    /// The longest delay before any one retry.
    pub max: Duration,
    /// Retries before giving up until the membership changes.
    pub attempts: u32,
}

impl Backoff {
    fn delay(&self, attempt: u32) -> Duration {
        self.first
            .saturating_mul(1 << attempt.min(16))
            .min(self.max)
    }
}

/// Decides when the next round is due.
#[derive(Debug, Clone)]
pub struct Scheduler {
    safety_interval: Duration,
    backoff: Backoff,
    next_round: Instant,
    failed_rounds: u32,
}

impl Scheduler {
    /// A scheduler with a round due at `now`, that retries incomplete rounds
    /// as `backoff` says and otherwise collects at least every
    /// `safety_interval`.
    pub fn new(safety_interval: Duration, backoff: Backoff, now: Instant) -> Self {
        Self {
            safety_interval,
            backoff,
            next_round: now,
            failed_rounds: 0,
        }
    }

    /// Collect at `at`, unless a round is due earlier.
    pub fn collect_at(&mut self, at: Instant) {
        self.next_round = self.next_round.min(at);
    }

    /// The membership changed, or this node just became the monitor: collect now.
    pub fn collect_now(&mut self, now: Instant) {
        self.next_round = self.next_round.min(now);
        self.failed_rounds = 0;
    }

    /// Whether a round should start at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next_round
    }

    /// When the next round is due (possibly already past).
    pub fn next_round(&self) -> Instant {
        self.next_round
    }

    /// Records a round's outcome and schedules the next one.
    pub fn finished(&mut self, outcome: &RoundOutcome, now: Instant) {
        self.next_round = match outcome {
            RoundOutcome::Incomplete { .. } if self.failed_rounds < self.backoff.attempts => {
                let delay = self.backoff.delay(self.failed_rounds);
                self.failed_rounds += 1;
                now + delay
            }
            RoundOutcome::Incomplete { .. } => {
                // Enough retries: the silent member is either slow (the safety
                // net will ask again) or dead (its expiry will change the membership).
                now + self.safety_interval
            }
            RoundOutcome::Settled(_) | RoundOutcome::Mixed(_) => {
                self.failed_rounds = 0;
                now + self.safety_interval
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn ids(list: &[&str]) -> BTreeSet<Process> {
        list.iter().map(|s| p(s)).collect()
    }

    /// Process `id`, incarnation 1.
    fn p(id: &str) -> Process {
        Process::new(id, 1)
    }

    fn replies(list: &[(&str, &str)]) -> BTreeMap<Process, Version> {
        list.iter().map(|(id, ver)| (p(id), v(ver))).collect()
    }

    /// (members expected, replies (id, version), outcome)
    type AssessCase = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        RoundOutcome,
    );

    #[test]
    fn assess_table() {
        use RoundOutcome::*;
        let cases: Vec<AssessCase> = vec![
            (
                &["a", "b"],
                &[("a", "1.0.0"), ("b", "1.0.0")],
                Settled(v("1.0.0")),
            ),
            (
                &["a", "b"],
                &[("a", "0.1.0"), ("b", "1.0.0")],
                Mixed([v("0.1.0"), v("1.0.0")].into()),
            ),
            // a hung node
            (
                &["a", "b", "c"],
                &[("a", "1.0.0"), ("b", "1.0.0")],
                Incomplete {
                    missing: ids(&["c"]),
                },
            ),
            // an unknown node replied: it is alive and counts
            (
                &["a"],
                &[("a", "1.0.0"), ("new", "0.9.0")],
                Mixed([v("0.9.0"), v("1.0.0")].into()),
            ),
            (
                &["a"],
                &[("a", "1.0.0"), ("new", "1.0.0")],
                Settled(v("1.0.0")),
            ),
            // the view was empty and somebody answered
            (&[], &[("a", "2.0.0")], Settled(v("2.0.0"))),
            // nobody at all: nothing can be concluded
            (&[], &[], Incomplete { missing: ids(&[]) }),
            // pre-release versions and build metadata
            (
                &["a", "b"],
                &[("a", "1.0.0-rc.1"), ("b", "1.0.0-rc.1")],
                Settled(v("1.0.0-rc.1")),
            ),
            (
                &["a", "b"],
                &[("a", "1.0.0+x"), ("b", "1.0.0+y")],
                Mixed([v("1.0.0+x"), v("1.0.0+y")].into()),
            ),
        ];
        for (expected, got, want) in cases {
            assert_eq!(
                assess(&ids(expected), &replies(got)),
                want,
                "{expected:?} {got:?}"
            );
        }
    }

    #[test]
    fn decide_table() {
        use Decision::*;
        let cases = [
            // a brand-new cluster: the first settled version is the baseline, not news
            ("1.0.0", None, Compat::Major, Baseline(v("1.0.0"))),
            // same or compatible: no news
            ("1.0.0", Some("1.0.0"), Compat::Major, NoNews),
            ("1.4.0", Some("1.0.0"), Compat::Major, NoNews),
            // incompatible upgrade
            (
                "1.0.0",
                Some("0.1.0"),
                Compat::Major,
                Announce {
                    version: v("1.0.0"),
                    previous: v("0.1.0"),
                },
            ),
            // rollbacks are announced too
            (
                "0.1.0",
                Some("1.0.0"),
                Compat::Major,
                Announce {
                    version: v("0.1.0"),
                    previous: v("1.0.0"),
                },
            ),
            // the policy decides
            (
                "1.1.0",
                Some("1.0.0"),
                Compat::Minor,
                Announce {
                    version: v("1.1.0"),
                    previous: v("1.0.0"),
                },
            ),
            ("1.0.1", Some("1.0.0"), Compat::Minor, NoNews),
            // pre-releases
            (
                "2.0.0-rc.1",
                Some("1.0.0"),
                Compat::Major,
                Announce {
                    version: v("2.0.0-rc.1"),
                    previous: v("1.0.0"),
                },
            ),
            (
                "2.0.0",
                Some("2.0.0-rc.1"),
                Compat::Major,
                Announce {
                    version: v("2.0.0"),
                    previous: v("2.0.0-rc.1"),
                },
            ),
        ];
        for (settled, last, compat, want) in cases {
            let last = last.map(v);
            assert_eq!(
                decide(&v(settled), last.as_ref(), compat),
                want,
                "{settled} after {last:?} ({compat})"
            );
        }
    }

    const BACKOFF: Backoff = Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_millis(1_000),
        attempts: 4,
    };
    const SAFETY: Duration = Duration::from_secs(10);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn incomplete_rounds_back_off_then_wait_for_the_safety_net() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(SAFETY, BACKOFF, t0);
        assert!(s.is_due(t0));
        let hung = RoundOutcome::Incomplete {
            missing: ids(&["c"]),
        };
        let mut now = t0;
        for want in [100, 200, 400, 800] {
            s.finished(&hung, now);
            assert_eq!(s.next_round() - now, ms(want));
            now = s.next_round();
        }
        s.finished(&hung, now);
        assert_eq!(
            s.next_round() - now,
            SAFETY,
            "bounded: no more fast retries"
        );
        // The hung node expires: membership changed, collect at once, retries reset.
        s.collect_now(now + ms(5));
        assert!(s.is_due(now + ms(5)));
        s.finished(&hung, now + ms(5));
        assert_eq!(s.next_round() - (now + ms(5)), ms(100));
    }

    #[test]
    fn complete_rounds_wait_for_the_safety_interval_or_a_change() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(SAFETY, BACKOFF, t0);
        s.finished(&RoundOutcome::Mixed([v("1.0.0"), v("2.0.0")].into()), t0);
        assert!(!s.is_due(t0 + SAFETY - ms(1)));
        assert!(s.is_due(t0 + SAFETY));
        s.collect_now(t0 + ms(300));
        assert!(s.is_due(t0 + ms(300)));
        s.finished(&RoundOutcome::Settled(v("2.0.0")), t0 + ms(300));
        assert_eq!(s.next_round(), t0 + ms(300) + SAFETY);
    }

    fn round(members: &[&str]) -> (Round, Instant) {
        let t0 = Instant::now();
        (Round::new(7, ids(members), t0, ms(500)), t0)
    }

    #[test]
    fn a_round_is_over_once_every_member_answered() {
        let (mut r, t0) = round(&["a", "b"]);
        assert!(!r.is_over(t0));
        r.reply(p("a"), &v("1.0.0"));
        assert!(!r.is_complete());
        r.reply(p("b"), &v("1.0.0"));
        assert!(r.is_complete() && r.is_over(t0 + ms(1)));
        assert_eq!(r.outcome(), RoundOutcome::Settled(v("1.0.0")));
        assert_eq!((r.expected(), r.replies(), r.number), (2, 2, 7));
    }

    #[test]
    fn a_silent_member_ends_the_round_at_its_deadline() {
        let (mut r, t0) = round(&["a", "hung"]);
        r.reply(p("a"), &v("1.0.0"));
        assert!(!r.is_over(t0 + ms(499)));
        assert!(r.is_over(t0 + ms(500)));
        assert_eq!(
            r.outcome(),
            RoundOutcome::Incomplete {
                missing: ids(&["hung"])
            }
        );
    }

    #[test]
    fn a_member_that_dies_mid_round_is_no_longer_waited_for() {
        // The old node crashes during the round: once it expires, the round
        // completes with the survivors at once, not at its deadline.
        let (mut r, t0) = round(&["old", "new-1", "new-2"]);
        r.reply(p("new-1"), &v("1.0.0"));
        r.reply(p("new-2"), &v("1.0.0"));
        assert!(!r.is_complete());
        r.departed(&p("old"));
        assert!(r.is_over(t0 + ms(10)));
        assert_eq!(r.outcome(), RoundOutcome::Settled(v("1.0.0")));
    }

    #[test]
    fn the_answer_of_a_node_that_then_left_does_not_count() {
        let (mut r, _) = round(&["old", "new"]);
        r.reply(p("old"), &v("0.1.0"));
        r.reply(p("new"), &v("1.0.0"));
        assert_eq!(
            r.outcome(),
            RoundOutcome::Mixed([v("0.1.0"), v("1.0.0")].into())
        );
        r.departed(&p("old"));
        assert_eq!(r.outcome(), RoundOutcome::Settled(v("1.0.0")));
    }

    #[test]
    fn a_stranger_that_answers_counts_and_nobody_at_all_decides_nothing() {
        let (mut r, _) = round(&["a"]);
        r.reply(p("a"), &v("1.0.0"));
        r.reply(p("newcomer"), &v("2.0.0-rc.1"));
        assert_eq!(
            r.outcome(),
            RoundOutcome::Mixed([v("1.0.0"), v("2.0.0-rc.1")].into())
        );
        let (empty, t1) = round(&[]);
        assert!(!empty.is_complete() && !empty.is_over(t1) && empty.is_over(t1 + ms(500)));
        assert_eq!(
            empty.outcome(),
            RoundOutcome::Incomplete { missing: ids(&[]) }
        );
    }

    #[test]
    fn completeness_is_counted_as_a_pass_over_the_members_would_find_it() {
        // Answers (repeated, from strangers) and departures (before and
        // after answering) in a long random order, on several rounds.
        let mut next = crate::cluster::schedule::seeded(0x2545_f491_4f6c_dd1d);
        let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
        for _ in 0..500 {
            let members: Vec<&str> = names[..next(6) as usize]
                .iter()
                .map(|s| s.as_str())
                .collect();
            let (mut r, _) = round(&members);
            for _ in 0..12 {
                let who = p(&names[next(8) as usize]);
                if next(4) == 0 {
                    r.departed(&who);
                } else {
                    r.reply(who, &v("1.0.0"));
                }
                let plain =
                    !r.replies.is_empty() && r.members.iter().all(|m| r.replies.contains_key(m));
                assert_eq!(r.is_complete(), plain, "{:?} {:?}", r.members, r.replies);
            }
        }
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(BACKOFF.delay(0), ms(100));
        assert_eq!(BACKOFF.delay(3), ms(800));
        assert_eq!(BACKOFF.delay(4), ms(1_000));
        assert_eq!(BACKOFF.delay(40), ms(1_000));
    }

    #[test]
    fn a_rounds_release_is_merged_from_the_answers_that_count() {
        use crate::release::Severity;
        let (mut r, _) = round(&["a", "b"]);
        let required = Release {
            severity: Severity::Required,
            notes_url: Some("/b".into()),
            min_supported: None,
        };
        let optional = Release {
            notes_url: Some("/a".into()),
            ..Release::default()
        };
        r.reply_with_release(p("b"), &v("2.0.0"), Some(required.clone()));
        r.reply_with_release(p("a"), &v("2.0.0"), Some(optional.clone()));
        assert_eq!(
            r.release(),
            Some(Release {
                notes_url: Some("/a".into()),
                ..required.clone()
            })
        );
        // b leaves: its release no longer counts.
        r.departed(&p("b"));
        assert_eq!(r.release(), Some(optional));
        // a answers again without one: none.
        r.reply(p("a"), &v("2.0.0"));
        assert_eq!(r.release(), None);
    }

    #[test]
    fn a_rollback_waits_while_a_member_of_the_announced_version_may_be_cut_off() {
        let t0 = Instant::now();
        let hold = ms(30_000);
        let (old, new, newer_patch) = (v("1.0.0"), v("2.0.0"), v("2.0.1"));
        let now = t0 + ms(100_000);
        let held =
            |settled: &Version, expiries: &[(&Version, u64)], observing: u64, now: Instant| {
                let expiries: BTreeMap<Version, Instant> = expiries
                    .iter()
                    .map(|(v, at)| ((*v).clone(), t0 + ms(*at)))
                    .collect();
                rollback_held(
                    settled,
                    &new,
                    Compat::Major,
                    &expiries,
                    Some(t0 + ms(observing)),
                    hold,
                    now,
                )
            };
        // An upgrade, or a version as new: never held.
        assert_eq!(held(&v("3.0.0"), &[(&new, 99_000)], 99_000, now), None);
        // A pre-release of the announced version is older: a rollback.
        assert_eq!(
            held(&v("2.0.0-rc.1"), &[(&new, 95_000)], 0, now),
            Some(t0 + ms(125_000))
        );
        // Observing long enough, nobody of 2.x silent: announced at once
        // (the new nodes said nodedown).
        assert_eq!(held(&old, &[], 0, now), None);
        // A 2.x member (any compatible build) went silent 5 s ago: held
        // until 30 s after it, then no longer.
        assert_eq!(
            held(&old, &[(&newer_patch, 95_000)], 0, now),
            Some(t0 + ms(125_000))
        );
        assert_eq!(
            held(&old, &[(&newer_patch, 95_000)], 0, t0 + ms(125_000)),
            None
        );
        // An expiry of another version holds nothing.
        assert_eq!(
            held(&old, &[(&v("0.9.0"), 99_000), (&old, 99_000)], 0, now),
            None
        );
        // This node observes since 10 s ago: it cannot know who left how.
        assert_eq!(held(&old, &[], 90_000, now), Some(t0 + ms(120_000)));
        // The later of the two counts.
        assert_eq!(
            held(&old, &[(&new, 95_000)], 90_000, now),
            Some(t0 + ms(125_000))
        );
        // Not observing at all: held a full hold from now.
        assert_eq!(
            rollback_held(&old, &new, Compat::Major, &BTreeMap::new(), None, hold, now),
            Some(now + hold)
        );
    }

    #[test]
    fn a_round_can_be_asked_for_later_but_never_postponed() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(SAFETY, BACKOFF, t0);
        s.finished(&RoundOutcome::Settled(v("1.0.0")), t0);
        assert_eq!(s.next_round(), t0 + SAFETY);
        s.collect_at(t0 + ms(1));
        assert_eq!(s.next_round(), t0 + ms(1));
        s.collect_at(t0 + SAFETY);
        assert_eq!(s.next_round(), t0 + ms(1), "an earlier round stays");
    }
}
