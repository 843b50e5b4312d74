//! A whole cluster on loopback: one nats-server, named node slots (each with a
//! fixed port), and nginx round-robin over every slot, so a browser keeps one
//! URL while nodes come and go. The lab also watches the cluster's announce
//! subject, so tests and the demo can count announcements.

use crate::{
    free_port,
    nats::NatsServer,
    nginx::{Nginx, Site},
    node::{NodeConfig, NodeProcess},
    scratch::ScratchDir,
    timings::Timings,
    LabError,
};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::task::JoinHandle;
use version_observer_core::protocol::{decode, Names, SettledNotice};

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The node binary.
    pub binary: PathBuf,
    /// The node slots, e.g. `n1`, `n2`, `n3`.
    pub slots: Vec<String>,
    pub cluster: String,
    pub timings: Timings,
    /// nginx's port (0: a free one).
    pub proxy_port: u16,
    /// More flags for every node (the reference node's).
    pub node_args: Vec<String>,
    /// Which program the nodes run.
    pub app: crate::node::App,
    /// More environment variables for every node (both apps read `VO_*`).
    pub node_env: Vec<(String, String)>,
    /// `RUST_LOG` for every node.
    pub log_filter: String,
}

impl LabConfig {
    pub fn new(binary: impl Into<PathBuf>, slots: usize) -> Self {
        Self {
            binary: binary.into(),
            slots: (1..=slots).map(|i| format!("n{i}")).collect(),
            cluster: "lab".into(),
            timings: Timings::DEFAULT,
            proxy_port: 0,
            node_args: Vec::new(),
            app: crate::node::App::Reference,
            node_env: Vec::new(),
            log_filter: "info".into(),
        }
    }
}

/// One announcement seen on the cluster's announce subject
/// ([`Names::announce`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Announcement {
    /// Milliseconds since the lab started.
    pub at_ms: u64,
    pub version: String,
    pub previous: Option<String>,
    pub revision: u64,
    pub leader: String,
}

/// A slot as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub id: String,
    pub port: u16,
    /// Its admin listener (`/fleet`, `/api/cluster`, `/metrics`), while it runs.
    pub admin_port: Option<u16>,
    pub running: bool,
    pub version: Option<String>,
    pub pid: Option<u32>,
}

/// Everything about a lab at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub proxy: String,
    pub nats: String,
    pub cluster: String,
    pub uptime_ms: u64,
    pub nodes: Vec<NodeStatus>,
    /// `GET /api/cluster` of a running node (the monitor's, when it answers).
    pub view: Option<Value>,
    pub announcements: Vec<Announcement>,
}

struct Slot {
    port: u16,
    node: Option<NodeProcess>,
}

pub struct Lab {
    config: LabConfig,
    started: Instant,
    scratch: ScratchDir,
    nats: NatsServer,
    nginx: Option<Nginx>,
    slots: BTreeMap<String, Slot>,
    announcements: Arc<Mutex<Vec<Announcement>>>,
    watcher: JoinHandle<()>,
}

impl Lab {
    /// Starts nats-server and nginx; no node runs yet.
    pub async fn start(config: LabConfig) -> Result<Self, LabError> {
        let started = Instant::now();
        let scratch = ScratchDir::new("vo-lab")?;
        let nats = NatsServer::start().await?;
        let mut slots = BTreeMap::new();
        for id in &config.slots {
            slots.insert(
                id.clone(),
                Slot {
                    port: free_port()?,
                    node: None,
                },
            );
        }
        let upstreams = config
            .slots
            .iter()
            .map(|id| slots[id].port)
            .collect::<Vec<_>>();
        let nginx = Nginx::start(config.proxy_port, &Site::Proxy { upstreams }, 1).await?;
        let announcements = Arc::new(Mutex::new(Vec::new()));
        let watcher =
            watch_announcements(&nats.url(), &config.cluster, started, announcements.clone())
                .await?;
        Ok(Self {
            config,
            started,
            scratch,
            nats,
            nginx: Some(nginx),
            slots,
            announcements,
            watcher,
        })
    }

    /// The load balancer's URL: what a browser opens.
    pub fn proxy_url(&self) -> String {
        self.nginx.as_ref().map(Nginx::url).unwrap_or_default()
    }

    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn slot(&mut self, id: &str) -> Result<&mut Slot, LabError> {
        self.slots
            .get_mut(id)
            .ok_or_else(|| LabError::UnknownNode(id.to_owned()))
    }

    /// Starts the node in slot `id` with `version`; returns once it serves HTTP.
    pub async fn start_node(&mut self, id: &str, version: &str) -> Result<NodeStatus, LabError> {
        self.start_node_with(id, version, &[]).await
    }

    /// [`start_node`](Self::start_node) with extra flags for this node
    /// (e.g. `--site-root` of another build).
    pub async fn start_node_with(
        &mut self,
        id: &str,
        version: &str,
        extra: &[String],
    ) -> Result<NodeStatus, LabError> {
        let config = &self.config;
        let node_config = match config.app {
            crate::node::App::Reference => NodeConfig::new(&config.binary, id, version),
            crate::node::App::Todo => NodeConfig::todo(&config.binary, id, version),
        };
        let mut node_config = node_config
            .nats(&self.nats.url(), &config.cluster)
            .timings(config.timings)
            .args(config.node_args.iter().cloned())
            .args(extra.iter().cloned())
            .log_filter(&config.log_filter)
            .log_dir(self.scratch.path());
        node_config.env.extend(config.node_env.iter().cloned());
        let slot = self.slot(id)?;
        if slot.node.as_mut().is_some_and(NodeProcess::is_running) {
            return Err(LabError::NodeRunning(id.to_owned()));
        }
        let node = NodeProcess::start(&node_config.port(slot.port)).await?;
        slot.node = Some(node);
        Ok(self.node_status(id))
    }

