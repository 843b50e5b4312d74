//! The observer's HTTP side over real TCP on a free port: the two ways a
//! version stream reaches a node (see [`super::listener`]): on a new
//! connection, served lean by the listener; on a connection that already
//! carried a request, served by axum. Raw TCP here, so each test decides
//! which connection a request travels on. Crate-internal, so a test can
//! push a new view through the hub without a cluster.

use super::{ObserverBuilder, VersionObserver, VersionObserverRoutes};
use axum::Router;
use futures::StreamExt;
use std::{future::IntoFuture, net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};
use version_observer_core::{ClusterState, ClusterView, Compat, Version, VersionReport};
use vo_lab::metrics::{value as sample, Scrape};

/// Long enough for a loaded CI machine, short enough to fail fast.
const DEADLINE: Duration = Duration::from_secs(10);

/// An observer's routes, served through its listener on a free port.
struct TestNode {
    addr: SocketAddr,
    /// The operators' routes, on a listener of their own.
    admin_addr: SocketAddr,
    observer: VersionObserver,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestNode {
    async fn start(builder: ObserverBuilder) -> Self {
        let observer = builder.start().await.expect("the observer starts");
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let app: Router = Router::new().version_observer_routes(&observer);
        let task = tokio::spawn(
            axum::serve(observer.listener(tcp), app.into_make_service())
                .with_graceful_shutdown(observer.stopped())
                .into_future(),
        );
        let admin_tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin_tcp.local_addr().unwrap();
        let admin: Router = Router::new().version_observer_admin_routes(&observer);
        tokio::spawn(
            axum::serve(admin_tcp, admin.into_make_service())
                .with_graceful_shutdown(observer.stopped())
                .into_future(),
        );
        Self {
            addr,
            admin_addr,
            observer,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    /// `GET /metrics`, parsed by a Prometheus text-format parser.
    async fn metrics(&self) -> Scrape {
        let response = reqwest::get(self.admin_url("/metrics")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        let text = response.text().await.unwrap();
        vo_lab::metrics::parse(&text)
    }

    /// Pushes a new view to every stream, as the cluster node would.
    fn publish(&self, view: ClusterView) -> bool {
        self.observer.streams().hub.publish(view)
    }

    /// Stops the observer and waits (up to [`DEADLINE`]) for everything to end.
    async fn stop(self) {
        self.observer.stop();
        tokio::time::timeout(DEADLINE, async {
            self.task.await.unwrap().unwrap();
            self.observer.shutdown().await;
        })
        .await
        .expect("the node did not stop before the deadline");
    }
}

fn version(s: &str) -> ObserverBuilder {
    VersionObserver::builder(Version::parse(s).unwrap())
}

fn two_point_oh() -> ClusterView {
    ClusterView {
        state: ClusterState::Settled,
        settled_version: Some(Version::new(2, 0, 0)),
        announced_version: Some(Version::new(2, 0, 0)),
        announced_revision: Some(2),
        compat: Compat::Major,
        announced_release: None,
    }
}

/// Reads server-sent events from a streaming response.
struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

/// One parsed server-sent event.
#[derive(Debug, Default, Clone)]
struct SseEvent {
    id: Option<String>,
    retry: Option<u64>,
    data: String,
}

impl SseReader {
    fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event with data (comments are skipped), or `None` when the
    /// stream ends. Panics after [`DEADLINE`].
    async fn next_event(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                while let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = SseEvent::default();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("data: ") {
                            event.data.push_str(v);
                        } else if let Some(v) = line.strip_prefix("id: ") {
                            event.id = Some(v.to_owned());
                        } else if let Some(v) = line.strip_prefix("retry: ") {
                            event.retry = v.parse().ok();
                        }
                    }
                    if !event.data.is_empty() {
                        return Some(event);
                    }
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
        .expect("no server-sent event before the deadline")
    }
}

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

    /// A stream asked for on a connection that first served `/api/version`
    /// (so it goes through axum, not the lean path); returns its head.
    async fn reused_stream(node: &TestNode) -> (Self, String) {
        let mut raw = Self::connect(node).await;
        raw.send("GET /api/version HTTP/1.1\r\nHost: node\r\n\r\n")
            .await;
        raw.until("\"compat\"").await;
        raw.until("}}").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ways_in_send_the_same_events_and_end_at_shutdown() {
    let node = TestNode::start(version("1.0.0").keepalive(Duration::from_secs(3600))).await;

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

    assert!(node.publish(two_point_oh()));
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

    node.observer.stop();
    assert!(
        lean.closes().await,
        "the lean stream should end at shutdown"
    );
    assert!(
        reused.closes().await,
        "the hyper stream should end at shutdown"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_line_that_arrives_in_pieces_is_still_a_stream() {
    let node = TestNode::start(version("1.2.3")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookalike_paths_are_left_to_the_router() {
    let node = TestNode::start(version("1.0.0")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stream_requests_are_answered_and_closed() {
    let node = TestNode::start(version("1.0.0")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_refuses_both_ways_cleanly() {
    let node = TestNode::start(version("1.0.0").max_streams(1)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_both_ways_get_keepalive_comments() {
    let node = TestNode::start(version("1.0.0").keepalive(Duration::from_secs(1))).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_its_idle_timeout_and_a_busy_one_is_not() {
    let idle = Duration::from_millis(600);
    let node = TestNode::start(
        version("1.0.0")
            .keepalive(Duration::from_millis(100))
            .idle_timeout(idle),
    )
    .await;
    // One request, then nothing: closed once idle for the timeout.
    let mut quiet = Raw::connect(&node).await;
    // The node's last byte came after this moment (it had to read the
    // request first): it may not close before `sent + idle`.
    let sent = std::time::Instant::now();
    quiet
        .send("GET /api/version HTTP/1.1\r\nHost: node\r\n\r\n")
        .await;
    quiet.until("}}").await;
    assert!(quiet.closes().await, "an idle connection stayed open");
    assert!(sent.elapsed() >= idle, "closed after {:?}", sent.elapsed());
    // A stream served through axum passes a keep-alive every 100 ms: it
    // outlives several idle timeouts.
    let (mut reused, _) = Raw::reused_stream(&node).await;
    let open = std::time::Instant::now();
    while open.elapsed() < idle * 3 {
        let next = reused.until("\n\n").await;
        assert!(!next.is_empty());
    }
    // And the default, at most twice the keep-alive interval below it.
    let short = TestNode::start(
        version("1.0.0")
            .keepalive(Duration::from_millis(400))
            .idle_timeout(Duration::from_millis(1)),
    )
    .await;
    let (mut stream, _) = Raw::reused_stream(&short).await;
    let open = std::time::Instant::now();
    while open.elapsed() < Duration::from_millis(1_500) {
        stream.until("\n\n").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_speaks_does_not_hold_up_shutdown() {
    let node = TestNode::start(version("1.0.0")).await;
    let _silent = Raw::connect(&node).await;
    // Let the listener take it in before the node is told to stop.
    tokio::time::sleep(Duration::from_millis(50)).await; // ordering, not a condition
    let started = std::time::Instant::now();
    node.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?} for a silent connection",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_event_arrives_at_once_with_id_and_retry() {
    let node = TestNode::start(version("1.0.0").keepalive(Duration::from_secs(3600))).await;
    let response = reqwest::get(node.url("/api/version/events")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    // Keep-alives are an hour apart here: only an event sent on connect arrives.
    let first = SseReader::new(response)
        .next_event()
        .await
        .expect("a first event");
    assert_eq!(first.id.as_deref(), Some("1"));
    let retry = first.retry.expect("a retry hint");
    assert!((1_000..=2_000).contains(&retry), "retry {retry}");
    let report: VersionReport = serde_json::from_str(&first.data).unwrap();
    assert_eq!(
        report.cluster,
        ClusterView::single_node(&Version::new(1, 0, 0), Compat::Major)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stops_reading_gets_the_newest_report_in_order_when_it_reads_again() {
    let node = TestNode::start(version("1.0.0").keepalive(Duration::from_secs(3600))).await;
    // A small receive buffer, so that the node's writes back up soon.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut raw = Raw {
        tcp: socket.connect(node.addr).await.unwrap(),
        buf: Vec::new(),
    };
    raw.send(STREAM).await;
    raw.until("\r\n\r\n").await;
    raw.until("\n\n").await;

    // The client reads nothing now: publish until the node holds a backlog
    // for it (its socket is full), then once more.
    let lean = &node.observer.streams().hub.lean;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut revision = 2;
    while !lean.any_backlog() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no backlog after {revision} reports"
        );
        revision += 1;
        node.publish(ClusterView {
            announced_revision: Some(revision),
            ..two_point_oh()
        });
        tokio::task::yield_now().await;
    }
    revision += 1;
    node.publish(ClusterView {
        announced_revision: Some(revision),
        ..two_point_oh()
    });

    // Reading again: whole events, ids rising, ending with the newest.
    let mut last_id = 1;
    loop {
        let event = raw.until("\n\n").await;
        let id: u64 = event
            .lines()
            .find_map(|l| l.strip_prefix("id: "))
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("an event without an id: {event:?}"));
        assert!(id > last_id, "id {id} after {last_id}");
        last_id = id;
        let data = event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("an event without data: {event:?}"));
        let report: VersionReport = serde_json::from_str(data)
            .unwrap_or_else(|e| panic!("a broken event ({e}): {event:?}"));
        if report.cluster.announced_revision == Some(revision) {
            break;
        }
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_pushed_to_every_open_stream() {
    let node = TestNode::start(version("1.0.0")).await;
    let mut a = SseReader::new(reqwest::get(node.url("/api/version/events")).await.unwrap());
    let mut b = SseReader::new(reqwest::get(node.url("/api/version/events")).await.unwrap());
    a.next_event().await.unwrap();
    b.next_event().await.unwrap();
    assert!(node.publish(two_point_oh()));
    assert!(
        !node.publish(two_point_oh()),
        "an unchanged view is not news"
    );
    for stream in [&mut a, &mut b] {
        let event = stream.next_event().await.expect("the change");
        assert_eq!(event.id.as_deref(), Some("2"));
        let report: VersionReport = serde_json::from_str(&event.data).unwrap();
        assert_eq!(report.cluster, two_point_oh());
    }
    assert_eq!(node.observer.report().cluster, two_point_oh());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_slot_is_taken_again() {
    let node = TestNode::start(version("1.0.0").max_streams(1)).await;
    let mut first = SseReader::new(reqwest::get(node.url("/api/version/events")).await.unwrap());
    first.next_event().await.unwrap();
    let refused = reqwest::get(node.url("/api/version/events")).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "2");
    assert_eq!(
        reqwest::get(node.url("/api/version"))
            .await
            .unwrap()
            .status(),
        200
    );
    // Closing the first stream frees its slot (the server notices asynchronously).
    drop(first);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let r = reqwest::get(node.url("/api/version/events")).await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, not a wait for a condition
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_is_its_own_cluster() {
    let node = TestNode::start(version("1.4.0").node_id("solo")).await;
    // The operators' routes are not on the public listener.
    for path in ["/api/cluster", "/metrics"] {
        let public = reqwest::get(node.url(path)).await.unwrap();
        assert_eq!(public.status(), 404, "{path} on the public port");
    }
    let status: serde_json::Value = reqwest::get(node.admin_url("/api/cluster"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["cluster"], serde_json::Value::Null);
    assert_eq!(status["leader"], "solo");
    assert_eq!(status["this_node_leads"], true);
    assert_eq!(status["state"], "settled");
    assert_eq!(status["announced"]["record"]["version"], "1.4.0");
    assert_eq!(status["announced"]["record"]["kind"], "baseline");
    assert_eq!(status["members"][0]["id"], "solo");
    let report: VersionReport = reqwest::get(node.url("/api/version"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        report.cluster.announced_version,
        Some(Version::new(1, 4, 0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_streams_tabs_by_page_version_and_refusals() {
    let node = TestNode::start(version("2.0.0").node_id("m1").max_streams(3)).await;
    let open = |query: &'static str| {
        let node = &node;
        async move {
            let mut raw = Raw::connect(node).await;
            raw.send(&STREAM.replacen("events", &format!("events{query}"), 1))
                .await;
            raw.until("\n\n").await;
            raw
        }
    };
    // Two tabs of a 1.0.0 page (one through axum), one of a 2.0.0+b1 page.
    let a = open("?page=1.0.0").await;
    let (mut b, head) = {
        let mut raw = Raw::connect(&node).await;
        raw.send("GET /api/version HTTP/1.1\r\nHost: node\r\n\r\n")
            .await;
        raw.until("}}").await;
        raw.send(&STREAM.replacen("events", "events?page=1.0.0", 1))
            .await;
        let head = raw.until("\r\n\r\n").await;
        (raw, head)
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    b.until("\n\n").await;
    let c = open("?x=1&page=2.0.0%2Bb1").await;
    // The fourth is refused: the node is full.
    let mut refused = Raw::connect(&node).await;
    refused
        .send(&STREAM.replacen("events", "events?page=junk", 1))
        .await;
    assert!(refused.until("\r\n\r\n").await.starts_with("HTTP/1.1 503"));
    node.observer.count_refused_request();

    let m = node.metrics().await;
    let info = m
        .samples
        .iter()
        .find(|s| s.metric == "version_observer_node_info")
        .expect("node info");
    assert_eq!(info.labels.get("node_id"), Some("m1"));
    assert_eq!(info.labels.get("version"), Some("2.0.0"));
    assert_eq!(info.labels.get("mode"), Some("single"));
    assert_eq!(sample(&m, "version_observer_streams", None), Some(3.0));
    assert_eq!(sample(&m, "version_observer_stream_limit", None), Some(3.0));
    let tabs = |m: &Scrape, v| sample(m, "version_observer_tabs", Some(("page_version", v)));
    assert_eq!(tabs(&m, "1.0.0"), Some(2.0));
    assert_eq!(tabs(&m, "2.0.0+b1"), Some(1.0));
    assert_eq!(tabs(&m, "unknown"), None);
    let refused_by =
        |m: &Scrape, r| sample(m, "version_observer_refused_total", Some(("reason", r)));
    assert_eq!(refused_by(&m, "streams"), Some(1.0));
    assert_eq!(refused_by(&m, "requests"), Some(1.0));
    assert_eq!(refused_by(&m, "open_files"), Some(0.0));
    // A single node has no cluster metrics.
    assert_eq!(sample(&m, "version_observer_nats_connected", None), None);

    // Closed tabs are counted out (the server notices asynchronously).
    drop((a, b));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let m = node.metrics().await;
        if tabs(&m, "1.0.0").is_none() && sample(&m, "version_observer_streams", None) == Some(1.0)
        {
            assert_eq!(tabs(&m, "2.0.0+b1"), Some(1.0));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed tabs still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
    drop(c);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_announces_its_own_release() {
    use version_observer_core::{Release, Severity};
    let release = Release {
        severity: Severity::Required,
        notes_url: Some("/releases/2.0.0".into()),
        min_supported: Some(Version::new(1, 5, 0)),
    };
    let node = TestNode::start(version("2.0.0").release(release.clone())).await;
    let body: serde_json::Value = reqwest::get(node.url("/api/version"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["cluster"]["announced_release"],
        serde_json::json!({
            "severity": "required",
            "notes_url": "/releases/2.0.0",
            "min_supported": "1.5.0"
        })
    );
    let mut stream = SseReader::new(reqwest::get(node.url("/api/version/events")).await.unwrap());
    let report: VersionReport =
        serde_json::from_str(&stream.next_event().await.unwrap().data).unwrap();
    assert_eq!(report.cluster.announced_release, Some(release.clone()));
    let status: serde_json::Value = reqwest::get(node.admin_url("/api/cluster"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["announced"]["record"]["release"]["severity"],
        "required"
    );
    // Without a release, the field is left out, as older nodes do.
    let plain = TestNode::start(version("2.0.0")).await;
    let body: serde_json::Value = reqwest::get(plain.url("/api/version"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["cluster"].get("announced_release").is_none(), "{body}");
}

#[tokio::test]
async fn an_invalid_release_stops_start_up_naming_it() {
    use version_observer_core::Release;
    for url in ["javascript:alert(1)", "//evil.example", "notes.html"] {
        let err = version("2.0.0")
            .release(Release {
                notes_url: Some(url.into()),
                ..Release::default()
            })
            .start()
            .await
            .expect_err(url);
        assert!(matches!(err, super::StartError::Release(_)), "{err:?}");
        assert!(err.to_string().contains(url), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_guard_refuses_incompatible_pages_with_a_typed_409_and_lets_the_rest_through() {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };
    use version_observer_core::{skew::PAGE_VERSION_HEADER, Release};
    let release = Release {
        min_supported: Some(Version::new(2, 1, 0)),
        ..Release::default()
    };
    let observer = version("2.4.0")
        .node_id("g1")
        .release(release)
        .start()
        .await
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let handler_ran = ran.clone();
    let app: Router = Router::new()
        .route(
            "/api/rename",
            axum::routing::post(move || {
                handler_ran.fetch_add(1, Ordering::SeqCst);
                async { "renamed" }
            }),
        )
        .layer(observer.request_guard());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/rename", tcp.local_addr().unwrap());
    tokio::spawn(axum::serve(tcp, app.into_make_service()).into_future());
    let client = reqwest::Client::new();
    let call = |page: Option<&'static str>| {
        let mut request = client.post(&url);
        if let Some(page) = page {
            request = request.header(PAGE_VERSION_HEADER, page);
        }
        async move { request.send().await.unwrap() }
    };

    // (page header, expected status, expected `stale`, expected `min_supported`)
    type Row = (
        Option<&'static str>,
        u16,
        Option<&'static str>,
        Option<&'static str>,
    );
    let table: &[Row] = &[
        (None, 200, None, None),
        (Some("2.4.0"), 200, None, None),
        (Some("2.2.0"), 200, None, None),
        (Some("not a version"), 200, None, None),
        (Some("1.9.0"), 409, Some("page"), Some("2.1.0")),
        (Some("2.0.5"), 409, Some("page"), Some("2.1.0")),
        (Some("3.0.0"), 409, Some("server"), None),
    ];
    let mut refused = 0;
    for (page, status, stale, min) in table {
        let before = ran.load(Ordering::SeqCst);
        let response = call(*page).await;
        assert_eq!(response.status().as_u16(), *status, "{page:?}");
        if *status == 409 {
            refused += 1;
            assert_eq!(response.headers()["content-type"], "application/json");
            assert_eq!(response.headers()["cache-control"], "no-store");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "stale_client", "{body}");
            assert_eq!(body["page_version"], page.unwrap(), "{body}");
            assert_eq!(body["server_version"], "2.4.0", "{body}");
            assert_eq!(body["stale"], stale.unwrap(), "{body}");
            assert_eq!(body["min_supported"].as_str(), *min, "{body}");
            assert_eq!(
                ran.load(Ordering::SeqCst),
                before,
                "refused, yet the handler ran: {page:?}"
            );
        } else {
            assert_eq!(response.text().await.unwrap(), "renamed");
            assert_eq!(ran.load(Ordering::SeqCst), before + 1, "{page:?}");
        }
    }
    let metrics = vo_lab::metrics::parse(&observer.metrics_text());
    assert_eq!(
        sample(
            &metrics,
            "version_observer_refused_total",
            Some(("reason", "stale_client"))
        ),
        Some(f64::from(refused))
    );
    observer.stop();
    observer.shutdown().await;
}

#[tokio::test]
async fn the_guard_makes_browsers_revalidate_unhashed_bundle_files_whoever_serves_them() {
    let observer = version("1.0.0").start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("vo-revalidate-{:x}", fastrand::u64(..)));
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    for name in ["app.wasm", "app.0123456789abcdefABCDEF.wasm", "logo.png"] {
        std::fs::write(dir.join("pkg").join(name), b"bytes").unwrap();
    }
    // The usual Leptos fallback serves files with Last-Modified and no
    // Cache-Control; a route of the app sets its own.
    let app: Router = Router::new()
        .route(
            "/pkg/own.js",
            axum::routing::get(|| async { ([("cache-control", "max-age=60")], "js") }),
        )
        .fallback_service(tower_http::services::ServeDir::new(&dir))
        .layer(observer.request_guard());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", tcp.local_addr().unwrap());
    tokio::spawn(axum::serve(tcp, app.into_make_service()).into_future());
    let cache_control = |path: &'static str| {
        let url = format!("{base}{path}");
        async move {
            let response = reqwest::get(&url).await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_owned())
        }
    };
    assert_eq!(
        cache_control("/pkg/app.wasm").await.as_deref(),
        Some("no-cache")
    );
    assert_eq!(
        cache_control("/pkg/app.0123456789abcdefABCDEF.wasm").await,
        None
    );
    assert_eq!(cache_control("/pkg/logo.png").await, None);
    assert_eq!(
        cache_control("/pkg/own.js").await.as_deref(),
        Some("max-age=60")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_history_follows_open_tabs_by_version() {
    let node = TestNode::start(version("2.0.0")).await;
    let open = |page: &'static str| {
        let node = &node;
        async move {
            let mut raw = Raw::connect(node).await;
            raw.send(&STREAM.replacen("events", &format!("events?page={page}"), 1))
                .await;
            raw.until("\n\n").await;
            raw
        }
    };
    let (old, _new) = (open("1.0.0").await, open("2.0.0").await);
    let tabs_now = |node: &TestNode| {
        node.observer
            .page_history()
            .points()
            .last()
            .map(|p| p.tabs.clone())
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + DEADLINE;
    while tabs_now(&node).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            node.observer.page_history()
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // the poll interval
    }
    assert_eq!(tabs_now(&node).get("1.0.0"), Some(&1));
    // The old tab goes: the history says so, and keeps what was.
    drop(old);
    while tabs_now(&node).contains_key("1.0.0") {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            node.observer.page_history()
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // the poll interval
    }
    let history = node.observer.page_history();
    assert_eq!(history.versions(), vec!["1.0.0", "2.0.0"]);
    assert_eq!(history.peak(), 2);
    node.stop().await;
}
