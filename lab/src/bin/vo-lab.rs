//! `vo-lab`: a cluster on loopback (nats-server, nodes, nginx).
//!
//! - `vo-lab demo`: a rolling deploy at a human pace, narrated, behind one URL
//!   to keep open in a browser. Ctrl-C stops everything.
//! - `vo-lab serve`: the same lab, driven over HTTP (see `vo_lab::control`);
//!   prints one JSON line with its URLs and the nodes' timings, then serves
//!   until stopped. The Playwright scenes use it (`--timings e2e`).
//!
//! Both take `--timings default|fast|e2e` (default: the product's defaults,
//! from the core) and a flag per timing that overrides the preset's value.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::{str::FromStr, sync::Arc, time::Duration};
use tokio::sync::{Mutex, Notify};
use version_observer_core::protocol::valid_cluster_name;
use vo_lab::{
    lab::LabStatus,
    process::stop_signal,
    timings::{Preset, TimingsMs},
    tools, wait, Lab, LabConfig, Timings,
};

#[derive(Parser)]
#[command(
    name = "vo-lab",
    about = "A version-observer cluster on loopback: nats-server, nodes and nginx"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Walk through a rolling deploy at a human pace; keep a browser tab open on the printed URL.
    Demo(DemoArgs),
    /// Start the lab and drive it over HTTP (for tests); prints {"control","proxy","nats","timings"}.
    Serve(ServeArgs),
}

#[derive(Args, Clone)]
struct LabArgs {
    /// Node slots behind nginx (n1, n2, ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    nodes: u16,
    /// The cluster name (namespaces subjects and buckets).
    #[arg(long, default_value = "lab", value_parser = parse_cluster)]
    cluster: String,
    /// The nodes' timings: `default` (the product's), `fast` (the Rust
    /// cluster tests') or `e2e` (the browser scenes'); the flags below
    /// override single values.
    #[arg(long, default_value_t = Preset::Default, value_parser = preset_parser())]
    timings: Preset,
    /// The nodes' --node-timeout-ms [default: the preset's].
    #[arg(long)]
    node_timeout_ms: Option<u64>,
    /// The nodes' --lease-ms [default: the preset's].
    #[arg(long)]
    lease_ms: Option<u64>,
    /// The nodes' --round-timeout-ms [default: the preset's].
    #[arg(long)]
    round_timeout_ms: Option<u64>,
    /// The nodes' --safety-interval-ms [default: the preset's].
    #[arg(long)]
    safety_interval_ms: Option<u64>,
    /// Another flag for every node (repeatable), e.g. --node-arg=--compat=minor.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    node_args: Vec<String>,
    /// An environment variable for every node (repeatable), e.g.
    /// --node-env=VO_RETIRE_FOR=60s (both apps read VO_* variables).
    #[arg(long = "node-env", value_parser = parse_env)]
    node_env: Vec<(String, String)>,
    /// The program the nodes run: `reference` (the version-observer node)
    /// or `todo` (the example app, examples/todo).
    #[arg(long, default_value = "reference", value_parser = parse_app)]
    app: vo_lab::node::App,
}

