//! 4. Monitor scale: one collection round over M members. One real node is
//!    the monitor; M simulated members live in this process, spread over a
//!    few NATS connections, and behave like real ones on the same subjects:
//!    nodeup, a heartbeat every node-timeout/3, and a reply to every version
//!    request. The monitor reports each round's collection time in
//!    `/api/cluster` (`last_round.collect_ms`); a passive subscriber counts
//!    the messages of each round on the wire. The monitor's CPU time over
//!    the sampled rounds (`/proc`) is its cost per second at M members:
//!    the rounds and every member's heartbeat.

use crate::{
    cluster,
    report::{Goal, Report},
    sys,
};
use anyhow::Context;
use futures::StreamExt;
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};
use version_observer_core::{
    protocol::{encode, Names, Presence, PresenceKind, VersionReply, VersionRequest, INBOX_PREFIX},
    Timings,
};
use vo_lab::{wait, NatsServer};

const VERSION: &str = "1.0.0";
/// Simulated members per NATS connection.
const PER_CONNECTION: usize = 100;

pub async fn run(
    report: &mut Report,
    binary: &Path,
    sizes: &[usize],
    rounds: usize,
) -> anyhow::Result<()> {
    report.section(
        "4 monitor scale",
        "4. Monitor scale: one collection round over M members",
    );
    let timings = Timings {
        safety_interval: Duration::from_millis(500),
        ..Timings::DEFAULT
    };
    report.input("rounds sampled per size", rounds);
    report.input(
        "monitor timings",
        format!(
            "safety interval {} ms (a round at least that often), round timeout {} ms",
            timings.safety_interval.as_millis(),
            timings.round_timeout.as_millis()
        ),
    );
    let nats = NatsServer::start().await?;
    for &m in sizes {
        let cluster = format!("scale{m}");
        let names = Names::new(&cluster);
        let observer = Observer::start(&nats.url(), &names).await?;
        let members =
            Simulated::start(&nats.url(), &names, m, timings.heartbeat_interval()).await?;
        let mut node =
            cluster::start_node(binary, &nats.url(), &cluster, "monitor", VERSION, timings).await?;
        let expected = m + 1;
        cluster::until_view(
            &node,
            &format!("a complete round over {expected} members"),
            |v| {
                v["last_round"]["expected"].as_u64() == Some(expected as u64)
                    && v["last_round"]["outcome"] == "settled"
            },
        )
        .await?;
        // The monitor's CPU while the rounds are sampled: the rounds, and
        // every member's heartbeat once a second.
        let pid = node.pid().context("the monitor's pid")?;
        let cpu_before = sys::cpu_seconds(pid).context("the monitor's CPU")?;
        let sampling = std::time::Instant::now();
        // Sample the next `rounds` rounds, each seen once.
        let mut seen = BTreeMap::new();
        let until = wait::eventually(
            &format!("{rounds} rounds over {expected} members"),
            Duration::from_secs(120),
            async || {
                if let Some(v) = node.cluster().await {
                    let r = &v["last_round"];
                    if r["expected"].as_u64() == Some(expected as u64) {
                        if let (Some(round), Some(ms), Some(replies)) = (
                            r["round"].as_u64(),
                            r["collect_ms"].as_f64(),
                            r["replies"].as_u64(),
                        ) {
                            seen.entry(round).or_insert((ms, replies));
                        }
                    }
                }
                (seen.len() > rounds).then_some(())
            },
        )
        .await;
        until?;
        let cpu = sys::cpu_seconds(pid).context("the monitor's CPU")? - cpu_before;
        let seconds = sampling.elapsed().as_secs_f64();
        // The first sampled round may have been caught mid-way by the poll; drop it.
        let sampled: Vec<(u64, (f64, u64))> = seen.into_iter().skip(1).collect();
        let times: Vec<f64> = sampled.iter().map(|(_, (ms, _))| *ms).collect();
        let replies: Vec<f64> = sampled.iter().map(|(_, (_, r))| *r as f64).collect();
        let wire: Vec<(usize, usize)> = sampled
            .iter()
            .filter_map(|(round, _)| observer.counts(*round))
            .collect();
        report.input(&format!("[{m}] members (+ the monitor)"), expected);
        report.distribution(
            &format!("[{m}] round (collect)"),
            &times,
            "ms",
            if m >= 1_000 {
                Some(Goal::AtMost(200.0))
            } else {
                None
            },
        );
        report.figure(
            &format!("[{m}] monitor CPU (rounds and heartbeats)"),
            cpu * 1000.0 / seconds,
            "ms per s",
            None,
        );
        report.figure(
            &format!("[{m}] replies per round (mean)"),
            replies.iter().sum::<f64>() / replies.len().max(1) as f64,
            "",
            None,
        );
        if let Some(&(requests, replies)) = wire.first() {
            report.figure(
                &format!("[{m}] messages per round"),
                (requests + replies) as f64,
                "",
                None,
            );
            report.input(
                &format!("[{m}]   of which"),
                format!("{requests} request (fanned out by NATS to {expected} subscribers) + {replies} replies"),
            );
        }
        node.stop().await?;
        drop(members);
    }
    Ok(())
}

