//! 8. Faults: a rolling deploy 0.1.0 -> 1.0.0 on a real cluster, with a fault
//!    injected mid-deploy, repeated; per scenario, how many announcements
//!    were expected (one per run) and seen, how many were false (a version
//!    nobody deployed) or duplicated, how many runs missed theirs, and the
//!    time from the fault (or the last old node's departure) to the
//!    announcement.
//!
//! Every run: a fresh cluster name; n1 on 0.1.0 (it records the baseline and
//! becomes the monitor), then n2 and n3 on 1.0.0, a warm mixed view; then
//! the scenario's fault; then the last old node goes (if the fault has not
//! taken it); then a quiet window of two node timeouts in which nothing more
//! may be announced. Timings: the lab's fast preset (node timeout 1 s, lease
//! 2 s), so a run takes seconds.
//!
//! The ninth scenario draws its faults: a seeded random schedule through a
//! whole deploy (`--fault-seed`; each run prints its schedule, so a failure
//! can be run again).
//!
//! Then floods against one node: half-sent request heads, a process at its
//! open-files limit, and clients that never read; with the node's CPU and
//! `/healthz` latency under each.

use crate::{
    cluster::{self, AnnounceWatch},
    report::{Goal, Report},
    sys,
};
use anyhow::{bail, Context};
use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use version_observer_core::{
    protocol::{encode, Names, Presence, PresenceKind, RecordKind, SettledNotice, SettledRecord},
    Timings,
};
use vo_lab::{timings, FaultProxy, NatsCluster, NatsServer, NodeProcess, ProxyMode};

const OLD: &str = "0.1.0";
const NEW: &str = "1.0.0";
const TIMINGS: Timings = timings::FAST;

/// What the fault runs take.
pub struct Args {
    /// Runs per scenario.
    pub runs: usize,
    /// Only these scenarios (1-based numbers); empty: all of them, and the floods.
    pub only: Vec<usize>,
    /// Connections per flood.
    pub flood: usize,
    /// The random schedules' seed: run `r` draws from `seed + r`.
    pub seed: u64,
}

/// The scenarios, by name.
const SCENARIOS: [&str; 9] = [
    "leader SIGSTOP past its lease, then SIGCONT",
    "kill -9 of the leader mid-deploy",
    "NATS restart mid-deploy",
    "one of three NATS servers killed mid-deploy",
    "a node partitioned (connection closed)",
    "a node partitioned (silent: packets dropped)",
    "forged messages of each kind mid-deploy",
    "kill -9 of a retiring node an old tab's calls reach",
    "a random schedule of faults through the whole deploy",
];

/// One run's result.
#[derive(Default)]
struct Outcome {
    /// Versions announced on NATS during the run.
    announced: Vec<String>,
    /// From the fault (or the departure it waits for) to the announcement.
    recover_ms: Option<f64>,
    /// Scenario-specific figures: (name, ms).
    extra: Vec<(&'static str, f64)>,
}

pub async fn run(report: &mut Report, binary: &Path, args: &Args) -> anyhow::Result<()> {
    report.section("8 faults", "8. Faults during a rolling deploy");
    report.input("runs per scenario", args.runs);
    report.input(
        "timings",
        format!(
            "node timeout {} ms, lease {} ms (the lab's fast preset)",
            TIMINGS.node_timeout.as_millis(),
            TIMINGS.lease.as_millis()
        ),
    );
    let mut failures = Vec::new();
    for (index, name) in SCENARIOS.iter().enumerate() {
        if !args.only.is_empty() && !args.only.contains(&(index + 1)) {
            continue;
        }
        let mut outcomes = Vec::new();
        for run in 0..args.runs {
            let cluster = format!("fault{index}r{run}");
            let result = if index == RANDOM {
                random_schedule(binary, &cluster, args.seed.wrapping_add(run as u64)).await
            } else {
                scenario(index, binary, &cluster).await
            };
            match result {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    println!("   {name}, run {run}: FAILED: {e:#}");
                    failures.push(format!("{name}, run {run}"));
                }
            }
        }
        let wrong = summarize(report, name, args.runs, &outcomes);
        if wrong > 0 {
            // Correctness, not speed: the run fails.
            failures.push(format!(
                "{name}: {wrong} false, missed or duplicated announcements"
            ));
        }
    }
    if args.only.is_empty() {
        floods(report, binary, args.flood).await?;
    }
    if !failures.is_empty() {
        bail!(
            "fault runs that failed or could not complete: {}",
            failures.join("; ")
        );
    }
    Ok(())
}