fn parse_env(value: &str) -> Result<(String, String), String> {
    let (name, value) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not NAME=VALUE"))?;
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_app(value: &str) -> Result<vo_lab::node::App, String> {
    match value {
        "reference" => Ok(vo_lab::node::App::Reference),
        "todo" => Ok(vo_lab::node::App::Todo),
        other => Err(format!("{other:?} is neither reference nor todo")),
    }
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    lab: LabArgs,
    /// nginx's port: the URL to open.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The version the cluster runs first.
    #[arg(long, default_value = "0.1.0", value_parser = parse_version)]
    from: String,
    /// The incompatible version it is deployed to.
    #[arg(long, default_value = "1.0.0", value_parser = parse_version)]
    to: String,
    /// A compatible version deployed last (no banner).
    #[arg(long, default_value = "1.1.0", value_parser = parse_version)]
    minor: String,
    /// Seconds between steps.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(0..=600))]
    pace: u64,
    /// Seconds to open the browser before the deploy starts.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(0..=3600))]
    open_for: u64,
    /// Stop when the walk-through ends instead of keeping the cluster up.
    #[arg(long)]
    exit: bool,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    lab: LabArgs,
    /// nginx's port (0: a free one).
    #[arg(long, default_value_t = 0)]
    proxy_port: u16,
    /// Where the control API listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    control: std::net::SocketAddr,
}

/// `--timings`: each preset, listed with its values in `--help`.
fn preset_parser() -> impl clap::builder::TypedValueParser<Value = Preset> {
    use clap::builder::TypedValueParser;
    let values = Preset::ALL.map(|preset| {
        let t = TimingsMs::from(preset.timings());
        clap::builder::PossibleValue::new(preset.name()).help(format!(
            "node timeout {} ms, lease {} ms, round timeout {} ms, safety interval {} ms",
            t.node_timeout_ms, t.lease_ms, t.round_timeout_ms, t.safety_interval_ms
        ))
    });
    clap::builder::PossibleValuesParser::new(values)
        .map(|name: String| Preset::from_str(&name).expect("a listed preset"))
}

fn parse_cluster(value: &str) -> Result<String, String> {
    valid_cluster_name(value)
        .map(|()| value.to_owned())
        .map_err(|e| format!("{value:?} is not a cluster name: {e}"))
}

fn parse_version(value: &str) -> Result<String, String> {
    semver::Version::parse(value)
        .map(|v| v.to_string())
        .map_err(|e| format!("{value:?} is not a semantic version (e.g. 1.0.0): {e}"))
}

impl LabArgs {
    /// The preset, with any single value the flags override.
    fn timings(&self) -> anyhow::Result<Timings> {
        let preset = TimingsMs::from(self.timings.timings());
        let timings = Timings::from(TimingsMs {
            node_timeout_ms: self.node_timeout_ms.unwrap_or(preset.node_timeout_ms),
            lease_ms: self.lease_ms.unwrap_or(preset.lease_ms),
            round_timeout_ms: self.round_timeout_ms.unwrap_or(preset.round_timeout_ms),
            safety_interval_ms: self.safety_interval_ms.unwrap_or(preset.safety_interval_ms),
        });
        timings.validate()?;
        Ok(timings)
    }

    fn config(&self, proxy_port: u16) -> anyhow::Result<LabConfig> {
        let binary = match self.app {
            vo_lab::node::App::Reference => tools::node_binary(),
            vo_lab::node::App::Todo => tools::todo_binary(),
        };
        let mut config = LabConfig::new(binary, self.nodes.into());
        config.app = self.app;
        config.node_env = self.node_env.clone();
        config.cluster = self.cluster.clone();
        config.timings = self.timings()?;
        config.proxy_port = proxy_port;
        config.node_args = self.node_args.clone();
        Ok(config)
    }
}

// One thread: the lab's processes get a parent-death signal (see vo_lab::process).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let binary = tools::node_binary();
    if !binary.exists() {
        bail!(
            "no node binary at {} (build it first: scripts/test.sh or scripts/demo.sh do; or set VO_BIN)",
            binary.display()
        );
    }
    match cli.command {
        Command::Demo(args) => demo(args).await,
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let lab = Lab::start(args.lab.config(args.proxy_port)?)
        .await
        .context("cannot start the lab")?;
    let (proxy, nats) = (lab.proxy_url(), lab.nats_url());
    let timings = TimingsMs::from(lab.config().timings);
    let lab = Arc::new(Mutex::new(lab));
    let shutdown = Arc::new(Notify::new());
    let listener = tokio::net::TcpListener::bind(args.control)
        .await
        .with_context(|| format!("cannot listen on {}", args.control))?;
    let control = format!("http://{}", listener.local_addr()?);
    println!(
        "{}",
        serde_json::json!({ "control": control, "proxy": proxy, "nats": nats, "timings": timings })
    );
    let router = vo_lab::control::router(lab.clone(), shutdown.clone());
    let stop = shutdown.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = stop_signal() => {}
                _ = stop.notified() => {}
            }
        })
        .await?;
    let lab = Arc::try_unwrap(lab)
        .map_err(|_| anyhow::anyhow!("the lab is still in use"))?
        .into_inner();
    lab.shutdown().await;
    Ok(())
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let config = args.lab.config(args.port)?;
    say(&format!(
        "starting nats-server (JetStream) and nginx on http://127.0.0.1:{}",
        args.port
    ));
    let mut lab = Lab::start(config).await.context("cannot start the lab")?;
    let outcome = tokio::select! {
        r = walk_through(&mut lab, &args) => r,
        _ = stop_signal() => { say("stopping (signal)"); Ok(()) }
    };
    say("stopping every node, nginx and nats-server");
    lab.shutdown().await;
    say("stopped; nothing left running");
    outcome
}

