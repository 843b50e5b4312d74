//! 9. The browser: Chromium (through Playwright, `end2end/bench/browser.mjs`)
//!    on pages of a real node.
//!
//! - **One stream per browser**: N tabs in one browser context (one browser
//!   profile) open how many streams on the node (its `/metrics`), and, for
//!   comparison, the same N tabs in N contexts (N browsers). With a stream
//!   per tab, Chromium's six HTTP/1.1 connections per host leave the
//!   seventh tab of one context unable to load: tabs that do not load and
//!   connect are counted in a note and left out.
//! - **Announcement -> banner**: per tab, from the publish of an announcement
//!   to the banner element in that tab's DOM; the last tab is what a user
//!   with many tabs waits for.
//! - **Wake-up**: a tab that slept through a deploy, from waking to the
//!   banner. Asleep, it is hidden and its stream is dead without anyone
//!   telling it ([`SleepProxy`]: as on a laptop whose lid was closed), and the
//!   deploy is announced. It wakes by one of the two paths the page listens
//!   to (`crates/version-observer/src/browser/stream.rs`): made visible
//!   after a long absence (`visibilitychange`; the page reopens its stream
//!   after 30 s hidden: the page's `performance.now()` is moved on by
//!   [`AWAY_MS`] rather than waiting them out), or the browser going
//!   `online` (the tab was offline too; Playwright's `setOffline`).
//!
//! Each run has a fresh node (the monitor of a cluster of its own, so no
//! round rolls the injected announcement back) and fresh browser contexts.
//! Times: the Rust side takes the publish instant on `CLOCK_MONOTONIC` and
//! converts it to `CLOCK_REALTIME`; the page stamps the banner with
//! `performance.timeOrigin + performance.now()`, the same wall clock, in
//! steps of 0.1 ms. The wake-up is measured on the page's clock alone.

use crate::{
    cluster::{self, SETTLE},
    report::{summarize, Goal, Report},
    sys,
};
use anyhow::{bail, Context};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Value};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    net::{TcpListener, TcpStream},
    process::{Child, ChildStdin, ChildStdout, Command},
    task::{JoinHandle, JoinSet},
};
use version_observer_core::Timings;
use vo_lab::{NatsServer, NodeProcess};

const OLD: &str = "1.0.0";
const NEW: &str = "2.0.0";
/// How long a banner may take before the tab counts as missing it.
const BANNER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the woken tab believes it was hidden: just over the 30 s after
/// which the page reopens its stream (`WAKE_AFTER_MS`).
const AWAY_MS: u64 = 31_000;
/// The longest one command of the browser script may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Args {
    /// Runs of each measurement.
    pub runs: usize,
    /// Tabs in the one-browser measurement.
    pub tabs: usize,
}

/// How the sleeping tab wakes.
#[derive(Clone, Copy)]
enum Wake {
    /// Made visible after [`AWAY_MS`] hidden.
    Visible,
    /// The browser is back online (it was offline while asleep).
    Online,
}

impl Wake {
    fn name(self) -> &'static str {
        match self {
            Wake::Visible => "visible",
            Wake::Online => "online",
        }
    }
}

pub async fn run(report: &mut Report, binary: &Path, args: &Args) -> anyhow::Result<()> {
    report.section(
        "10 browser",
        "10. Browser: one stream per browser, announcement -> banner, wake-up",
    );
    let script = vo_lab::node::repo_root().join("end2end/bench/browser.mjs");
    let packages = vo_lab::node::repo_root().join("end2end/node_modules/@playwright/test");
    if !packages.is_dir() {
        bail!(
            "no {} (scripts/lib.sh's ensure_browser_tests installs it)",
            packages.display()
        );
    }
    report.input("node", binary.display());
    report.input("browser", chromium().display());
    report.input("script", script.display());
    report.input("runs", args.runs);
    report.input("tabs", args.tabs);
    report.input(
        "clock",
        "CLOCK_REALTIME (page: performance.timeOrigin + now(), 0.1 ms steps)",
    );

    let nats = NatsServer::start().await?;
    let client = async_nats::connect(nats.url()).await?;
    let mut browser = Script::start(&script).await?;
    let mut bench = Bench {
        binary,
        nats: nats.url(),
        client,
        browser: &mut browser,
        clusters: 0,
    };

    let mut one_context = Vec::new();
    let mut every_tab = Vec::new();
    let mut last_tab = Vec::new();
    for _ in 0..args.runs {
        let (streams, latencies) = bench.tabs(report, args.tabs, 1).await?;
        one_context.push(streams as f64);
        last_tab.push(latencies.iter().copied().fold(f64::MIN, f64::max));
        every_tab.extend(latencies);
    }
    // The comparison: it only counts streams, one run tells it.
    let (separate, _) = bench.tabs(report, args.tabs, args.tabs).await?;

    let mut wake = Vec::new();
    for path in [Wake::Visible, Wake::Online] {
        let mut samples = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            samples.push(bench.wake(path).await?);
        }
        wake.push((path, samples));
    }
    browser.finish().await;

    let tabs = args.tabs;
    let most = one_context.iter().copied().fold(0.0, f64::max);
    report.figure(
        &format!("streams, {tabs} tabs, 1 context"),
        most,
        "",
        Some(Goal::AtMost(1.0)),
    );
    report.figure(
        &format!("streams, {tabs} tabs, {tabs} ctx"),
        separate as f64,
        "",
        None,
    );
    report.distribution("announce -> banner", &every_tab, "ms", None);
    if let Some(s) = summarize(&last_tab) {
        report.figure("last tab's banner p50", s.p50, "ms", None);
        report.figure(
            "last tab's banner max",
            s.max,
            "ms",
            Some(Goal::AtMost(1_000.0)),
        );
    }
    for (path, samples) in wake {
        if let Some(s) = summarize(&samples) {
            let name = path.name();
            report.figure(&format!("{name} -> banner p50"), s.p50, "ms", None);
            report.figure(
                &format!("{name} -> banner max"),
                s.max,
                "ms",
                Some(Goal::AtMost(1_000.0)),
            );
        }
    }
    report.note(
        "browser: the 1 s goals are ours (the product's promise), not a browser's; \
         figures are indicative on a shared 2-core machine",
    );
    Ok(())
}

