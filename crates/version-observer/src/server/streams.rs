//! What every version stream needs, whichever way it is served (the
//! listener's lean streams or axum's): the hub, the slots that bound them,
//! open tabs per page version, the refusal counters, the way forwarded
//! requests reach the router, and the tokens that end them. The runtime
//! state behind [`VersionObserver`](super::VersionObserver); nothing here
//! is public API.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use version_observer_core::Version;

use super::hub::VersionHub;

/// What every version stream needs, whichever way it is served.
pub(crate) struct Streams {
    pub(crate) hub: VersionHub,
    slots: Arc<Semaphore>,
    /// Cancelled once the node has stopped (left its cluster): ends every
    /// stream, and the server ([`VersionObserver::stopped`](super::VersionObserver::stopped)).
    pub(crate) stopped: CancellationToken,
    /// Cancelled when the streams end: at `stopped`, or earlier when the node
    /// starts retiring (it leaves the load balancer, so its tabs reconnect
    /// elsewhere); a stream asked for after it is refused.
    pub(crate) end: CancellationToken,
    /// How forwarded requests reach the router: set by the listener.
    local: watch::Sender<Option<super::forward::LocalConnections>>,
    /// Every lean stream's task (and every connection still being
    /// classified), so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    pub(crate) max_streams: u32,
    /// Streams refused at `max_streams`.
    pub(crate) refused: RateLimitedCount,
    /// Connections refused at the open-files limit.
    pub(crate) refused_open_files: RateLimitedCount,
    /// Requests the host app refused ([`VersionObserver::count_refused_request`]).
    pub(crate) refused_requests: AtomicU64,
    /// Requests the request guard refused (`409`, a page of an incompatible version).
    pub(crate) refused_stale_clients: AtomicU64,
    /// Open streams per page version.
    pub(crate) tabs: Arc<TabCounts>,
    /// How long a connection handed to the app may pass no byte either way
    /// before the listener closes it (the builder's `idle_timeout`, or
    /// twice the keep-alive interval if that is longer).
    pub(crate) idle_timeout: Duration,
}

impl Streams {
    /// Room for `max_streams` streams fed by `hub`; connections handed to
    /// the app close after `idle_timeout` without a byte.
    pub(crate) fn new(hub: VersionHub, max_streams: u32, idle_timeout: Duration) -> Self {
        let stopped = CancellationToken::new();
        Self {
            hub,
            slots: Arc::new(Semaphore::new(max_streams as usize)),
            end: stopped.child_token(),
            stopped,
            local: watch::channel(None).0,
            tasks: TaskTracker::new(),
            max_streams,
            refused: RateLimitedCount::new(),
            refused_open_files: RateLimitedCount::new(),
            refused_requests: AtomicU64::new(0),
            refused_stale_clients: AtomicU64::new(0),
            tabs: Arc::default(),
            idle_timeout,
        }
    }

    /// A slot for one more stream from a page of `page` version, or `None`
    /// at `max_streams` (counted, and logged at most once a second with the
    /// count).
    pub(crate) fn try_slot(&self, page: Option<&Version>) -> Option<StreamSlot> {
        if self.end.is_cancelled() {
            // Retiring or stopping: the tab reconnects to another node.
            return None;
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            if let Some(refused) = self.refused.bump() {
                tracing::warn!(refused, "refusing version streams: max_streams reached");
            }
            return None;
        };
        Some(StreamSlot {
            _permit: permit,
            _tab: self.tabs.open(page),
        })
    }

    /// The listener's way in for forwarded requests (the first listener's).
    pub(crate) fn offer_local_connections(&self, local: super::forward::LocalConnections) {
        self.local.send_if_modified(|current| {
            current.is_none() && {
                *current = Some(local);
                true
            }
        });
    }

    /// Waits until a listener can take forwarded requests.
    pub(crate) async fn local_connections(&self) -> super::forward::LocalConnections {
        let mut local = self.local.subscribe();
        let Ok(ready) = local.wait_for(Option::is_some).await else {
            return std::future::pending().await;
        };
        ready.clone().expect("waited for it")
    }

