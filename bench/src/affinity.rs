//! 12. Version affinity: what each layer buys during a rolling deploy.
//!
//! Six node slots behind nginx (the lab), a rolling deploy 1.0.0 -> 2.0.0 of
//! three nodes, and request generators posing as pages that call their
//! server at a steady rate the whole time: old pages (1.0.0) from the
//! start, new pages (2.0.0) from when the first new node serves. One old
//! tab keeps a stream open (so retiring nodes know an old page is still
//! there). Each call is a page render, `GET /?affinity`, whose HTML names
//! the node and version that ran it; nginx names the node it picked
//! (`X-Upstream`). Three modes, a fresh lab each:
//!
//! - **no guard**: the calls name no page version (an app without the
//!   request guard): whatever node nginx picks runs them. A call run by a
//!   node of an incompatible version is *misrouted*: in a real incompatible
//!   deploy it would have failed (a 404, 400 or 500 from a server function
//!   whose URL or arguments changed).
//! - **guard only** (`--affinity off`, nodes stopped with SIGTERM): such a
//!   call gets `409 stale_client` instead, and never runs.
//! - **affinity** (the default, with `--retire-for`): such a call goes to a
//!   node of the page's version, and the old nodes retire.
//!
//! Per mode: calls, failed (a transport error or a status other than 200
//! and 409), 409s, misrouted, forwarded (the node that ran it is not the
//! one nginx picked). Goals: in affinity mode, 0 failed and 0 `409`.
//!
//! Then what forwarding costs: one 1.0.0 node and one 2.0.0 node, no nginx;
//! `GET /healthz` as a 1.0.0 page, alternately straight to the 1.0.0 node
//! and to the 2.0.0 node (which forwards it over NATS to the 1.0.0 node);
//! p50 and p99 of each, and the difference (goal: at most 2 ms at p99).

use crate::{
    cluster,
    report::{summarize, Goal, Report},
};
use anyhow::Context;
use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::task::JoinHandle;
use vo_lab::{timings, Lab, LabConfig, NatsServer};

const OLD: &str = "1.0.0";
const NEW: &str = "2.0.0";

pub struct Args {
    /// Calls per second from old pages, and as many from new ones.
    pub rate: u32,
    /// Between the steps of the deploy.
    pub pace: Duration,
    /// Calls after the deploy, before the run ends.
    pub tail: Duration,
    /// Samples of each kind in the latency measurement.
    pub samples: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    NoGuard,
    GuardOnly,
    Affinity,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::NoGuard => "no guard",
            Mode::GuardOnly => "guard only",
            Mode::Affinity => "affinity",
        }
    }
}

/// What became of one call.
#[derive(Debug, Clone, Default)]
struct Tally {
    calls: u64,
    failed: u64,
    /// The failed calls by status (0: no answer; 200: a page that names
    /// no node).
    failed_by: BTreeMap<u16, u64>,
    refused: u64,
    misrouted: u64,
    forwarded: u64,
}

pub async fn run(report: &mut Report, binary: &Path, args: &Args) -> anyhow::Result<()> {
    report.section(
        "12 affinity",
        "12. Version affinity: calls from old and new pages through a rolling deploy",
    );
    report.input(
        "deploy",
        format!("{OLD} -> {NEW}, three nodes behind nginx, one at a time"),
    );
    report.input(
        "calls",
        format!("{} per second from old pages, as many from new", args.rate),
    );
    report.input(
        "pace",
        format!("{:?} between steps, {:?} after", args.pace, args.tail),
    );
    report.input("timings", "e2e (node timeout 1.5 s, lease 3 s)");
    for mode in [Mode::NoGuard, Mode::GuardOnly, Mode::Affinity] {
        let (old, new) = deploy_under_load(binary, mode, args)
            .await
            .with_context(|| format!("the {} run", mode.name()))?;
        let name = mode.name();
        for (page, t) in [(OLD, &old), (NEW, &new)] {
            report.figure(
                &format!("{name}: calls of {page} pages"),
                t.calls as f64,
                "",
                None,
            );
        }
        let sum = |f: fn(&Tally) -> u64| (f(&old) + f(&new)) as f64;
        let zero = (mode == Mode::Affinity).then_some(Goal::AtMost(0.0));
        report.figure(&format!("{name}: failed"), sum(|t| t.failed), "", zero);
        let mut by: BTreeMap<u16, u64> = old.failed_by.clone();
        for (status, n) in &new.failed_by {
            *by.entry(*status).or_default() += n;
        }
        if !by.is_empty() {
            let list: Vec<String> = by
                .iter()
                .map(|(s, n)| match s {
                    0 => format!("{n} without an answer"),
                    200 => format!("{n} pages naming no node"),
                    s => format!("{n} x {s}"),
                })
                .collect();
            report.note(&format!("{name}: failed calls: {}", list.join(", ")));
        }
        report.figure(&format!("{name}: 409"), sum(|t| t.refused), "", zero);
        report.figure(
            &format!("{name}: misrouted"),
            sum(|t| t.misrouted),
            "",
            None,
        );
        report.figure(
            &format!("{name}: forwarded"),
            sum(|t| t.forwarded),
            "",
            None,
        );
    }
    latency(report, binary, args.samples).await
}