/// M simulated members on a few connections.
struct Simulated {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Simulated {
    async fn start(
        url: &str,
        names: &Names,
        m: usize,
        heartbeat: Duration,
    ) -> anyhow::Result<Self> {
        let mut tasks = Vec::new();
        let version: semver::Version = VERSION.parse()?;
        for first in (0..m).step_by(PER_CONNECTION) {
            let client = async_nats::connect(url)
                .await
                .context("simulated members' connection")?;
            let ids: Vec<String> = (first..(first + PER_CONNECTION).min(m))
                .map(|i| format!("sim-{i:05}"))
                .collect();
            for id in &ids {
                let mut requests = client.subscribe(names.version_request()).await?;
                let reply = encode(&VersionReply {
                    id: id.clone(),
                    version: version.clone(),
                    incarnation: 1,
                    release: None,
                });
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    while let Some(request) = requests.next().await {
                        if let Some(inbox) = request.reply {
                            let _ = client.publish(inbox, reply.clone()).await;
                        }
                    }
                }));
            }
            let presences: Vec<_> = ids
                .iter()
                .map(|id| {
                    encode(&Presence {
                        id: id.clone(),
                        version: version.clone(),
                        incarnation: 1,
                        leader: false,
                        tabs: Default::default(),
                        retiring: false,
                    })
                })
                .collect();
            let (up, beat) = (
                names.presence(PresenceKind::Up),
                names.presence(PresenceKind::Heartbeat),
            );
            client.flush().await?;
            tasks.push(tokio::spawn(async move {
                for p in &presences {
                    let _ = client.publish(up.clone(), p.clone()).await;
                }
                let mut ticker = tokio::time::interval(heartbeat);
                loop {
                    ticker.tick().await;
                    for p in &presences {
                        let _ = client.publish(beat.clone(), p.clone()).await;
                    }
                }
            }));
        }
        Ok(Self { tasks })
    }
}

impl Drop for Simulated {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Counts, per round, the request and the replies to its inbox. Replies may
/// arrive before the request that names their inbox is read, so every inbox
/// is counted and matched with its round when asked.
struct Observer {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Seen {
    /// round -> (requests, the inbox its replies go to)
    requests: HashMap<u64, (usize, String)>,
    /// inbox -> messages
    inboxes: HashMap<String, usize>,
}

impl Observer {
    async fn start(url: &str, names: &Names) -> anyhow::Result<Self> {
        let client = async_nats::connect(url).await?;
        let mut requests = client.subscribe(names.version_request()).await?;
        let mut inboxes = client.subscribe(format!("{INBOX_PREFIX}>")).await?;
        client.flush().await?;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            loop {
                tokio::select! {
                    Some(m) = requests.next() => {
                        if let (Ok(r), Some(inbox)) = (serde_json::from_slice::<VersionRequest>(&m.payload), m.reply) {
                            let mut seen = sink.lock().expect("not poisoned");
                            seen.requests.entry(r.round).or_insert((0, inbox.to_string())).0 += 1;
                        }
                    }
                    Some(m) = inboxes.next() => {
                        *sink.lock().expect("not poisoned").inboxes.entry(m.subject.to_string()).or_default() += 1;
                    }
                    else => break,
                }
            }
        });
        Ok(Self { seen, task })
    }

    /// (requests, replies) seen for `round`.
    fn counts(&self, round: u64) -> Option<(usize, usize)> {
        let seen = self.seen.lock().expect("not poisoned");
        let (requests, inbox) = seen.requests.get(&round)?;
        Some((*requests, seen.inboxes.get(inbox).copied().unwrap_or(0)))
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
