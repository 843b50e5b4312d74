//! When the open page should offer a reload: a pure function of the page's own
//! version and the node's latest [`ClusterView`], so it can be tested without a browser.
//!
//! The rules, in order:
//! 1. No announced version yet: no banner.
//! 2. The page is compatible with the announced version: no banner.
//! 3. The page is *older* than the announced version: banner. The cluster has
//!    moved past this page for good, so later deploys in progress never hide it
//!    again (no flapping).
//! 4. The page is *newer* than (or as new as) the announced version: it was
//!    served by a node of a deploy still in progress. Stay quiet while the
//!    cluster is mixed or unknown; only when the live nodes have settled on a
//!    version compatible with the announcement (a rollback that stuck) is the
//!    page stale.
//!
//! How urgent the reload is ([`Staleness`]) comes from the announcement's
//! release metadata: `required` if the release says so, or if the page is
//! older than its minimum supported version; `optional` otherwise. Release
//! metadata never makes a page stale by itself: a page compatible with the
//! announced version gets no banner, whatever the release says.

use crate::{
    release::{Release, Severity},
    report::{ClusterState, ClusterView},
    skew::{Stale, StaleClient},
};
use semver::Version;

/// The version the banner should name, or `None` to show no banner.
pub fn stale_page_target<'a>(page: &Version, view: &'a ClusterView) -> Option<&'a Version> {
    let announced = view.announced_version.as_ref()?;
    if view.compat.compatible(page, announced) {
        return None;
    }
    if page.cmp_precedence(announced).is_lt() {
        return Some(announced);
    }
    let settled_on_announced = view.state == ClusterState::Settled
        && view
            .settled_version
            .as_ref()
            .is_some_and(|settled| view.compat.compatible(settled, announced));
    settled_on_announced.then_some(announced)
}

/// A stale page's banner: the version it names, and how urgent reloading is
/// for this page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staleness {
    /// The version the banner names ([`stale_page_target`]).
    pub target: Version,
    /// How urgent reloading is for this page ([`Release::severity_for`]
    /// of the announcement's release; [`Severity::Optional`] without one).
    pub severity: Severity,
    /// The announcement's release metadata, as announced (validated).
    pub release: Option<Release>,
}

impl Staleness {
    /// Whether the page must reload ([`Severity::Required`]).
    pub fn required(&self) -> bool {
        self.severity == Severity::Required
    }

    /// The release notes of the announced version, if its operators gave any
    /// (an `https://`/`http://` URL or a path on the site, validated).
    pub fn notes_url(&self) -> Option<&str> {
        self.release.as_ref()?.notes_url.as_deref()
    }
}

/// [`stale_page_target`], with how urgent the reload is for `page`: `None`
/// for no banner. A release in `view` that fails [`Release::validate`] is
/// ignored.
///
/// ```
/// use version_observer_core::{banner::staleness, ClusterView, Compat, Release, Severity, Version};
/// let release = Release {
///     notes_url: Some("/releases/2.0".into()),
///     min_supported: Some(Version::new(1, 5, 0)),
///     ..Release::default()
/// };
/// let view = ClusterView::single_node(&Version::new(2, 0, 0), Compat::Major)
///     .with_release(Some(release));
/// let old = staleness(&Version::new(1, 4, 0), &view).unwrap();
/// assert!(old.required(), "older than the minimum supported version");
/// assert_eq!(old.notes_url(), Some("/releases/2.0"));
/// let newer = staleness(&Version::new(1, 6, 0), &view).unwrap();
/// assert_eq!(newer.severity, Severity::Optional);
/// assert_eq!(staleness(&Version::new(2, 0, 1), &view), None, "compatible: no banner");
/// ```
pub fn staleness(page: &Version, view: &ClusterView) -> Option<Staleness> {
    let target = stale_page_target(page, view)?.clone();
    let release = view
        .announced_release
        .clone()
        .filter(|r| r.validate().is_ok());
    Some(Staleness {
        target,
        severity: release
            .as_ref()
            .map_or(Severity::Optional, |r| r.severity_for(page)),
        release,
    })
}