/// Reports a scenario's runs; returns how many announcements were false,
/// missed or duplicated.
fn summarize(report: &mut Report, name: &str, runs: usize, outcomes: &[Outcome]) -> usize {
    let seen: usize = outcomes.iter().map(|o| o.announced.len()).sum();
    let false_ones: usize = outcomes
        .iter()
        .map(|o| o.announced.iter().filter(|v| *v != NEW).count())
        .sum();
    let duplicates: usize = outcomes
        .iter()
        .map(|o| {
            o.announced
                .iter()
                .filter(|v| *v == NEW)
                .count()
                .saturating_sub(1)
        })
        .sum();
    let missed = runs
        - outcomes
            .iter()
            .filter(|o| o.announced.iter().any(|v| v == NEW))
            .count();
    println!("   -- {name}");
    report.figure(&format!("{name}: runs"), runs as f64, "", None);
    report.figure(
        &format!("{name}: announcements expected"),
        runs as f64,
        "",
        None,
    );
    report.figure(
        &format!("{name}: announcements seen"),
        seen as f64,
        "",
        None,
    );
    report.figure(
        &format!("{name}: false"),
        false_ones as f64,
        "",
        Some(Goal::AtMost(0.0)),
    );
    report.figure(
        &format!("{name}: missed"),
        missed as f64,
        "",
        Some(Goal::AtMost(0.0)),
    );
    report.figure(
        &format!("{name}: duplicated"),
        duplicates as f64,
        "",
        Some(Goal::AtMost(0.0)),
    );
    let recover: Vec<f64> = outcomes.iter().filter_map(|o| o.recover_ms).collect();
    report.distribution(&format!("{name}: time to recover"), &recover, "ms", None);
    // Each figure once, in the order runs first report them.
    let mut extras: Vec<&'static str> = Vec::new();
    for name in outcomes
        .iter()
        .flat_map(|o| o.extra.iter().map(|(n, _)| *n))
    {
        if !extras.contains(&name) {
            extras.push(name);
        }
    }
    for extra in extras {
        let values: Vec<f64> = outcomes
            .iter()
            .flat_map(|o| o.extra.iter().filter(|(n, _)| *n == extra).map(|(_, v)| *v))
            .collect();
        report.distribution(&format!("{name}: {extra}"), &values, "ms", None);
    }
    false_ones + missed + duplicates
}

/// Where the nodes' NATS is, and the handles that keep it running.
enum Nats {
    One(Box<NatsServer>),
    Three(NatsCluster),
}

impl Nats {
    fn url(&self) -> String {
        match self {
            Nats::One(server) => server.url(),
            Nats::Three(cluster) => cluster.url(),
        }
    }
}

/// n1 on 0.1.0 (baseline, monitor), then n2 and n3 on 1.0.0, warm and mixed.
/// `n3_url`: where n3 reaches NATS (a proxy, for the partitions).
async fn mixed(
    binary: &Path,
    url: &str,
    n3_url: &str,
    cluster: &str,
    extra: &[String],
) -> anyhow::Result<[NodeProcess; 3]> {
    let n1 = cluster::start_node_with(binary, url, cluster, "n1", OLD, TIMINGS, extra).await?;
    cluster::until_view(&n1, "the baseline", |v| {
        cluster::recorded(v) == Some((OLD, "baseline"))
    })
    .await?;
    let n2 = cluster::start_node_with(binary, url, cluster, "n2", NEW, TIMINGS, extra).await?;
    let n3 = cluster::start_node_with(binary, n3_url, cluster, "n3", NEW, TIMINGS, extra).await?;
    for node in [&n1, &n2, &n3] {
        cluster::until_view(node, "a warm, mixed view of 3", |v| {
            v["state"] == "mixed" && v["members"].as_array().is_some_and(|m| m.len() == 3)
        })
        .await?;
    }
    cluster::until_view(&n1, "n1 as the monitor", |v| v["this_node_leads"] == true).await?;
    Ok([n1, n2, n3])
}

