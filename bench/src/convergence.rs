//! 2. Convergence latency: three nodes on a real nats-server, a rolling
//!    deploy 0.1.0 -> 1.0.0 whose last old node leaves; the time from its
//!    departure to (a) the announcement on NATS and (b) a browser stream of a
//!    surviving node receiving it.
//!
//! - graceful: the last old node gets SIGTERM. It is also the monitor (it has
//!   been up longest, as in a real rolling deploy), so the time includes the
//!   lease handover.
//! - crash: the last old node is `kill -9`ed and is not the monitor, so the
//!   time is its expiry (node timeout after its last heartbeat) plus a round;
//!   reported as the margin over the node timeout.
//!
//! 3. Leader failover: the monitor is `kill -9`ed with a deploy pending (it is
//!    the last old node); the time until another node holds the lease, and
//!    until the announcement. Bounded by the lease.
//!
//! Every run uses a fresh cluster name on one nats-server, product defaults
//! for every timing, and a new set of node processes.

use crate::{
    client::{self, loopback_source, SseClient},
    cluster::{self, AnnounceWatch},
    report::{Goal, Report},
    sys,
};
use anyhow::Context;
use async_nats::jetstream;
use futures::StreamExt;
use std::{path::Path, time::Duration};
use version_observer_core::{
    protocol::{LeaseHolder, Names, LEASE_KEY},
    Timings,
};
use vo_lab::{NatsServer, NodeProcess};

const OLD: &str = "0.1.0";
const NEW: &str = "1.0.0";
const TIMINGS: Timings = Timings::DEFAULT;
/// Longest a departure may take to be announced before the run counts as failed.
const ANNOUNCE_WITHIN: Duration = Duration::from_secs(20);

/// n1 (0.1.0, the monitor, baseline recorded), then n2 and n3 (1.0.0), mixed.
async fn mixed_cluster(
    binary: &Path,
    nats: &str,
    cluster: &str,
) -> anyhow::Result<(NodeProcess, NodeProcess, NodeProcess)> {
    let old = cluster::start_node(binary, nats, cluster, "n1", OLD, TIMINGS).await?;
    cluster::until_view(&old, "the baseline", |v| {
        cluster::recorded(v) == Some((OLD, "baseline"))
    })
    .await?;
    let n2 = cluster::start_node(binary, nats, cluster, "n2", NEW, TIMINGS).await?;
    let n3 = cluster::start_node(binary, nats, cluster, "n3", NEW, TIMINGS).await?;
    // A steady mixed cluster: every node has watched it for a node timeout
    // (what a node that has just started must do before it can decide).
    for node in [&old, &n2, &n3] {
        cluster::until_view(node, "a warm, mixed view of 3", |v| {
            v["state"] == "mixed" && v["members"].as_array().is_some_and(|m| m.len() == 3)
        })
        .await?;
    }
    cluster::until_view(&old, "n1 to be the monitor", |v| {
        v["this_node_leads"] == true
    })
    .await?;
    Ok((old, n2, n3))
}

/// An open browser stream on `node`, past its first event.
async fn browser(node: &NodeProcess) -> anyhow::Result<SseClient> {
    let target = format!("127.0.0.1:{}", node.port).parse()?;
    let mut sse = SseClient::open(target, loopback_source(1)).await?;
    sse.wait_for(client::ANY_REPORT).await?;
    Ok(sse)
}

/// Starts reading the stream now, and resolves to when it saw the
/// announcement of [`NEW`]: the time is taken by the reader itself, not by
/// whoever looks later.
fn hear(mut sse: SseClient) -> tokio::task::JoinHandle<anyhow::Result<u64>> {
    tokio::spawn(async move {
        tokio::time::timeout(ANNOUNCE_WITHIN, sse.wait_for(&client::announced(NEW)))
            .await
            .context("the browser stream did not hear the announcement")??;
        Ok(sys::mono_ns())
    })
}

