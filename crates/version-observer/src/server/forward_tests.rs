//! Version affinity end to end, in process: observers of two versions in
//! one cluster on a real nats-server, each serving a small app (a route
//! that says which node answered, and a Leptos server function) through
//! its listener, behind the request guard.

use super::{NatsSettings, ObserverBuilder, VersionObserver, VersionObserverRoutes};
use axum::{
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use leptos::prelude::*;
use std::{future::IntoFuture, net::SocketAddr, time::Duration};
use tokio::task::JoinHandle;
use version_observer_core::{
    affinity::{ForwardRequest, Frame},
    auth::{ClusterKey, MAC_HEADER},
    protocol::{encode, Names, Presence, PresenceKind},
    skew::PAGE_VERSION_HEADER,
    Timings, Version,
};
use vo_lab::NatsServer;

/// The value of the sample `name` with all of `labels`; a histogram's
/// count.
fn sample(scrape: &vo_lab::metrics::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            other => panic!("{name}: {other:?}"),
        })
}

const DEADLINE: Duration = Duration::from_secs(15);
const CLUSTER: &str = "affinity";
const TIMINGS: Timings = vo_lab::timings::FAST;

/// Which node ran the server function (a Leptos server function, so that
/// the guard knows its path as one).
#[server]
async fn who_ran_it(text: String) -> Result<String, ServerFnError> {
    let version = use_context::<Version>().map_or("?".to_owned(), |v| v.to_string());
    Ok(format!("{version}: {text}"))
}

struct Node {
    addr: SocketAddr,
    observer: VersionObserver,
    task: JoinHandle<std::io::Result<()>>,
}

/// What a node's app answers on `/whoami`: its version, the body it got,
/// and a header and status of its own, so a test sees all of it came back.
async fn whoami(version: Version, headers: HeaderMap, body: String) -> impl IntoResponse {
    let asked = headers
        .get("x-test")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        StatusCode::ACCEPTED,
        [
            ("x-served-by", version.to_string()),
            ("set-cookie", "a=1".into()),
        ],
        format!("{version} got {body:?} {asked}"),
    )
}

impl Node {
    async fn start(
        nats: &str,
        version: &str,
        id: &str,
        tune: impl FnOnce(ObserverBuilder) -> ObserverBuilder,
    ) -> Self {
        Self::start_nats(
            NatsSettings::new(nats).cluster(CLUSTER).timings(TIMINGS),
            version,
            id,
            tune,
        )
        .await
    }