/// The quiet window after the announcement: two node timeouts.
async fn quiet() {
    tokio::time::sleep(TIMINGS.node_timeout * 2).await; // a window to observe, not a condition
}

async fn scenario(index: usize, binary: &Path, cluster: &str) -> anyhow::Result<Outcome> {
    let nats = if index == 3 {
        Nats::Three(NatsCluster::start(3).await?)
    } else {
        Nats::One(Box::new(NatsServer::start().await?))
    };
    let url = nats.url();
    let client = async_nats::connect(match &nats {
        Nats::One(server) => server.url(),
        Nats::Three(c) => c.urls()[2].clone(),
    })
    .await?;
    let watch = AnnounceWatch::start(&client, cluster).await?;
    // The partitions put n3 behind a proxy.
    let proxy = match &nats {
        Nats::One(server) if index == 4 || index == 5 => {
            Some(FaultProxy::start(server.port()).await?)
        }
        _ => None,
    };
    let n3_url = proxy.as_ref().map_or(url.clone(), FaultProxy::url);
    let extra: Vec<String> = match index {
        3 => vec!["--kv-replicas".into(), "3".into()],
        7 => ["--retire-for", "60s", "--retire-grace", "2s"]
            .map(Into::into)
            .to_vec(),
        _ => Vec::new(),
    };
    let [mut n1, n2, n3] = mixed(binary, &url, &n3_url, cluster, &extra).await?;
    let mut outcome = Outcome::default();
    let mut nats = nats;
    match index {
        0 => {
            // The monitor freezes past its lease; the others take over and,
            // n1 being gone to them, announce. Then it wakes: it must not
            // write anything (its fence is stale), nor announce again.
            let t0 = sys::mono_ns();
            n1.pause();
            let at = watch.first(NEW, Duration::from_secs(30)).await?;
            outcome.recover_ms = Some(sys::ms_between(t0, at));
            tokio::time::sleep(TIMINGS.lease + TIMINGS.node_timeout).await; // the pause itself
            n1.resume();
            cluster::until_view(&n2, "n1 back in the view", |v| {
                v["members"].as_array().is_some_and(|m| m.len() == 3)
            })
            .await?;
            n1.stop().await?;
            let view = n2.cluster().await.context("n2's view")?;
            if view["announced"]["record"]["leader"] == "n1" {
                bail!("the paused monitor wrote the record after it woke");
            }
        }
        1 => {
            let t0 = sys::mono_ns();
            n1.kill().await;
            let at = watch.first(NEW, Duration::from_secs(30)).await?;
            outcome.recover_ms = Some(sys::ms_between(t0, at));
        }
        2 => {
            if let Nats::One(server) = &mut nats {
                server.restart().await?;
            }
            for node in [&n1, &n2, &n3] {
                cluster::until_view(node, "reconnected and warm", |v| {
                    v["connected"] == true && v["state"] == "mixed"
                })
                .await?;
            }
            let t0 = sys::mono_ns();
            n1.stop().await?;
            let at = watch.first(NEW, Duration::from_secs(30)).await?;
            outcome.recover_ms = Some(sys::ms_between(t0, at));
        }
        3 => {
            if let Nats::Three(servers) = &mut nats {
                servers.kill(0).await;
            }
            for node in [&n1, &n2, &n3] {
                cluster::until_view(node, "connected and warm", |v| {
                    v["connected"] == true && v["state"] == "mixed"
                })
                .await?;
            }
            let t0 = sys::mono_ns();
            n1.stop().await?;
            let at = watch.first(NEW, Duration::from_secs(30)).await?;
            outcome.recover_ms = Some(sys::ms_between(t0, at));
            if let Nats::Three(servers) = &mut nats {
                servers.restart(0).await?;
            }
        }
        4 | 5 => {
            let proxy = proxy.as_ref().context("a proxy")?;
            let t0 = sys::mono_ns();
            proxy.set_mode(if index == 4 {
                ProxyMode::Closed
            } else {
                ProxyMode::Silent
            });
            cluster::until_view(&n3, "n3 to report unknown", |v| v["state"] == "unknown").await?;
            outcome.extra.push((
                "cut to `unknown` on the cut node",
                sys::ms_between(t0, sys::mono_ns()),
            ));
            let t1 = sys::mono_ns();
            n1.stop().await?;
            let at = watch.first(NEW, Duration::from_secs(30)).await?;
            outcome.recover_ms = Some(sys::ms_between(t1, at));
            let t2 = sys::mono_ns();
            proxy.set_mode(ProxyMode::Pass);
            vo_lab::wait::eventually(
                "the announcement on the healed node",
                cluster::SETTLE,
                async || {
                    let report = n3.version_report().await?;
                    (report["cluster"]["announced_version"] == NEW).then_some(())
                },
            )
            .await?;
            outcome.extra.push((
                "heal to the announcement on the cut node",
                sys::ms_between(t2, sys::mono_ns()),
            ));
        }
        6 => {
            forge(&client, cluster, &n2).await?;
            // No browser is ever told of the forged version, while the
            // deploy completes.
            let nodes = [&n2, &n3];
            let (told, announced) = tokio::join!(watch_reports(&nodes, "9.9.9"), async {
                let t0 = sys::mono_ns();
                n1.stop().await?;
                let at = watch.first(NEW, Duration::from_secs(30)).await?;
                Ok::<_, anyhow::Error>((t0, at))
            });
            if told? {
                bail!("a node told its browsers the forged version");
            }
            let (t0, at) = announced?;
            outcome.recover_ms = Some(sys::ms_between(t0, at));
            for node in [&n2, &n3] {
                let report = node.version_report().await.context("a report")?;
                if report["cluster"]["announced_version"] != NEW {
                    bail!(
                        "{} tells its browsers {}",
                        node.id,
                        report["cluster"]["announced_version"]
                    );
                }
            }
        }
        7 => {
            // An old tab: its stream on a new node, its calls forwarded to
            // the old node, which retires (SIGTERM) rather than stops; the
            // deploy is announced while it still runs. Then it is killed:
            // the old tab's calls get 409 (no member of its version), and
            // nothing else changes.
            let tab = reqwest::get(n2.url(&format!("/api/version/events?page={OLD}"))).await?;
            let t0 = sys::mono_ns();
            anyhow::ensure!(n1.terminate(), "SIGTERM to n1");
            let at = watch.first(NEW, Duration::from_secs(30)).await?;
            outcome.recover_ms = Some(sys::ms_between(t0, at));
            let old_call = async || -> anyhow::Result<(u16, String)> {
                let response = reqwest::Client::new()
                    .get(n2.url("/?old-tab"))
                    .header("x-version-observer-page", OLD)
                    .send()
                    .await?;
                Ok((response.status().as_u16(), response.text().await?))
            };
            let (status, page) = old_call().await?;
            if status != 200 || !page.contains(">n1<") {
                bail!("the old tab's call was not run by the retiring n1: {status}");
            }
            anyhow::ensure!(n1.is_running(), "n1 exited under an open page");
            let t1 = sys::mono_ns();
            n1.kill().await;
            vo_lab::wait::eventually(
                "the old tab's calls to get 409",
                cluster::SETTLE,
                async || {
                    let (status, body) = old_call().await.ok()?;
                    (status == 409 && body.contains("\"forward\":\"no_member\"")).then_some(())
                },
            )
            .await?;
            outcome.extra.push((
                "kill to the old tab's 409",
                sys::ms_between(t1, sys::mono_ns()),
            ));
            for node in [&n2, &n3] {
                let report = node.version_report().await.context("a report")?;
                if report["cluster"]["announced_version"] != NEW
                    || report["cluster"]["state"] != "settled"
                {
                    bail!("{} changed: {}", node.id, report["cluster"]);
                }
            }
            drop(tab);
        }
        _ => unreachable!(),
    }
    quiet().await;
    outcome.announced = watch.versions_from(&["n1", "n2", "n3"]);
    drop((n1, n2, n3));
    Ok(outcome)
}