/// The narrated rolling deploy.
async fn walk_through(lab: &mut Lab, args: &DemoArgs) -> anyhow::Result<()> {
    let slots = lab.config().slots.clone();
    let pace = Duration::from_secs(args.pace);
    let timings = lab.config().timings;
    let settle = timings.node_timeout * 4 + timings.lease + Duration::from_secs(10);
    let mut demo = Narrator {
        lab,
        last: String::new(),
    };

    say(&format!("step 1: {} nodes on {}", slots.len(), args.from));
    for id in &slots {
        demo.lab.start_node(id, &args.from).await?;
        say(&format!("  started {id} on {}", args.from));
    }
    demo.until(settle, "the cluster records its baseline", |s| {
        announced(s) == Some((args.from.as_str(), "baseline")) && state(s) == Some("settled")
    })
    .await?;
    println!();
    println!(
        "    Open {} in your browser and keep the tab open.",
        demo.lab.proxy_url()
    );
    println!("    Type something in its notes field: a reload keeps it.");
    println!();
    demo.watch(Duration::from_secs(args.open_for)).await;

    say(&format!(
        "step 2: rolling deploy {} -> {} (incompatible: the banner will come, once)",
        args.from, args.to
    ));
    demo.roll(&slots, &args.to, pace).await?;
    let deploy = demo
        .until(settle, "the announcement", |s| {
            announced(s) == Some((args.to.as_str(), "announcement"))
        })
        .await?;
    if let Some(a) = deploy.announcements.last() {
        say(&format!(
            "announced {} (previous {}) by {}: the open tab shows the banner now, without reloading",
            a.version,
            a.previous.as_deref().unwrap_or("-"),
            a.leader
        ));
    }
    println!(
        "    Press its Reload button: the page comes back on {} with your notes.",
        args.to
    );
    demo.watch(pace * 2).await;

    say(&format!(
        "step 3: rolling deploy {} -> {} (compatible: settled, nothing announced, no banner)",
        args.to, args.minor
    ));
    let before = demo.lab.announcements().len();
    demo.roll(&slots, &args.minor, pace).await?;
    demo.until(settle, "the cluster to settle", |s| {
        state(s) == Some("settled") && settled(s) == Some(args.minor.as_str())
    })
    .await?;
    demo.watch(pace).await;
    let after = demo.lab.announcements().len();
    say(&format!(
        "settled on {}; announcements during the minor deploy: {}",
        args.minor,
        after - before
    ));
    if args.exit {
        return Ok(());
    }
    say(&format!(
        "done. The cluster keeps running at {}; Ctrl-C stops everything.",
        demo.lab.proxy_url()
    ));
    loop {
        demo.watch(Duration::from_secs(3600)).await;
    }
}

/// Drives the lab and prints a status line whenever the cluster view says
/// something new.
struct Narrator<'a> {
    lab: &'a mut Lab,
    last: String,
}

impl Narrator<'_> {
    async fn show(&mut self) -> LabStatus {
        let status = self.lab.status().await;
        let line = describe(&status);
        if without_clock(&line) != without_clock(&self.last) {
            println!("    {line}");
            self.last = line;
        }
        status
    }

    /// Keeps the status line current for `how_long`.
    async fn watch(&mut self, how_long: Duration) {
        let until = tokio::time::Instant::now() + how_long;
        while tokio::time::Instant::now() < until {
            self.show().await;
            tokio::time::sleep(Duration::from_millis(250)).await; // refresh rate of the narration
        }
    }

    /// Keeps the status line current until `done` holds.
    async fn until(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&LabStatus) -> bool,
    ) -> anyhow::Result<LabStatus> {
        let status = wait::eventually(what, timeout, async || {
            let status = self.show().await;
            done(&status).then_some(status)
        })
        .await?;
        Ok(status)
    }

    /// Replaces every node, one at a time, with `version` (stop, then start).
    async fn roll(
        &mut self,
        slots: &[String],
        version: &str,
        pace: Duration,
    ) -> anyhow::Result<()> {
        for id in slots {
            self.lab.stop_node(id).await?;
            say(&format!(
                "  stopped {id} (SIGTERM: nodedown, lease handed back)"
            ));
            self.last.clear();
            self.show().await;
            self.lab.start_node(id, version).await?;
            say(&format!("  started {id} on {version}"));
            self.last.clear();
            self.watch(pace).await;
        }
        Ok(())
    }
}

/// A status line without its `[  12.3s]` prefix, to tell real changes.
fn without_clock(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, rest)| rest)
}

fn say(text: &str) {
    println!("\x1b[1;34m==>\x1b[0m {text}");
}

fn state(s: &LabStatus) -> Option<&str> {
    s.view.as_ref()?["state"].as_str()
}

