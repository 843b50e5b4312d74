//! The node binary's tools for operators and deploy pipelines, which watch a
//! cluster from outside (they never join it, never publish):
//!
//! - `version-observer wait --settled <version>`: a deploy gate, like
//!   `kubectl rollout status`. It prints the rollout (nodes per version)
//!   whenever it changes and exits 0 once every live node runs the version
//!   and the cluster's record says so (announced, when it is news); 1 on
//!   timeout, with the rollout it last saw; 2 when NATS refuses it (bad
//!   credentials or certificate) or a flag is bad.
//! - `version-observer status`: the cluster once, as a table or `--json`.
//!
//! Both take the node's NATS flags (and their `VO_*` variables).

use crate::config::{parse_version, NatsArgs};
use clap::{Args, Parser, Subcommand};
use semver::Version;
use std::{
    io::Write,
    process::ExitCode,
    time::{Duration, Instant},
};
use version_observer::{
    core::{
        cluster::watcher::{Fleet, Gate},
        timing::tools::{STATUS_GRACE, STATUS_POLL, WAIT_POLL},
    },
    Compat, FleetWatch, NatsSettings, Timings,
};

/// The subcommands' names: `version-observer <one of these> …` runs a tool,
/// anything else runs a node.
pub const NAMES: [&str; 2] = ["wait", "status"];

/// `version-observer wait|status`.
#[derive(Debug, Parser)]
#[command(name = "version-observer", version)]
pub struct ToolCli {
    #[command(subcommand)]
    pub tool: Tool,
}

#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Wait until the cluster has settled on a version (a deploy gate):
    /// exit 0 once every live node runs it and the cluster has recorded it
    /// (announced it, when it is news); 1 on timeout.
    Wait(WaitArgs),
    /// Print the cluster once: members, versions, the monitor, the record.
    Status(StatusArgs),
}

/// How to reach the cluster: the node's own flags and variables
/// ([`NatsArgs`]), `--nats` required.
#[derive(Debug, Args)]
#[command(mut_arg("nats", |a| a.required(true)))]
pub struct ClusterArgs {
    #[command(flatten)]
    pub connection: NatsArgs,
}

impl ClusterArgs {
    fn settings(&self) -> NatsSettings {
        let timings = Timings {
            node_timeout: self.connection.node_timeout(),
            ..Timings::DEFAULT
        };
        self.connection
            .settings(timings)
            .expect("clap requires --nats for the tools")
    }

    fn node_timeout(&self) -> Duration {
        self.connection.node_timeout()
    }
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The version to wait for.
    #[arg(long, value_name = "SEMVER", value_parser = parse_version)]
    pub settled: Version,

