//! The node's HTTP interface, over real HTTP on a free port: the flags reach
//! the observer, the page and the node's own routes are served.

use crate::support::{SseReader, TestNode, DEADLINE};
use semver::Version;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use version_observer::{
    ClusterState, ClusterView, Compat, Mode, PageKnowledge, Release, Severity, VersionReport,
};

#[tokio::test]
async fn api_version_reports_the_flags() {
    let node = TestNode::start(&[
        "--app-version",
        "2.3.4-rc.1+git.abc",
        "--node-id",
        "n-7",
        "--compat",
        "minor",
    ])
    .await;
    let response = reqwest::get(node.url("/api/version")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let report: VersionReport = response.json().await.unwrap();
    let version = Version::parse("2.3.4-rc.1+git.abc").unwrap();
    assert_eq!(report.node.id, "n-7");
    assert_eq!(report.node.version, version);
    assert_eq!(report.mode, Mode::Single);
    assert_eq!(
        report.cluster,
        ClusterView::single_node(&version, Compat::Minor)
    );
}

#[tokio::test]
async fn the_default_version_is_the_build_version() {
    let node = TestNode::start(&[]).await;
    let report: VersionReport = reqwest::get(node.url("/api/version"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report.node.version.to_string(), env!("CARGO_PKG_VERSION"));
    assert_eq!(report.cluster.state, ClusterState::Settled);
}

#[tokio::test]
async fn a_connection_idle_for_the_idle_timeout_is_closed() {
    // --idle-timeout-secs 1 with keep-alives every second: twice that, 2 s.
    let node = TestNode::start(&["--idle-timeout-secs", "1", "--keepalive-secs", "1"]).await;
    let mut tcp = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
        .await
        .unwrap();
    let mut chunk = [0u8; 4096];
    let n = tcp.read(&mut chunk).await.unwrap();
    assert!(String::from_utf8_lossy(&chunk[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle connection stayed open");
    assert!(
        answered.elapsed() >= Duration::from_secs(2),
        "closed after {:?}, before twice the keep-alive interval",
        answered.elapsed()
    );
}

#[tokio::test]
async fn first_event_arrives_at_once_with_id_and_retry() {
    let node = TestNode::start(&["--app-version", "1.0.0", "--keepalive-secs", "3600"]).await;
    let started = Instant::now();
    let response = reqwest::get(node.url("/api/version/events")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let mut events = SseReader::new(response);
    let first = events.next_event().await.expect("a first event");
    // Keep-alives are an hour apart here: only an event sent on connect arrives this soon.
    assert!(started.elapsed() < DEADLINE);
    assert_eq!(first.id.as_deref(), Some("1"));
    let retry = first.retry.expect("a retry hint");
    assert!((1_000..=2_000).contains(&retry), "retry {retry}");
    let report: VersionReport = serde_json::from_str(&first.data).unwrap();
    assert_eq!(
        report.cluster.announced_version,
        Some(Version::new(1, 0, 0))
    );
}

#[tokio::test]
async fn the_page_is_rendered_with_the_node_version() {
    let node = TestNode::start(&["--app-version", "3.1.4", "--node-id", "page-node"]).await;
    let response = reqwest::get(node.url("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let html = response.text().await.unwrap();
    assert!(
        html.contains(r#"data-testid="page-version">3.1.4<"#),
        "{html}"
    );
    assert!(html.contains("page-node"), "{html}");
    assert!(
        html.contains("/pkg/version-observer.js"),
        "hydration script missing: {html}"
    );
    assert!(
        !html.contains("version-banner"),
        "no banner on the server: {html}"
    );
}

#[tokio::test]
async fn unknown_paths_are_404_and_health_is_ok() {
    let node = TestNode::start(&[]).await;
    assert_eq!(reqwest::get(node.url("/nope")).await.unwrap().status(), 404);
    let health = reqwest::get(node.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_cleanly() {
    let node = TestNode::start(&["--max-streams", "1"]).await;
    let mut first = SseReader::new(reqwest::get(node.url("/api/version/events")).await.unwrap());
    first.next_event().await.unwrap();

    let refused = reqwest::get(node.url("/api/version/events")).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "2");
    // The page is still served while streams are full.
    assert_eq!(
        reqwest::get(node.url("/healthz")).await.unwrap().status(),
        200
    );

    // Closing the first stream frees its slot (the server notices asynchronously).
    drop(first);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = reqwest::get(node.url("/api/version/events")).await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await; // poll interval, not a wait for a condition
    }
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_the_server() {
    let node = TestNode::start(&[]).await;
    let mut stream = SseReader::new(reqwest::get(node.url("/api/version/events")).await.unwrap());
    stream.next_event().await.unwrap();
    node.observer.stop();
    assert!(stream.next_event().await.is_none(), "the stream should end");
    node.stop().await.expect("the server drains cleanly");
}

#[tokio::test]
async fn a_redeploy_with_release_flags_tells_old_pages_to_reload() {
    let page = Version::new(1, 4, 0);
    let old = TestNode::start(&["--app-version", "1.4.0"]).await;
    let port = old.addr.port();
    let mut known = PageKnowledge::default();
    let first: VersionReport = reqwest::get(old.url("/api/version"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first.cluster.announced_release, None);
    known.learn(&page, first.cluster);
    assert_eq!(known.staleness(), None);
    old.stop().await.unwrap();
    // The new version, on the same port, with the three release flags.
    let new = TestNode::start_on(
        &format!("127.0.0.1:{port}"),
        &[
            "--app-version",
            "2.0.0",
            "--release-severity",
            "optional",
            "--release-notes-url",
            "https://example.com/releases/2.0.0",
            "--min-supported-version",
            "1.5.0",
        ],
    )
    .await;
    // The tab's stream reconnects: its first event carries the release.
    let response = reqwest::get(new.url("/api/version/events")).await.unwrap();
    let event = SseReader::new(response).next_event().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        body["cluster"]["announced_release"],
        serde_json::json!({
            "severity": "optional",
            "notes_url": "https://example.com/releases/2.0.0",
            "min_supported": "1.5.0"
        }),
        "{body}"
    );
    let report: VersionReport = serde_json::from_str(&event.data).unwrap();
    let release = Release {
        severity: Severity::Optional,
        notes_url: Some("https://example.com/releases/2.0.0".into()),
        min_supported: Some(Version::new(1, 5, 0)),
    };
    assert_eq!(report.cluster.announced_release, Some(release.clone()));
    known.learn(&page, report.cluster.clone());
    let stale = known.staleness().expect("the 1.4.0 page is stale");
    assert_eq!(stale.target, Version::new(2, 0, 0));
    assert!(stale.required(), "1.4.0 is older than the minimum, 1.5.0");
    assert_eq!(
        known.notes_url(),
        Some("https://example.com/releases/2.0.0")
    );
    // A page at the minimum is only offered the reload.
    let mut newer = PageKnowledge::default();
    newer.learn(&Version::new(1, 5, 0), report.cluster);
    assert_eq!(newer.stale_target(), Some(&Version::new(2, 0, 0)));
    assert!(!newer.required());
    // /api/version says the same.
    let again: VersionReport = reqwest::get(new.url("/api/version"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again.cluster.announced_release, Some(release));
}
