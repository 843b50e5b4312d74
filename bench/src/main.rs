//! `vo-bench`: version-observer's benchmarks. Each is a program that prints
//! its inputs and its figures; the run ends with a table of goal versus
//! measured. `--size smoke` runs every benchmark small (CI does, to keep them
//! working); `--size full` is what BENCHMARKS.md records.
//!
//! 1. [`fanout`]: one change to N idle SSE streams on one node;
//! 2. [`convergence`]: last old node leaves -> announcement -> browser;
//! 3. [`convergence::failover`]: the monitor crashes with a deploy pending;
//! 4. [`monitor_scale`]: one collection round over M members;
//! 5. [`polling`]: N polling tabs beside N streaming tabs;
//! 6. [`ssr`]: `GET /` rendered per request vs nginx serving it static;
//! 7. [`bundle`]: the wasm, JS and CSS a browser downloads;
//! 8. [`faults`]: faults during a rolling deploy, and floods (`scripts/faults.sh`, RELIABILITY.md);
//! 9. [`push_servers`]: the fan-out against nchan and Pushpin, side by side;
//! 10. [`browser`]: Chromium: streams per browser, announcement -> banner in
//!     every tab, a tab waking after a deploy (needs `end2end/node_modules`);
//! 11. [`cluster_fanout`]: N streams over six nodes of one cluster, one change;
//!     and 1,000,000 tabs over 60 nodes on paper;
//! 12. [`affinity`]: calls of old and new pages through a rolling deploy, with
//!     no guard, the guard only, and version affinity; what forwarding adds.

mod affinity;
mod browser;
mod bundle;
mod client;
mod cluster;
mod cluster_fanout;
mod convergence;
mod fanout;
mod faults;
mod monitor_scale;
mod polling;
mod push_servers;
mod report;
mod ssr;
mod sys;

use anyhow::bail;
use clap::{Parser, Subcommand, ValueEnum};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