/// The random schedule's index in [`SCENARIOS`].
const RANDOM: usize = 8;

/// A fault the random schedule injects, with how long it lasts.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGSTOP, then SIGCONT (past the lease, sometimes).
    Freeze { node: usize, for_ms: u64 },
    /// The node's NATS connection cut, closed or silent.
    Partition {
        node: usize,
        silent: bool,
        for_ms: u64,
    },
    /// nats-server killed, then started again on its port and store.
    NatsDown { for_ms: u64 },
    /// Nothing for a while.
    Pause { for_ms: u64 },
}

/// Between two deploy steps: up to two faults on live nodes.
fn draw_faults(rng: &mut fastrand::Rng, live: &[usize]) -> Vec<Fault> {
    let lease = TIMINGS.lease.as_millis() as u64;
    (0..rng.usize(0..=2))
        .map(|_| match rng.u8(0..10) {
            0..=2 => Fault::Freeze {
                node: live[rng.usize(..live.len())],
                for_ms: rng.u64(100..=2 * lease),
            },
            3..=5 => Fault::Partition {
                node: live[rng.usize(..live.len())],
                silent: rng.bool(),
                for_ms: rng.u64(200..=2 * lease),
            },
            6..=7 => Fault::NatsDown {
                for_ms: rng.u64(0..=lease),
            },
            _ => Fault::Pause {
                for_ms: rng.u64(0..=lease),
            },
        })
        .collect()
}

