//! 11. A cluster's worth of tabs: N idle streams spread evenly over M nodes of
//!     one cluster (100,000 over six at full size, about 16,667 each: under a
//!     process's open-file limit), one announcement, the time until every
//!     client has it (p50, p99, max), per node too, with the nodes' memory and
//!     CPU. Then the same on paper for 1,000,000 tabs over 60 nodes.
//!
//! The clients are the fan-out benchmark's load generators ([`fanout`],
//! `vo-bench fanout-worker`, at most [`PER_WORKER`] connections each, every
//! one aimed at a single node). The announcement is injected as there:
//! written into the cluster's KV record and published on NATS, as a monitor
//! does; the monitor's safety interval is an hour and the membership is
//! steady, so no round of its own runs meanwhile (an [`AnnounceWatch`]
//! checks that none did). Every process reads `CLOCK_MONOTONIC`, so a
//! delivery time runs from the publish to a client's read of the event.
//!
//! Three measurements feed the estimate for 1,000,000 tabs over 60 nodes:
//!
//! - **NATS to 60 nodes**: [`PROBES`] extra NATS connections subscribe to the
//!   notice subject like nodes do; when each heard the one message is the
//!   server's fan-out of an announcement to a 60-node cluster;
//! - **one node's fan-out**: the same N/M streams on a node alone (here M
//!   nodes share two cores; on their own machines each would fan out like
//!   this one), timed from that node's first client, which marks when the
//!   node had the notice;
//! - the cluster run itself, as the pessimistic bound.
//!
//! p99(1M / 60) ≈ NATS p99 to 60 subscribers + one node's fan-out p99.

use crate::{
    client,
    cluster::{self, AnnounceWatch},
    fanout::{self, Load, Ready, Received, Worker, NEW, NODE_SPARE_FILES, OLD, PER_WORKER},
    report::{self, Goal, Report},
    sys,
};
use anyhow::{bail, Context};
use futures::StreamExt;
use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};
use version_observer_core::{
    protocol::{Names, SettledNotice},
    timing::RECORD_REFRESH,
    Timings,
};
use vo_lab::{wait, NatsServer, NodeProcess};

/// NATS connections that stand in for the nodes of a 60-node cluster.
const PROBES: usize = 60;
/// The cluster on paper.
const PAPER_TABS: usize = 1_000_000;
const PAPER_NODES: usize = 60;
/// A run starts once the machine holds fewer connections than this in
/// TIME_WAIT. A load generator binds each client's source port itself, and
/// among many TIME_WAIT ports that bind is slow in the kernel and blocks the
/// generator's one thread: 100,000 clients took 56 s to connect after a run
/// of 16,667 instead of 8 s, and nodes closed 386 connections whose request
/// was not sent within their request timeout.
const TIME_WAIT_LEFT: u64 = 1_000;
/// Linux holds a connection in TIME_WAIT for 60 s.
const TIME_WAIT_DRAIN: Duration = Duration::from_secs(90);
/// How long the probes may take to hear the announcement.
const HEAR_WITHIN: Duration = Duration::from_secs(30);
/// Product defaults, except that no safety-net round may run during a
/// measurement: it would answer the injected announcement with a rollback.
const TIMINGS: Timings = Timings {
    // The longest the node accepts (Timings::RANGES_MS).
    safety_interval: Duration::from_secs(3_600),
    ..Timings::DEFAULT
};

pub struct Args {
    /// Streams in total.
    pub clients: usize,
    /// Nodes of the cluster.
    pub nodes: usize,
    pub sources: u8,
}