/// One lab, one deploy under load; the tallies of old and new pages' calls.
async fn deploy_under_load(
    binary: &Path,
    mode: Mode,
    args: &Args,
) -> anyhow::Result<(Tally, Tally)> {
    let mut config = LabConfig::new(binary, 6);
    config.cluster = format!("affinity{}", fastrand::u32(..));
    config.timings = timings::E2E;
    config.log_filter = std::env::var("VO_BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into());
    config.node_env = match mode {
        Mode::Affinity => vec![
            ("VO_RETIRE_FOR".into(), "120s".into()),
            ("VO_RETIRE_GRACE".into(), "5s".into()),
        ],
        Mode::NoGuard | Mode::GuardOnly => vec![("VO_AFFINITY".into(), "off".into())],
    };
    let mut lab = Lab::start(config).await?;
    let outcome = async {
        for id in ["n1", "n2", "n3"] {
            lab.start_node(id, OLD).await?;
        }
        let settled = Instant::now() + cluster::SETTLE;
        loop {
            let status = lab.status().await;
            let view = status.view.unwrap_or_default();
            if view["state"] == "settled" && view["settled_version"] == OLD {
                break;
            }
            anyhow::ensure!(
                Instant::now() < settled,
                "the cluster never settled on {OLD}"
            );
            tokio::time::sleep(vo_lab::wait::POLL).await; // the poll interval
        }
        let proxy = lab.proxy_url();
        let tab = OldTab::open(&proxy);
        let header = mode != Mode::NoGuard;
        let old = Load::start(&proxy, OLD, header, args.rate);
        let mut new = None;
        for (old_id, new_id) in [("n1", "n4"), ("n2", "n5"), ("n3", "n6")] {
            lab.start_node(new_id, NEW).await?;
            new.get_or_insert_with(|| Load::start(&proxy, NEW, header, args.rate));
            tokio::time::sleep(args.pace).await; // the deploy's pace: calls run meanwhile
            match mode {
                Mode::Affinity => lab.retire_node(old_id).await?,
                Mode::NoGuard | Mode::GuardOnly => lab.stop_node(old_id).await?,
            }
            tokio::time::sleep(args.pace).await; // the deploy's pace: calls run meanwhile
        }
        tokio::time::sleep(args.tail).await; // calls after the deploy, until the run ends
        let ports: BTreeMap<u16, String> = lab
            .status()
            .await
            .nodes
            .iter()
            .map(|n| (n.port, n.id.clone()))
            .collect();
        let old = old.finish(&ports).await;
        let new = new.context("no new page")?.finish(&ports).await;
        tab.close();
        Ok((old, new))
    }
    .await;
    lab.shutdown().await;
    outcome
}

/// An old tab: a stream through nginx naming page 1.0.0, opened again
/// whenever it ends, as a browser's would.
struct OldTab(JoinHandle<()>);

impl OldTab {
    fn open(proxy: &str) -> Self {
        let url = format!("{proxy}/api/version/events?page={OLD}");
        Self(tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                if let Ok(mut response) = http.get(&url).send().await {
                    while let Ok(Some(_)) = response.chunk().await {}
                }
                tokio::time::sleep(Duration::from_millis(500)).await; // a browser's retry
            }
        }))
    }

    fn close(self) {
        self.0.abort();
    }
}

/// One call's outcome: its status (0: no answer), the node nginx picked
/// (its port), and the node and version that rendered the page.
#[derive(Debug)]
struct Outcome {
    status: u16,
    upstream: Option<u16>,
    rendered_by: Option<(String, String)>,
}

/// Calls at a steady rate from pages of one version.
struct Load {
    page: &'static str,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    ticker: JoinHandle<()>,
}

