//! 1. SSE fan-out: N idle version streams on one node; one version change;
//!    how long until every client has it (p50, p99, max), and the node's
//!    resident memory per connection.
//!
//! The clients live in separate load-generator processes (`vo-bench
//! fanout-worker`, at most [`PER_WORKER`] connections each, spread over
//! several 127.0.0.x source addresses). The change is an announcement written
//! into the cluster's KV record and published on NATS, exactly as a monitor
//! does: the node under test hears it like any node that is not the monitor.
//! Times come from `CLOCK_MONOTONIC`, which every process on the machine shares.
//!
//! The measurement itself ([`broadcast`]) knows nothing of the node: it takes
//! the processes a server was started as (memory and CPU are summed over
//! them and all their descendants), the stream's path, what marks a stream
//! open and what marks the message, and a publish step. `push_servers` runs
//! it against nchan and Pushpin too.

use crate::{
    client::{self, SseClient, Stream},
    cluster::{self, SETTLE},
    report::{Goal, Report},
    sys,
};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::{
    net::SocketAddr, os::unix::ffi::OsStrExt, path::Path, process::Stdio, sync::Arc, time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
    sync::{mpsc, Semaphore},
};
use version_observer_core::Timings;
use vo_lab::{process::raise_fd_limit, NatsServer, NodeProcess};

/// Connections one load-generator process holds.
pub const PER_WORKER: usize = 15_000;
/// Files a node needs besides its streams (listener, NATS, logs, epoll...).
pub(crate) const NODE_SPARE_FILES: u64 = 64;
pub(crate) const OLD: &str = "1.0.0";
pub(crate) const NEW: &str = "2.0.0";

pub struct Args {
    pub sizes: Vec<usize>,
    pub sources: u8,
}

/// Raises this process's open-file limit to the hard one (every load
/// generator inherits it) and reports it with the clients' source addresses;
/// returns the limit.
pub(crate) fn load_limits(report: &mut Report, sources: u8) -> u64 {
    let fd_limit = raise_fd_limit();
    report.input("open-file limit (hard)", fd_limit);
    report.input("source addresses", format!("127.0.0.1 - 127.0.0.{sources}"));
    fd_limit
}

pub async fn run(report: &mut Report, binary: &Path, args: &Args) -> anyhow::Result<()> {
    report.section(
        "1 fan-out",
        "1. SSE fan-out: one change to N idle streams on one node",
    );
    report.input("node", binary.display());
    let fd_limit = load_limits(report, args.sources);
    let nats = NatsServer::start().await?;
    let client = async_nats::connect(nats.url()).await?;
    for &n in &args.sizes {
        if !fits(n, fd_limit) {
            report.note(&format!(
                "{n} clients: not run. One node holds one file per stream, and this machine's \
                 open-file limit is {fd_limit} (hard; raising it needs CAP_SYS_RESOURCE, which \
                 this sandbox withholds)"
            ));
            continue;
        }
        one_size(report, binary, &nats.url(), &client, n, args.sources).await?;
    }
    Ok(())
}

async fn one_size(
    report: &mut Report,
    binary: &Path,
    nats: &str,
    client: &async_nats::Client,
    n: usize,
    sources: u8,
) -> anyhow::Result<()> {
    let node = FanoutNode::start(binary, nats, n).await?;
    let b = node.broadcast(client, n, sources).await?;
    if b.failed > 0 {
        report.note(&format!(
            "{} of {n} clients could not connect: {}",
            b.failed, b.error
        ));
    }
    report.input(
        &format!("[{n}] clients connected"),
        format!("{} in {:.1} s", b.connected, b.connect_s),
    );
    report.input(&format!("[{n}] load generators"), b.workers);
    report.distribution(
        &format!("[{n}] delivery"),
        &b.latencies,
        "ms",
        Some(Goal::AtMost(1_000.0)),
    );
    if b.missing > 0 {
        report.note(&format!(
            "[{n}] {} clients never received the change",
            b.missing
        ));
    }
    report.figure(
        &format!("[{n}] node RSS, idle"),
        b.rss_idle as f64 / 1_048_576.0,
        "MiB",
        None,
    );
    report.figure(
        &format!("[{n}] node RSS, streams open"),
        b.rss_open as f64 / 1_048_576.0,
        "MiB",
        None,
    );
    report.figure(
        &format!("[{n}] RSS per connection"),
        b.rss_per_connection_kib(),
        "KiB",
        Some(Goal::AtMost(8.0)),
    );
    node.stop().await
}

/// Whether a server that holds one file per stream can hold `n` under the
/// open-file limit, with room for its own files.
pub fn fits(n: usize, fd_limit: u64) -> bool {
    n as u64 + NODE_SPARE_FILES <= fd_limit
}