/// What an open page has learned from every report it received, and the
/// banner that follows: the rules of [`stale_page_target`], made monotonic.
///
/// - The newest announcement (by KV revision) wins: a stream that reconnects
///   to a node that has not yet read the latest record never takes it back.
/// - Once a page is stale it stays stale (no flapping while a later deploy is
///   in progress); only a newer announcement can change the target, or clear
///   it when the page is current again (a rollback to the page's version).
/// - The release metadata (severity, notes) is the one of the newest
///   announcement, like the version; see [`staleness`](Self::staleness).
///
/// ```
/// use version_observer_core::{banner::PageKnowledge, ClusterView, ClusterState, Compat, Version};
/// let page = Version::new(1, 0, 0);
/// let mut known = PageKnowledge::default();
/// let announced = ClusterView {
///     state: ClusterState::Settled,
///     settled_version: Some(Version::new(2, 0, 0)),
///     announced_version: Some(Version::new(2, 0, 0)),
///     announced_revision: Some(7),
///     compat: Compat::Major,
///     announced_release: None,
/// };
/// known.learn(&page, announced.clone());
/// assert_eq!(known.stale_target(), Some(&Version::new(2, 0, 0)));
/// // The stream moves to a node that has not read record 7 yet:
/// let behind = ClusterView {
///     state: ClusterState::Unknown,
///     settled_version: None,
///     announced_version: Some(Version::new(1, 0, 0)),
///     announced_revision: Some(3),
///     ..announced
/// };
/// known.learn(&page, behind);
/// assert_eq!(known.stale_target(), Some(&Version::new(2, 0, 0)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageKnowledge {
    view: Option<ClusterView>,
    stale: Option<Staleness>,
    stale_revision: Option<u64>,
}

impl PageKnowledge {
    /// Takes in the next report's view, for a page of version `page` (the
    /// same page every time).
    pub fn learn(&mut self, page: &Version, mut view: ClusterView) {
        // Never trust metadata that fails the check, whoever sent it.
        view.announced_release = view
            .announced_release
            .filter(|r| r.validate().is_ok())
            .and_then(Release::non_empty);
        if let Some(known) = &self.view {
            if view.announced_revision < known.announced_revision {
                // This node knows less: keep the newer announcement.
                view.announced_version = known.announced_version.clone();
                view.announced_revision = known.announced_revision;
                view.announced_release = known.announced_release.clone();
            } else if view.announced_revision.is_some()
                && view.announced_revision == known.announced_revision
                && view.announced_release.is_none()
            {
                // The same record from a node that does not pass release
                // metadata on (an older version, mid-deploy): keep what
                // the page knows of it.
                view.announced_release = known.announced_release.clone();
            }
        }
        match staleness(page, &view) {
            Some(stale) => {
                self.stale = Some(stale);
                self.stale_revision = view.announced_revision;
            }
            None if view.announced_revision > self.stale_revision => {
                self.stale = None;
                self.stale_revision = view.announced_revision;
            }
            None => {}
        }
        self.view = Some(view);
    }

    /// A server refused one of this page's requests because the page is
    /// behind it ([`StaleClient`] with [`Stale::Page`]): the page is stale
    /// for the server's version at once, before any report says so (a
    /// request that reached a new node mid-deploy breaks just the same).
    /// Monotonic like [`learn`](Self::learn): it never lowers the target,
    /// and only a newer announcement clears it. Returns whether the banner
    /// changed; an answer about another page version, or one where the
    /// server is behind, changes nothing.
    ///
    /// ```
    /// use version_observer_core::{banner::PageKnowledge, skew::check, Compat, Version};
    /// let page = Version::new(1, 0, 0);
    /// let mut known = PageKnowledge::default();
    /// let answer = check(&page, &Version::new(2, 0, 0), Compat::Major, None).unwrap();
    /// assert!(known.refused(&page, &answer));
    /// assert_eq!(known.stale_target(), Some(&Version::new(2, 0, 0)));
    /// ```
    pub fn refused(&mut self, page: &Version, answer: &StaleClient) -> bool {
        if answer.stale != Stale::Page || &answer.page_version != page {
            return false;
        }
        let newer = self
            .stale
            .as_ref()
            .is_none_or(|s| s.target.cmp_precedence(&answer.server_version).is_lt());
        if !newer {
            return false;
        }
        let severity = if answer.min_supported.is_some() {
            Severity::Required
        } else {
            Severity::Optional
        };
        self.stale = Some(Staleness {
            target: answer.server_version.clone(),
            severity,
            release: None,
        });
        true
    }

