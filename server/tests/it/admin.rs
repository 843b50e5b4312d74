//! The admin listener (`--admin-listen`, `--admin-token-file`): the
//! operators' routes are served there and only there, behind the token; and
//! `--log-format json`.

use crate::support::{
    cluster::{eventually, nats, node_with, ScratchFile},
    metric, parse_metrics, TestNode,
};
use std::{process::Command, time::Duration};
use version_observer_node::{Application, Config};

const TOKEN: &str = "s3cret-admin-token-0123";

#[tokio::test]
async fn admin_routes_are_served_only_on_the_admin_listener_behind_its_token() {
    let token = ScratchFile::new("admin-token", format!("{TOKEN}\n").as_bytes());
    let node = TestNode::start(&[
        "--app-version",
        "3.1.0",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        &token.arg(),
    ])
    .await;
    let http = reqwest::Client::new();
    // The public port serves neither, with or without the token.
    for path in ["/api/cluster", "/metrics"] {
        let public = http
            .get(node.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(public.status(), 404, "{path} on the public port");
    }
    for path in ["/api/cluster", "/metrics"] {
        let url = node.admin_url(path);
        let missing = http.get(&url).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{path} without a token");
        assert_eq!(missing.headers()["www-authenticate"], "Bearer");
        for wrong in ["wrong", &TOKEN[..TOKEN.len() - 1], &format!("{TOKEN}x")] {
            let refused = http.get(&url).bearer_auth(wrong).send().await.unwrap();
            assert_eq!(refused.status(), 401, "{path} with {wrong:?}");
        }
        let basic = http
            .get(&url)
            .basic_auth("admin", Some(TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 401, "{path} with basic auth");
        let ok = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(ok.status(), 200, "{path} with the token");
    }
    // Liveness needs no token.
    let health = http.get(node.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let text = http
        .get(node.admin_url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = parse_metrics(&text);
    assert_eq!(metric(&m, "version_observer_node_info", None), Some(1.0));
    assert_eq!(metric(&m, "version_observer_streams", None), Some(0.0));
    let status: serde_json::Value = http
        .get(node.admin_url("/api/cluster"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["settled_version"], "3.1.0");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn the_fleet_view_takes_the_token_once_as_a_cookie_and_streams_the_status() {
    let token = ScratchFile::new("admin-token", TOKEN.as_bytes());
    let node = TestNode::start(&[
        "--app-version",
        "4.0.0",
        "--node-id",
        "fleet-1",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        &token.arg(),
    ])
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // No token: nothing.
    for path in ["/fleet", "/api/fleet/events", "/fleet?token=wrong"] {
        let refused = http.get(node.admin_url(path)).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{path}");
    }
    // The token once in the address: a cookie, and the address without it.
    let given = http
        .get(node.admin_url(&format!("/fleet?token={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(given.status(), 303);
    assert_eq!(given.headers()["location"], "/fleet");
    let cookie = given.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is not the token in clear: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(node.admin_url("/fleet"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Fleet"));
    // The page's stream, with the cookie: the status at once.
    let events = http
        .get(node.admin_url("/api/fleet/events"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let first = crate::support::SseReader::new(events)
        .next_event()
        .await
        .expect("an event");
    let status: serde_json::Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(status["node_id"], "fleet-1");
    assert_eq!(status["members"][0]["version"], "4.0.0");
    // The public port has no fleet view, token or not.
    let public = http
        .get(node.url("/fleet"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn without_admin_listen_the_admin_routes_are_served_nowhere() {
    let node = TestNode::start(&[]).await;
    assert_eq!(node.admin_addr, None);
    for path in ["/api/cluster", "/metrics"] {
        let public = reqwest::get(node.url(path)).await.unwrap();
        assert_eq!(public.status(), 404, "{path}");
    }
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_admin_token_file_stops_startup_naming_it() {
    let short = ScratchFile::new("short-token", b"abc\n");
    // A built site, so that only the token file is wrong.
    let site = ScratchFile::new("pkg/app.wasm", b"");
    let site_root = site
        .path
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .display()
        .to_string();
    let missing = format!("{}-missing", short.arg());
    for (file, reason) in [
        (short.arg(), "shorter than 16 bytes"),
        (missing.clone(), "cannot read"),
    ] {
        let config = <Config as clap::Parser>::parse_from([
            "version-observer",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token-file",
            &file,
            "--site-root",
            &site_root,
        ]);
        let error = match Application::build(config).await {
            Ok(_) => panic!("started with the token file {file}"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains(&file) && error.contains(reason), "{error}");
    }
    // And the token file means nothing without an admin listener.
    let out = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-token-file",
            &short.arg(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--admin-listen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_name_the_node_cluster_and_role_on_every_line() {
    let nats = nats().await;
    let node = node_with(&nats.url(), "json-1", "1.0.0", &["--log-format", "json"]).await;
    // The only node becomes the monitor; its logs say so from then on.
    eventually("json-1 to lead", Duration::from_secs(20), async || {
        (node.cluster().await?["this_node_leads"] == true).then_some(())
    })
    .await;
    let lines: Vec<serde_json::Value> = eventually(
        "a log line logged as monitor",
        Duration::from_secs(20),
        async || {
            let lines: Vec<serde_json::Value> = node
                .logs()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .collect();
            lines
                .iter()
                .any(|l| l["role"] == "monitor")
                .then_some(lines)
        },
    )
    .await;
    for line in &lines {
        assert_eq!(line["node_id"], "json-1", "{line}");
        assert_eq!(line["cluster"], "test", "{line}");
        assert!(
            matches!(
                line["role"].as_str(),
                Some("starting" | "monitor" | "member")
            ),
            "{line}"
        );
        assert!(
            line["level"].is_string() && line["timestamp"].is_string(),
            "{line}"
        );
    }
    let elected = lines
        .iter()
        .find(|l| l["message"] == "elected monitor")
        .expect("the election is logged");
    assert!(
        elected["fence"].is_u64(),
        "fields are JSON values: {elected}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["role"] == "member" || l["role"] == "starting"),
        "lines before the election carry the role of that moment"
    );
}

#[test]
fn a_single_node_logs_json_with_its_role() {
    let site = std::env::temp_dir().join(format!("vo-json-site-{}", std::process::id()));
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .arg("--site-root")
        .arg(&site)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            "solo-json",
            "--log-format",
            "json",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let done = value["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("node listening"));
        seen.push(value);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let listening = seen.last().expect("log lines");
    assert!(
        listening["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("node listening")),
        "{seen:?}"
    );
    assert_eq!(listening["role"], "single");
    assert_eq!(listening["node_id"], "solo-json");
    assert_eq!(listening["cluster"], serde_json::Value::Null);
    assert_eq!(listening["version"], env!("CARGO_PKG_VERSION"));
}
