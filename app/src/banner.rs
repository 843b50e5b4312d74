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

use crate::signal::{ClusterState, ClusterView};
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
}
