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

use crate::report::{ClusterState, ClusterView};
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

/// What an open page has learned from every report it received, and the
/// banner that follows: the rules of [`stale_page_target`], made monotonic.
///
/// - The newest announcement (by KV revision) wins: a stream that reconnects
///   to a node that has not yet read the latest record never takes it back.
/// - Once a page is stale it stays stale (no flapping while a later deploy is
///   in progress); only a newer announcement can change the target, or clear
///   it when the page is current again (a rollback to the page's version).
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
    stale: Option<Version>,
    stale_revision: Option<u64>,
}

impl PageKnowledge {
    /// Takes in the next report's view.
    pub fn learn(&mut self, page: &Version, mut view: ClusterView) {
        if let Some(known) = &self.view {
            if view.announced_revision < known.announced_revision {
                // This node knows less: keep the newer announcement.
                view.announced_version = known.announced_version.clone();
                view.announced_revision = known.announced_revision;
            }
        }
        match stale_page_target(page, &view) {
            Some(target) => {
                self.stale = Some(target.clone());
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

    /// The cluster as the page knows it: the last report, with the newest
    /// announcement seen.
    pub fn view(&self) -> Option<&ClusterView> {
        self.view.as_ref()
    }

    /// The version the banner names, or `None` for no banner.
    pub fn stale_target(&self) -> Option<&Version> {
        self.stale.as_ref()
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
}