/// A rolling deploy 0.1.0 -> 1.0.0 through faults drawn from `seed`: two or
/// three old nodes, each replaced in turn by a new one (started, then the
/// old one stopped or killed -9), with up to two faults (a node frozen or
/// cut off from NATS, nats-server down, a pause) before and after each
/// step, on whichever nodes are alive. Every node reaches NATS through a
/// fault proxy of its own. Once the last old node is gone and every fault
/// healed, 1.0.0 must be announced, once, and every node must tell its
/// browsers; nothing else may ever be announced.
async fn random_schedule(binary: &Path, cluster: &str, seed: u64) -> anyhow::Result<Outcome> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut nats = NatsServer::start().await?;
    let client = async_nats::connect(nats.url()).await?;
    let watch = AnnounceWatch::start(&client, cluster).await?;
    let olds = rng.usize(2..=3);
    let mut nodes: Vec<Behind> = Vec::new();
    let mut schedule: Vec<String> = vec![format!("seed {seed}: {olds} old nodes")];
    for _ in 0..olds {
        nodes.push(Behind::start(binary, &nats, cluster, nodes.len() + 1, OLD).await?);
    }
    cluster::until_view(&nodes[0].node, "the baseline", |v| {
        cluster::recorded(v) == Some((OLD, "baseline"))
    })
    .await?;
    for old in 0..olds {
        inject(&mut rng, &mut nodes, &mut nats, &mut schedule).await?;
        nodes.push(Behind::start(binary, &nats, cluster, nodes.len() + 1, NEW).await?);
        schedule.push(format!("n{} on {NEW}", nodes.len()));
        inject(&mut rng, &mut nodes, &mut nats, &mut schedule).await?;
        let leaving = &mut nodes[old];
        if rng.bool() {
            schedule.push(format!("n{} killed", old + 1));
            leaving.node.kill().await;
        } else {
            schedule.push(format!("n{} stopped", old + 1));
            leaving.node.stop().await?;
        }
        leaving.gone = true;
    }
    let departed = sys::mono_ns();
    inject(&mut rng, &mut nodes, &mut nats, &mut schedule).await?;
    let schedule = schedule.join(", ");
    // Every fault has healed, and the last old node is gone.
    let healed = sys::mono_ns();
    let at = watch
        .first(NEW, cluster::SETTLE)
        .await
        .with_context(|| schedule.clone())?;
    let after_departure = sys::ms_between(departed, at);
    println!("   {schedule}; announced {after_departure:.0} ms after the last old node left");
    let mut outcome = Outcome::default();
    if after_departure >= 0.0 {
        outcome.recover_ms = Some(after_departure);
    } else {
        // The last old node was frozen or cut off past the node timeout
        // before it left: to the cluster it had gone then.
        outcome.extra.push((
            "announced while the last old node was cut off, by",
            -after_departure,
        ));
    }
    for behind in nodes.iter().filter(|b| !b.gone) {
        let node = &behind.node;
        vo_lab::wait::eventually(
            &format!("{} to tell its browsers", node.id),
            cluster::SETTLE,
            async || {
                let report = node.version_report().await?;
                (report["cluster"]["announced_version"] == NEW).then_some(())
            },
        )
        .await
        .with_context(|| schedule.clone())?;
    }
    outcome.extra.push((
        "healed to every node telling its browsers",
        sys::ms_between(healed, sys::mono_ns()),
    ));
    quiet().await;
    let ids: Vec<&str> = nodes.iter().map(|b| b.node.id.as_str()).collect();
    outcome.announced = watch.versions_from(&ids);
    if outcome.announced != [NEW] {
        println!("   announced {:?} ({schedule})", outcome.announced);
    }
    Ok(outcome)
}

