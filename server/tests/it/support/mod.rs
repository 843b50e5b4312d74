//! Helpers shared by the integration tests: start a node on a free port, and
//! read a Server-Sent Events stream event by event.

pub mod cluster;

pub use vo_lab::metrics::{parse as parse_metrics, value as metric};

use futures::StreamExt;
use std::{net::SocketAddr, time::Duration};
use tokio::task::JoinHandle;
use version_observer::VersionObserver;
use version_observer_node::{Application, Config};

/// Long enough for a loaded CI machine, short enough to fail fast.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub struct TestNode {
    pub addr: SocketAddr,
    /// With `--admin-listen`: where `/api/cluster` and `/metrics` are.
    pub admin_addr: Option<SocketAddr>,
    pub observer: VersionObserver,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _site: Option<SiteDir>,
}

/// A site folder with an (empty) `pkg/` bundle: enough for a node to start.
struct SiteDir(std::path::PathBuf);

impl SiteDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vo-site-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(dir.join("pkg")).expect("a scratch site folder");
        Self(dir)
    }
}

impl Drop for SiteDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestNode {
    /// Starts a node with these flags (plus `--listen 127.0.0.1:0` and a
    /// scratch `--site-root`).
    pub async fn start(flags: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", flags).await
    }

    /// [`start`](Self::start) on this address (a node redeployed on the
    /// port of one that stopped).
    pub async fn start_on(listen: &str, flags: &[&str]) -> Self {
        let site = SiteDir::new();
        let site_root = site.0.to_string_lossy().into_owned();
        let mut node = Self::start_with_site(listen, &site_root, flags).await;
        node._site = Some(site);
        node
    }

    /// [`start_on`](Self::start_on) serving the site in `site_root`.
    pub async fn start_with_site(listen: &str, site_root: &str, flags: &[&str]) -> Self {
        let args = [
            "version-observer",
            "--listen",
            listen,
            "--site-root",
            site_root,
        ]
        .into_iter()
        .chain(flags.iter().copied());
        let config = <Config as clap::Parser>::parse_from(args);
        let app = Application::build(config).await.expect("node starts");
        let addr = app.local_addr();
        let admin_addr = app.admin_addr();
        let observer = app.observer().clone();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            addr,
            admin_addr,
            observer,
            task: Some(task),
            _site: None,
        }
    }

    /// Stops the node gracefully and waits (up to [`DEADLINE`]) for it to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.observer.stop();
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("the node did not stop before the deadline")
            .expect("the node task panicked")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A URL on the admin listener (the node must have `--admin-listen`).
    pub fn admin_url(&self, path: &str) -> String {
        let addr = self.admin_addr.expect("started with --admin-listen");
        format!("http://{addr}{path}")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.observer.stop();
    }
}

/// One parsed server-sent event.
#[derive(Debug, Default, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub retry: Option<u64>,
    pub data: String,
}

/// Reads events from a streaming response.
pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event with data (comments and keep-alives are skipped), or
    /// `None` when the stream ends. Panics after [`DEADLINE`].
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(DEADLINE, self.next_event_inner())
            .await
            .expect("no server-sent event before the deadline")
    }

    async fn next_event_inner(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("data:") {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        has_data = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("retry:") {
                        event.retry = v.trim().parse().ok();
                    }
                }
                if has_data {
                    return Some(event);
                }
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(_)) | None => return None,
            }
        }
    }
}