    /// The cluster as the page knows it: the last report, with the newest
    /// announcement seen.
    pub fn view(&self) -> Option<&ClusterView> {
        self.view.as_ref()
    }

    /// The version the banner names, or `None` for no banner.
    pub fn stale_target(&self) -> Option<&Version> {
        self.stale.as_ref().map(|s| &s.target)
    }

    /// The banner: the version it names, how urgent reloading is for this
    /// page, and the release notes; `None` for no banner.
    ///
    /// ```
    /// use version_observer_core::{banner::PageKnowledge, ClusterView, Compat, Release, Severity, Version};
    /// let page = Version::new(1, 0, 0);
    /// let mut known = PageKnowledge::default();
    /// let release = Release {
    ///     severity: Severity::Required,
    ///     notes_url: Some("https://example.com/2.0".into()),
    ///     min_supported: None,
    /// };
    /// known.learn(&page, ClusterView::single_node(&Version::new(2, 0, 0), Compat::Major)
    ///     .with_release(Some(release.clone())));
    /// let stale = known.staleness().unwrap();
    /// assert_eq!(stale.target, Version::new(2, 0, 0));
    /// assert!(stale.required() && known.required());
    /// assert_eq!(known.notes_url(), Some("https://example.com/2.0"));
    /// assert_eq!(known.stale_release(), Some(&release));
    /// ```
    pub fn staleness(&self) -> Option<&Staleness> {
        self.stale.as_ref()
    }

    /// The release metadata of the announcement the banner names, if its
    /// operators gave any; `None` without a banner.
    pub fn stale_release(&self) -> Option<&Release> {
        self.stale.as_ref()?.release.as_ref()
    }

    /// Whether this page must reload: it is stale, and the announcement's
    /// release says `required` or the page is older than its minimum
    /// supported version. `false` without a banner.
    pub fn required(&self) -> bool {
        self.stale.as_ref().is_some_and(Staleness::required)
    }

