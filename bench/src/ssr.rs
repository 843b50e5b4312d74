//! 6. SSR throughput: requests per second for `GET /` against nginx serving
//!    the same HTML as a static file, on the same machine, in one run, with the
//!    same load generator (wrk, same threads, connections and duration). wrk
//!    shares the machine's cores with the server it loads, equally for both.
//!
//!    The node renders `/` with Leptos once and serves it from memory after
//!    that (the page depends only on the node); `/?render` is rendered on
//!    every request, which measures Leptos SSR itself.

use crate::report::{Goal, Report};
use anyhow::{bail, Context};
use std::{path::Path, time::Duration};
use tokio::process::Command;
use vo_lab::{nginx::Site, scratch::ScratchDir, Nginx, NodeConfig, NodeProcess};

pub struct Args {
    pub duration: Duration,
    pub connections: u32,
    pub threads: u32,
}

pub async fn run(report: &mut Report, binary: &Path, args: &Args) -> anyhow::Result<()> {
    report.section(
        "6 ssr",
        "6. SSR throughput: GET / against nginx serving the same page",
    );
    let wrk = which("wrk").context("wrk is not installed (scripts/bench.sh installs it)")?;
    report.input(
        "load generator",
        format!(
            "wrk -t{} -c{} -d{}s",
            args.threads,
            args.connections,
            args.duration.as_secs()
        ),
    );
    let mut node = NodeProcess::start(
        &NodeConfig::new(binary, "ssr", "1.0.0")
            .args(["--max-inflight", "4096"])
            .log_filter("warn"),
    )
    .await?;
    let page = reqwest::get(node.url("/"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    if !page.contains("data-testid=\"page-version\"") {
        bail!("the node's page does not look rendered");
    }
    let site = ScratchDir::new("vo-bench-static")?;
    std::fs::write(site.join("index.html"), &page)?;
    let nginx = Nginx::start(
        0,
        &Site::Static {
            root: site.path().to_owned(),
        },
        2,
    )
    .await?;
    let from_nginx = reqwest::get(format!("{}/", nginx.url()))
        .await?
        .text()
        .await?;
    if from_nginx != page {
        bail!("nginx does not serve the same page");
    }
    report.input("page size", format!("{} bytes", page.len()));
    report.input("node", format!("{} (2 runtime threads)", binary.display()));
    report.input("nginx", "2 worker processes, sendfile, access log off");

    let rendered = reqwest::get(node.url("/?render")).await?.text().await?;
    if without_nonces(&rendered) != without_nonces(&page) {
        bail!("GET /?render and GET / differ (beyond Leptos's per-render nonce)");
    }
    let served = wrk_rps(&wrk, &node.url("/"), args).await?;
    let fixed = wrk_rps(&wrk, &format!("{}/", nginx.url()), args).await?;
    let every = wrk_rps(&wrk, &node.url("/?render"), args).await?;
    report.figure("node GET / requests/s", served, "req/s", None);
    report.figure("nginx static requests/s", fixed, "req/s", None);
    report.figure(
        "ratio node/static",
        served / fixed,
        "",
        Some(Goal::AtLeast(0.5)),
    );
    report.figure("node GET /?render requests/s", every, "req/s", None);
    report.figure("ratio render-every-time/static", every / fixed, "", None);
    nginx.stop().await;
    node.stop().await?;
    Ok(())
}

async fn wrk_rps(wrk: &Path, url: &str, args: &Args) -> anyhow::Result<f64> {
    let output = Command::new(wrk)
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.duration.as_secs().max(1)))
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk saw errors against {url}:\n{text}");
    }
    parse_rps(&text).with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))
}

/// A page with the values of its `nonce` and `crossorigin` attributes masked:
/// Leptos stamps a fresh nonce on each render.
pub fn without_nonces(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(at) = ["nonce=\"", "crossorigin=\""]
        .iter()
        .filter_map(|attr| rest.find(attr).map(|i| i + attr.len()))
        .min()
    {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push('*');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The `Requests/sec:` figure of wrk's report.
pub fn parse_rps(wrk_output: &str) -> Option<f64> {
    wrk_output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| crate::sys::is_executable(p))
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_output_is_read() {
        let out = "Running 2s test @ http://127.0.0.1:1/\n  2 threads and 64 connections\n\
                   Requests/sec:  41234.56\nTransfer/sec:      5.2MB\n";
        assert_eq!(super::parse_rps(out), Some(41234.56));
        assert_eq!(super::parse_rps("nothing"), None);
    }

    #[test]
    fn nonces_are_masked_and_nothing_else() {
        let a = r#"<link crossorigin="abc"><script nonce="abc">x</script><p>1.0.0</p>"#;
        let b = r#"<link crossorigin="XYZ"><script nonce="XYZ">x</script><p>1.0.0</p>"#;
        assert_eq!(super::without_nonces(a), super::without_nonces(b));
        assert_eq!(
            super::without_nonces(a),
            r#"<link crossorigin="*"><script nonce="*">x</script><p>1.0.0</p>"#
        );
        let c = r#"<script nonce="abc">x</script><p>2.0.0</p>"#;
        assert_ne!(super::without_nonces(a), super::without_nonces(c));
    }
}