pub async fn run(report: &mut Report, binary: &Path, args: &Args) -> anyhow::Result<()> {
    report.section(
        "11 cluster fan-out",
        "11. A cluster's worth of tabs: N streams over M nodes, one announcement",
    );
    if args.nodes == 0 || args.clients < args.nodes {
        bail!(
            "--cluster-clients ({}) must be at least --cluster-nodes ({}), which must be at least 1",
            args.clients,
            args.nodes
        );
    }
    let per_node = args.clients.div_ceil(args.nodes);
    report.input("node", binary.display());
    let fd_limit = fanout::load_limits(report, args.sources);
    report.input(
        "timings",
        format!(
            "product defaults (node timeout {} ms), safety interval {} s",
            TIMINGS.node_timeout.as_millis(),
            TIMINGS.safety_interval.as_secs()
        ),
    );
    report.input("NATS probes", format!("{PROBES} connections"));
    if per_node as u64 + NODE_SPARE_FILES > fd_limit {
        bail!(
            "{per_node} streams per node need more than this machine's open-file limit \
             ({fd_limit}): use more --cluster-nodes"
        );
    }
    let nats = NatsServer::start().await?;
    let client = async_nats::connect(nats.url()).await?;

    let single = Shape {
        label: format!("[{per_node} on 1]"),
        cluster: "alone".into(),
        nodes: 1,
        clients: per_node,
    };
    let spread = Shape {
        label: format!("[{} over {}]", args.clients, args.nodes),
        cluster: "tabs".into(),
        nodes: args.nodes,
        clients: args.clients,
    };
    let alone = measure(binary, &nats.url(), &client, &single, args.sources).await?;
    alone.print(report, &single, None);
    let together = measure(binary, &nats.url(), &client, &spread, args.sources).await?;
    together.print(report, &spread, Some(Goal::AtMost(1_000.0)));

    on_paper(report, per_node, &together, &alone);
    Ok(())
}

/// What one measurement runs: `clients` streams over `nodes` nodes.
struct Shape {
    label: String,
    cluster: String,
    nodes: usize,
    clients: usize,
}

impl Shape {
    /// Clients per node: as even as can be, the first ones one more.
    fn share(&self, node: usize) -> usize {
        self.clients / self.nodes + usize::from(node < self.clients % self.nodes)
    }
}

/// What one measurement saw.
struct Outcome {
    /// How long the run waited for TIME_WAIT to drain (and what was left).
    drain: String,
    connected: usize,
    /// Per load generator that could not open them all: how many failed, why.
    refused: Vec<String>,
    connect_s: f64,
    workers: usize,
    /// Per node, each client's delivery time in ms from the publish.
    delivered: Vec<Vec<f64>>,
    missing: usize,
    /// Each probe's time in ms from the publish to its NATS message.
    probes: Vec<f64>,
    rss_idle: f64,
    rss_open: f64,
    node_cpu_s: f64,
    worker_cpu_s: f64,
    /// From the publish until every load generator had reported, in s.
    window_s: f64,
    /// CPU the whole machine spent in that window (every process and the
    /// kernel), in s.
    machine_cpu_s: f64,
    /// The monitor's last collection round before the announcement, in ms.
    round_ms: Option<f64>,
}

