//! A real nats-server (JetStream on, dynamic port, killed on drop) and real
//! node processes, for the cluster tests.

use super::DEADLINE;
use serde_json::Value;
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Where the nats-server binary is: `NATS_SERVER_BIN`, else the tools folder
/// scripts/test.sh installs it into, else `PATH`.
fn nats_server_bin() -> PathBuf {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
        return path.into();
    }
    let tools = std::env::var("VO_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/version-observer/tools")
        });
    let venv = tools.join("venv/bin/nats-server");
    if venv.exists() {
        venv
    } else {
        "nats-server".into()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
}

pub struct NatsServer {
    pub port: u16,
    store: tempdir::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            store: tempdir::TempDir::new(),
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (Re)starts on the same port and store, so JetStream data survives.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new(nats_server_bin())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/test.sh installs it)");
        self.child = Some(child);
        let url = self.url();
        eventually("nats-server to accept clients", DEADLINE, async || {
            async_nats::connect(&url).await.ok().map(|_| ())
        })
        .await;
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node process.
pub struct NodeProcess {
    pub id: String,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

/// Fast timings so crash detection and failover fit in a test.
pub const NODE_TIMEOUT_MS: u64 = 1_000;
pub const LEASE_MS: u64 = 2_000;

impl NodeProcess {
    pub async fn start(nats: &str, id: &str, version: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("vo-test-{}-{id}-{port}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_version-observer"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--node-id",
                id,
                "--app-version",
                version,
            ])
            .args(["--nats", nats, "--cluster", "test"])
            .args([
                "--node-timeout-ms",
                &NODE_TIMEOUT_MS.to_string(),
                "--lease-ms",
                &LEASE_MS.to_string(),
            ])
            .args(["--round-timeout-ms", "300", "--safety-interval-ms", "2000"])
            .args(extra)
            .env("RUST_LOG", "info,version_observer=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("the node binary runs");
        let node = Self {
            id: id.into(),
            port,
            child: Some(child),
            log,
        };
        let url = node.url("/healthz");
        eventually(&format!("{id} to serve HTTP"), DEADLINE, async || {
            reqwest::get(&url)
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        })
        .await;
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn cluster(&self) -> Option<Value> {
        reqwest::get(self.url("/api/cluster"))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "{} exited with {status}:\n{}",
                self.id,
                self.logs()
            );
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A scratch folder removed on drop.
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "vo-nats-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