/// What every measurement needs.
struct Bench<'a> {
    binary: &'a Path,
    nats: String,
    client: async_nats::Client,
    browser: &'a mut Script,
    /// Clusters started so far (each run has its own).
    clusters: usize,
}

impl Bench<'_> {
    /// A fresh node, alone in a fresh cluster, serving `OLD` with its baseline recorded.
    async fn node(&mut self) -> anyhow::Result<(NodeProcess, String)> {
        self.clusters += 1;
        let cluster = format!("browser{}", self.clusters);
        // No rounds during the measurement: the node is its cluster's
        // monitor, and a round would answer our announcement with a rollback.
        let timings = Timings {
            // The longest the node accepts (Timings::RANGES_MS).
            safety_interval: Duration::from_secs(3_600),
            ..Timings::DEFAULT
        };
        let node =
            cluster::start_node(self.binary, &self.nats, &cluster, "browser", OLD, timings).await?;
        cluster::until_view(&node, "the baseline", |v| {
            cluster::recorded(v) == Some((OLD, "baseline"))
        })
        .await?;
        Ok((node, cluster))
    }

    /// `tabs` tabs over `contexts` contexts: the node's open streams once
    /// every tab is connected, and each tab's announcement -> banner (ms).
    async fn tabs(
        &mut self,
        report: &mut Report,
        tabs: usize,
        contexts: usize,
    ) -> anyhow::Result<(u64, Vec<f64>)> {
        let (mut node, cluster) = self.node().await?;
        let opened: Opened = self
            .browser
            .call(json!({"cmd": "tabs", "url": node.url("/"), "tabs": tabs, "contexts": contexts}))
            .await?;
        let streams = open_streams(&node).await?;
        if opened.connected < tabs {
            report.note(&format!(
                "{tabs} tabs in {contexts} context(s): only {} loaded and connected (with \
                 {streams} streams open); the rest are left out",
                opened.connected
            ));
        }
        let publish = wall_ms(cluster::announce(&self.client, &cluster, NEW).await?);
        let banners: Banners = self
            .browser
            .call(
                json!({"cmd": "banners", "version": NEW, "timeout_ms": BANNER_TIMEOUT.as_millis()}),
            )
            .await?;
        if banners.missing > 0 {
            bail!(
                "{} of {} tabs showed no banner within {BANNER_TIMEOUT:?}",
                banners.missing,
                opened.connected
            );
        }
        node.stop().await?;
        Ok((
            streams,
            banners.banner_ms.iter().map(|at| at - publish).collect(),
        ))
    }

    /// One tab sleeps through a deploy and wakes by `path`: wake -> banner (ms).
    async fn wake(&mut self, path: Wake) -> anyhow::Result<f64> {
        let (mut node, cluster) = self.node().await?;
        let proxy = SleepProxy::start(node.port).await?;
        let offline = matches!(path, Wake::Online);
        let _: Value = self
            .browser
            .call(json!({"cmd": "sleep", "url": proxy.url(), "offline": offline}))
            .await?;
        proxy.sleep();
        cluster::announce(&self.client, &cluster, NEW).await?;
        // The node has it (and has sent it down the dead stream) before the tab wakes.
        cluster::until_view(&node, "the announcement", |v| {
            cluster::recorded(v) == Some((NEW, "announcement"))
        })
        .await?;
        let woke: Woke = self
            .browser
            .call(json!({
                "cmd": "wake",
                "version": NEW,
                "path": path.name(),
                "away_ms": AWAY_MS,
                "timeout_ms": BANNER_TIMEOUT.as_millis(),
            }))
            .await?;
        if woke.early {
            bail!(
                "the tab showed the banner before waking ({}): it did not sleep",
                path.name()
            );
        }
        node.stop().await?;
        Ok(woke.wake_ms)
    }
}

