//! Open pages by version over time: the drain curve of a rollout, for fleet
//! views. Plain data, time passed in.
//!
//! A node samples the cluster's open tabs per page version (the sum of its
//! members' heartbeats) every second; [`PageHistory`] keeps a point for
//! every change within its window (an hour by default), and the last point
//! before the window, so the curve starts at the window's edge.
//!
//! ```
//! use std::{collections::BTreeMap, time::Duration};
//! use version_observer_core::history::PageHistory;
//! let mut history = PageHistory::new(Duration::from_secs(3600));
//! let tabs = |old: u64, new: u64| -> BTreeMap<String, u64> {
//!     [("1.0.0".to_string(), old), ("2.0.0".to_string(), new)].into()
//! };
//! history.record(0, &tabs(10, 0));
//! history.record(1_000, &tabs(10, 0)); // unchanged: no point
//! history.record(60_000, &tabs(4, 6));
//! assert_eq!(history.points().len(), 2);
//! assert_eq!(history.peak(), 10);
//! ```

use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

/// The window fleet views show by default: the last hour.
pub const WINDOW: Duration = crate::timing::fleet::HISTORY_WINDOW;

/// The open tabs per page version from a moment on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// When (milliseconds on the recorder's clock, e.g. since the Unix epoch).
    pub at_ms: u64,
    /// Open tabs by page version (no zero counts).
    pub tabs: BTreeMap<String, u64>,
}

/// See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageHistory {
    window_ms: u64,
    points: VecDeque<Point>,
    until_ms: u64,
}

impl PageHistory {
    /// A history of the last `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            points: VecDeque::new(),
            until_ms: 0,
        }
    }

    /// The tabs now are `tabs` (`now_ms` never goes back; an earlier time
    /// is taken as the last record's).
    pub fn record(&mut self, now_ms: u64, tabs: &BTreeMap<String, u64>) {
        let tabs: BTreeMap<String, u64> = tabs
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(v, n)| (v.clone(), *n))
            .collect();
        let now_ms = now_ms.max(self.until_ms);
        self.until_ms = now_ms;
        if self.points.back().is_none_or(|last| last.tabs != tabs) {
            self.points.push_back(Point {
                at_ms: now_ms,
                tabs,
            });
        }
        self.forget(now_ms);
    }

    /// Forgets the points before the window, but the last of them.
    fn forget(&mut self, now_ms: u64) {
        let start = now_ms.saturating_sub(self.window_ms);
        while self.points.len() > 1 && self.points[1].at_ms <= start {
            self.points.pop_front();
        }
    }

    /// The points, oldest first (the first may be before the window: it
    /// holds at the window's start).
    pub fn points(&self) -> Vec<Point> {
        self.points.iter().cloned().collect()
    }

    /// Every page version in the points, oldest version first.
    pub fn versions(&self) -> Vec<String> {
        let mut versions: Vec<String> = self
            .points
            .iter()
            .flat_map(|p| p.tabs.keys().cloned())
            .collect();
        // Versions by precedence, then labels that are not versions.
        versions.sort_by_cached_key(|label| {
            let version = label.parse::<semver::Version>().ok();
            (version.is_none(), version, label.clone())
        });
        versions.dedup();
        versions
    }

    /// The most tabs open at once in the points.
    pub fn peak(&self) -> u64 {
        self.points
            .iter()
            .map(|p| p.tabs.values().sum::<u64>())
            .max()
            .unwrap_or(0)
    }

    /// When the tabs were last recorded, changed or not (0 before the
    /// first): the history holds up to here, so a chart of it ends here.
    pub fn until_ms(&self) -> u64 {
        self.until_ms
    }

    /// The window's length, in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }
}

impl Default for PageHistory {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tabs(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(v, n)| ((*v).to_owned(), *n)).collect()
    }

    #[test]
    fn changes_are_points_unchanged_tabs_are_not_and_the_window_keeps_its_edge() {
        let mut h = PageHistory::new(Duration::from_secs(60));
        h.record(0, &tabs(&[("1.0.0", 5)]));
        h.record(1_000, &tabs(&[("1.0.0", 5)]));
        assert_eq!(h.points().len(), 1, "no change, no point");
        assert_eq!(h.until_ms(), 1_000, "but the history holds up to it");
        h.record(10_000, &tabs(&[("1.0.0", 3), ("2.0.0", 2)]));
        h.record(11_000, &tabs(&[("1.0.0", 2), ("2.0.0", 3)]));
        assert_eq!(h.points().len(), 3);
        assert_eq!(h.points()[2].tabs, tabs(&[("1.0.0", 2), ("2.0.0", 3)]));
        // Zero counts are no entries.
        h.record(20_000, &tabs(&[("1.0.0", 0), ("2.0.0", 5)]));
        assert_eq!(h.points()[3].tabs, tabs(&[("2.0.0", 5)]));
        // Past the window: the last point before it stays, at its edge.
        h.record(100_000, &tabs(&[("2.0.0", 6)]));
        let points = h.points();
        assert_eq!(points.len(), 2, "{points:?}");
        assert_eq!(points[0].at_ms, 20_000);
        assert_eq!(h.versions(), vec!["2.0.0".to_owned()]);
        assert_eq!(h.peak(), 6);
        // Time never goes back.
        h.record(50_000, &tabs(&[("2.0.0", 7)]));
        assert!(h.points().windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert_eq!(h.until_ms(), 100_000);
    }

    #[test]
    fn versions_come_oldest_first_by_semver() {
        let mut h = PageHistory::default();
        h.record(0, &tabs(&[("10.0.0", 1), ("9.1.0", 1), ("unknown", 1)]));
        assert_eq!(h.versions(), vec!["9.1.0", "10.0.0", "unknown"]);
    }
}