/// A node that reaches NATS through a fault proxy of its own.
struct Behind {
    node: NodeProcess,
    proxy: FaultProxy,
    /// Stopped or killed by the deploy.
    gone: bool,
}

impl Behind {
    async fn start(
        binary: &Path,
        nats: &NatsServer,
        cluster: &str,
        number: usize,
        version: &str,
    ) -> anyhow::Result<Self> {
        let proxy = FaultProxy::start(nats.port()).await?;
        let id = format!("n{number}");
        let node =
            cluster::start_node(binary, &proxy.url(), cluster, &id, version, TIMINGS).await?;
        Ok(Self {
            node,
            proxy,
            gone: false,
        })
    }
}

/// Up to two faults, drawn and injected one after the other, each healed
/// before the next; on nodes the deploy has not taken.
async fn inject(
    rng: &mut fastrand::Rng,
    nodes: &mut [Behind],
    nats: &mut NatsServer,
    schedule: &mut Vec<String>,
) -> anyhow::Result<()> {
    let live: Vec<usize> = (0..nodes.len()).filter(|i| !nodes[*i].gone).collect();
    for fault in draw_faults(rng, &live) {
        schedule.push(format!("{fault:?}"));
        // Each sleep is the fault's length, not a wait for a condition.
        match fault {
            Fault::Freeze { node, for_ms } => {
                nodes[node].node.pause();
                tokio::time::sleep(Duration::from_millis(for_ms)).await;
                nodes[node].node.resume();
            }
            Fault::Partition {
                node,
                silent,
                for_ms,
            } => {
                nodes[node].proxy.set_mode(if silent {
                    ProxyMode::Silent
                } else {
                    ProxyMode::Closed
                });
                tokio::time::sleep(Duration::from_millis(for_ms)).await;
                nodes[node].proxy.set_mode(ProxyMode::Pass);
            }
            Fault::NatsDown { for_ms } => {
                nats.stop().await;
                tokio::time::sleep(Duration::from_millis(for_ms)).await;
                nats.start_again().await?;
            }
            Fault::Pause { for_ms } => {
                tokio::time::sleep(Duration::from_millis(for_ms)).await;
            }
        }
    }
    Ok(())
}

