//! One `version-observer` process, started with flags the way an operator
//! would, and read through its own HTTP interface.

use crate::{
    process::Managed,
    scratch::ScratchDir,
    timings::{self, Timings},
    wait, LabError,
};
use serde_json::Value;
use std::{path::PathBuf, process::ExitStatus, time::Duration};
use tokio::process::Command;

/// How long a node may take to serve HTTP after it is started.
const READY: Duration = Duration::from_secs(20);
/// How long a node may take to leave its cluster and exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// Which program a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum App {
    /// The reference node (`version-observer`), configured by its flags.
    #[default]
    Reference,
    /// The example app (`examples/todo`'s `todo`), configured the Leptos
    /// way (`LEPTOS_*`) and by `VO_*` variables; it has no admin listener.
    Todo,
}

/// How to start one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub app: App,
    pub binary: PathBuf,
    pub id: String,
    pub version: String,
    /// 0: a free port.
    pub port: u16,
    /// `None`: a single node.
    pub nats: Option<String>,
    pub cluster: String,
    pub timings: Timings,
    /// More flags, after the ones above (the reference node only).
    pub args: Vec<String>,
    /// More environment variables (`VO_RETIRE_FOR=60s`: both apps read them).
    pub env: Vec<(String, String)>,
    /// `RUST_LOG` for the node.
    pub log_filter: String,
    /// Where its log goes (`<dir>/<id>-<port>.log`); `None`: a scratch
    /// folder of its own, removed with the node.
    pub log_dir: Option<PathBuf>,
}

impl NodeConfig {
    pub fn new(binary: impl Into<PathBuf>, id: &str, version: &str) -> Self {
        Self {
            app: App::Reference,
            binary: binary.into(),
            id: id.to_owned(),
            version: version.to_owned(),
            port: 0,
            nats: None,
            cluster: "default".into(),
            timings: Timings::DEFAULT,
            args: Vec::new(),
            env: Vec::new(),
            log_filter: "info".into(),
            log_dir: None,
        }
    }

    /// A node of the example app (`binary`: its `todo` server).
    pub fn todo(binary: impl Into<PathBuf>, id: &str, version: &str) -> Self {
        Self {
            app: App::Todo,
            ..Self::new(binary, id, version)
        }
    }

    /// An environment variable for the node.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn nats(mut self, url: &str, cluster: &str) -> Self {
        self.nats = Some(url.to_owned());
        self.cluster = cluster.to_owned();
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn log_filter(mut self, filter: &str) -> Self {
        self.log_filter = filter.to_owned();
        self
    }

    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// The node's command line, without the program: its public port and
    /// its admin port (`/api/cluster`, `/metrics`).
    pub fn command_line(&self, port: u16, admin_port: u16) -> Vec<String> {
        let mut args = vec![
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin_port}"),
            "--node-id".into(),
            self.id.clone(),
            "--app-version".into(),
            self.version.clone(),
        ];
        if let Some(nats) = &self.nats {
            args.extend(["--nats".into(), nats.clone()]);
            args.extend(["--cluster".into(), self.cluster.clone()]);
            args.extend(timings::node_flags(&self.timings));
        }
        args.extend(self.args.iter().cloned());
        args
    }
}

/// A running node.
#[derive(Debug)]
pub struct NodeProcess {
    pub id: String,
    pub version: String,
    pub app: App,
    pub port: u16,
    /// Where it serves `/api/cluster` and `/metrics` (`--admin-listen`;
    /// the reference node only).
    pub admin_port: Option<u16>,
    process: Managed,
    http: reqwest::Client,
    /// The node's own log folder, when the config named none.
    _scratch: Option<ScratchDir>,
}

