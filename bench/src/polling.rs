//! 5. Versus polling: the usual alternative is every tab polling a version
//!    endpoint (SvelteKit's `version.pollInterval`, Nuxt's build check). Two
//!    identical nodes side by side in one run: N tabs poll one of them
//!    (`GET /api/version` every interval, spread evenly, on kept-alive
//!    connections: the cheapest polling there is), N tabs hold a version
//!    stream on the other; a third node, with no tabs, shows what a node costs
//!    by itself. Measured over the same idle window: each node's CPU seconds
//!    and requests per second; then one deploy (an announcement), and the mean
//!    time until each tab knows.

use crate::{
    client::{self, Poller},
    cluster,
    report::{Goal, Report},
    sys,
};
use anyhow::Context;
use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::sync::{mpsc, Semaphore};
use version_observer_core::Timings;
use vo_lab::{process::raise_fd_limit, NatsServer};

const OLD: &str = "1.0.0";
const NEW: &str = "2.0.0";
/// The goal: streams use at least this many times less CPU than polling.
const CPU_RATIO_GOAL: f64 = 3.0;

pub struct Args {
    pub clients: usize,
    pub interval: Duration,
    pub window: Duration,
    pub sources: u8,
    /// The streaming node's --keepalive-secs.
    pub keepalive_secs: u64,
}