#[derive(Deserialize)]
struct Opened {
    connected: usize,
}

#[derive(Deserialize)]
struct Banners {
    /// When each tab's banner appeared (wall clock, ms since the epoch).
    banner_ms: Vec<f64>,
    missing: usize,
}

#[derive(Deserialize)]
struct Woke {
    wake_ms: f64,
    early: bool,
}

/// The node's open version streams (`version_observer_streams` in its `/metrics`).
async fn open_streams(node: &NodeProcess) -> anyhow::Result<u64> {
    let metrics = node.metrics().await.context("the node's /metrics")?;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("version_observer_streams "))
        .and_then(|v| v.trim().parse().ok())
        .context("no version_observer_streams in /metrics")
}

/// The wall-clock time (`CLOCK_REALTIME`, ms since the epoch: the clock of
/// the page's `performance.timeOrigin`) of the [`sys::mono_ns`] instant `mono`.
fn wall_ms(mono: u64) -> f64 {
    let now = sys::mono_ns();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1e3;
    wall - sys::ms_between(mono, now)
}

/// The Chromium the script launches (as end2end/playwright.config.ts does).
fn chromium() -> PathBuf {
    std::env::var_os("VO_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

/// The browser script: one JSON line per command in, one per reply out.
struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Script {
    async fn start(script: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new("node")
            .arg(script)
            // It finds @playwright/test in end2end/node_modules.
            .current_dir(script.parent().context("the script's folder")?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting node (Node.js) with the browser script")?;
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().context("script stdout")?).lines();
        Ok(Self {
            child,
            stdin,
            lines,
        })
    }

    async fn call<T: DeserializeOwned>(&mut self, command: Value) -> anyhow::Result<T> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the script's stdin is closed")?;
        stdin.write_all(format!("{command}\n").as_bytes()).await?;
        let line = tokio::time::timeout(COMMAND_TIMEOUT, self.lines.next_line())
            .await
            .with_context(|| format!("the browser script did not answer {command}"))??
            .context("the browser script exited")?;
        let reply: Value = serde_json::from_str(&line)
            .with_context(|| format!("the browser script said: {line}"))?;
        if let Some(error) = reply.get("error") {
            bail!("the browser script failed on {command}: {error}");
        }
        Ok(serde_json::from_value(reply)?)
    }

    /// Closes its stdin (it closes the browser and exits) and waits for it.
    async fn finish(&mut self) {
        drop(self.stdin.take());
        let _ = tokio::time::timeout(SETTLE, self.child.wait()).await;
    }
}

/// A TCP proxy on loopback in front of the node, standing in for the network
/// of a laptop that goes to sleep. [`sleep`](Self::sleep) makes every
/// connection open at that moment dead in silence: both sockets stay open
/// and what the node sends is lost; a request the browser sends on one
/// (a pooled keep-alive connection) closes it, as the node's host would
/// reset it; connections opened later are forwarded. A stream that lived through it cannot hear a
/// deploy, and nothing tells the browser so: only reopening it helps. (The
/// lab's `FaultProxy` closes such connections when its partition heals,
/// which the browser would notice by itself.)
struct SleepProxy {
    port: u16,
    /// Connections numbered below this are dead.
    dead_below: Arc<AtomicU64>,
    /// The next connection's number.
    next: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl SleepProxy {
    async fn start(upstream: u16) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let dead_below = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let (dead, counter) = (dead_below.clone(), next.clone());
        let accept = tokio::spawn(async move {
            // Dropped with this task: every connection closes with the proxy.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let id = counter.fetch_add(1, Ordering::SeqCst);
                let dead = dead.clone();
                connections.spawn(async move {
                    let Ok(node) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (from_node, to_node) = node.into_split();
                    let (from_browser, to_browser) = client.into_split();
                    // Either direction ending ends the connection.
                    tokio::select! {
                        () = pump(from_browser, to_node, id, &dead, Dead::Resets) => {}
                        () = pump(from_node, to_browser, id, &dead, Dead::Drops) => {}
                    }
                });
                // Reap the finished ones.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            port,
            dead_below,
            next,
            accept,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Every connection open now dies in silence.
    fn sleep(&self) {
        self.dead_below
            .store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for SleepProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// What a dead connection does with bytes that arrive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dead {
    /// Drops them (the node's side: they are lost on the way).
    Drops,
    /// Closes the connection: the browser wrote on it (a request on a
    /// pooled connection), and the node's host, which closed it long ago,
    /// would answer with a reset.
    Resets,
}

/// Forwards `from` to `to` until either closes; once connection `id` is
/// dead, `dead` says what happens to what arrives.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    id: u64,
    dead_below: &AtomicU64,
    dead: Dead,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) if id < dead_below.load(Ordering::SeqCst) => {
                if dead == Dead::Resets {
                    return;
                }
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
