//! The two ways a version stream reaches a node (see `http::listener`): on a
//! new connection, served lean by the listener; on a connection that already
//! carried a request, served by axum. Raw TCP here, so each test decides
//! which connection a request travels on.

mod common;

use app::{
    compat::Compat,
    signal::{ClusterState, ClusterView},
};
use common::{TestNode, DEADLINE};
use semver::Version;
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(node: &TestNode) -> Self {
        Self {
            tcp: TcpStream::connect(node.addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, text: &str) {
        self.tcp.write_all(text.as_bytes()).await.unwrap();
    }

    /// Everything received up to and including `pattern` (consumed).
    async fn until(&mut self, pattern: &str) -> String {
        let pattern = pattern.as_bytes();
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(at) = self.buf.windows(pattern.len()).position(|w| w == pattern) {
                    let taken: Vec<u8> = self.buf.drain(..at + pattern.len()).collect();
                    return String::from_utf8_lossy(&taken).into_owned();
                }
                let mut chunk = [0u8; 4096];
                let n = self.tcp.read(&mut chunk).await.unwrap();
                assert!(
                    n > 0,
                    "closed; so far: {}",
                    String::from_utf8_lossy(&self.buf)
                );
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "nothing like {:?} arrived",
                String::from_utf8_lossy(pattern)
            )
        })
    }

    /// A stream asked for on a connection that first served `/healthz`
    /// (so it goes through axum, not the lean path); returns its head.
    async fn reused_stream(node: &TestNode) -> (Self, String) {
        let mut raw = Self::connect(node).await;
        raw.send("GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
            .await;
        raw.until("{\"status\":\"ok\"}").await;
        raw.send(STREAM).await;
        let head = raw.until("\r\n\r\n").await.to_ascii_lowercase();
        (raw, head)
    }

    /// Whether the server closes the connection (after whatever is pending).
    async fn closes(&mut self) -> bool {
        tokio::time::timeout(DEADLINE, async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
        .await
        .unwrap_or(false)
    }
}

const STREAM: &str =
    "GET /api/version/events HTTP/1.1\r\nHost: node\r\nAccept: text/event-stream\r\n\r\n";

/// The `id:` and `data:` lines of the next event (the retry hint aside).
fn event_body(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("id: ") || l.starts_with("data: "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn both_ways_in_send_the_same_events_and_end_at_shutdown() {
    let node = TestNode::start(&["--app-version", "1.0.0", "--keepalive-secs", "3600"]).await;

    let mut lean = Raw::connect(&node).await;
    lean.send(STREAM).await;
    let lean_head = lean.until("\r\n\r\n").await.to_ascii_lowercase();
    let lean_first = lean.until("\n\n").await;

    let (mut reused, reused_head) = Raw::reused_stream(&node).await;
    let reused_first = reused.until("\n\n").await;

    for head in [&lean_head, &reused_head] {
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("cache-control: no-cache"), "{head}");
        assert!(head.contains("x-accel-buffering: no"), "{head}");
    }
    assert!(
        lean_head.contains("connection: close"),
        "the lean way: {lean_head}"
    );
    assert!(
        reused_head.contains("transfer-encoding: chunked"),
        "through hyper: {reused_head}"
    );
    for first in [&lean_first, &reused_first] {
        assert!(first.contains("retry: "), "{first}");
        assert!(first.contains("id: 1\n"), "{first}");
    }
    assert_eq!(event_body(&lean_first), event_body(&reused_first));

    let next = ClusterView {
        state: ClusterState::Settled,
        settled_version: Some(Version::new(2, 0, 0)),
        announced_version: Some(Version::new(2, 0, 0)),
        announced_revision: None,
        compat: Compat::Major,
    };
    assert!(node.hub.publish(next));
    let lean_next = lean.until("\n\n").await;
    let reused_next = reused.until("\n\n").await;
    assert!(
        lean_next.contains("\"announced_version\":\"2.0.0\""),
        "{lean_next}"
    );
    assert_eq!(event_body(&lean_next), event_body(&reused_next));
    assert!(
        !lean_next.contains("retry: "),
        "the hint comes once: {lean_next}"
    );

    node.shutdown.cancel();
    assert!(
        lean.closes().await,
        "the lean stream should end at shutdown"
    );
    assert!(
        reused.closes().await,
        "the hyper stream should end at shutdown"
    );
    node.stop().await.expect("the server drains cleanly");
}

#[tokio::test]
async fn a_request_line_that_arrives_in_pieces_is_still_a_stream() {
    let node = TestNode::start(&["--app-version", "1.2.3"]).await;
    let mut raw = Raw::connect(&node).await;
    raw.send("GET /api/ver").await;
    tokio::time::sleep(Duration::from_millis(50)).await; // the gap between the two packets is the point
    raw.send("sion/events HTTP/1.1\r\nHost: node\r\n\r\n").await;
    assert!(raw.until("\r\n\r\n").await.starts_with("HTTP/1.1 200"));
    assert!(raw
        .until("\n\n")
        .await
        .contains("\"announced_version\":\"1.2.3\""));
}

#[tokio::test]
async fn lookalike_paths_are_left_to_the_router() {
    let node = TestNode::start(&[]).await;
    for (request, status) in [
        (
            "GET /api/version/eventsX HTTP/1.1\r\nHost: n\r\n\r\n",
            "HTTP/1.1 404",
        ),
        (
            "GET /api/version HTTP/1.1\r\nHost: n\r\n\r\n",
            "HTTP/1.1 200",
        ),
        (
            "POST /api/version/events HTTP/1.1\r\nHost: n\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 405",
        ),
    ] {
        let mut raw = Raw::connect(&node).await;
        raw.send(request).await;
        let head = raw.until("\r\n\r\n").await;
        assert!(head.starts_with(status), "{request:?} -> {head}");
    }
}

#[tokio::test]
async fn bad_stream_requests_are_answered_and_closed() {
    let node = TestNode::start(&[]).await;
    let mut raw = Raw::connect(&node).await;
    raw.send("GET /api/version/events HTTP/2.0\r\n\r\n").await;
    assert!(raw.until("\r\n\r\n").await.starts_with("HTTP/1.1 400"));
    assert!(raw.closes().await);

    let mut raw = Raw::connect(&node).await;
    let huge = format!(
        "GET /api/version/events HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(9_000)
    );
    raw.send(&huge).await;
    assert!(raw.until("\r\n\r\n").await.starts_with("HTTP/1.1 431"));
    assert!(raw.closes().await);
}

#[tokio::test]
async fn a_full_node_refuses_both_ways_cleanly() {
    let node = TestNode::start(&["--max-streams", "1"]).await;
    let mut held = Raw::connect(&node).await;
    held.send(STREAM).await;
    held.until("\n\n").await;

    let mut lean = Raw::connect(&node).await;
    lean.send(STREAM).await;
    let head = lean.until("\r\n\r\n").await.to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 503") && head.contains("retry-after: 2"),
        "{head}"
    );

    let (_reused, head) = Raw::reused_stream(&node).await;
    assert!(
        head.starts_with("http/1.1 503") && head.contains("retry-after: 2"),
        "{head}"
    );
}

#[tokio::test]
async fn idle_streams_both_ways_get_keepalive_comments() {
    let node = TestNode::start(&["--keepalive-secs", "1"]).await;
    let mut lean = Raw::connect(&node).await;
    lean.send(STREAM).await;
    lean.until("\n\n").await;
    let (mut reused, _) = Raw::reused_stream(&node).await;
    reused.until("\n\n").await;
    // Nothing changes, so the next thing each stream sends is a comment.
    for stream in [&mut lean, &mut reused] {
        let next = stream.until("\n\n").await;
        assert!(
            next.ends_with(":\n\n"),
            "expected a keep-alive comment, got {next:?}"
        );
        assert!(!next.contains("data:"), "{next:?}");
    }
}

#[tokio::test]
async fn a_connection_that_never_speaks_does_not_hold_up_shutdown() {
    let node = TestNode::start(&[]).await;
    let _silent = Raw::connect(&node).await;
    // Let the listener take it in before the node is told to stop.
    tokio::time::sleep(Duration::from_millis(50)).await; // ordering, not a condition
    let started = std::time::Instant::now();
    node.stop().await.expect("the server drains cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?} for a silent connection",
        started.elapsed()
    );
}