impl NodeProcess {
    /// Starts the node and waits until it serves HTTP. A node without a
    /// fixed port binds port 0 itself, and so does every node's admin
    /// listener: the lab reads the ports back from the node's log (picking
    /// a free port first and handing it over would race with every other
    /// process binding one meanwhile).
    pub async fn start(config: &NodeConfig) -> Result<Self, LabError> {
        if config.app == App::Todo {
            return Self::start_todo(config).await;
        }
        let mut command = Command::new(&config.binary);
        command
            .args(config.command_line(config.port, 0))
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            // Whatever the filter, the lines that say where it listens.
            .env(
                "RUST_LOG",
                format!("{},{LISTENING_TARGET}=info", config.log_filter),
            )
            // The node finds its site (target/site) relative to the repository root.
            .current_dir(repo_root());
        let scratch = match config.log_dir {
            Some(_) => None,
            None => Some(ScratchDir::new("vo-node")?),
        };
        let dir = config
            .log_dir
            .as_deref()
            .or(scratch.as_ref().map(ScratchDir::path))
            .expect("one of the two");
        let log = match config.port {
            0 => dir.join(format!("{}-{}.log", config.id, unique())),
            port => dir.join(format!("{}-{port}.log", config.id)),
        };
        let _ = std::fs::remove_file(&log);
        let mut process = Managed::spawn(&config.id, command, &log)?;
        let deadline = tokio::time::Instant::now() + READY;
        let (port, admin_port) = loop {
            if let Some(status) = process.exited() {
                return Err(LabError::Exited {
                    name: config.id.clone(),
                    status,
                    logs: process.logs(),
                });
            }
            let logs = process.logs();
            if let (Some(port), Some(admin)) = (
                listening_port(&logs, PUBLIC_LINE),
                listening_port(&logs, ADMIN_LINE),
            ) {
                break (port, admin);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LabError::Timeout(format!(
                    "{} to say where it listens",
                    config.id
                )));
            }
            tokio::time::sleep(wait::POLL).await; // the poll interval
        };
        let node = Self {
            id: config.id.clone(),
            version: config.version.clone(),
            app: App::Reference,
            port,
            admin_port: Some(admin_port),
            process,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("a plain HTTP client builds"),
            _scratch: scratch,
        };
        let health = node.url("/healthz");
        node.until_serving(&config.id, &health, deadline).await
    }

    /// The example app, on `config.port` (a free one if 0): configured by
    /// `LEPTOS_*` and `VO_*` variables, ready once `/api/version` answers.
    async fn start_todo(config: &NodeConfig) -> Result<Self, LabError> {
        let port = match config.port {
            0 => crate::free_port()?,
            port => port,
        };
        let mut command = Command::new(&config.binary);
        command
            .env("APP_VERSION", &config.version)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("LEPTOS_SITE_ROOT", "target/site-todo")
            .env("LEPTOS_OUTPUT_NAME", "version-observer")
            .env("LEPTOS_ENV", "PROD")
            .env("VO_NODE_ID", &config.id)
            .env("RUST_LOG", &config.log_filter)
            .current_dir(repo_root());
        if let Some(nats) = &config.nats {
            command
                .env("VO_NATS", nats)
                .env("VO_CLUSTER", &config.cluster)
                .envs(timings::node_env(&config.timings));
        }
        command.envs(config.env.iter().map(|(k, v)| (k, v)));
        let scratch = match config.log_dir {
            Some(_) => None,
            None => Some(ScratchDir::new("vo-node")?),
        };
        let dir = config
            .log_dir
            .as_deref()
            .or(scratch.as_ref().map(ScratchDir::path))
            .expect("one of the two");
        let log = dir.join(format!("{}-{port}.log", config.id));
        let _ = std::fs::remove_file(&log);
        let process = Managed::spawn(&config.id, command, &log)?;
        let node = Self {
            id: config.id.clone(),
            version: config.version.clone(),
            app: App::Todo,
            port,
            admin_port: None,
            process,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("a plain HTTP client builds"),
            _scratch: scratch,
        };
        let deadline = tokio::time::Instant::now() + READY;
        let health = node.url("/api/version");
        node.until_serving(&config.id, &health, deadline).await
    }

    /// Waits until `health` answers with success, the process exits, or
    /// `deadline` passes.
    async fn until_serving(
        mut self,
        id: &str,
        health: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Self, LabError> {
        let (node, config_id) = (&mut self, id);
        // A plain loop rather than `wait::eventually`: this future must be
        // `Send` (the control API awaits it), which async closures are not yet.
        loop {
            if let Some(status) = node.process.exited() {
                return Err(LabError::Exited {
                    name: config_id.to_owned(),
                    status,
                    logs: node.logs(),
                });
            }
            let ok = node
                .http
                .get(health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LabError::Timeout(format!("{config_id} to serve HTTP")));
            }
            tokio::time::sleep(wait::POLL).await; // the poll interval
        }
        Ok(self)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.exited().is_none()
    }

    /// A URL on the node's admin listener (the reference node's; the
    /// example app has none).
    pub fn admin_url(&self, path: &str) -> String {
        let port = self.admin_port.expect("a node with an admin listener");
        format!("http://127.0.0.1:{port}{path}")
    }

    /// `GET /api/cluster` (admin listener), or `None` if the node does not
    /// answer or has no admin listener.
    pub async fn cluster(&self) -> Option<Value> {
        self.admin_port?;
        self.get_json(self.admin_url("/api/cluster")).await
    }

    /// `GET /metrics` (admin listener), or `None` if the node does not
    /// answer or has no admin listener.
    pub async fn metrics(&self) -> Option<String> {
        self.admin_port?;
        let response = self
            .http
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .ok()?;
        response.error_for_status().ok()?.text().await.ok()
    }

    /// `GET /api/version`, or `None` if the node does not answer.
    pub async fn version_report(&self) -> Option<Value> {
        self.get_json(self.url("/api/version")).await
    }

    async fn get_json(&self, url: String) -> Option<Value> {
        self.http.get(url).send().await.ok()?.json().await.ok()
    }

    /// SIGTERM, and waits for a clean exit (an unclean one is an error).
    pub async fn stop(&mut self) -> Result<ExitStatus, LabError> {
        let status = self.process.terminate(GRACE).await?;
        if !status.success() {
            return Err(LabError::UncleanStop {
                name: self.id.clone(),
                status,
                logs: self.logs(),
            });
        }
        Ok(status)
    }

    /// SIGTERM, without waiting for the exit: a retiring node keeps
    /// serving its version's pages for a while, then exits by itself.
    pub fn terminate(&mut self) -> bool {
        self.signal(libc::SIGTERM)
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.process.exited() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(wait::POLL).await; // the poll interval
        }
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        self.process.kill().await;
    }

    /// Sends a signal, e.g. `libc::SIGSTOP` to freeze it.
    pub fn signal(&mut self, signal: i32) -> bool {
        self.process.signal(signal)
    }

    /// Freezes the process (SIGSTOP): alive but silent, like a hung node.
    pub fn pause(&mut self) -> bool {
        self.signal(libc::SIGSTOP)
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&mut self) -> bool {
        self.signal(libc::SIGCONT)
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }
}