pub async fn run(report: &mut Report, binary: &Path, args: &Args) -> anyhow::Result<()> {
    report.section(
        "5 polling",
        "5. Versus polling: N polling tabs beside N streaming tabs",
    );
    raise_fd_limit();
    report.input("tabs per node", args.clients);
    report.input(
        "poll interval",
        format!("{} s", args.interval.as_secs_f64()),
    );
    report.input("idle window", format!("{} s", args.window.as_secs_f64()));
    report.input(
        "stream keep-alive",
        format!("every {} s", args.keepalive_secs),
    );
    let nats = NatsServer::start().await?;
    let client = async_nats::connect(nats.url()).await?;
    let cluster = "polling";
    let timings = Timings {
        // The longest the node accepts (Timings::RANGES_MS).
        safety_interval: Duration::from_secs(3_600),
        ..Timings::DEFAULT
    };
    let mut polled =
        cluster::start_node(binary, &nats.url(), cluster, "polled", OLD, timings).await?;
    let keepalive = [
        "--keepalive-secs".to_owned(),
        args.keepalive_secs.to_string(),
    ];
    let mut streamed = cluster::start_node_with(
        binary,
        &nats.url(),
        cluster,
        "streamed",
        OLD,
        timings,
        &keepalive,
    )
    .await?;
    let mut alone =
        cluster::start_node(binary, &nats.url(), cluster, "alone", OLD, timings).await?;
    for node in [&polled, &streamed, &alone] {
        cluster::until_view(node, "the baseline", |v| {
            cluster::recorded(v) == Some((OLD, "baseline"))
        })
        .await?;
    }
    let polled_pid = polled.pid().context("pid")?;
    let streamed_pid = streamed.pid().context("pid")?;
    let alone_pid = alone.pid().context("pid")?;
    let n = args.clients;
    let marker = Arc::new(client::announced(NEW));

    // The streaming tabs.
    let (knew_tx, mut streams_knew) = mpsc::unbounded_channel::<u64>();
    let (open_tx, mut opened) = mpsc::unbounded_channel::<bool>();
    let target: SocketAddr = format!("127.0.0.1:{}", streamed.port).parse()?;
    let gate = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (gate, marker, knew_tx, open_tx) = (
            gate.clone(),
            marker.clone(),
            knew_tx.clone(),
            open_tx.clone(),
        );
        let source = client::spread(i, args.sources);
        tasks.push(tokio::spawn(async move {
            let sse = client::open_gated(target, source, gate).await;
            let _ = open_tx.send(sse.is_ok());
            if let Ok(mut sse) = sse {
                if sse.wait_for(&marker).await.is_ok() {
                    let _ = knew_tx.send(sys::mono_ns());
                }
                // Held until the run ends.
                std::future::pending::<()>().await;
            }
        }));
    }
    let mut open = 0;
    for _ in 0..n {
        open += usize::from(opened.recv().await.unwrap_or(false));
    }

    // The polling tabs: each starts at its own offset within the interval.
    let polls = Arc::new(AtomicU64::new(0));
    let (pknew_tx, mut polls_knew) = mpsc::unbounded_channel::<u64>();
    let target: SocketAddr = format!("127.0.0.1:{}", polled.port).parse()?;
    let started = tokio::time::Instant::now();
    for i in 0..n {
        let (marker, polls, knew) = (marker.clone(), polls.clone(), pknew_tx.clone());
        let source = client::spread(i, args.sources);
        let offset = args.interval.mul_f64(i as f64 / n as f64);
        let interval = args.interval;
        tasks.push(tokio::spawn(async move {
            let mut poller = Poller::new(target, source);
            let mut ticker = tokio::time::interval_at(started + offset, interval);
            let mut told = false;
            loop {
                ticker.tick().await;
                if let Ok(body) = poller.poll().await {
                    polls.fetch_add(1, Ordering::Relaxed);
                    if !told && client::find(&body, &marker).is_some() {
                        told = true;
                        let _ = knew.send(sys::mono_ns());
                    }
                }
            }
        }));
    }
    // Every poller has polled once before the window opens.
    tokio::time::sleep_until(started + args.interval).await; // measurement protocol

    let (cpu_p0, cpu_s0, cpu_a0) = (cpu(polled_pid)?, cpu(streamed_pid)?, cpu(alone_pid)?);
    let polls0 = polls.load(Ordering::Relaxed);
    tokio::time::sleep(args.window).await; // the idle window being measured
    let (cpu_p, cpu_s, cpu_a) = (
        cpu(polled_pid)? - cpu_p0,
        cpu(streamed_pid)? - cpu_s0,
        cpu(alone_pid)? - cpu_a0,
    );
    let polls_in_window = polls.load(Ordering::Relaxed) - polls0;
    let window_s = args.window.as_secs_f64();

    let t0 = cluster::announce(&client, cluster, NEW).await?;
    let deadline = tokio::time::Instant::now() + args.interval + Duration::from_secs(30);
    let (mut stream_ms, mut poll_ms) = (Vec::new(), Vec::new());
    while stream_ms.len() < open {
        match tokio::time::timeout_at(deadline, streams_knew.recv()).await {
            Ok(Some(at)) => stream_ms.push(sys::ms_between(t0, at)),
            _ => break,
        }
    }
    while poll_ms.len() < n {
        match tokio::time::timeout_at(deadline, polls_knew.recv()).await {
            Ok(Some(at)) => poll_ms.push(sys::ms_between(t0, at)),
            _ => break,
        }
    }
    for task in tasks {
        task.abort();
    }

    report.input("streams open", open);
    report.figure("polling: node CPU in window", cpu_p, "s", None);
    report.figure("streams: node CPU in window", cpu_s, "s", None);
    report.figure("no tabs: node CPU in window", cpu_a, "s", None);
    report.figure(
        "CPU ratio polling/streams",
        cpu_p / cpu_s.max(0.01),
        "x",
        Some(Goal::AtLeast(CPU_RATIO_GOAL)),
    );
    // What the tabs themselves cost, the node's own work taken out.
    let per_tab_us = |cpu: f64| (cpu - cpu_a).max(0.0) / n as f64 / window_s * 1e6 * 60.0;
    report.figure(
        "polling: CPU per tab per minute",
        per_tab_us(cpu_p),
        "us",
        None,
    );
    report.figure(
        "streams: CPU per tab per minute",
        per_tab_us(cpu_s),
        "us",
        None,
    );
    if cpu_s < 0.01 {
        report.note("the streaming node used under 10 ms of CPU in the window (one clock tick); the ratio uses 10 ms");
    }
    report.figure(
        "polling: requests/s (idle)",
        polls_in_window as f64 / window_s,
        "req/s",
        None,
    );
    report.figure("streams: requests/s (idle)", 0.0, "req/s", None);
    report.figure(
        "streams: keep-alive comments/s",
        open as f64 / args.keepalive_secs as f64,
        "msg/s",
        None,
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    report.figure("polling: mean time to know", mean(&poll_ms), "ms", None);
    report.figure("streams: mean time to know", mean(&stream_ms), "ms", None);
    report.figure(
        "time-to-know ratio polling/streams",
        mean(&poll_ms) / mean(&stream_ms).max(0.001),
        "x",
        None,
    );
    if poll_ms.len() < n || stream_ms.len() < open {
        report.note(&format!(
            "told: {} of {n} polling tabs, {} of {open} streaming tabs",
            poll_ms.len(),
            stream_ms.len()
        ));
    }
    polled.stop().await?;
    streamed.stop().await?;
    alone.stop().await?;
    Ok(())
}

fn cpu(pid: u32) -> anyhow::Result<f64> {
    sys::cpu_seconds(pid).context("reading a node's CPU time")
}