    /// The announced version's release notes, while the page is stale.
    pub fn notes_url(&self) -> Option<&str> {
        self.stale.as_ref()?.notes_url()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::Compat;
    use ClusterState::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn view(state: ClusterState, settled: Option<&str>, announced: Option<&str>) -> ClusterView {
        ClusterView {
            state,
            settled_version: settled.map(v),
            announced_version: announced.map(v),
            announced_revision: None,
            compat: Compat::Major,
            announced_release: None,
        }
    }

    /// (page, state, settled, announced, expected banner)
    #[allow(clippy::type_complexity)]
    const TABLE: &[(&str, ClusterState, Option<&str>, Option<&str>, Option<&str>)] = &[
        // nothing announced yet
        ("0.1.0", Unknown, None, None, None),
        ("0.1.0", Settled, Some("1.0.0"), None, None),
        // the page is current, or compatible with the announcement
        ("0.1.0", Settled, Some("0.1.0"), Some("0.1.0"), None),
        ("1.0.0", Settled, Some("1.1.0"), Some("1.0.0"), None),
        ("1.1.0", Settled, Some("1.0.0"), Some("1.0.0"), None),
        // an old page, while the deploy is in progress: the old version is still announced
        ("0.1.0", Mixed, None, Some("0.1.0"), None),
        // an old page after the announcement: banner, whatever happens next
        (
            "0.1.0",
            Settled,
            Some("1.0.0"),
            Some("1.0.0"),
            Some("1.0.0"),
        ),
        ("0.1.0", Mixed, None, Some("1.0.0"), Some("1.0.0")),
        ("0.1.0", Unknown, None, Some("1.0.0"), Some("1.0.0")),
        // a new page served mid-deploy: quiet until the cluster decides
        ("1.0.0", Mixed, None, Some("0.1.0"), None),
        ("1.0.0", Unknown, None, Some("0.1.0"), None),
        // ...settled on the new version but not yet announced: still quiet (no flash)
        ("1.0.0", Settled, Some("1.0.0"), Some("0.1.0"), None),
        // ...the deploy was rolled back and the cluster settled on the old version
        (
            "1.0.0",
            Settled,
            Some("0.1.0"),
            Some("0.1.0"),
            Some("0.1.0"),
        ),
        (
            "1.0.0",
            Settled,
            Some("0.1.5"),
            Some("0.1.0"),
            Some("0.1.0"),
        ),
        // a rollback that was announced
        (
            "2.0.0",
            Settled,
            Some("1.0.0"),
            Some("1.0.0"),
            Some("1.0.0"),
        ),
        // pre-releases
        (
            "1.0.0-rc.1",
            Settled,
            Some("1.0.0"),
            Some("1.0.0"),
            Some("1.0.0"),
        ),
        (
            "1.0.0-rc.1",
            Settled,
            Some("1.0.0-rc.1"),
            Some("1.0.0-rc.1"),
            None,
        ),
        ("1.0.0", Mixed, None, Some("1.0.0-rc.2"), None),
    ];

    #[test]
    fn banner_table() {
        for (page, state, settled, announced, expected) in TABLE {
            let view = view(*state, *settled, *announced);
            assert_eq!(
                stale_page_target(&v(page), &view).cloned(),
                expected.map(v),
                "page {page}, {state:?}, settled {settled:?}, announced {announced:?}"
            );
        }
    }

    #[test]
    fn policy_comes_from_the_view() {
        let mut minor = view(Settled, Some("1.1.0"), Some("1.1.0"));
        assert_eq!(stale_page_target(&v("1.0.0"), &minor), None);
        minor.compat = Compat::Minor;
        assert_eq!(stale_page_target(&v("1.0.0"), &minor), Some(&v("1.1.0")));
    }

    fn at(mut view: ClusterView, revision: u64) -> ClusterView {
        view.announced_revision = Some(revision);
        view
    }

    #[test]
    fn a_node_that_knows_less_never_takes_the_banner_away() {
        let page = v("0.1.0");
        let mut known = PageKnowledge::default();
        known.learn(&page, at(view(Settled, Some("1.0.0"), Some("1.0.0")), 5));
        assert_eq!(known.stale_target(), Some(&v("1.0.0")));
        // Reconnected to a node still on the baseline record.
        known.learn(&page, at(view(Unknown, None, Some("0.1.0")), 2));
        assert_eq!(known.stale_target(), Some(&v("1.0.0")));
        assert_eq!(known.view().unwrap().announced_version, Some(v("1.0.0")));
        assert_eq!(
            known.view().unwrap().state,
            Unknown,
            "the rest is the new report"
        );
    }

    #[test]
    fn a_stale_page_stays_stale_while_the_next_deploy_is_mixed() {
        // A new page served mid-deploy, then the deploy was rolled back.
        let page = v("1.0.0");
        let mut known = PageKnowledge::default();
        known.learn(&page, at(view(Settled, Some("0.1.0"), Some("0.1.0")), 3));
        assert_eq!(known.stale_target(), Some(&v("0.1.0")));
        known.learn(&page, at(view(Mixed, None, Some("0.1.0")), 3));
        assert_eq!(known.stale_target(), Some(&v("0.1.0")), "no flapping");
    }

    #[test]
    fn a_newer_announcement_moves_or_clears_the_target() {
        let page = v("1.0.0");
        let mut known = PageKnowledge::default();
        known.learn(&page, at(view(Settled, Some("2.0.0"), Some("2.0.0")), 4));
        assert_eq!(known.stale_target(), Some(&v("2.0.0")));
        known.learn(&page, at(view(Settled, Some("3.0.0"), Some("3.0.0")), 6));
        assert_eq!(known.stale_target(), Some(&v("3.0.0")));
        // Rolled back to the page's own version, announced: current again.
        known.learn(&page, at(view(Settled, Some("1.0.0"), Some("1.0.0")), 9));
        assert_eq!(known.stale_target(), None);
    }

    #[test]
    fn without_revisions_a_single_node_report_is_taken_as_is() {
        let page = v("1.0.0");
        let mut known = PageKnowledge::default();
        known.learn(&page, view(Settled, Some("1.0.0"), Some("1.0.0")));
        assert_eq!(known.stale_target(), None);
        known.learn(&page, view(Settled, Some("2.0.0"), Some("2.0.0")));
        assert_eq!(known.stale_target(), Some(&v("2.0.0")));
    }

    fn rel(severity: Severity, url: Option<&str>, min: Option<&str>) -> Release {
        Release {
            severity,
            notes_url: url.map(str::to_owned),
            min_supported: min.map(v),
        }
    }

    fn with(mut view: ClusterView, release: Option<Release>) -> ClusterView {
        view.announced_release = release;
        view
    }

    /// (page, state, settled, announced, release severity, min supported,
    /// expected banner and severity)
    #[allow(clippy::type_complexity)]
    const SEVERITY_TABLE: &[(
        &str,
        ClusterState,
        Option<&str>,
        &str,
        Option<Severity>,
        Option<&str>,
        Option<(&str, Severity)>,
    )] = &[
        // an old page, no release metadata: optional
        (
            "1.0.0",
            Settled,
            Some("2.0.0"),
            "2.0.0",
            None,
            None,
            Some(("2.0.0", Severity::Optional)),
        ),
        (
            "1.0.0",
            Settled,
            Some("2.0.0"),
            "2.0.0",
            Some(Severity::Optional),
            None,
            Some(("2.0.0", Severity::Optional)),
        ),
        // the release says required
        (
            "1.0.0",
            Settled,
            Some("2.0.0"),
            "2.0.0",
            Some(Severity::Required),
            None,
            Some(("2.0.0", Severity::Required)),
        ),
        (
            "1.0.0",
            Mixed,
            None,
            "2.0.0",
            Some(Severity::Required),
            None,
            Some(("2.0.0", Severity::Required)),
        ),
        (
            "1.0.0",
            Unknown,
            None,
            "2.0.0",
            Some(Severity::Required),
            None,
            Some(("2.0.0", Severity::Required)),
        ),
        // min_supported makes an optional release required only for older pages
        (
            "1.4.0",
            Settled,
            Some("2.0.0"),
            "2.0.0",
            Some(Severity::Optional),
            Some("1.5.0"),
            Some(("2.0.0", Severity::Required)),
        ),
        (
            "1.5.0",
            Settled,
            Some("2.0.0"),
            "2.0.0",
            Some(Severity::Optional),
            Some("1.5.0"),
            Some(("2.0.0", Severity::Optional)),
        ),
        (
            "1.9.0",
            Settled,
            Some("2.0.0"),
            "2.0.0",
            Some(Severity::Optional),
            Some("1.5.0"),
            Some(("2.0.0", Severity::Optional)),
        ),
        (
            "1.5.0-rc.1",
            Settled,
            Some("2.0.0"),
            "2.0.0",
            Some(Severity::Optional),
            Some("1.5.0"),
            Some(("2.0.0", Severity::Required)),
        ),
        // a compatible deploy stays silent, whatever its release says
        (
            "2.0.0",
            Settled,
            Some("2.1.0"),
            "2.1.0",
            Some(Severity::Required),
            None,
            None,
        ),
        (
            "2.0.0",
            Settled,
            Some("2.1.0"),
            "2.1.0",
            Some(Severity::Optional),
            Some("2.1.0"),
            None,
        ),
        (
            "2.0.0",
            Settled,
            Some("2.0.0"),
            "2.0.0",
            Some(Severity::Required),
            Some("3.0.0"),
            None,
        ),
        // a new page mid-deploy stays quiet, required or not
        (
            "2.0.0",
            Mixed,
            None,
            "1.0.0",
            Some(Severity::Required),
            Some("1.0.0"),
            None,
        ),
        // a rollback that stuck: the rolled-back-to version's release counts
        (
            "2.0.0",
            Settled,
            Some("1.0.0"),
            "1.0.0",
            Some(Severity::Required),
            None,
            Some(("1.0.0", Severity::Required)),
        ),
        (
            "2.0.0",
            Settled,
            Some("1.0.0"),
            "1.0.0",
            Some(Severity::Optional),
            Some("1.0.0"),
            Some(("1.0.0", Severity::Optional)),
        ),
    ];

    #[test]
    fn severity_table() {
        for (page, state, settled, announced, severity, min, expected) in SEVERITY_TABLE {
            let release = severity.map(|s| rel(s, Some("/notes"), *min));
            let view = with(view(*state, *settled, Some(announced)), release.clone());
            let got = staleness(&v(page), &view);
            let want = expected.map(|(target, severity)| Staleness {
                target: v(target),
                severity,
                release: release.clone(),
            });
            assert_eq!(
                got, want,
                "page {page}, {state:?}, settled {settled:?}, announced {announced}, {severity:?}, min {min:?}"
            );
            // The monotonic page agrees on a first report.
            let mut known = PageKnowledge::default();
            known.learn(&v(page), view);
            assert_eq!(known.staleness(), want.as_ref(), "page {page}");
            assert_eq!(
                known.required(),
                matches!(expected, Some((_, Severity::Required))),
                "page {page}"
            );
            assert_eq!(
                known.notes_url(),
                want.as_ref().and(release.as_ref()).and(Some("/notes")),
                "page {page}"
            );
            assert_eq!(known.stale_release(), want.as_ref().and(release.as_ref()));
        }
    }

    #[test]
    fn the_newest_announcements_release_wins() {
        let page = v("1.0.0");
        let mut known = PageKnowledge::default();
        let optional = rel(Severity::Optional, Some("/notes/2"), None);
        let required = rel(Severity::Required, Some("/notes/3"), None);
        let announced = |version: &str, release: &Release, revision| {
            at(
                with(
                    view(Settled, Some(version), Some(version)),
                    Some(release.clone()),
                ),
                revision,
            )
        };
        known.learn(&page, announced("2.0.0", &optional, 5));
        assert!(!known.required());
        assert_eq!(known.notes_url(), Some("/notes/2"));
        // A node that has not read record 5 yet, with an older record whose
        // release was required: the page keeps the newest one.
        known.learn(&page, announced("1.5.0", &required, 3));
        assert_eq!(known.stale_target(), Some(&v("2.0.0")));
        assert!(!known.required());
        assert_eq!(known.notes_url(), Some("/notes/2"));
        assert_eq!(
            known.view().unwrap().announced_release,
            Some(optional.clone())
        );
        // ...nor can one with no release take it away.
        known.learn(&page, at(view(Unknown, None, Some("1.0.0")), 2));
        assert_eq!(known.stale_release(), Some(&optional));
        // A newer announcement brings its own release: required now.
        known.learn(&page, announced("3.0.0", &required, 8));
        assert_eq!(known.stale_target(), Some(&v("3.0.0")));
        assert!(known.required());
        assert_eq!(known.notes_url(), Some("/notes/3"));
        // The next deploy in progress does not change it (no flapping),
        // even reported by an older node that drops the release of record 8.
        known.learn(&page, at(view(Mixed, None, Some("3.0.0")), 8));
        assert!(known.required());
        assert_eq!(known.notes_url(), Some("/notes/3"));
        // And a newer one that says optional again is optional: it is news.
        known.learn(&page, announced("4.0.0", &optional, 9));
        assert_eq!(known.stale_target(), Some(&v("4.0.0")));
        assert!(!known.required());
        // Back to the page's own version: no banner, no severity, no notes.
        known.learn(&page, announced("1.0.0", &required, 10));
        assert_eq!(known.staleness(), None);
        assert!(!known.required());
        assert_eq!(known.notes_url(), None);
    }

    #[test]
    fn an_invalid_release_in_a_report_is_ignored() {
        let page = v("1.0.0");
        for url in ["javascript:alert(1)", "//evil.example", "https://a b"] {
            let forged = rel(Severity::Required, Some(url), Some("9.0.0"));
            let view = with(view(Settled, Some("2.0.0"), Some("2.0.0")), Some(forged));
            let stale = staleness(&page, &view).unwrap();
            assert_eq!(stale.release, None, "{url}");
            assert_eq!(stale.severity, Severity::Optional);
            let mut known = PageKnowledge::default();
            known.learn(&page, view);
            assert_eq!(known.stale_target(), Some(&v("2.0.0")));
            assert_eq!(known.notes_url(), None, "{url}");
            assert!(!known.required());
            assert_eq!(known.view().unwrap().announced_release, None);
        }
    }

    #[test]
    fn a_refused_request_makes_the_page_stale_at_once_and_stays_monotonic() {
        use crate::skew::check;
        let page = v("1.0.0");
        let mut known = PageKnowledge::default();
        // The page knows the cluster on its own version (revision 3).
        let current = ClusterView {
            state: Settled,
            settled_version: Some(v("1.0.0")),
            announced_version: Some(v("1.0.0")),
            announced_revision: Some(3),
            compat: Compat::Major,
            announced_release: None,
        };
        known.learn(&page, current.clone());
        assert_eq!(known.stale_target(), None);

        // A request reached a 2.0.0 node mid-deploy.
        let refused = check(&page, &v("2.0.0"), Compat::Major, None).unwrap();
        assert!(known.refused(&page, &refused));
        assert_eq!(known.stale_target(), Some(&v("2.0.0")));
        assert!(!known.required());
        // The same record again (the stream knows nothing newer yet): kept.
        known.learn(&page, current.clone());
        assert_eq!(known.stale_target(), Some(&v("2.0.0")));
        // A lower target never replaces it; the same one changes nothing.
        let lower = check(&page, &v("1.5.0"), Compat::Minor, None).unwrap();
        assert!(!known.refused(&page, &lower));
        assert!(!known.refused(&page, &refused));
        assert_eq!(known.stale_target(), Some(&v("2.0.0")));
        // Only a newer announcement moves it: here a rollback to the page's version.
        known.learn(
            &page,
            ClusterView {
                announced_revision: Some(4),
                ..current
            },
        );
        assert_eq!(known.stale_target(), None);
    }

    #[test]
    fn a_refusal_about_another_page_or_a_server_behind_changes_nothing() {
        use crate::skew::check;
        let page = v("2.0.0");
        let mut known = PageKnowledge::default();
        let behind = check(&page, &v("1.0.0"), Compat::Major, None).unwrap();
        assert!(!known.refused(&page, &behind));
        let other = check(&v("0.9.0"), &v("2.5.0"), Compat::Minor, None).unwrap();
        assert!(!known.refused(&page, &other));
        assert_eq!(known.stale_target(), None);
        // Below the server's minimum supported version: required.
        let unsupported = check(&page, &v("2.4.0"), Compat::Major, Some(&v("2.1.0"))).unwrap();
        assert!(known.refused(&page, &unsupported));
        assert!(known.required());
    }
}
