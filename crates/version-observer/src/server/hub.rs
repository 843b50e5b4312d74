//! The version hub: the one place that holds what this node tells browsers.
//!
//! The report is serialized (and encoded as a server-sent event) once per
//! change, not once per client: every stream writes the same shared bytes.
//! Lean streams (nearly all of them) are written by one task,
//! [`VersionHub::run`], through the [`Fanout`]; streams served by hyper watch
//! a single `tokio::sync::watch` channel, one store plus one wake-up each.

use super::fanout::{Fanout, Item};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use version_observer_core::{ClusterView, Mode, NodeInfo, VersionReport};

/// One published state of the node's version signal.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// Increases by one with every change; the SSE event id.
    pub seq: u64,
    pub report: Arc<VersionReport>,
    /// `report` as JSON, shared by every stream.
    pub json: Arc<str>,
    /// `report` as one server-sent event (`id: <seq>` and `data: <json>`).
    pub event: Bytes,
}

impl Snapshot {
    fn new(seq: u64, report: VersionReport) -> Self {
        let json = serde_json::to_string(&report).expect("reports always serialize");
        // Compact JSON holds no newline, so it fits one `data:` line.
        let event = format!("id: {seq}\ndata: {json}\n\n");
        Self {
            seq,
            report: Arc::new(report),
            json: json.into(),
            event: Bytes::from(event),
        }
    }
}

/// Holds the node's current [`VersionReport`] and fans changes out.
#[derive(Debug)]
pub(crate) struct VersionHub {
    tx: watch::Sender<Snapshot>,
    /// Bumped every keep-alive interval by one task for the whole node: an
    /// idle stream needs no timer of its own, only this receiver.
    keepalive: watch::Sender<u64>,
    /// The lean streams, written directly by [`run`](Self::run).
    pub(crate) lean: Fanout,
}

impl VersionHub {
    pub(crate) fn new(node: NodeInfo, mode: Mode, cluster: ClusterView) -> Self {
        let (tx, _) = watch::channel(Snapshot::new(
            1,
            VersionReport {
                node,
                mode,
                cluster,
            },
        ));
        let (keepalive, _) = watch::channel(0);
        Self {
            tx,
            keepalive,
            lean: Fanout::default(),
        }
    }

    /// Publishes a new cluster view; returns whether anything changed.
    pub(crate) fn publish(&self, cluster: ClusterView) -> bool {
        self.tx.send_if_modified(|current| {
            if current.report.cluster == cluster {
                return false;
            }
            let report = VersionReport {
                cluster,
                ..(*current.report).clone()
            };
            *current = Snapshot::new(current.seq + 1, report);
            true
        })
    }

    pub(crate) fn current(&self) -> Snapshot {
        self.tx.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.tx.subscribe()
    }

    /// Changes at every keep-alive tick.
    pub(crate) fn keepalive(&self) -> watch::Receiver<u64> {
        self.keepalive.subscribe()
    }

    /// One keep-alive tick for the streams served by hyper.
    fn tick_keepalive(&self) {
        self.keepalive.send_modify(|tick| *tick += 1);
    }

    /// Until `stop`: writes every change to the lean streams, and every
    /// `interval` a keep-alive comment to each idle stream (one timer for
    /// all of them, lean or not).
    pub(crate) async fn run(&self, interval: std::time::Duration, stop: CancellationToken) {
        let mut reports = self.subscribe();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = reports.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let item = Item::report(&reports.borrow_and_update());
                    self.lean.send(&item).await;
                }
                _ = ticker.tick() => {
                    self.tick_keepalive();
                    self.lean.send(&Item::KeepAlive).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use version_observer_core::{ClusterState, Compat, Version};

    fn hub() -> VersionHub {
        let v = Version::new(1, 0, 0);
        VersionHub::new(
            NodeInfo {
                id: "n1".into(),
                version: v.clone(),
            },
            Mode::Single,
            ClusterView::single_node(&v, Compat::Major),
        )
    }

    #[test]
    fn only_changes_are_published() {
        let hub = hub();
        let mut rx = hub.subscribe();
        let same = hub.current().report.cluster.clone();
        assert!(!hub.publish(same.clone()));
        assert!(!rx.has_changed().unwrap());
        assert_eq!(hub.current().seq, 1);

        let mixed = ClusterView {
            state: ClusterState::Mixed,
            settled_version: None,
            ..same
        };
        assert!(hub.publish(mixed.clone()));
        assert!(rx.has_changed().unwrap());
        let snap = rx.borrow_and_update().clone();
        assert_eq!(snap.seq, 2);
        assert_eq!(snap.report.cluster, mixed);
        let parsed: VersionReport = serde_json::from_str(&snap.json).unwrap();
        assert_eq!(&parsed, snap.report.as_ref());
        let event = std::str::from_utf8(&snap.event).unwrap();
        assert_eq!(event, format!("id: 2\ndata: {}\n\n", snap.json));
    }
}