    /// Streams open now.
    pub(crate) fn open_streams(&self) -> u64 {
        u64::from(self.max_streams).saturating_sub(self.slots.available_permits() as u64)
    }
}

/// One open stream's share of the node: its slot and its tab count, both
/// given back when it is dropped.
pub(crate) struct StreamSlot {
    _permit: OwnedSemaphorePermit,
    _tab: TabGuard,
}

/// Open tabs per page version, with a bounded set of labels: a client can
/// name any version, so beyond [`TabCounts::MAX_LABELS`] distinct ones the
/// rest are counted as `other`.
#[derive(Debug, Default)]
pub(crate) struct TabCounts {
    open: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Bumped at every change, so a reader can skip an unchanged snapshot.
    generation: AtomicU64,
}

impl TabCounts {
    pub(crate) const MAX_LABELS: usize = version_observer_core::protocol::MAX_TAB_VERSIONS;
    /// A tab that named no version, or not a valid one.
    pub(crate) const UNKNOWN: &'static str = "unknown";
    pub(crate) const OTHER: &'static str = "other";

    fn open(self: &Arc<Self>, page: Option<&Version>) -> TabGuard {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut label = page.map_or_else(|| Self::UNKNOWN.to_owned(), Version::to_string);
        if !open.contains_key(&label) && open.len() >= Self::MAX_LABELS {
            label = Self::OTHER.to_owned();
        }
        *open.entry(label.clone()).or_default() += 1;
        self.generation.fetch_add(1, Ordering::Relaxed);
        TabGuard {
            counts: self.clone(),
            label,
        }
    }

    /// `(page version, open tabs)`, in order of version label.
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        self.counts().into_iter().collect()
    }

    /// Open tabs by page version.
    pub(crate) fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes so far: equal numbers, equal counts.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}

struct TabGuard {
    counts: Arc<TabCounts>,
    label: String,
}

impl Drop for TabGuard {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.label) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.label);
            }
        }
        self.counts.generation.fetch_add(1, Ordering::Relaxed);
    }
}

/// A counter whose log line is rate-limited: a flood of refusals must not
/// flood the log.
pub(crate) struct RateLimitedCount {
    total: AtomicU64,
    logged_at_ms: AtomicU64,
    epoch: Instant,
}

impl RateLimitedCount {
    pub(crate) fn new() -> Self {
        Self {
            total: AtomicU64::new(0),
            logged_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The count so far.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts one; returns the total when it is time to log it.
    pub(crate) fn bump(&self) -> Option<u64> {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.epoch.elapsed().as_millis() as u64 + 1_000;
        let last = self.logged_at_ms.load(Ordering::Relaxed);
        (now >= last + 1_000
            && self
                .logged_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok())
        .then_some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_labels_are_bounded_and_counted_out_when_closed() {
        let tabs = Arc::new(TabCounts::default());
        let mut guards: Vec<_> = (0..TabCounts::MAX_LABELS as u64 + 8)
            .map(|minor| tabs.open(Some(&Version::new(1, minor, 0))))
            .collect();
        guards.extend([tabs.open(None), tabs.open(None)]);
        let open = tabs.snapshot();
        assert!(open.len() <= TabCounts::MAX_LABELS + 1, "{open:?}");
        let count = |label: &str| open.iter().find(|(l, _)| l == label).map(|(_, n)| *n);
        assert_eq!(count("1.0.0"), Some(1));
        // The unknown ones came after the cap: they are `other` too.
        assert_eq!(count(TabCounts::OTHER), Some(10));
        assert_eq!(
            open.iter().map(|(_, n)| n).sum::<u64>(),
            guards.len() as u64
        );
        drop(guards);
        assert!(tabs.snapshot().is_empty());
    }

    #[test]
    fn refusals_are_logged_at_most_once_a_second() {
        let count = RateLimitedCount::new();
        assert_eq!(count.bump(), Some(1));
        for _ in 0..1000 {
            assert_eq!(count.bump(), None);
        }
        assert_eq!(count.total.load(Ordering::Relaxed), 1001);
    }
}