async fn measure(
    binary: &Path,
    nats: &str,
    client: &async_nats::Client,
    shape: &Shape,
    sources: u8,
) -> anyhow::Result<Outcome> {
    let drain_started = std::time::Instant::now();
    let drained = wait::eventually("TIME_WAIT to drain", TIME_WAIT_DRAIN, async || {
        time_wait().filter(|&tw| tw < TIME_WAIT_LEFT)
    })
    .await
    .is_ok();
    let drain = format!(
        "{:.0} s{}",
        drain_started.elapsed().as_secs_f64(),
        match drained {
            true => String::new(),
            false => format!(", {} left", time_wait().unwrap_or(0)),
        }
    );
    let mut nodes = Vec::with_capacity(shape.nodes);
    for i in 1..=shape.nodes {
        nodes.push(
            cluster::start_node(binary, nats, &shape.cluster, &format!("n{i}"), OLD, TIMINGS)
                .await?,
        );
    }
    for node in &nodes {
        cluster::until_view(node, "the baseline", |v| {
            cluster::recorded(v) == Some((OLD, "baseline"))
        })
        .await?;
    }
    let round_ms = steady(&nodes).await?;
    let pids = nodes
        .iter()
        .map(|n| n.pid().context("node pid"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rss_idle = total(&pids, rss).context("node RSS")?;

    let connect_started = std::time::Instant::now();
    // (node index, load generator), each aimed at one node.
    let marker = String::from_utf8(client::announced(NEW))?;
    let mut workers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let load = Load {
            target: format!("127.0.0.1:{}", node.port).parse()?,
            stream: client::VERSION_EVENTS,
            marker: &marker,
            clients: shape.share(i),
            sources,
        };
        let count = load.clients.div_ceil(PER_WORKER);
        for w in 0..count {
            let clients = load.clients / count + usize::from(w < load.clients % count);
            workers.push((i, Worker::spawn(&load, clients).await?));
        }
    }
    let (mut connected, mut refused) = (0, Vec::new());
    for (i, worker) in &mut workers {
        let ready: Ready = worker.read_line().await?;
        if ready.failed > 0 {
            refused.push(format!("n{}: {} ({})", *i + 1, ready.failed, ready.error));
        }
        connected += ready.connected;
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    // Let allocations settle, then read the nodes' memory with every stream open.
    tokio::time::sleep(Duration::from_secs(1)).await; // measurement protocol, not a condition
    let rss_open = total(&pids, rss).context("node RSS")?;
    // Connecting loaded every core: should a member have expired meanwhile,
    // wait for the round its return started to be over.
    steady(&nodes).await?;

    let names = Names::new(&shape.cluster);
    let probes = Probes::start(nats, &names.settled(), PROBES).await?;
    let watch = AnnounceWatch::start(client, &shape.cluster).await?;
    let worker_pids = workers
        .iter()
        .map(|(_, w)| w.child.id().context("load generator pid"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let node_cpu_before = total(&pids, sys::cpu_seconds).context("node CPU")?;
    let worker_cpu_before = total(&worker_pids, sys::cpu_seconds).context("worker CPU")?;
    let machine_cpu_before = machine_busy_seconds().context("/proc/stat")?;

    let t0 = cluster::announce(client, &shape.cluster, NEW).await?;
    let mut delivered = vec![Vec::new(); shape.nodes];
    let mut missing = 0;
    for (i, worker) in &mut workers {
        let done: Received = worker.read_line().await?;
        delivered[*i].extend(done.at_ns.iter().map(|&at| sys::ms_between(t0, at)));
        missing += done.missing;
    }
    let node_cpu_s = total(&pids, sys::cpu_seconds).context("node CPU")? - node_cpu_before;
    let worker_cpu_s =
        total(&worker_pids, sys::cpu_seconds).context("worker CPU")? - worker_cpu_before;
    let machine_cpu_s = machine_busy_seconds().context("/proc/stat")? - machine_cpu_before;
    let window_s = sys::ms_between(t0, sys::mono_ns()) / 1_000.0;
    let probes = probes
        .heard(PROBES)
        .await?
        .into_iter()
        .map(|at| sys::ms_between(t0, at))
        .collect();
    if watch.count() > 0 {
        bail!(
            "the monitor announced during the measurement ({:?}): a round interfered, \
             the times are not the injected announcement's",
            watch.versions_from(&nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>())
        );
    }

    for (_, worker) in &mut workers {
        worker.finish().await;
    }
    for node in &mut nodes {
        node.stop().await?;
    }
    Ok(Outcome {
        drain,
        connected,
        refused,
        connect_s,
        workers: workers.len(),
        delivered,
        missing,
        probes,
        rss_idle,
        rss_open,
        node_cpu_s,
        worker_cpu_s,
        window_s,
        machine_cpu_s,
        round_ms,
    })
}

/// Connections this machine holds in TIME_WAIT (`/proc/net/sockstat`).
fn time_wait() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let mut words = stat
        .lines()
        .find(|l| l.starts_with("TCP:"))?
        .split_whitespace();
    words.find(|&w| w == "tw")?;
    words.next()?.parse().ok()
}

/// Waits until every node sees every member and the monitor's last round
/// settled over all of them: none is due then for the safety interval.
/// Returns that round's collection time in ms.
async fn steady(nodes: &[NodeProcess]) -> anyhow::Result<Option<f64>> {
    let all = nodes.len();
    for node in nodes {
        cluster::until_view(node, "every member in view", |v| {
            v["members"].as_array().map_or(0, Vec::len) == all
        })
        .await?;
    }
    let monitor = &nodes[cluster::monitor_among(&nodes.iter().collect::<Vec<_>>()).await?];
    let view = cluster::until_view(monitor, "a settled round over every member", |v| {
        v["last_round"]["expected"].as_u64() == Some(all as u64)
            && v["last_round"]["outcome"] == "settled"
    })
    .await?;
    Ok(view["last_round"]["collect_ms"].as_f64())
}

/// The sum of a per-process reading over `pids`.
fn total(pids: &[u32], read: impl Fn(u32) -> Option<f64>) -> Option<f64> {
    pids.iter().map(|&pid| read(pid)).sum()
}

/// CPU time the whole machine has spent busy since boot, in seconds: every
/// core's user, nice, system, irq and softirq time (`/proc/stat`), so idle,
/// I/O wait and time stolen by the hypervisor are left out.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| ticks.get(i))
        .sum::<Option<u64>>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(busy as f64 / per_second.max(1) as f64)
}

fn rss(pid: u32) -> Option<f64> {
    sys::rss_bytes(pid).map(|bytes| bytes as f64)
}

/// Each node's deliveries counted from its own first client, which marks
/// when the node had the notice: its fan-out alone, without the NATS hop.
fn fan_out(delivered: &[Vec<f64>]) -> Vec<Vec<f64>> {
    delivered
        .iter()
        .map(|times| {
            let first = times.iter().copied().fold(f64::INFINITY, f64::min);
            times.iter().map(|t| t - first).collect()
        })
        .collect()
}

fn p99(samples: &[f64]) -> f64 {
    report::summarize(samples).map_or(f64::NAN, |s| s.p99)
}

impl Outcome {
    fn all(&self) -> Vec<f64> {
        self.delivered.concat()
    }

    fn print(&self, report: &mut Report, shape: &Shape, goal: Option<Goal>) {
        let label = &shape.label;
        report.input(&format!("{label} TIME_WAIT drained"), &self.drain);
        report.input(
            &format!("{label} clients connected"),
            format!("{} in {:.1} s", self.connected, self.connect_s),
        );
        if !self.refused.is_empty() {
            report.note(&format!(
                "{label} {} of {} clients could not connect, by node: {}",
                shape.clients - self.connected,
                shape.clients,
                self.refused.join("; ")
            ));
        }
        report.input(
            &format!("{label} load generators"),
            format!("{} (at most {PER_WORKER} clients each)", self.workers),
        );
        report.distribution(&format!("{label} delivery"), &self.all(), "ms", goal);
        if self.missing > 0 {
            report.note(&format!(
                "{label} {} clients never received the change",
                self.missing
            ));
        }
        let fan_out = fan_out(&self.delivered);
        for (i, (times, local)) in self.delivered.iter().zip(&fan_out).enumerate() {
            if let Some(s) = report::summarize(times) {
                report.input(
                    &format!("{label} n{}", i + 1),
                    format!(
                        "{} clients, first {:.1} ms, p50 {:.1} ms, max {:.1} ms; \
                         from its first client: p99 {:.1} ms",
                        s.n,
                        s.min,
                        s.p50,
                        s.max,
                        p99(local)
                    ),
                );
                report.figure(&format!("{label} n{} p99", i + 1), s.p99, "ms", None);
            }
        }
        report.distribution(
            &format!("{label} NATS to {PROBES} probes"),
            &self.probes,
            "ms",
            None,
        );
        let mib = |bytes: f64| bytes / 1_048_576.0;
        report.figure(
            &format!("{label} node RSS, idle (sum)"),
            mib(self.rss_idle),
            "MiB",
            None,
        );
        report.figure(
            &format!("{label} node RSS, open (sum)"),
            mib(self.rss_open),
            "MiB",
            None,
        );
        report.figure(
            &format!("{label} RSS per connection"),
            self.rss_per_connection_kib(),
            "KiB",
            None,
        );
        report.figure(
            &format!("{label} node CPU, broadcast"),
            self.node_cpu_s * 1_000.0,
            "ms",
            None,
        );
        report.figure(
            &format!("{label} node CPU per client"),
            self.node_cpu_s * 1e6 / self.connected.max(1) as f64,
            "µs",
            None,
        );
        report.figure(
            &format!("{label} load generators' CPU"),
            self.worker_cpu_s * 1_000.0,
            "ms",
            None,
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        report.input(
            &format!("{label} broadcast window"),
            format!(
                "{:.0} ms from the publish to the last report: {:.0} ms of CPU on {cores} \
                 cores, of which nodes {:.0}, load generators {:.0}, everything else {:.0} \
                 (other processes, the kernel)",
                self.window_s * 1_000.0,
                self.machine_cpu_s * 1_000.0,
                self.node_cpu_s * 1_000.0,
                self.worker_cpu_s * 1_000.0,
                (self.machine_cpu_s - self.node_cpu_s - self.worker_cpu_s) * 1_000.0
            ),
        );
    }

    fn rss_per_connection_kib(&self) -> f64 {
        (self.rss_open - self.rss_idle).max(0.0) / self.connected.max(1) as f64 / 1024.0
    }
}

/// The estimate for 1,000,000 tabs over 60 nodes, from this run's figures.
fn on_paper(report: &mut Report, measured_per_node: usize, together: &Outcome, alone: &Outcome) {
    let per_node = PAPER_TABS.div_ceil(PAPER_NODES);
    let label = format!("[{PAPER_TABS} over {PAPER_NODES}]");
    let nodes = together.delivered.len();
    report.input(&format!("{label} streams per node"), per_node);
    report.input(
        &format!("{label} formula"),
        format!(
            "p99 ≈ NATS p99 to {PROBES} subscribers + one node's fan-out p99 \
             at {per_node} streams, counted from its first client"
        ),
    );
    if measured_per_node != per_node {
        report.note(&format!(
            "{label} the one-node run had {measured_per_node} streams, not {per_node}: \
             the estimate is for the streams measured"
        ));
    }
    let nats = p99(&alone.probes);
    let node = p99(&fan_out(&alone.delivered).concat());
    report.input(
        &format!("{label} measured inputs"),
        format!(
            "NATS p99 to {PROBES} probes {nats:.1} ms and the node's fan-out p99 {node:.1} ms, \
             both from the one-node run ({measured_per_node} streams)"
        ),
    );
    report.figure(
        &format!("{label} delivery p99, estimate"),
        nats + node,
        "ms",
        None,
    );
    let nats_crowded = p99(&together.probes);
    let node_crowded = fan_out(&together.delivered)
        .iter()
        .map(|local| p99(local))
        .fold(0.0, f64::max);
    report.input(
        &format!("{label} crowded inputs"),
        format!(
            "the same from the {nodes}-node run, where {nodes} nodes fan out on two cores: \
             NATS p99 {nats_crowded:.1} ms, the slowest node's fan-out p99 {node_crowded:.1} ms"
        ),
    );
    report.figure(
        &format!("{label} p99 estimate, crowded"),
        nats_crowded + node_crowded,
        "ms",
        None,
    );
    report.note(&format!(
        "{label} estimated delivery p99 {:.0} ms (NATS {nats:.1} + one node {node:.1}); \
         {:.0} ms from the crowded {nodes}-node run",
        nats + node,
        nats_crowded + node_crowded
    ));

    let probes = report::summarize(&alone.probes);
    let heartbeat = TIMINGS.heartbeat_interval().as_secs_f64();
    report.input(
        &format!("{label} grows, NATS"),
        format!(
            "one delivery per node per announcement ({PAPER_NODES}; first to last of \
             {PROBES} probes here {:.1} ms)",
            probes.map_or(f64::NAN, |s| s.max - s.min)
        ),
    );
    report.input(
        &format!("{label} grows, heartbeats"),
        format!(
            "every node hears every node's, one per {heartbeat:.0} s: {PAPER_NODES} published \
             and {:.0} delivered per second (here {nodes} and {:.0})",
            (PAPER_NODES * PAPER_NODES) as f64 / heartbeat,
            (nodes * nodes) as f64 / heartbeat
        ),
    );
    report.input(
        &format!("{label} grows, rounds"),
        format!(
            "{PAPER_NODES} replies per round ({} ms over {nodes} members here; \
             `--only monitor` measures rounds over up to 1,000 members)",
            together
                .round_ms
                .map_or("?".into(), |ms| format!("{ms:.1}"))
        ),
    );
    report.input(
        &format!("{label} grows, KV reads"),
        format!(
            "every node re-reads the record on each notice and every {} s: \
             {PAPER_NODES} reads per announcement, {:.0} per second",
            RECORD_REFRESH.as_secs(),
            PAPER_NODES as f64 / RECORD_REFRESH.as_secs_f64()
        ),
    );
    let kib = together.rss_per_connection_kib();
    report.input(
        &format!("{label} does not grow"),
        format!(
            "streams per node ({per_node}), a node's fan-out and memory ({kib:.2} KiB per \
             connection here: {:.1} MiB per node), the one KV write and the one publish",
            kib * per_node as f64 / 1024.0
        ),
    );
}

/// NATS connections subscribed to the notice subject as nodes are: when each
/// heard [`NEW`] announced.
struct Probes {
    heard: Arc<Mutex<Vec<u64>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Probes {
    async fn start(url: &str, subject: &str, count: usize) -> anyhow::Result<Self> {
        let heard = Arc::new(Mutex::new(Vec::with_capacity(count)));
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let probe = async_nats::connect(url).await?;
            let mut sub = probe.subscribe(subject.to_owned()).await?;
            probe.flush().await?;
            let sink = heard.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(message) = sub.next().await {
                    let at = sys::mono_ns();
                    let version = serde_json::from_slice::<SettledNotice>(&message.payload)
                        .map(|n| n.record.version.to_string());
                    if version.is_ok_and(|v| v == NEW) {
                        sink.lock().expect("not poisoned").push(at);
                        break;
                    }
                }
                drop(probe);
            }));
        }
        Ok(Self { heard, tasks })
    }

    /// Each probe's arrival time ([`sys::mono_ns`]), once all have heard.
    async fn heard(&self, count: usize) -> anyhow::Result<Vec<u64>> {
        let heard = wait::eventually(
            "every probe to hear the announcement",
            HEAR_WITHIN,
            async || {
                let heard = self.heard.lock().expect("not poisoned");
                (heard.len() == count).then(|| heard.clone())
            },
        )
        .await?;
        Ok(heard)
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_spread_evenly() {
        let shape = Shape {
            label: String::new(),
            cluster: String::new(),
            nodes: 6,
            clients: 100_000,
        };
        let shares: Vec<usize> = (0..6).map(|i| shape.share(i)).collect();
        assert_eq!(shares, [16_667, 16_667, 16_667, 16_667, 16_666, 16_666]);
        assert_eq!(shares.iter().sum::<usize>(), 100_000);
    }

    #[test]
    fn fan_out_counts_from_each_nodes_first_client() {
        let local = fan_out(&[vec![5.0, 7.0, 6.0], vec![20.0]]);
        assert_eq!(local, [vec![0.0, 2.0, 1.0], vec![0.0]]);
    }
}