    /// Stops the node in slot `id` gracefully (SIGTERM) and waits for its exit.
    pub async fn stop_node(&mut self, id: &str) -> Result<(), LabError> {
        let node = self.running(id)?;
        node.stop().await.map(|_| ())
    }

    /// SIGTERM to the node in slot `id`, without waiting for its exit: a
    /// node started with `VO_RETIRE_FOR` retires (it serves its version's
    /// pages until none needs it) and exits by itself. Returns once it says
    /// so (`/readyz` answers 503), or has exited.
    pub async fn retire_node(&mut self, id: &str) -> Result<(), LabError> {
        let node = self.running(id)?;
        node.terminate();
        let ready = node.url("/readyz");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if !node.is_running() {
                return Ok(());
            }
            if let Ok(r) = http.get(&ready).send().await {
                if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LabError::Timeout(format!("{id} to retire")));
            }
            tokio::time::sleep(crate::wait::POLL).await; // the poll interval
        }
    }

    /// Kills the node in slot `id` (`kill -9`).
    pub async fn kill_node(&mut self, id: &str) -> Result<(), LabError> {
        self.running(id)?.kill().await;
        Ok(())
    }

    fn running(&mut self, id: &str) -> Result<&mut NodeProcess, LabError> {
        match self.slot(id)?.node.as_mut() {
            Some(node) => {
                if node.is_running() {
                    Ok(node)
                } else {
                    Err(LabError::NodeNotRunning(id.to_owned()))
                }
            }
            None => Err(LabError::NodeNotRunning(id.to_owned())),
        }
    }

    pub fn node(&self, id: &str) -> Option<&NodeProcess> {
        self.slots.get(id)?.node.as_ref()
    }

    pub fn node_logs(&self, id: &str) -> Option<String> {
        self.node(id).map(NodeProcess::logs)
    }

    fn node_status(&mut self, id: &str) -> NodeStatus {
        let slot = self.slots.get_mut(id).expect("a known slot");
        let running = slot.node.as_mut().is_some_and(NodeProcess::is_running);
        NodeStatus {
            id: id.to_owned(),
            port: slot.port,
            admin_port: slot
                .node
                .as_ref()
                .filter(|_| running)
                .and_then(|n| n.admin_port),
            running,
            version: slot
                .node
                .as_ref()
                .filter(|_| running)
                .map(|n| n.version.clone()),
            pid: slot.node.as_ref().filter(|_| running).and_then(|n| n.pid()),
        }
    }

    pub fn announcements(&self) -> Vec<Announcement> {
        self.announcements.lock().expect("not poisoned").clone()
    }

    /// The slots, the monitor's view of the cluster, and the announcements.
    pub async fn status(&mut self) -> LabStatus {
        let ids: Vec<String> = self.slots.keys().cloned().collect();
        let nodes: Vec<NodeStatus> = ids.iter().map(|id| self.node_status(id)).collect();
        let mut view = None;
        for status in &nodes {
            let Some(node) = self.node(&status.id).filter(|_| status.running) else {
                continue;
            };
            if let Some(cluster) = node.cluster().await {
                let leads = cluster["this_node_leads"] == true;
                if view.is_none() || leads {
                    view = Some(cluster);
                }
                if leads {
                    break;
                }
            }
        }
        LabStatus {
            proxy: self.proxy_url(),
            nats: self.nats_url(),
            cluster: self.config.cluster.clone(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            nodes,
            view,
            announcements: self.announcements(),
        }
    }

    /// Stops every node gracefully, then nginx and nats-server.
    pub async fn shutdown(mut self) {
        for slot in self.slots.values_mut() {
            let Some(node) = slot.node.as_mut() else {
                continue;
            };
            if node.is_running() && node.stop().await.is_err() {
                node.kill().await;
            }
        }
        if let Some(nginx) = self.nginx.take() {
            nginx.stop().await;
        }
        self.nats.stop().await;
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Subscribes to the cluster's announce subject and records every message.
async fn watch_announcements(
    url: &str,
    cluster: &str,
    started: Instant,
    sink: Arc<Mutex<Vec<Announcement>>>,
) -> Result<JoinHandle<()>, LabError> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|e| LabError::Nats(e.to_string()))?;
    let mut subscription = client
        .subscribe(Names::new(cluster).announce())
        .await
        .map_err(|e| LabError::Nats(e.to_string()))?;
    client
        .flush()
        .await
        .map_err(|e| LabError::Nats(e.to_string()))?;
    Ok(tokio::spawn(async move {
        let _client = client;
        while let Some(message) = subscription.next().await {
            let at_ms = started.elapsed().as_millis() as u64;
            let announcement = match decode::<SettledNotice>(&message.payload) {
                Ok(notice) => Announcement {
                    at_ms,
                    version: notice.record.version.to_string(),
                    previous: notice.record.previous.map(|v| v.to_string()),
                    revision: notice.revision,
                    leader: notice.record.leader,
                },
                // Not a notice: still counted, so a stray message shows.
                Err(_) => Announcement {
                    at_ms,
                    version: "?".into(),
                    previous: None,
                    revision: 0,
                    leader: String::new(),
                },
            };
            sink.lock().expect("not poisoned").push(announcement);
        }
    }))
}