/// A node alone in its cluster, on the baseline version, ready for one
/// broadcast to `n` streams.
pub struct FanoutNode {
    node: NodeProcess,
    cluster: String,
}

impl FanoutNode {
    pub async fn start(binary: &Path, nats: &str, n: usize) -> anyhow::Result<Self> {
        let cluster = format!("fanout{n}");
        // No rounds during the measurement: the node is its cluster's monitor,
        // and a round would answer our announcement with a rollback.
        let timings = Timings {
            // The longest the node accepts (Timings::RANGES_MS).
            safety_interval: Duration::from_secs(3_600),
            ..Timings::DEFAULT
        };
        let node = cluster::start_node(binary, nats, &cluster, "fanout", OLD, timings).await?;
        cluster::until_view(&node, "the baseline", |v| {
            cluster::recorded(v) == Some((OLD, "baseline"))
        })
        .await?;
        Ok(Self { node, cluster })
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.node.pid().context("node pid")
    }

    /// `n` version streams, then an announcement of [`NEW`] through `client`.
    pub async fn broadcast(
        &self,
        client: &async_nats::Client,
        n: usize,
        sources: u8,
    ) -> anyhow::Result<Broadcast> {
        let target: SocketAddr = format!("127.0.0.1:{}", self.node.port).parse()?;
        let marker = String::from_utf8(client::announced(NEW))?;
        let load = Load {
            target,
            stream: client::VERSION_EVENTS,
            marker: &marker,
            clients: n,
            sources,
        };
        broadcast(
            &[self.pid()?],
            &load,
            cluster::announce(client, &self.cluster, NEW),
        )
        .await
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.node.stop().await?;
        Ok(())
    }
}

/// What the load generators connect to, ask for and wait for.
pub struct Load<'a> {
    pub target: SocketAddr,
    pub stream: Stream<'a>,
    /// Bytes that show the published message in a stream.
    pub marker: &'a str,
    pub clients: usize,
    pub sources: u8,
}

/// What one broadcast measured: the server is every process it was started
/// as and every descendant of those.
pub struct Broadcast {
    pub connected: usize,
    /// Clients whose stream did not open, and why the last one did not.
    pub failed: usize,
    pub error: String,
    /// From the first connect until every client has its stream open.
    pub connect_s: f64,
    pub workers: usize,
    /// From the publish until each client had the message, in ms.
    pub latencies: Vec<f64>,
    pub missing: usize,
    pub rss_idle: u64,
    pub rss_open: u64,
    /// Each process of the server with the streams open: name, open files.
    pub processes: Vec<(String, usize)>,
    /// The server's CPU time from just before the publish until every load
    /// generator has reported (every client has the message, or gave up).
    pub cpu_s: f64,
}

impl Broadcast {
    pub fn rss_per_connection_kib(&self) -> f64 {
        self.rss_open.saturating_sub(self.rss_idle) as f64 / self.connected.max(1) as f64 / 1024.0
    }
}