    async fn start_nats(
        nats: NatsSettings,
        version: &str,
        id: &str,
        tune: impl FnOnce(ObserverBuilder) -> ObserverBuilder,
    ) -> Self {
        let v: Version = version.parse().unwrap();
        let observer = tune(VersionObserver::builder(v.clone()).node_id(id).nats(nats))
            .start()
            .await
            .expect("the observer starts");
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let context = v.clone();
        let app: Router = Router::new()
            .route(
                "/whoami",
                post({
                    let v = v.clone();
                    move |headers: HeaderMap, body: String| whoami(v.clone(), headers, body)
                }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await; // the slow handler under test
                    "late"
                }),
            )
            .route("/", get(|| async { "<html>the page</html>" }))
            .route(
                "/api/{*name}",
                post(move |request| {
                    let context = context.clone();
                    leptos_axum::handle_server_fns_with_context(
                        move || provide_context(context.clone()),
                        request,
                    )
                }),
            )
            .layer(observer.request_guard())
            .version_observer_routes(&observer);
        let task = tokio::spawn(
            axum::serve(observer.listener(tcp), app.into_make_service())
                .with_graceful_shutdown(observer.stopped())
                .into_future(),
        );
        Self {
            addr,
            observer,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn metrics(&self) -> vo_lab::metrics::Scrape {
        vo_lab::metrics::parse(&self.observer.metrics_text())
    }

    /// Until this node's view holds `members` members.
    async fn sees(&self, members: usize) {
        let observer = self.observer.clone();
        vo_lab::wait::eventually(&format!("{members} members"), DEADLINE, async || {
            (observer.cluster_status().members.len() == members).then_some(())
        })
        .await
        .unwrap();
    }
}

async fn nats() -> NatsServer {
    NatsServer::start().await.expect("nats-server starts")
}

/// `POST /whoami` as a page of `page` would send it.
async fn call(node: &Node, path: &str, page: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(node.url(path))
        .header("x-test", "hello")
        .body("the body");
    if let Some(page) = page {
        request = request.header(PAGE_VERSION_HEADER, page);
    }
    request.send().await.unwrap()
}

async fn server_fn(node: &Node, page: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .post(node.url(<WhoRanIt as leptos::server_fn::ServerFn>::PATH))
        .header(PAGE_VERSION_HEADER, page)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("text=hi")
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_goes_both_ways_and_answers_come_back_unchanged() {
    let nats = nats().await;
    let old = Node::start(&nats.url(), "1.0.0", "old", |b| b).await;
    let new = Node::start(&nats.url(), "2.0.0", "new", |b| b).await;
    old.sees(2).await;
    new.sees(2).await;

    // An old page's call on the new node: run by the old one.
    let answer = call(&new, "/whoami", Some("1.0.0")).await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    assert_eq!(answer.headers()["x-served-by"], "1.0.0");
    assert_eq!(answer.headers()["set-cookie"], "a=1");
    assert_eq!(answer.text().await.unwrap(), "1.0.0 got \"the body\" hello");
    // A new page's call on the old node (mid-deploy): run by the new one.
    let answer = call(&old, "/whoami", Some("2.0.0")).await;
    assert_eq!(answer.headers()["x-served-by"], "2.0.0");
    // Compatible pages and requests without the header stay where they are.
    let answer = call(&new, "/whoami", Some("2.3.0")).await;
    assert_eq!(answer.headers()["x-served-by"], "2.0.0");
    let answer = call(&new, "/whoami", None).await;
    assert_eq!(answer.headers()["x-served-by"], "2.0.0");

    let sent = new.metrics();
    assert_eq!(
        sample(
            &sent,
            "version_observer_forwarded_total",
            &[
                ("from_version", "2.0.0"),
                ("to_version", "1.0.0"),
                ("outcome", "answered")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &old.metrics(),
            "version_observer_forwarded_in_total",
            &[("outcome", "served")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&sent, "version_observer_forward_duration_seconds", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_function_prefers_the_pages_exact_build_and_falls_back_here() {
    let nats = nats().await;
    let exact = Node::start(&nats.url(), "1.0.0", "exact", |b| b).await;
    let newer = Node::start(&nats.url(), "1.1.0", "newer", |b| b).await;
    newer.sees(2).await;
    // Compatible under `major`, yet the page's own build runs it.
    assert_eq!(
        server_fn(&newer, "1.0.0").await,
        (StatusCode::OK, "\"1.0.0: hi\"".into())
    );
    // Not a server function: served here, compatible.
    let answer = call(&newer, "/whoami", Some("1.0.0")).await;
    assert_eq!(answer.headers()["x-served-by"], "1.1.0");
    // Once the exact build is gone, served here.
    exact.observer.stop();
    let newer_view = newer.observer.clone();
    vo_lab::wait::eventually("the exact build to leave", DEADLINE, async || {
        (newer_view.cluster_status().members.len() == 1).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        server_fn(&newer, "1.0.0").await,
        (StatusCode::OK, "\"1.1.0: hi\"".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_member_of_the_pages_version_the_answer_is_a_409_that_says_why() {
    let nats = nats().await;
    let new = Node::start(&nats.url(), "2.0.0", "new", |b| b).await;
    let off = Node::start(&nats.url(), "3.0.0", "off", |b| b.affinity(false)).await;
    new.sees(2).await;
    let answer = call(&new, "/whoami", Some("1.0.0")).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "stale_client");
    assert_eq!(body["forward"], "no_member");
    assert_eq!(
        sample(
            &new.metrics(),
            "version_observer_forward_refusals_total",
            &[("reason", "no_member")]
        ),
        Some(1.0)
    );
    // The node with affinity off neither forwards (to 2.0.0, alive) nor
    // serves forwarded requests: today's 409, with no `forward`.
    let answer = call(&off, "/whoami", Some("2.0.0")).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body.get("forward").is_none(), "{body}");
    let answer = call(&new, "/whoami", Some("3.0.0")).await;
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["forward"], "no_member", "3.0.0 serves none: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_too_large_to_forward_or_too_slow_gets_a_409_naming_the_reason() {
    let nats = NatsServer::start_with_options(vo_lab::nats::NatsOptions {
        config: Some("max_payload: 65536\n".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let old = Node::start(&nats.url(), "1.0.0", "old", |b| b).await;
    let new = Node::start(&nats.url(), "2.0.0", "new", |b| {
        b.forward_timeout(Duration::from_millis(500))
    })
    .await;
    new.sees(2).await;
    let big = "x".repeat(200_000);
    let answer = reqwest::Client::new()
        .post(new.url("/whoami"))
        .header(PAGE_VERSION_HEADER, "1.0.0")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["forward"], "too_large", "{body}");
    // A chunked body of unknown length, too large once read: the same.
    let chunks =
        futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 10_000])));
    let answer = reqwest::Client::new()
        .post(new.url("/whoami"))
        .header(PAGE_VERSION_HEADER, "1.0.0")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["forward"], "too_large", "{body}");
    // The old node's handler takes 3 s; the new node waits 0.5 s.
    let answer = call(&new, "/slow", Some("1.0.0")).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["forward"], "timeout", "{body}");
    assert_eq!(
        sample(
            &new.metrics(),
            "version_observer_forward_refusals_total",
            &[("reason", "timeout")]
        ),
        Some(1.0)
    );
    drop(old);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_cluster_key_a_forged_or_replayed_forward_is_dropped_and_counted() {
    let nats = nats().await;
    let secret = b"a-cluster-key-for-the-affinity-tests";
    let dir = std::env::temp_dir().join(format!("vo-key-{:x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("key");
    std::fs::write(&key_file, secret).unwrap();
    let settings = || {
        NatsSettings::new(nats.url())
            .cluster(CLUSTER)
            .timings(TIMINGS)
            .cluster_key_file(&key_file)
    };
    let old = Node::start_nats(settings(), "1.0.0", "old", |b| b).await;
    let new = Node::start_nats(settings(), "2.0.0", "new", |b| b).await;
    new.sees(2).await;
    // The real thing works with the key.
    let answer = call(&new, "/whoami", Some("1.0.0")).await;
    assert_eq!(answer.headers()["x-served-by"], "1.0.0");

    let client = async_nats::connect(nats.url()).await.unwrap();
    let subject = Names::new(CLUSTER).forward(&Version::new(1, 0, 0));
    let frame = |nonce: u64| {
        bytes::Bytes::from(
            Frame::Request(ForwardRequest {
                from: "intruder".into(),
                target: Version::new(1, 0, 0),
                at_ms: super::unix_ms(),
                nonce,
                method: "POST".into(),
                uri: "/whoami".into(),
                headers: vec![],
                body: b"forged".to_vec(),
            })
            .encode(),
        )
    };
    // Unsigned: dropped without an answer.
    let forged = client
        .send_request(
            subject.clone(),
            async_nats::Request::new()
                .payload(frame(1))
                .timeout(Some(Duration::from_millis(500))),
        )
        .await;
    assert!(forged.is_err(), "an unsigned forward was answered");
    // Signed (a key holder's capture), sent twice: the second is refused.
    let key = ClusterKey::new(secret).unwrap();
    let payload = frame(2);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MAC_HEADER, key.sign(&subject, &payload).as_str());
        let reply = client
            .send_request(
                subject.clone(),
                async_nats::Request::new()
                    .payload(payload.clone())
                    .headers(headers)
                    .timeout(Some(Duration::from_secs(5))),
            )
            .await
            .unwrap();
        answers.push(Frame::decode(&reply.payload).unwrap());
    }
    assert!(
        matches!(answers[0], Frame::Response(ref r) if r.status == 202),
        "{:?}",
        answers[0]
    );
    assert!(matches!(answers[1], Frame::Declined(_)), "{:?}", answers[1]);
    let counted = old.metrics();
    assert_eq!(
        sample(
            &counted,
            "version_observer_forwarded_in_total",
            &[("outcome", "unauthenticated")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &counted,
            "version_observer_forwarded_in_total",
            &[("outcome", "replayed")]
        ),
        Some(1.0)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_that_answers_garbage_is_counted_and_never_passed_to_the_browser() {
    let nats = nats().await;
    let new = Node::start(&nats.url(), "2.0.0", "new", |b| b).await;
    // A fake member of 1.0.0: heartbeats, and garbage for every forward.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let names = Names::new(CLUSTER);
    let mut forwards = client
        .queue_subscribe(
            names.forward(&Version::new(1, 0, 0)),
            names.forward(&Version::new(1, 0, 0)),
        )
        .await
        .unwrap();
    let heartbeat = encode(&Presence {
        id: "fake".into(),
        version: Version::new(1, 0, 0),
        incarnation: 7,
        leader: false,
        tabs: Default::default(),
        retiring: false,
    });
    let beats = {
        let (client, subject) = (client.clone(), names.presence(PresenceKind::Heartbeat));
        tokio::spawn(async move {
            loop {
                let _ = client.publish(subject.clone(), heartbeat.clone()).await;
                tokio::time::sleep(TIMINGS.heartbeat_interval()).await; // the fake member's heartbeat period
            }
        })
    };
    let answers = {
        let client = client.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let garbage: [&[u8]; 3] = [
                b"<html>",
                b"VOF1\x02\x00\x2a\x00\x00",
                b"VOF1\x02\x00\xc8\x00\x01\x00\x00\x00\x03b\nd\x00\x00\x00\x01x",
            ];
            let mut n = 0;
            while let Some(m) = forwards.next().await {
                if let Some(reply) = m.reply {
                    let _ = client
                        .publish(reply, bytes::Bytes::from_static(garbage[n % 3]))
                        .await;
                    n += 1;
                }
            }
        })
    };
    new.sees(2).await;
    for _ in 0..3 {
        let answer = call(&new, "/whoami", Some("1.0.0")).await;
        assert_eq!(answer.status(), StatusCode::CONFLICT);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["forward"], "failed", "{body}");
    }
    assert_eq!(
        sample(
            &new.metrics(),
            "version_observer_forward_refusals_total",
            &[("reason", "failed")]
        ),
        Some(3.0)
    );
    beats.abort();
    answers.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retiring_node_leaves_the_balancer_serves_its_pages_calls_and_exits_when_none_is_open() {
    let nats = nats().await;
    let old = Node::start(&nats.url(), "1.0.0", "old", |b| {
        b.retire_for(Duration::from_secs(60))
            .retire_grace(Duration::from_millis(500))
    })
    .await;
    let new = Node::start(&nats.url(), "2.0.0", "new", |b| b).await;
    new.sees(2).await;
    // An old tab, its stream on the new node.
    let tab = reqwest::get(new.url("/api/version/events?page=1.0.0"))
        .await
        .unwrap();
    let old_view = old.observer.clone();
    vo_lab::wait::eventually("the old tab to be counted", DEADLINE, async || {
        let tabs: u64 = old_view
            .cluster_status()
            .members
            .iter()
            .filter_map(|m| m.tabs.get("1.0.0"))
            .sum();
        (tabs == 1).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        reqwest::get(old.url("/readyz")).await.unwrap().status(),
        200
    );

    old.observer.stop();
    assert!(old.observer.is_retiring());
    let ready = reqwest::get(old.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.text().await.unwrap(), r#"{"status":"retiring"}"#);
    // Page loads go elsewhere.
    let page = reqwest::Client::new()
        .get(old.url("/"))
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    // No new streams here.
    let stream = reqwest::get(old.url("/api/version/events?page=1.0.0"))
        .await
        .unwrap();
    assert_eq!(stream.status(), 503);
    // It no longer counts: the new node sees the cluster settled on 2.0.0.
    let new_view = new.observer.clone();
    vo_lab::wait::eventually("settled on 2.0.0", DEADLINE, async || {
        let s = new_view.cluster_status();
        (s.settled_version == Some(Version::new(2, 0, 0))
            && s.members.iter().any(|m| m.id == "old" && m.retiring))
        .then_some(())
    })
    .await
    .unwrap();
    // The old tab's calls, on the new node, are still answered by the old.
    for _ in 0..3 {
        let answer = call(&new, "/whoami", Some("1.0.0")).await;
        assert_eq!(answer.headers()["x-served-by"], "1.0.0");
    }
    assert_eq!(
        sample(&old.metrics(), "version_observer_retiring", &[]),
        Some(1.0)
    );
    // And it stays, while the tab is open.
    tokio::time::sleep(Duration::from_secs(2)).await; // a window in which it must not exit
    assert!(!old.task.is_finished(), "exited under an open page");
    // The tab goes (reloaded onto 2.0.0): the old node exits by itself.
    drop(tab);
    let exited = tokio::time::timeout(DEADLINE, old.task).await;
    assert!(matches!(exited, Ok(Ok(Ok(())))), "{exited:?}");
    let answer = call(&new, "/whoami", Some("1.0.0")).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_stop_ends_a_retirement_at_once() {
    let nats = nats().await;
    let old = Node::start(&nats.url(), "1.0.0", "old", |b| {
        b.retire_for(Duration::from_secs(600))
    })
    .await;
    let new = Node::start(&nats.url(), "2.0.0", "new", |b| b).await;
    new.sees(2).await;
    let _tab = reqwest::get(new.url("/api/version/events?page=1.0.0"))
        .await
        .unwrap();
    old.observer.stop();
    let new_view = new.observer.clone();
    vo_lab::wait::eventually("the old node to retire", DEADLINE, async || {
        new_view
            .cluster_status()
            .members
            .iter()
            .any(|m| m.id == "old" && m.retiring)
            .then_some(())
    })
    .await
    .unwrap();
    assert!(!old.task.is_finished());
    old.observer.stop();
    let exited = tokio::time::timeout(Duration::from_secs(5), old.task).await;
    assert!(matches!(exited, Ok(Ok(Ok(())))), "{exited:?}");
}