impl Load {
    fn start(proxy: &str, page: &'static str, header: bool, rate: u32) -> Self {
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (sink, url) = (outcomes.clone(), format!("{proxy}/?affinity"));
        let ticker = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("a plain client");
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (http, url, sink) = (http.clone(), url.clone(), sink.clone());
                tokio::spawn(async move {
                    let mut request = http.get(&url);
                    if header {
                        request = request.header("x-version-observer-page", page);
                    }
                    let outcome = match request.send().await {
                        Err(_) => Outcome {
                            status: 0,
                            upstream: None,
                            rendered_by: None,
                        },
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let upstream = response
                                .headers()
                                .get("x-upstream")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| {
                                    v.rsplit(", ").next()?.rsplit(':').next()?.parse().ok()
                                });
                            let body = response.text().await.unwrap_or_default();
                            Outcome {
                                status,
                                upstream,
                                rendered_by: rendered_by(&body),
                            }
                        }
                    };
                    sink.lock().expect("not poisoned").push(outcome);
                });
            }
        });
        Self {
            page,
            outcomes,
            ticker,
        }
    }

    /// Stops calling; waits for the calls under way; tallies them.
    async fn finish(self, ports: &BTreeMap<u16, String>) -> Tally {
        self.ticker.abort();
        tokio::time::sleep(Duration::from_secs(1)).await; // the last calls' answers
        let outcomes = std::mem::take(&mut *self.outcomes.lock().expect("not poisoned"));
        let page: semver::Version = self.page.parse().expect("a version");
        let mut t = Tally::default();
        for o in outcomes {
            t.calls += 1;
            match o.status {
                200 => {}
                409 => {
                    t.refused += 1;
                    continue;
                }
                status => {
                    t.failed += 1;
                    *t.failed_by.entry(status).or_default() += 1;
                    continue;
                }
            }
            let Some((node, version)) = o.rendered_by else {
                t.failed += 1;
                *t.failed_by.entry(200).or_default() += 1;
                continue;
            };
            let ran_on: Option<semver::Version> = version.parse().ok();
            if ran_on.is_none_or(|v| !version_observer_core::Compat::Major.compatible(&page, &v)) {
                t.misrouted += 1;
            }
            if o.upstream
                .and_then(|p| ports.get(&p))
                .is_some_and(|picked| *picked != node)
            {
                t.forwarded += 1;
            }
        }
        t
    }
}

/// The node id and version a reference page says rendered it.
fn rendered_by(html: &str) -> Option<(String, String)> {
    let field = |testid: &str| {
        let marker = format!("data-testid=\"{testid}\"");
        let rest = &html[html.find(&marker)? + marker.len()..];
        let rest = &rest[rest.find('>')? + 1..];
        Some(rest[..rest.find('<')?].to_owned())
    };
    Some((field("page-node")?, field("page-version")?))
}

/// What forwarding adds to a call: straight to a node of the page's version
/// against through a node of another version.
async fn latency(report: &mut Report, binary: &Path, samples: usize) -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let name = format!("latency{}", fastrand::u32(..));
    let old = cluster::start_node(binary, &nats.url(), &name, "old", OLD, timings::FAST).await?;
    let new = cluster::start_node(binary, &nats.url(), &name, "new", NEW, timings::FAST).await?;
    for node in [&old, &new] {
        cluster::until_view(node, "both members", |v| {
            v["members"].as_array().is_some_and(|m| m.len() == 2)
        })
        .await?;
    }
    let http = reqwest::Client::new();
    let call = async |url: &str| -> anyhow::Result<f64> {
        let started = Instant::now();
        let response = http
            .get(url)
            .header("x-version-observer-page", OLD)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "{url}: {}", response.status());
        response.bytes().await?;
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    let (direct_url, forwarded_url) = (old.url("/healthz"), new.url("/healthz"));
    // Warm both paths (connections, the member's in-process connection).
    for _ in 0..20 {
        call(&direct_url).await?;
        call(&forwarded_url).await?;
    }
    let (mut direct, mut forwarded) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        direct.push(call(&direct_url).await?);
        forwarded.push(call(&forwarded_url).await?);
    }
    let metrics = new.metrics().await.unwrap_or_default();
    let answered = vo_lab::metrics::parse(&metrics)
        .samples
        .iter()
        .filter(|s| {
            s.metric == "version_observer_forwarded_total"
                && s.labels.get("outcome") == Some("answered")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum::<f64>();
    anyhow::ensure!(
        answered >= samples as f64,
        "the 2.0.0 node forwarded {answered} calls, not {samples}: the measurement is not of forwarding"
    );
    report.input(
        "latency: calls",
        format!("{samples} of each, alternating, one at a time, GET /healthz as a {OLD} page"),
    );
    let (d, f) = (
        summarize(&direct).context("direct samples")?,
        summarize(&forwarded).context("forwarded samples")?,
    );
    report.figure("direct p50", d.p50, "ms", None);
    report.figure("direct p99", d.p99, "ms", None);
    report.figure("forwarded p50", f.p50, "ms", None);
    report.figure("forwarded p99", f.p99, "ms", None);
    report.figure("added by forwarding p50", f.p50 - d.p50, "ms", None);
    report.figure(
        "added by forwarding p99",
        f.p99 - d.p99,
        "ms",
        Some(Goal::AtMost(2.0)),
    );
    drop((old, new, nats));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_page_names_who_rendered_it() {
        let html = r#"<dl><dt>This page</dt><dd data-testid="page-version">1.0.0</dd><dt>Rendered by</dt><dd data-testid="page-node">n3</dd></dl>"#;
        assert_eq!(rendered_by(html), Some(("n3".into(), "1.0.0".into())));
        assert_eq!(rendered_by("<html>overloaded</html>"), None);
    }
}
