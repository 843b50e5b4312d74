//! [`FleetWatch`]: a cluster watched from outside over NATS, for deploy
//! gates and fleet views.

use super::{
    cluster::connect,
    settings::{NatsSettings, StartError},
};
use async_nats::{jetstream, Event};
use futures::StreamExt;
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use version_observer_core::{
    auth::MAC_HEADER,
    cluster::watcher::{Fleet, Gate, Watcher},
    protocol::{Names, STATE_KEY},
    timing::fleet::RECORD_POLL,
    Compat, Version,
};

/// A cluster watched from outside over NATS, for deploy gates and fleet
/// views. It hears the nodes' presence messages and reads the settled
/// record from KV, but never publishes and never joins: the decisions are
/// the core's [`Watcher`]; this only moves bytes.
///
/// ```no_run
/// use std::time::Duration;
/// use version_observer::{Compat, FleetWatch, NatsSettings};
/// use version_observer::core::cluster::watcher::Gate;
///
/// # async fn demo() -> anyhow::Result<()> {
/// let mut watch = FleetWatch::connect(NatsSettings::new("nats://127.0.0.1:4222").cluster("shop")).await?;
/// let target = "2.0.0".parse()?;
/// loop {
///     match watch.gate(&target, Compat::Major) {
///         Gate::Settled(fleet) => break println!("settled: {}", fleet.rollout()),
///         Gate::Waiting(fleet) => println!("waiting: {}", fleet.rollout()),
///     }
///     watch.changed(Duration::from_secs(1)).await;
/// }
/// # Ok(()) }
/// ```
pub struct FleetWatch {
    watcher: Arc<Mutex<Watcher>>,
    changed: Arc<Notify>,
    stop: CancellationToken,
}

impl FleetWatch {
    /// Connects to the cluster `settings` names (its URLs, credentials, CA,
    /// cluster key and node timeout are used; nothing is published).
    /// Refused credentials or an untrusted certificate are an error at
    /// once; a server that is not reachable yet is retried in the
    /// background (the fleet stays incomplete until it answers).
    pub async fn connect(settings: NatsSettings) -> Result<Self, StartError> {
        let names = Names::new(&settings.cluster);
        let key = settings.cluster_key()?;
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (client, connected) = connect(&settings, "watch", events_tx).await?;
        let watcher = Arc::new(Mutex::new(Watcher::new(
            names.clone(),
            settings.timings.node_timeout,
            key,
        )));
        let changed = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let subject = lock(&watcher).subscription();
        let mut presence = client
            .subscribe(subject)
            .await
            .map_err(|e| StartError::Connect {
                server: settings.redacted_urls(),
                reason: e.to_string(),
            })?;
        let mut notices =
            client
                .subscribe(names.settled())
                .await
                .map_err(|e| StartError::Connect {
                    server: settings.redacted_urls(),
                    reason: e.to_string(),
                })?;
        if connected {
            lock(&watcher).handle_connected(Instant::now());
        }
        let js = jetstream::new(client.clone());
        let (w, notify, token) = (watcher.clone(), changed.clone(), stop.clone());
        tokio::spawn(async move {
            let _client = client;
            let mut poll = tokio::time::interval(RECORD_POLL);
            let mut store = None;
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    Some(event) = events.recv() => match event {
                        Event::Connected => lock(&w).handle_connected(Instant::now()),
                        Event::Disconnected => lock(&w).handle_disconnected(),
                        _ => continue,
                    },
                    Some(message) = presence.next() => {
                        let mac = message.headers.as_ref().and_then(|h| h.get(MAC_HEADER)).map(|v| v.as_str());
                        lock(&w).handle_message(message.subject.as_str(), &message.payload, mac, Instant::now());
                    }
                    // A notice is a hint: read the record now.
                    Some(_) = notices.next() => read_record(&js, &names, &mut store, &w).await,
                    _ = poll.tick() => read_record(&js, &names, &mut store, &w).await,
                }
                notify.notify_waiters();
            }
        });
        Ok(Self {
            watcher,
            changed,
            stop,
        })
    }

    /// The cluster now.
    pub fn fleet(&self) -> Fleet {
        lock(&self.watcher).fleet(Instant::now())
    }

    /// Whether the cluster has settled on `target` ([`Watcher::gate`]).
    pub fn gate(&self, target: &Version, compat: Compat) -> Gate {
        lock(&self.watcher).gate(target, compat, Instant::now())
    }

    /// Waits until something is heard, or `at_most`.
    pub async fn changed(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.changed.notified()).await;
    }
}

impl std::fmt::Debug for FleetWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetWatch")
            .field("fleet", &self.fleet())
            .field("stopped", &self.stop.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Drop for FleetWatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn lock(watcher: &Mutex<Watcher>) -> std::sync::MutexGuard<'_, Watcher> {
    watcher.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the settled record (opening the bucket first, once it exists).
async fn read_record(
    js: &jetstream::Context,
    names: &Names,
    store: &mut Option<jetstream::kv::Store>,
    watcher: &Mutex<Watcher>,
) {
    if store.is_none() {
        *store = js.get_key_value(names.bucket()).await.ok();
    }
    let Some(kv) = store.as_ref() else { return };
    match tokio::time::timeout(RECORD_POLL, kv.entry(STATE_KEY)).await {
        Ok(Ok(Some(entry))) if entry.operation == jetstream::kv::Operation::Put => {
            lock(watcher).handle_record(Some((entry.revision, &entry.value)));
        }
        Ok(Ok(_)) => lock(watcher).handle_record(None),
        // Unreachable for now: keep the last record read.
        Ok(Err(_)) | Err(_) => {}
    }
}