/// The module whose log lines say where a node listens.
const LISTENING_TARGET: &str = "version_observer_node::application";
/// What those lines say, before the address.
const PUBLIC_LINE: &str = "node listening on http://";
const ADMIN_LINE: &str = "admin routes (";

/// The port in the first log line with `marker`, from the
/// `http://127.0.0.1:<port>` that follows it.
fn listening_port(logs: &str, marker: &str) -> Option<u16> {
    logs.lines().find_map(|line| {
        let rest = &line[line.find(marker)?..];
        let rest = &rest[rest.find("http://127.0.0.1:")? + "http://127.0.0.1:".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// A name no other node of this process has had.
fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// The repository root (this crate's parent folder), where nodes find `target/site`.
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_are_read_from_the_nodes_log_lines_text_or_json() {
        let text = "2026-11-26T04:00:00Z  INFO version_observer_node::application: node listening on http://127.0.0.1:40123 node_id=n1\n\
                    2026-11-26T04:00:00Z  INFO version_observer_node::application: admin routes (/fleet, /api/cluster, /metrics) on http://127.0.0.1:40124 admin=127.0.0.1:40124";
        assert_eq!(listening_port(text, PUBLIC_LINE), Some(40123));
        assert_eq!(listening_port(text, ADMIN_LINE), Some(40124));
        let json =
            r#"{"message":"node listening on http://127.0.0.1:5001","addr":"127.0.0.1:5001"}"#;
        assert_eq!(listening_port(json, PUBLIC_LINE), Some(5001));
        assert_eq!(listening_port("starting", PUBLIC_LINE), None);
    }

    #[test]
    fn a_single_node_gets_no_cluster_flags() {
        let config = NodeConfig::new("vo", "n1", "1.0.0").arg("--compat=minor");
        assert_eq!(
            config.command_line(4000, 4100),
            [
                "--listen",
                "127.0.0.1:4000",
                "--admin-listen",
                "127.0.0.1:4100",
                "--node-id",
                "n1",
                "--app-version",
                "1.0.0",
                "--compat=minor"
            ]
        );
    }

    #[test]
    fn a_cluster_node_gets_nats_and_its_timings() {
        let config = NodeConfig::new("vo", "n2", "2.0.0-rc.1")
            .nats("nats://127.0.0.1:4222", "lab")
            .timings(timings::FAST);
        let line = config.command_line(4001, 4101).join(" ");
        assert!(
            line.contains(
                "--nats nats://127.0.0.1:4222 --cluster lab --node-timeout-ms 1000 --lease-ms 2000"
            ),
            "{line}"
        );
        assert!(line.contains("--app-version 2.0.0-rc.1"), "{line}");
    }
}