    /// Give up after this long: 90s, 5m, 1h30m, or seconds.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// The cluster's compatibility policy (a version compatible with the
    /// recorded one is not announced, so it is not waited for).
    #[arg(long, env = "VO_COMPAT", value_name = "MODE", default_value = "major")]
    pub compat: Compat,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a tool; the exit code is the tool's.
pub async fn run(cli: ToolCli) -> anyhow::Result<ExitCode> {
    match cli.tool {
        Tool::Wait(args) => wait(args).await,
        Tool::Status(args) => status(args).await,
    }
}

async fn wait(args: WaitArgs) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + args.timeout;
    let cluster = &args.cluster.connection.cluster;
    let target = &args.settled;
    let watch = match FleetWatch::connect(args.cluster.settings()).await {
        Ok(watch) => watch,
        Err(e) => return Ok(cannot_watch(&e)),
    };
    say(&format!(
        "waiting up to {} for cluster '{cluster}' to settle on {target}",
        human(args.timeout)
    ));
    let mut shown = String::new();
    loop {
        match watch.gate(target, args.compat) {
            Gate::Settled(fleet) => {
                say(&format!(
                    "cluster '{cluster}' settled on {target}: {}; {}",
                    fleet.rollout(),
                    record_line(&fleet)
                ));
                return Ok(ExitCode::SUCCESS);
            }
            Gate::Waiting(fleet) => {
                let line = progress_line(&fleet);
                if line != shown {
                    say(&line);
                    shown = line;
                }
                if Instant::now() >= deadline {
                    let _ = writeln!(
                        std::io::stderr(),
                        "timed out after {} waiting for cluster '{cluster}' to settle on {target}: {}",
                        human(args.timeout),
                        progress_line(&fleet)
                    );
                    return Ok(ExitCode::from(1));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        watch.changed(left.min(WAIT_POLL)).await;
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    // Long enough for every live node's heartbeat, and a little more.
    let deadline = Instant::now() + args.cluster.node_timeout() + STATUS_GRACE;
    let watch = match FleetWatch::connect(args.cluster.settings()).await {
        Ok(watch) => watch,
        Err(e) => return Ok(cannot_watch(&e)),
    };
    let fleet = loop {
        let fleet = watch.fleet();
        if (fleet.complete && fleet.record.is_some()) || Instant::now() >= deadline {
            break fleet;
        }
        watch.changed(STATUS_POLL).await;
    };
    if args.json {
        say(&serde_json::to_string_pretty(&fleet)?);
    } else {
        say(&table(&fleet));
    }
    if !fleet.complete {
        let _ = writeln!(
            std::io::stderr(),
            "the view of cluster '{}' is incomplete: NATS did not answer for a whole node timeout",
            fleet.cluster
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_line(fleet: &Fleet) -> String {
    let partial = if fleet.complete {
        ""
    } else {
        " (still listening)"
    };
    format!("{}{partial}; {}", fleet.rollout(), record_line(fleet))
}

fn record_line(fleet: &Fleet) -> String {
    match &fleet.record {
        Some(n) => format!(
            "record: {} ({}, revision {})",
            n.record.version,
            match n.record.kind {
                version_observer::core::protocol::RecordKind::Baseline => "baseline",
                version_observer::core::protocol::RecordKind::Announcement => "announced",
            },
            n.revision
        ),
        None => "no record yet".to_owned(),
    }
}

/// The fleet as a table.
pub fn table(fleet: &Fleet) -> String {
    let mut out = format!(
        "cluster {}{}\nrollout: {}\n{}\n",
        fleet.cluster,
        if fleet.complete { "" } else { " (incomplete)" },
        fleet.rollout(),
        record_line(fleet)
    );
    if !fleet.tabs.is_empty() {
        let tabs: Vec<String> = fleet
            .tabs
            .iter()
            .map(|(v, n)| format!("{v} ×{n}"))
            .collect();
        out.push_str(&format!("open tabs by page version: {}\n", tabs.join(", ")));
    }
    let id_width = fleet
        .members
        .iter()
        .map(|m| m.id.len())
        .max()
        .unwrap_or(0)
        .max("NODE".len());
    let version_width = fleet
        .members
        .iter()
        .map(|m| m.version.to_string().len())
        .max()
        .unwrap_or(0)
        .max("VERSION".len());
    out.push_str(&format!(
        "{:id_width$}  {:version_width$}  {:7}  {:10}  {:17}  LAST HEARD\n",
        "NODE", "VERSION", "MONITOR", "STATE", "PAGES OF ITS BUILD"
    ));
    for m in &fleet.members {
        out.push_str(&format!(
            "{:id_width$}  {:version_width$}  {:7}  {:10}  {:17}  {:.1} s ago\n",
            m.id,
            m.version.to_string(),
            if m.leader { "yes" } else { "" },
            if m.retiring { "retiring" } else { "serving" },
            fleet.pages_of(&m.version),
            m.last_seen_ms_ago as f64 / 1000.0
        ));
    }
    out.trim_end().to_owned()
}

/// NATS refused us (credentials, certificate, a bad URL): exit code 2, as
/// for bad flags, so that a pipeline tells it from a timeout (1).
fn cannot_watch(e: &dyn std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: cannot watch the cluster: {e}");
    ExitCode::from(2)
}

/// Prints a line on stdout; a closed stdout is not an error worth a panic.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// `90s`, `5m`, `1h30m`, `250ms`, or a number of seconds (the core's, shared with the crate's settings).
pub use version_observer::core::timing::parse_duration;

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, 0) => format!("{}ms", d.as_millis()),
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl_timeouts() {
        for (text, secs) in [
            ("90", 90),
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("2m5s", 125),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "0", "5x", "m", "1.5m", "-3s", "0s", "5 m"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_secs(125)), "2m5s");
    }

    #[test]
    fn the_table_lists_every_member_and_what_keeps_a_retiring_one() {
        let fleet: Fleet = serde_json::from_value(serde_json::json!({
            "cluster": "shop", "complete": true,
            "members": [
                {"id": "web-1", "incarnation": 1, "version": "2.0.0", "last_seen_ms_ago": 400, "leader": true,
                 "tabs": {"1.0.0": 3, "2.0.0": 5}},
                {"id": "web-22", "incarnation": 2, "version": "1.0.0", "last_seen_ms_ago": 1200, "leader": false,
                 "retiring": true}
            ],
            "versions": {"2.0.0": 1},
            "retiring": {"1.0.0": 1},
            "tabs": {"1.0.0": 3, "2.0.0": 5},
            "record": null
        }))
        .unwrap();
        let table = table(&fleet);
        assert!(
            table.contains("rollout: 2.0.0 ×1; retiring 1.0.0 ×1"),
            "{table}"
        );
        assert!(
            table.contains("web-1   2.0.0    yes      serving                     5  0.4 s ago"),
            "{table}"
        );
        assert!(
            table.contains("web-22  1.0.0             retiring                    3  1.2 s ago"),
            "{table}"
        );
        assert!(table.contains("no record yet"), "{table}");
    }
}