#[derive(Parser)]
#[command(
    name = "vo-bench",
    about = "version-observer's benchmarks: prints each figure with its inputs"
)]
struct Cli {
    #[command(subcommand)]
    worker: Option<Worker>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Worker {
    /// A load-generator process of the fan-out benchmark (started by it).
    #[command(hide = true)]
    FanoutWorker {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        clients: usize,
        #[arg(long)]
        sources: u8,
        /// The stream's request path.
        #[arg(long)]
        path: String,
        /// What the server sends first on a new stream (empty: nothing).
        #[arg(long, allow_hyphen_values = true)]
        ready: String,
        /// What shows the published message in a stream.
        #[arg(long, allow_hyphen_values = true)]
        marker: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Size {
    /// Every benchmark, small: a check that each still runs (CI).
    Smoke,
    /// The sizes BENCHMARKS.md records.
    Full,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Bench {
    Fanout,
    Convergence,
    Failover,
    Monitor,
    Polling,
    Ssr,
    Bundle,
    Faults,
    PushServers,
    Browser,
    ClusterFanout,
    Affinity,
}

#[derive(clap::Args)]
struct RunArgs {
    /// smoke (small, seconds) or full (the recorded sizes, many minutes).
    #[arg(long, value_enum, default_value = "full")]
    size: Size,
    /// Only these benchmarks (comma-separated); default: all (at full size,
    /// all but faults, which scripts/faults.sh runs).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Bench>,
    /// Fan-out: client counts [smoke: 200; full: 1000,10000,19000,50000,100000].
    #[arg(long, value_delimiter = ',')]
    clients: Vec<usize>,
    /// Versus nchan and Pushpin: client counts [smoke: 200; full: 1000,10000,19000].
    #[arg(long, value_delimiter = ',')]
    push_clients: Vec<usize>,
    /// Cluster fan-out: streams in total [smoke: 300; full: 100000].
    #[arg(long)]
    cluster_clients: Option<usize>,
    /// Cluster fan-out: nodes of the cluster.
    #[arg(long, default_value_t = 6)]
    cluster_nodes: usize,
    /// Loopback source addresses for clients (127.0.0.1 to 127.0.0.N).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Convergence: runs per case [smoke: 2; full: 20].
    #[arg(long)]
    runs: Option<usize>,
    /// Failover: runs [smoke: 1; full: 5].
    #[arg(long)]
    failover_runs: Option<usize>,
    /// Monitor scale: member counts [smoke: 10,100; full: 10,100,1000].
    #[arg(long, value_delimiter = ',')]
    members: Vec<usize>,
    /// Versus polling: tabs per node [smoke: 100; full: 5000].
    #[arg(long)]
    poll_clients: Option<usize>,
    /// Versus polling: poll interval in seconds [smoke: 2; full: 60].
    #[arg(long)]
    poll_interval: Option<u64>,
    /// Faults: runs per scenario [smoke: 1; full: 20].
    #[arg(long)]
    fault_runs: Option<usize>,
    /// Faults: only these scenarios, by number (1 to 9, comma-separated;
    /// the floods run only without it).
    #[arg(long, value_delimiter = ',')]
    fault_scenarios: Vec<usize>,
    /// Faults: the random schedule's seed (run r uses seed + r) [default:
    /// from the clock, printed with each run].
    #[arg(long)]
    fault_seed: Option<u64>,
    /// Faults: connections per flood [smoke: 200; full: 2000].
    #[arg(long)]
    flood: Option<usize>,
    /// Browser: runs of each measurement [smoke: 1; full: 10].
    #[arg(long)]
    browser_runs: Option<usize>,
    /// Browser: tabs in one browser [10].
    #[arg(long, default_value_t = 10)]
    tabs: usize,
    /// Affinity: calls per second from old pages and from new ones [smoke: 10; full: 50].
    #[arg(long)]
    affinity_rate: Option<u32>,
    /// Affinity: samples of each kind in the forwarding latency [smoke: 100; full: 2000].
    #[arg(long)]
    affinity_samples: Option<usize>,
    /// SSR: seconds of load per server [smoke: 2; full: 15].
    #[arg(long)]
    ssr_seconds: Option<u64>,
    /// The built site's pkg folder (the bundle benchmark).
    #[arg(long, default_value = "target/site/pkg")]
    pkg: PathBuf,

    /// The example app's pkg folder (the embedding cost, in the bundle benchmark).
    #[arg(long, default_value = "target/site-todo/pkg")]
    example_pkg: PathBuf,

    /// The example app with the banner's default parts only (the budget's).
    #[arg(long, default_value = "target/site-todo-default-parts/pkg")]
    default_parts_pkg: PathBuf,

    /// The example app without version-observer (bench/embedding-baseline).
    #[arg(long, default_value = "target/site-todo-without-banner/pkg")]
    baseline_pkg: PathBuf,

    /// The bundle benchmark fails unless it reads release builds (so the
    /// size budgets are always checked; the test command passes it).
    #[arg(long)]
    release_bundle: bool,
}

fn pick<T: Clone>(given: Option<T>, size: Size, smoke: T, full: T) -> T {
    given.unwrap_or(if size == Size::Smoke { smoke } else { full })
}

fn pick_list(given: &[usize], size: Size, smoke: &[usize], full: &[usize]) -> Vec<usize> {
    if !given.is_empty() {
        given.to_vec()
    } else if size == Size::Smoke {
        smoke.to_vec()
    } else {
        full.to_vec()
    }
}

/// The cargo profile this binary was built with (its folder under target/).
fn build_profile() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into())
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.worker {
        Some(Worker::FanoutWorker {
            target,
            clients,
            sources,
            path,
            ready,
            marker,
        }) => {
            // One thread per load generator: the other core is the node's.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(fanout::worker(
                target, clients, sources, &path, &ready, &marker,
            ))
        }
        None => {
            // A Ctrl-C or SIGTERM drops the run, and with it every process
            // it started (nodes, nats-server, nginx and its workers, wrk).
            let outcome = runtime.block_on(async {
                tokio::select! {
                    outcome = run(cli.run) => Some(outcome),
                    signal = vo_lab::process::stop_signal() => {
                        eprintln!("vo-bench: stopped by {signal}; stopping what it started");
                        None
                    }
                }
            });
            // Tasks still spawned hold processes too: shut them down first.
            drop(runtime);
            outcome.unwrap_or_else(|| std::process::exit(130))
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let binary = vo_lab::tools::node_binary();
    if !sys::is_executable(&binary) {
        bail!(
            "no node binary at {} (scripts/bench.sh builds it)",
            binary.display()
        );
    }
    let size = args.size;
    let profile = build_profile();
    println!("version-observer benchmarks");
    println!("   date (UTC)                   {}", utc_now());
    println!("   machine                      {}", sys::machine());
    println!("   commit                       {}", git_commit());
    println!("   binaries                     target/{profile}");
    println!(
        "   size                         {}",
        if size == Size::Smoke { "smoke" } else { "full" }
    );
    println!(
        "   command                      {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );

    // Full size: the fault scenarios (twenty runs each, half an hour) have
    // their own command, scripts/faults.sh; smoke size runs everything once.
    let selected = |b: Bench| match args.only.is_empty() {
        true => b != Bench::Faults || size == Size::Smoke,
        false => args.only.contains(&b),
    };
    let mut report = report::Report::default();
    let mut failed = Vec::new();
    macro_rules! bench {
        ($name:expr, $body:expr) => {
            if let Err(e) = $body {
                println!("   FAILED: {e:#}");
                failed.push($name);
            }
        };
    }
    if selected(Bench::Fanout) {
        let fan = fanout::Args {
            sizes: pick_list(
                &args.clients,
                size,
                &[200],
                &[1_000, 10_000, 19_000, 50_000, 100_000],
            ),
            sources: args.sources,
        };
        bench!("fan-out", fanout::run(&mut report, &binary, &fan).await);
    }
    if selected(Bench::Convergence) {
        let runs = pick(args.runs, size, 2, 20);
        bench!(
            "convergence",
            convergence::run(&mut report, &binary, runs).await
        );
    }
    if selected(Bench::Failover) {
        let runs = pick(args.failover_runs, size, 1, 5);
        bench!(
            "failover",
            convergence::failover(&mut report, &binary, runs).await
        );
    }
    if selected(Bench::Monitor) {
        let members = pick_list(&args.members, size, &[10, 100], &[10, 100, 1_000]);
        let rounds = if size == Size::Smoke { 3 } else { 20 };
        bench!(
            "monitor scale",
            monitor_scale::run(&mut report, &binary, &members, rounds).await
        );
    }
    if selected(Bench::Polling) {
        let interval = Duration::from_secs(pick(args.poll_interval, size, 2, 60));
        let poll = polling::Args {
            clients: pick(args.poll_clients, size, 100, 5_000),
            interval,
            window: interval * 2,
            sources: args.sources,
            // The product's default (`--keepalive-secs`).
            keepalive_secs: 30,
        };
        bench!(
            "versus polling",
            polling::run(&mut report, &binary, &poll).await
        );
    }
    if selected(Bench::Ssr) {
        let ssr = ssr::Args {
            duration: Duration::from_secs(pick(args.ssr_seconds, size, 2, 15)),
            connections: 64,
            threads: 2,
        };
        bench!("ssr", ssr::run(&mut report, &binary, &ssr).await);
    }
    if selected(Bench::Bundle) {
        bench!(
            "bundle",
            bundle::run(
                &mut report,
                &bundle::Sites {
                    pkg: &args.pkg,
                    example: &args.example_pkg,
                    default_parts: &args.default_parts_pkg,
                    baseline: &args.baseline_pkg,
                    require_release: args.release_bundle,
                }
            )
        );
    }
    if selected(Bench::Browser) {
        let browser = browser::Args {
            runs: pick(args.browser_runs, size, 1, 10),
            tabs: args.tabs,
        };
        bench!(
            "browser",
            browser::run(&mut report, &binary, &browser).await
        );
    }

    if selected(Bench::PushServers) {
        let push = push_servers::Args {
            sizes: pick_list(&args.push_clients, size, &[200], &[1_000, 10_000, 19_000]),
            sources: args.sources,
        };
        bench!(
            "push servers",
            push_servers::run(&mut report, &binary, &push).await
        );
    }

    if selected(Bench::ClusterFanout) {
        let spread = cluster_fanout::Args {
            clients: pick(args.cluster_clients, size, 300, 100_000),
            nodes: args.cluster_nodes,
            sources: args.sources,
        };
        bench!(
            "cluster fan-out",
            cluster_fanout::run(&mut report, &binary, &spread).await
        );
    }

    if selected(Bench::Affinity) {
        let affinity = affinity::Args {
            rate: pick(args.affinity_rate, size, 10, 50),
            pace: Duration::from_secs(pick(None, size, 1, 3)),
            tail: Duration::from_secs(pick(None, size, 1, 3)),
            samples: pick(args.affinity_samples, size, 100, 2_000),
        };
        bench!(
            "affinity",
            affinity::run(&mut report, &binary, &affinity).await
        );
    }

    if selected(Bench::Faults) {
        let faults = faults::Args {
            runs: pick(args.fault_runs, size, 1, 20),
            only: args.fault_scenarios.clone(),
            flood: pick(args.flood, size, 200, 2_000),
            seed: args.fault_seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            }),
        };
        bench!("faults", faults::run(&mut report, &binary, &faults).await);
    }

    println!();
    println!("== goals ================================================================");
    print!("{}", report.goals_table());
    if !failed.is_empty() {
        bail!("these benchmarks failed: {}", failed.join(", "));
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM` in UTC, without a date crate.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_781), (2026, 11, 24));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
