//! What several benchmarks share: nodes on a nats-server through the lab,
//! waiting on their `/api/cluster` views, watching the announce subject, and
//! triggering an announcement the way a monitor writes one.

use crate::sys::mono_ns;
use anyhow::Context;
use async_nats::jetstream;
use futures::StreamExt;
use serde_json::Value;
use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};
use version_observer_core::protocol::{
    encode, Names, RecordKind, SettledNotice, SettledRecord, STATE_KEY,
};
use version_observer_core::Timings;
use vo_lab::{wait, NodeConfig, NodeProcess};

/// Long enough for a cluster to warm up and settle with default timings.
pub const SETTLE: Duration = Duration::from_secs(30);

/// Starts a cluster node with the product's default timings unless told otherwise.
pub async fn start_node(
    binary: &Path,
    nats: &str,
    cluster: &str,
    id: &str,
    version: &str,
    timings: Timings,
) -> anyhow::Result<NodeProcess> {
    start_node_with(binary, nats, cluster, id, version, timings, &[]).await
}

/// [`start_node`] with more flags.
pub async fn start_node_with(
    binary: &Path,
    nats: &str,
    cluster: &str,
    id: &str,
    version: &str,
    timings: Timings,
    args: &[String],
) -> anyhow::Result<NodeProcess> {
    let config = NodeConfig::new(binary, id, version)
        .nats(nats, cluster)
        .timings(timings)
        .args(args.iter().cloned())
        // VO_BENCH_NODE_LOG=debug and VO_LAB_KEEP=1 keep a run's logs to look inside.
        .log_filter(&std::env::var("VO_BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into()));
    NodeProcess::start(&config)
        .await
        .with_context(|| format!("starting node {id}"))
}

/// Waits until `node`'s `/api/cluster` satisfies `check`; returns that view.
pub async fn until_view(
    node: &NodeProcess,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let view = wait::eventually(what, SETTLE, async || {
        node.cluster().await.filter(|v| check(v))
    })
    .await?;
    Ok(view)
}

/// The version and kind of the record a node holds.
pub fn recorded(view: &Value) -> Option<(&str, &str)> {
    let record = &view["announced"]["record"];
    Some((record["version"].as_str()?, record["kind"].as_str()?))
}

/// Waits until one of `nodes` says it is the monitor; returns its index.
pub async fn monitor_among(nodes: &[&NodeProcess]) -> anyhow::Result<usize> {
    let index = wait::eventually("a monitor", SETTLE, async || {
        for (i, node) in nodes.iter().enumerate() {
            if node
                .cluster()
                .await
                .is_some_and(|v| v["this_node_leads"] == true)
            {
                return Some(i);
            }
        }
        None
    })
    .await?;
    Ok(index)
}

/// Every announcement on a cluster's announce subject, with the time it arrived.
pub struct AnnounceWatch {
    /// (arrival, version, the record's leader).
    seen: Arc<Mutex<Vec<(u64, String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AnnounceWatch {
    pub async fn start(client: &async_nats::Client, cluster: &str) -> anyhow::Result<Self> {
        let mut sub = client
            .subscribe(Names::new(cluster).announce())
            .await
            .context("subscribing to announcements")?;
        client.flush().await?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(message) = sub.next().await {
                let at = mono_ns();
                let (version, leader) = serde_json::from_slice::<SettledNotice>(&message.payload)
                    .map(|n| (n.record.version.to_string(), n.record.leader))
                    .unwrap_or_else(|_| ("?".into(), "?".into()));
                sink.lock()
                    .expect("not poisoned")
                    .push((at, version, leader));
            }
        });
        Ok(Self { seen, task })
    }

    /// When `version` was first announced, waiting up to `timeout`.
    pub async fn first(&self, version: &str, timeout: Duration) -> anyhow::Result<u64> {
        let at = wait::eventually(
            &format!("the announcement of {version}"),
            timeout,
            async || {
                let seen = self.seen.lock().expect("not poisoned");
                seen.iter()
                    .find(|(_, v, _)| v == version)
                    .map(|(at, _, _)| *at)
            },
        )
        .await?;
        Ok(at)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("not poisoned").len()
    }

    /// Every version these nodes announced so far, in order (a forger
    /// publishing on the subject is not one of them).
    pub fn versions_from(&self, nodes: &[&str]) -> Vec<String> {
        self.seen
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, _, leader)| nodes.contains(&leader.as_str()))
            .map(|(_, v, _)| v.clone())
            .collect()
    }
}

impl Drop for AnnounceWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes an announcement of `version` into a cluster's KV record (as its
/// monitor would, compare-and-set on the current revision) and publishes
/// the notice every node listens to. Returns [`mono_ns`] taken just before
/// the notice was published: the moment the node's browsers start to hear.
pub async fn announce(
    client: &async_nats::Client,
    cluster: &str,
    version: &str,
) -> anyhow::Result<u64> {
    let names = Names::new(cluster);
    let kv = jetstream::new(client.clone())
        .get_key_value(names.bucket())
        .await
        .context("opening the settled record's bucket")?;
    let current = kv
        .entry(STATE_KEY)
        .await?
        .context("no baseline recorded yet")?;
    let previous: SettledRecord = serde_json::from_slice(&current.value)?;
    let record = SettledRecord {
        version: version.parse()?,
        previous: Some(previous.version),
        kind: RecordKind::Announcement,
        fence: previous.fence,
        leader: "vo-bench".into(),
        at_ms: 0,
        release: None,
    };
    let revision = kv
        .update(STATE_KEY, encode(&record), current.revision)
        .await
        .context("writing the record")?;
    let notice = encode(&SettledNotice { revision, record });
    let at = mono_ns();
    client.publish(names.settled(), notice).await?;
    client.flush().await?;
    Ok(at)
}