fn settled(s: &LabStatus) -> Option<&str> {
    s.view.as_ref()?["settled_version"].as_str()
}

fn announced(s: &LabStatus) -> Option<(&str, &str)> {
    let record = &s.view.as_ref()?["announced"]["record"];
    Some((record["version"].as_str()?, record["kind"].as_str()?))
}

/// One line: every slot (version, monitor), the state, the settled and the
/// announced versions.
fn describe(s: &LabStatus) -> String {
    let leader = s
        .view
        .as_ref()
        .and_then(|v| v["leader"].as_str())
        .unwrap_or("");
    let nodes: Vec<String> = s
        .nodes
        .iter()
        .map(|n| match &n.version {
            Some(v) if n.id == leader => format!("{} {v} (monitor)", n.id),
            Some(v) => format!("{} {v}", n.id),
            None => format!("{} down", n.id),
        })
        .collect();
    let view = s.view.as_ref().unwrap_or(&Value::Null);
    let announced = match announced(s) {
        Some((v, kind)) => format!("{v} ({kind})"),
        None => "nothing yet".into(),
    };
    format!(
        "[{:>6.1}s] {} | state {} | settled {} | announced {}",
        s.uptime_ms as f64 / 1000.0,
        nodes.join(", "),
        view["state"].as_str().unwrap_or("unknown"),
        view["settled_version"].as_str().unwrap_or("-"),
        announced
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vo_lab::lab::NodeStatus;

    fn node(id: &str, version: Option<&str>) -> NodeStatus {
        NodeStatus {
            id: id.into(),
            port: 1,
            admin_port: None,
            running: version.is_some(),
            version: version.map(Into::into),
            pid: None,
        }
    }

    #[test]
    fn a_status_line_names_every_slot_the_monitor_and_the_record() {
        let status = LabStatus {
            proxy: String::new(),
            nats: String::new(),
            cluster: "lab".into(),
            uptime_ms: 12_345,
            nodes: vec![
                node("n1", Some("0.1.0")),
                node("n2", Some("1.0.0")),
                node("n3", None),
            ],
            view: Some(serde_json::json!({
                "leader": "n2", "state": "mixed", "settled_version": null,
                "announced": {"revision": 3, "record": {"version": "0.1.0", "kind": "baseline"}}
            })),
            announcements: vec![],
        };
        assert_eq!(
            describe(&status),
            "[  12.3s] n1 0.1.0, n2 1.0.0 (monitor), n3 down | state mixed | settled - | announced 0.1.0 (baseline)"
        );
        assert_eq!(state(&status), Some("mixed"));
        assert_eq!(
            without_clock(&describe(&status)),
            without_clock(&describe(&LabStatus {
                uptime_ms: 99_000,
                ..status.clone()
            }))
        );
        assert_eq!(announced(&status), Some(("0.1.0", "baseline")));
    }

    fn lab_args(line: &[&str]) -> LabArgs {
        let cli = Cli::try_parse_from(["vo-lab"].iter().chain(line)).expect("valid flags");
        match cli.command {
            Command::Demo(args) => args.lab,
            Command::Serve(args) => args.lab,
        }
    }

    #[test]
    fn timings_are_a_preset_with_single_values_overridden() {
        let t = lab_args(&["demo"]).timings().unwrap();
        assert_eq!(t, Timings::DEFAULT, "the product's defaults, from the core");
        let t = lab_args(&["serve", "--timings", "e2e"]).timings().unwrap();
        assert_eq!(t, vo_lab::timings::E2E);
        let t = lab_args(&["serve", "--timings", "fast", "--lease-ms", "4000"])
            .timings()
            .unwrap();
        assert_eq!(
            t,
            Timings {
                lease: Duration::from_millis(4_000),
                ..vo_lab::timings::FAST
            }
        );
        let err = lab_args(&["demo", "--node-timeout-ms", "1"])
            .timings()
            .unwrap_err();
        assert!(err.to_string().contains("node_timeout"), "{err}");
        assert!(Cli::try_parse_from(["vo-lab", "demo", "--timings", "slow"]).is_err());
        assert!(Cli::try_parse_from(["vo-lab", "demo", "--cluster", "a.b"]).is_err());
    }

    #[test]
    fn versions_are_checked() {
        assert!(parse_version("1.0.0").is_ok());
        assert!(parse_version("2.0.0-rc.1+abc").is_ok());
        assert!(parse_version("1.0").unwrap_err().contains("\"1.0\""));
        assert!(parse_version("x.y.z").is_err());
    }
}