pub async fn run(report: &mut Report, binary: &Path, runs: usize) -> anyhow::Result<()> {
    report.section(
        "2 convergence",
        "2. Convergence: last old node leaves -> announcement -> browser",
    );
    report.input("runs per case", runs);
    report.input(
        "timings (product defaults)",
        format!(
            "node timeout {} ms, lease {} ms, round timeout {} ms",
            TIMINGS.node_timeout.as_millis(),
            TIMINGS.lease.as_millis(),
            TIMINGS.round_timeout.as_millis()
        ),
    );
    let nats = NatsServer::start().await?;
    let client = async_nats::connect(nats.url()).await?;

    let (mut on_nats, mut on_browser) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let cluster = format!("graceful{run}");
        let watch = AnnounceWatch::start(&client, &cluster).await?;
        let (mut old, n2, n3) = mixed_cluster(binary, &nats.url(), &cluster).await?;
        let heard = hear(browser(&n2).await?);
        let t0 = sys::mono_ns();
        old.stop().await?;
        let announced = watch.first(NEW, ANNOUNCE_WITHIN).await?;
        let received = heard.await??;
        on_nats.push(sys::ms_between(t0, announced));
        on_browser.push(sys::ms_between(t0, received));
        stop_all([n2, n3]).await;
        duplicates(report, &watch, &cluster);
    }
    report.distribution(
        "SIGTERM -> announced on NATS",
        &on_nats,
        "ms",
        Some(Goal::AtMost(100.0)),
    );
    report.distribution(
        "SIGTERM -> browser stream",
        &on_browser,
        "ms",
        Some(Goal::AtMost(100.0)),
    );

    let (mut crash_total, mut crash_margin) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let cluster = format!("crash{run}");
        let watch = AnnounceWatch::start(&client, &cluster).await?;
        // n1 and n2 on 0.1.0, n3 and n4 on 1.0.0; then hand the lease to a
        // new node (n2 frozen meanwhile so that it cannot win it), so the
        // node that crashes is an old one that is not the monitor.
        let n1 = cluster::start_node(binary, &nats.url(), &cluster, "n1", OLD, TIMINGS).await?;
        cluster::until_view(&n1, "the baseline", |v| {
            cluster::recorded(v) == Some((OLD, "baseline"))
        })
        .await?;
        let mut n2 = cluster::start_node(binary, &nats.url(), &cluster, "n2", OLD, TIMINGS).await?;
        let n3 = cluster::start_node(binary, &nats.url(), &cluster, "n3", NEW, TIMINGS).await?;
        let n4 = cluster::start_node(binary, &nats.url(), &cluster, "n4", NEW, TIMINGS).await?;
        cluster::until_view(&n3, "n3 warm and mixed, 4 members", |v| {
            v["state"] == "mixed" && v["members"].as_array().is_some_and(|m| m.len() == 4)
        })
        .await?;
        cluster::until_view(&n4, "n4 warm", |v| v["state"] == "mixed").await?;
        n2.pause();
        let mut n1 = n1;
        n1.stop().await?;
        let leader = cluster::monitor_among(&[&n3, &n4]).await;
        n2.resume();
        leader?;
        cluster::until_view(&n3, "n2 alive in n3's view", |v| {
            v["state"] == "mixed" && v["members"].as_array().is_some_and(|m| m.len() == 3)
        })
        .await?;
        let heard = hear(browser(&n3).await?);
        let t0 = sys::mono_ns();
        n2.kill().await;
        let announced = watch.first(NEW, ANNOUNCE_WITHIN).await?;
        heard.await??;
        let total = sys::ms_between(t0, announced);
        crash_total.push(total);
        crash_margin.push(total - TIMINGS.node_timeout.as_secs_f64() * 1_000.0);
        stop_all([n3, n4]).await;
        duplicates(report, &watch, &cluster);
    }
    report.distribution("kill -9 -> announced", &crash_total, "ms", None);
    report.distribution("  margin over node timeout", &crash_margin, "ms", None);
    report.note(&format!(
        "a crashed node expires {} ms after its last heartbeat (they come every {} ms); \
         the node killed here had just sent one (it was resumed from a pause a moment \
         before), so the margin is the time of detection, round and announcement",
        TIMINGS.node_timeout.as_millis(),
        TIMINGS.heartbeat_interval().as_millis(),
    ));
    Ok(())
}

pub async fn failover(report: &mut Report, binary: &Path, runs: usize) -> anyhow::Result<()> {
    report.section(
        "3 failover",
        "3. Leader failover: the monitor is killed with a deploy pending",
    );
    report.input("runs", runs);
    report.input(
        "timings (product defaults)",
        format!(
            "lease {} ms, node timeout {} ms",
            TIMINGS.lease.as_millis(),
            TIMINGS.node_timeout.as_millis()
        ),
    );
    let nats = NatsServer::start().await?;
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client.clone());
    let (mut to_lease, mut to_announcement) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let cluster = format!("failover{run}");
        let watch = AnnounceWatch::start(&client, &cluster).await?;
        let (mut old, n2, n3) = mixed_cluster(binary, &nats.url(), &cluster).await?;
        let lease = js.get_key_value(Names::new(&cluster).bucket()).await?;
        let mut holders = lease.watch(LEASE_KEY).await?;
        let t0 = sys::mono_ns();
        old.kill().await;
        let taken = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(entry) = holders.next().await {
                let Ok(entry) = entry else { continue };
                let holder = serde_json::from_slice::<LeaseHolder>(&entry.value);
                if holder.is_ok_and(|h| h.id != "n1") {
                    return Some(sys::mono_ns());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .context("no node took the lease")?;
        let announced = watch.first(NEW, Duration::from_secs(30)).await?;
        to_lease.push(sys::ms_between(t0, taken));
        to_announcement.push(sys::ms_between(t0, announced));
        stop_all([n2, n3]).await;
        duplicates(report, &watch, &cluster);
    }
    let bound = (TIMINGS.lease + Duration::from_secs(1)).as_secs_f64() * 1_000.0;
    report.distribution(
        "kill -9 -> new monitor holds lease",
        &to_lease,
        "ms",
        Some(Goal::AtMost(bound)),
    );
    report.distribution(
        "kill -9 -> announced",
        &to_announcement,
        "ms",
        Some(Goal::AtMost(bound)),
    );
    Ok(())
}

/// A deploy is announced exactly once; say so loudly if not.
fn duplicates(report: &mut Report, watch: &AnnounceWatch, cluster: &str) {
    if watch.count() != 1 {
        report.note(&format!(
            "{cluster}: {} announcements instead of 1",
            watch.count()
        ));
    }
}

async fn stop_all<const N: usize>(nodes: [NodeProcess; N]) {
    for mut node in nodes {
        if node.stop().await.is_err() {
            node.kill().await;
        }
    }
}