/// Opens `load.clients` streams from load-generator processes to the server
/// started as `roots`, reads its memory, runs `publish` (which returns the
/// [`sys::mono_ns`] it published at), and times every client's receipt.
pub async fn broadcast(
    roots: &[u32],
    load: &Load<'_>,
    publish: impl std::future::Future<Output = anyhow::Result<u64>>,
) -> anyhow::Result<Broadcast> {
    let n = load.clients;
    let rss = || -> anyhow::Result<u64> {
        roots
            .iter()
            .map(|&root| sys::tree_rss_bytes(root))
            .sum::<Option<u64>>()
            .context("server RSS: a process is gone")
    };
    let cpu = || -> anyhow::Result<f64> {
        roots
            .iter()
            .map(|&root| sys::tree_cpu_seconds(root))
            .sum::<Option<f64>>()
            .context("server CPU: a process is gone")
    };
    let rss_idle = rss()?;
    let connect_started = std::time::Instant::now();
    let mut workers = Vec::new();
    let mut left = n;
    while left > 0 {
        let count = left.min(PER_WORKER);
        workers.push(Worker::spawn(load, count).await?);
        left -= count;
    }
    let (mut connected, mut failed, mut error) = (0, 0, String::new());
    for worker in &mut workers {
        let ready: Ready = worker.read_line().await?;
        if ready.failed > 0 {
            // The status line, without the headers after it.
            error = ready.error.lines().next().unwrap_or_default().to_owned();
        }
        connected += ready.connected;
        failed += ready.failed;
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    // Let allocations settle, then read the server's memory with every stream open.
    tokio::time::sleep(Duration::from_secs(1)).await; // measurement protocol, not a condition
    let rss_open = rss()?;
    let processes = roots
        .iter()
        .flat_map(|&root| sys::process_tree(root))
        .map(|pid| {
            let name = sys::process_name(pid).unwrap_or_else(|| "?".into());
            (name, sys::open_files(pid).unwrap_or(0))
        })
        .collect();

    let cpu_before = cpu()?;
    let t0 = publish.await?;
    let mut latencies = Vec::with_capacity(n);
    let mut missing = 0;
    for worker in &mut workers {
        let done: Received = worker.read_line().await?;
        latencies.extend(done.at_ns.iter().map(|&at| sys::ms_between(t0, at)));
        missing += done.missing;
    }
    let cpu_s = cpu()? - cpu_before;
    for worker in &mut workers {
        worker.finish().await;
    }
    Ok(Broadcast {
        connected,
        failed,
        error,
        connect_s,
        workers: workers.len(),
        latencies,
        missing,
        rss_idle,
        rss_open,
        processes,
        cpu_s,
    })
}

/// A load-generator process.
pub(crate) struct Worker {
    pub(crate) child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Worker {
    pub(crate) async fn spawn(load: &Load<'_>, clients: usize) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["fanout-worker", "--target", &load.target.to_string()])
            .args(["--clients", &clients.to_string()])
            .args(["--sources", &load.sources.to_string()])
            .args(["--path", load.stream.path])
            .arg("--ready")
            .arg(std::ffi::OsStr::from_bytes(load.stream.ready))
            .args(["--marker", load.marker])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a load generator")?;
        let lines = BufReader::new(child.stdout.take().context("worker stdout")?).lines();
        Ok(Self { child, lines })
    }

    pub(crate) async fn read_line<T: for<'de> Deserialize<'de>>(&mut self) -> anyhow::Result<T> {
        let line = tokio::time::timeout(SETTLE * 4, self.lines.next_line())
            .await
            .context("load generator silent")??
            .context("load generator exited")?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Tells it to close its connections and waits for it.
    pub(crate) async fn finish(&mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(b"exit\n").await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Ready {
    pub(crate) connected: usize,
    pub(crate) failed: usize,
    pub(crate) error: String,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Received {
    pub(crate) at_ns: Vec<u64>,
    pub(crate) missing: usize,
}

/// The load generator: opens `clients` streams at `path` (each open once
/// `ready` has arrived, or its response head if `ready` is empty), says so,
/// records when each sees `marker`, reports, then holds the connections until
/// told to exit.
pub async fn worker(
    target: SocketAddr,
    clients: usize,
    sources: u8,
    path: &str,
    ready: &str,
    marker: &str,
) -> anyhow::Result<()> {
    check_sources(sources)?;
    raise_fd_limit();
    let (path, ready): (Arc<str>, Arc<[u8]>) = (path.into(), ready.as_bytes().into());
    let marker = Arc::new(marker.as_bytes().to_vec());
    // Connect at most this many at once: the node's accept backlog is finite.
    let gate = Arc::new(Semaphore::new(256));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u64, SseClient)>();
    for i in 0..clients {
        let source = client::spread(i, sources);
        let (gate, path, ready, marker, ready_tx, done_tx) = (
            gate.clone(),
            path.clone(),
            ready.clone(),
            marker.clone(),
            ready_tx.clone(),
            done_tx.clone(),
        );
        tokio::spawn(async move {
            let stream = Stream {
                path: &path,
                ready: &ready,
            };
            let mut sse = match client::open_stream_gated(target, source, stream, gate).await {
                Ok(sse) => {
                    let _ = ready_tx.send(Ok(()));
                    sse
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            if sse.wait_for(&marker).await.is_ok() {
                let _ = done_tx.send((sys::mono_ns(), sse));
            }
        });
    }
    drop((ready_tx, done_tx));
    let (mut connected, mut failed, mut error) = (0, 0, String::new());
    while connected + failed < clients {
        match ready_rx.recv().await {
            Some(Ok(())) => connected += 1,
            Some(Err(e)) => {
                failed += 1;
                error = e;
            }
            None => break,
        }
    }
    println!(
        "{}",
        serde_json::to_string(&Ready {
            connected,
            failed,
            error
        })?
    );

    let mut at_ns = Vec::with_capacity(connected);
    let mut held = Vec::with_capacity(connected);
    let deadline = tokio::time::Instant::now() + SETTLE * 2;
    while at_ns.len() < connected {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some((at, sse))) => {
                at_ns.push(at);
                held.push(sse);
            }
            _ => break,
        }
    }
    let missing = connected - at_ns.len();
    println!("{}", serde_json::to_string(&Received { at_ns, missing })?);
    // Hold every connection until the others have been measured too.
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
    drop(held);
    Ok(())
}

/// Checks worker arguments early, with a clear message.
pub fn check_sources(sources: u8) -> anyhow::Result<()> {
    if sources == 0 || sources > 254 {
        bail!("--sources must be 1 to 254 (127.0.0.1 to 127.0.0.254), not {sources}");
    }
    Ok(())
}
