//! `version-observer wait` and `status` against a real cluster: the gate
//! opens only once a rolling deploy has settled and been announced, and
//! times out with a clear message otherwise.

use crate::support::cluster::{eventually, nats, node, CLUSTER, NODE_TIMEOUT};
use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// `version-observer <tool> --nats <url> --cluster test --node-timeout-ms …
/// <args>`, with its stdout and stderr piped.
fn tool(name: &str, nats: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .arg(name)
        .args(["--nats", nats, "--cluster", CLUSTER])
        .args(["--node-timeout-ms", &NODE_TIMEOUT.as_millis().to_string()])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

/// Waits for `child` to exit (at most `within`); its code, stdout, stderr.
async fn finish(mut child: Child, within: Duration) -> (i32, String, String) {
    let status = eventually("the tool to exit", within, async || {
        child.try_wait().unwrap()
    })
    .await;
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_zero_only_once_a_rolling_deploy_has_settled_and_been_announced() {
    let nats = nats().await;
    let url = nats.url();
    let mut old = [
        node(&url, "w-old-1", "1.0.0").await,
        node(&url, "w-old-2", "1.0.0").await,
    ];
    // The cluster has recorded 1.0.0 before the deploy starts (else 2.0.0
    // would be its first record, a baseline).
    eventually("the 1.0.0 baseline", Duration::from_secs(20), async || {
        let record = &old[0].cluster().await?["announced"]["record"];
        (record["version"] == "1.0.0" && record["kind"] == "baseline").then_some(())
    })
    .await;
    let mut gate = tool("wait", &url, &["--settled", "2.0.0", "--timeout", "60s"]);
    let new_1 = node(&url, "w-new-1", "2.0.0").await;
    old[0].stop().await.unwrap();
    let new_2 = node(&url, "w-new-2", "2.0.0").await;
    // Mixed for longer than a node timeout: the gate stays shut.
    let mixed_until = std::time::Instant::now() + NODE_TIMEOUT * 2;
    while std::time::Instant::now() < mixed_until {
        assert!(
            gate.try_wait().unwrap().is_none(),
            "the gate opened while 1.0.0 still ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // sampling a window
    }
    old[1].stop().await.unwrap();
    let (code, out, err) = finish(gate, Duration::from_secs(30)).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("2.0.0 ×2, 1.0.0 ×1") || out.contains("2.0.0 ×1, 1.0.0 ×"),
        "progress shown: {out}"
    );
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.contains("settled on 2.0.0: 2.0.0 ×2") && last.contains("record: 2.0.0 (announced"),
        "{out}"
    );

    // And `status` shows the settled cluster.
    let (code, out, err) = finish(tool("status", &url, &["--json"]), Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{err}");
    let fleet: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fleet["cluster"], CLUSTER);
    assert_eq!(fleet["complete"], true);
    assert_eq!(fleet["versions"]["2.0.0"], 2, "{fleet}");
    assert_eq!(fleet["record"]["record"]["version"], "2.0.0");
    assert_eq!(fleet["record"]["record"]["kind"], "announcement");
    let ids: Vec<&str> = fleet["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["w-new-1", "w-new-2"]);
    let (code, out, _) = finish(tool("status", &url, &[]), Duration::from_secs(20)).await;
    assert_eq!(code, 0);
    assert!(out.contains("rollout: 2.0.0 ×2"), "{out}");
    assert!(out.contains("w-new-1") && out.contains("w-new-2"), "{out}");
    drop((new_1, new_2));
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_times_out_with_the_rollout_it_saw() {
    let nats = nats().await;
    let url = nats.url();
    let _n = node(&url, "t-1", "1.0.0").await;
    let gate = tool("wait", &url, &["--settled", "3.0.0", "--timeout", "3s"]);
    let (code, out, err) = finish(gate, Duration::from_secs(20)).await;
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains("timed out after 3s waiting for cluster 'test' to settle on 3.0.0: 1.0.0 ×1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_names_a_bad_version_or_timeout_and_exits_two() {
    for (args, named) in [
        (&["--settled", "3.0", "--timeout", "5s"][..], "'3.0'"),
        (&["--settled", "3.0.0", "--timeout", "soon"][..], "'soon'"),
    ] {
        let (code, _, err) = finish(
            tool("wait", "nats://127.0.0.1:1", args),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(named), "{err}");
    }
}