/// Polls the nodes' reports for two node timeouts; whether any ever said
/// `version` was announced.
async fn watch_reports(nodes: &[&NodeProcess], version: &str) -> anyhow::Result<bool> {
    let until = Instant::now() + TIMINGS.node_timeout * 2;
    while Instant::now() < until {
        for node in nodes {
            if let Some(report) = node.version_report().await {
                if report["cluster"]["announced_version"] == version {
                    return Ok(true);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // sampling a window
    }
    Ok(false)
}

/// Publishes one forgery of each kind on the cluster's subjects.
async fn forge(
    client: &async_nats::Client,
    cluster: &str,
    victim: &NodeProcess,
) -> anyhow::Result<()> {
    let names = Names::new(cluster);
    let status = victim.cluster().await.context("the victim's view")?;
    let me = status["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == victim.id.as_str()))
        .context("the victim in its own view")?;
    let incarnation = me["incarnation"].as_u64().context("an incarnation")?;
    let presence = |id: &str, version: &str, incarnation: u64| {
        encode(&Presence {
            id: id.into(),
            version: version.parse().expect("a version"),
            incarnation,
            leader: false,
            tabs: Default::default(),
            retiring: false,
        })
    };
    let fake = SettledNotice {
        revision: 1_000_000,
        record: SettledRecord {
            version: "9.9.9".parse()?,
            previous: Some(OLD.parse()?),
            kind: RecordKind::Announcement,
            fence: 1_000_000,
            leader: "forger".into(),
            at_ms: 0,
            release: None,
        },
    };
    let sends = [
        // A phantom member on another version.
        (
            names.presence(PresenceKind::Up),
            presence("phantom", "0.0.9", 1),
        ),
        // The victim's nodedown, naming its real process.
        (
            names.presence(PresenceKind::Down),
            presence(&victim.id, NEW, incarnation),
        ),
        // A heartbeat for the victim's id from an incarnation nobody runs.
        (
            names.presence(PresenceKind::Heartbeat),
            presence(&victim.id, OLD, u64::MAX),
        ),
        // Notices of a version nobody deployed.
        (names.settled(), encode(&fake)),
        (names.announce(), encode(&fake)),
        // Garbage.
        (names.presence(PresenceKind::Heartbeat), "{not json".into()),
    ];
    for (subject, payload) in sends {
        client.publish(subject, payload).await?;
    }
    // A request whose reply would make every node announce its departure.
    client
        .publish_with_reply(
            names.version_request(),
            names.presence(PresenceKind::Down),
            encode(&serde_json::json!({"leader": "forger", "round": 1})),
        )
        .await?;
    client.flush().await?;
    Ok(())
}

// ---- floods ------------------------------------------------------------------

async fn floods(report: &mut Report, binary: &Path, connections: usize) -> anyhow::Result<()> {
    report.input("flood connections", connections);
    // Half-sent request heads: every connection sends part of a request line
    // and nothing more.
    {
        let node = FloodNode::start(binary, None, &[]).await?;
        let mut held = Vec::new();
        for _ in 0..connections {
            let mut tcp = TcpStream::connect(node.addr).await?;
            tcp.write_all(b"GET /api/ver").await?;
            held.push(tcp);
        }
        node.measure(report, "half-sent heads").await?;
        drop(held);
    }
    // At the open-files limit: streams beyond what the process can hold.
    {
        let limit = (connections as u64 / 2).max(64);
        let args = ["--max-streams".to_owned(), "1000000".to_owned()];
        let node = FloodNode::start(binary, Some(limit), &args).await?;
        let (mut held, mut refused) = (Vec::new(), 0usize);
        for _ in 0..connections {
            let Ok(mut tcp) = TcpStream::connect(node.addr).await else {
                break;
            };
            tcp.write_all(b"GET /api/version/events HTTP/1.1\r\nHost: x\r\n\r\n")
                .await?;
            let mut head = [0u8; 12];
            match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut head)).await {
                Ok(Ok(n)) if head[..n].starts_with(b"HTTP/1.1 503") => refused += 1,
                _ => held.push(tcp),
            }
        }
        report.input("open-files limit", limit);
        report.figure(
            "at the fd limit: connections refused with 503",
            refused as f64,
            "",
            None,
        );
        node.measure(report, "at the fd limit").await?;
        drop(held);
    }
    // Clients that never read (their streams get a comment every second).
    {
        let args = ["--keepalive-secs".to_owned(), "1".to_owned()];
        let node = FloodNode::start(binary, None, &args).await?;
        let mut held = Vec::new();
        for _ in 0..connections {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_recv_buffer_size(1024)?;
            let mut tcp = socket.connect(node.addr).await?;
            tcp.write_all(b"GET /api/version/events HTTP/1.1\r\nHost: x\r\n\r\n")
                .await?;
            held.push(tcp);
        }
        node.measure(report, "clients that never read").await?;
        drop(held);
    }
    Ok(())
}

/// A single node for the floods, optionally under an open-files limit.
struct FloodNode {
    addr: std::net::SocketAddr,
    child: tokio::process::Child,
    _site: tempdir::Dir,
}

mod tempdir {
    /// A scratch site folder with an empty bundle, removed on drop.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> std::io::Result<Self> {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("vo-flood-{}-{n}", std::process::id()));
            std::fs::create_dir_all(path.join("pkg"))?;
            Ok(Self(path))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl FloodNode {
    async fn start(
        binary: &Path,
        open_files: Option<u64>,
        args: &[String],
    ) -> anyhow::Result<Self> {
        let port = vo_lab::free_port()?;
        let site = tempdir::Dir::new()?;
        let mut command = std::process::Command::new(binary);
        command
            .arg("--site-root")
            .arg(&site.0)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(limit) = open_files {
            // SAFETY: only setrlimit between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let l = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut command = tokio::process::Command::from(command);
        command.kill_on_drop(true);
        let child = command.spawn().context("starting a node")?;
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while healthz(addr, Duration::from_secs(1)).await.is_none() {
            if Instant::now() > deadline {
                bail!("the flood node never served");
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
        }
        Ok(Self {
            addr,
            child,
            _site: site,
        })
    }

    /// The node's CPU over 5 s, and 50 `/healthz` round trips, under the flood.
    async fn measure(&self, report: &mut Report, what: &str) -> anyhow::Result<()> {
        let pid = self.child.id().context("a pid")?;
        let cpu0 = sys::cpu_seconds(pid).context("CPU time")?;
        let t0 = Instant::now();
        let mut latencies = Vec::new();
        let mut answered = 0;
        while t0.elapsed() < Duration::from_secs(5) {
            let start = Instant::now();
            if let Some(status) = healthz(self.addr, Duration::from_secs(2)).await {
                answered += 1;
                let _ = status;
            }
            latencies.push(start.elapsed().as_secs_f64() * 1000.0);
            tokio::time::sleep(Duration::from_millis(100)).await; // pacing the probes
        }
        let cpu = (sys::cpu_seconds(pid).context("CPU time")? - cpu0) / t0.elapsed().as_secs_f64();
        report.figure(&format!("{what}: node CPU"), cpu * 100.0, "%", None);
        report.figure(
            &format!("{what}: /healthz answered"),
            answered as f64,
            &format!("of {}", latencies.len()),
            None,
        );
        report.distribution(&format!("{what}: /healthz latency"), &latencies, "ms", None);
        Ok(())
    }
}

/// `GET /healthz`: the status line, if an answer came within `within`.
async fn healthz(addr: std::net::SocketAddr, within: Duration) -> Option<String> {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 32];
        let n = tcp.read(&mut head).await.ok()?;
        let text = String::from_utf8_lossy(&head[..n]).into_owned();
        text.starts_with("HTTP/1.1").then_some(text)
    };
    tokio::time::timeout(within, exchange).await.ok().flatten()
}
