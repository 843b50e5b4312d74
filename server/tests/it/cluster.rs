//! Cluster coordination end to end: a real nats-server (JetStream) and real node
//! processes, crashed with `kill -9` or stopped with SIGTERM.

use crate::support::{
    cluster::{
        eventually, names, nats, node, node_with, NodeProcess, ScratchFile, LEASE, NODE_TIMEOUT,
    },
    metric, parse_metrics, SseReader,
};
use futures::StreamExt;
use serde_json::Value;
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use version_observer::{
    core::protocol::{decode, encode, Presence, PresenceKind, SettledNotice},
    VersionReport,
};

const SETTLE: Duration = Duration::from_secs(20);

/// Every message on the announce subject, collected in the background
/// (`None`: one that is not a notice).
struct Announcements(Arc<Mutex<Vec<Option<SettledNotice>>>>);

impl Announcements {
    async fn watch(nats: &str) -> Self {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(nats)
            .await
            .unwrap();
        let mut sub = client.subscribe(names().announce()).await.unwrap();
        client.flush().await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            let _client = client;
            while let Some(m) = sub.next().await {
                sink.lock().unwrap().push(decode(&m.payload).ok());
            }
        });
        Self(seen)
    }

    fn versions(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|notice| match notice {
                Some(n) => n.record.version.to_string(),
                None => "?".to_owned(),
            })
            .collect()
    }

    /// Holds for `window` and fails if anything is announced meanwhile.
    async fn none_during(&self, window: Duration, context: &str) {
        let before = self.versions();
        let until = Instant::now() + window;
        while Instant::now() < until {
            assert_eq!(self.versions(), before, "announced while {context}");
            tokio::time::sleep(Duration::from_millis(100)).await; // sampling a window, not waiting for a condition
        }
    }
}

/// The announced record as `node` reports it, once it has this version.
async fn announced_on(node: &NodeProcess, version: &str, kind: &str) -> Value {
    eventually(
        &format!("{} to know {kind} {version}", node.id),
        SETTLE,
        async || {
            let c = node.cluster().await?;
            let record = &c["announced"]["record"];
            (record["version"] == version && record["kind"] == kind).then(|| c.clone())
        },
    )
    .await
}

async fn state_on(node: &NodeProcess, state: &str, members: usize) {
    eventually(
        &format!("{} to see {members} members, {state}", node.id),
        SETTLE,
        async || {
            let c = node.cluster().await?;
            (c["state"] == state && c["members"].as_array()?.len() == members).then_some(())
        },
    )
    .await
}

async fn leader_of(nodes: &[&NodeProcess]) -> String {
    eventually("a leader", SETTLE, async || {
        for n in nodes {
            if let Some(c) = n.cluster().await {
                if c["this_node_leads"] == true {
                    return Some(n.id.clone());
                }
            }
        }
        None
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn one_version_everywhere_is_a_baseline_not_an_announcement() {
    let nats = nats().await;
    let announced = Announcements::watch(&nats.url()).await;
    let nodes = [
        node(&nats.url(), "a", "1.0.0").await,
        node(&nats.url(), "b", "1.0.0").await,
        node(&nats.url(), "c", "1.0.0").await,
    ];
    for n in &nodes {
        announced_on(n, "1.0.0", "baseline").await;
        state_on(n, "settled", 3).await;
    }
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    leader_of(&refs).await;
    // Past several safety-net rounds: still nothing to announce.
    announced
        .none_during(Duration::from_secs(5), "every node runs 1.0.0")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_deploy_is_announced_once_when_settled() {
    let nats = nats().await;
    let url = nats.url();
    let announced = Announcements::watch(&url).await;
    let mut old = [
        node(&url, "old-1", "0.1.0").await,
        node(&url, "old-2", "0.1.0").await,
        node(&url, "old-3", "0.1.0").await,
    ];
    announced_on(&old[0], "0.1.0", "baseline").await;

    let mut new = vec![node(&url, "new-1", "1.0.0").await];
    let response = reqwest::get(new[0].url("/api/version/events"))
        .await
        .unwrap();
    let mut browser = SseReader::new(response);
    let first: VersionReport =
        serde_json::from_str(&browser.next_event().await.unwrap().data).unwrap();
    assert_eq!(
        first
            .cluster
            .announced_version
            .map(|v| v.to_string())
            .as_deref(),
        Some("0.1.0")
    );

    // Replace the old nodes one by one, with overlap.
    for (i, id) in ["new-2", "new-3"].into_iter().enumerate() {
        state_on(&new[0], "mixed", 4).await;
        old[i].stop().await.unwrap();
        new.push(node(&url, id, "1.0.0").await);
        state_on(&new[0], "mixed", 4).await;
        announced
            .none_during(
                NODE_TIMEOUT + Duration::from_millis(500),
                "versions are mixed",
            )
            .await;
    }
    old[2].stop().await.unwrap();

    for n in &new {
        announced_on(n, "1.0.0", "announcement").await;
    }
    // The open stream of a surviving node is told.
    let report = eventually("the browser stream to carry 1.0.0", SETTLE, async || {
        let event = browser.next_event().await?;
        let r: VersionReport = serde_json::from_str(&event.data).ok()?;
        (r.cluster.announced_version.as_ref()?.to_string() == "1.0.0").then_some(r)
    })
    .await;
    assert_eq!(report.node.id, "new-1");
    // Exactly once, even after more rounds.
    tokio::time::sleep(Duration::from_millis(2_500)).await; // let safety-net rounds run, then count
    assert_eq!(announced.versions(), vec!["1.0.0".to_string()]);

    // The metrics tell the same story (`/metrics` on each admin listener).
    let mut announcements = 0.0;
    let mut monitors = 0.0;
    for n in &new {
        let m = parse_metrics(&n.metrics().await.expect("metrics"));
        let written = |kind| {
            metric(
                &m,
                "version_observer_records_written_total",
                Some(("kind", kind)),
            )
        };
        announcements += written("announcement").expect("records written");
        monitors += metric(&m, "version_observer_monitor", None).unwrap();
        assert_eq!(
            metric(&m, "version_observer_nats_connected", None),
            Some(1.0),
            "{}",
            n.id
        );
        assert_eq!(
            metric(&m, "version_observer_members", None),
            Some(3.0),
            "{}",
            n.id
        );
        assert_eq!(
            metric(
                &m,
                "version_observer_cluster_state",
                Some(("state", "settled"))
            ),
            Some(1.0)
        );
        assert_eq!(
            metric(
                &m,
                "version_observer_messages_dropped_total",
                Some(("reason", "malformed"))
            ),
            Some(0.0)
        );
    }
    assert_eq!(announcements, 1.0, "one announcement written in all");
    assert_eq!(monitors, 1.0, "one monitor");
    // new-1 holds the test's stream, which named no page version.
    let m = parse_metrics(&new[0].metrics().await.unwrap());
    assert_eq!(metric(&m, "version_observer_streams", None), Some(1.0));
    assert_eq!(
        metric(
            &m,
            "version_observer_tabs",
            Some(("page_version", "unknown"))
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_leader_mid_deploy_is_replaced_and_still_announces_once() {
    let nats = nats().await;
    let url = nats.url();
    let announced = Announcements::watch(&url).await;
    let mut old = vec![
        node(&url, "old-1", "0.1.0").await,
        node(&url, "old-2", "0.1.0").await,
    ];
    announced_on(&old[0], "0.1.0", "baseline").await;
    let new = [
        node(&url, "new-1", "1.0.0").await,
        node(&url, "new-2", "1.0.0").await,
    ];
    state_on(&new[0], "mixed", 4).await;
    let all: Vec<&NodeProcess> = old.iter().chain(new.iter()).collect();
    let leader = leader_of(&all).await;
    assert!(leader.starts_with("old-"), "the first node leads: {leader}");

    let crashed_at = Instant::now();
    let (mut dead, mut rest): (Vec<_>, Vec<_>) = old.drain(..).partition(|n| n.id == leader);
    dead[0].kill().await;
    let survivors: Vec<&NodeProcess> = rest.iter().chain(new.iter()).collect();
    let next = leader_of(&survivors).await;
    assert_ne!(next, leader);
    let failover = crashed_at.elapsed();
    assert!(
        failover < LEASE + Duration::from_secs(3),
        "failover took {failover:?}"
    );
    announced
        .none_during(Duration::from_millis(500), "an old node is still up")
        .await;

    rest[0].stop().await.unwrap();
    for n in &new {
        announced_on(n, "1.0.0", "announcement").await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await; // let safety-net rounds run, then count
    assert_eq!(announced.versions(), vec!["1.0.0".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_last_old_node_is_detected_then_announced() {
    let nats = nats().await;
    let url = nats.url();
    let announced = Announcements::watch(&url).await;
    let mut first = node(&url, "old-leader", "0.1.0").await;
    announced_on(&first, "0.1.0", "baseline").await;
    let mut old = node(&url, "old", "0.1.0").await;
    let new = [
        node(&url, "new-1", "1.0.0").await,
        node(&url, "new-2", "1.0.0").await,
    ];
    state_on(&new[0], "mixed", 4).await;
    // Hand the lease to a new node: freeze the other old node while the leader
    // leaves (shorter than the node timeout, so it is not considered dead).
    old.pause();
    first.stop().await.unwrap();
    let next = leader_of(&[&new[0], &new[1]]).await;
    old.resume();
    state_on(&new[0], "mixed", 3).await;
    assert!(next.starts_with("new-"));
    announced
        .none_during(Duration::from_millis(500), "the old node is alive")
        .await;

    let killed_at = Instant::now();
    old.kill().await;
    for n in &new {
        announced_on(n, "1.0.0", "announcement").await;
    }
    let took = killed_at.elapsed();
    assert!(
        took >= NODE_TIMEOUT / 2,
        "too fast to be a timeout: {took:?}"
    );
    assert!(
        took < NODE_TIMEOUT + Duration::from_secs(3),
        "detection took {took:?}"
    );
    assert_eq!(announced.versions(), vec!["1.0.0".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nats_restart_brings_no_duplicate_or_false_announcement() {
    let mut nats = nats().await;
    let url = nats.url();
    let announced = Announcements::watch(&url).await;
    let old = node(&url, "a", "0.1.0").await;
    announced_on(&old, "0.1.0", "baseline").await;
    let mut old = Some(old);
    let nodes = [
        node(&url, "b", "1.0.0").await,
        node(&url, "c", "1.0.0").await,
    ];
    old.take().unwrap().stop().await.unwrap();
    let before = announced_on(&nodes[0], "1.0.0", "announcement").await;
    assert_eq!(announced.versions(), vec!["1.0.0".to_string()]);

    // A quick restart, then a long outage in which every reconnection
    // attempt fails for a while: a node must reconnect after both.
    for outage in 1..=2 {
        if outage == 1 {
            nats.restart().await.unwrap();
        } else {
            nats.stop().await;
            for n in &nodes {
                eventually(&format!("{} to notice", n.id), SETTLE, async || {
                    let c = n.cluster().await?;
                    (c["connected"] == false).then_some(())
                })
                .await;
            }
            // The outage itself (a fault's length, not a wait for a condition).
            tokio::time::sleep(Duration::from_secs(3)).await;
            nats.start_again().await.unwrap();
        }
        for n in &nodes {
            // Every node reconnects, sees the cluster again, and keeps the record.
            eventually(
                &format!("{} to reconnect after outage {outage}", n.id),
                SETTLE,
                async || {
                    let c = n.cluster().await?;
                    (c["connected"] == true && c["state"] == "settled").then_some(())
                },
            )
            .await;
            let after = announced_on(n, "1.0.0", "announcement").await;
            assert_eq!(
                after["announced"]["revision"], before["announced"]["revision"],
                "the record was rewritten"
            );
        }
    }
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    leader_of(&refs).await;
    announced
        .none_during(Duration::from_secs(3), "nothing changed but NATS restarted")
        .await;
    assert_eq!(announced.versions(), vec!["1.0.0".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_the_cluster_subjects_is_logged_and_ignored() {
    let nats = nats().await;
    let url = nats.url();
    let nodes = [
        node(&url, "a", "1.0.0").await,
        node(&url, "b", "1.0.0").await,
    ];
    announced_on(&nodes[0], "1.0.0", "baseline").await;

    let client = async_nats::connect(&url).await.unwrap();
    let garbage: &[&[u8]] = &[
        b"",
        b"not json",
        b"{}",
        b"{\"id\":\"x\",\"version\":\"1.0\",\"incarnation\":1}",
        &[0xff, 0x00],
    ];
    let names = names();
    // A presence subject of a kind no node knows: `node.*` with another last token.
    let unknown = names.presence_all().replace('*', "other");
    for subject in [
        names.presence(PresenceKind::Up),
        names.presence(PresenceKind::Heartbeat),
        names.presence(PresenceKind::Down),
        unknown,
        names.settled(),
        names.version_request(),
    ] {
        for payload in garbage {
            client
                .publish_with_reply(subject.clone(), "garbage.inbox", payload.to_vec().into())
                .await
                .unwrap();
        }
    }
    // Valid JSON that claims a node with another version must not be ignored
    // silently either: it is a node, and it makes the cluster mixed until it times out.
    client.flush().await.unwrap();

    for n in &nodes {
        eventually(
            &format!("{} to log the dropped messages", n.id),
            SETTLE,
            async || {
                let logs = n.logs();
                let dropped = n.cluster().await?["dropped_messages"].as_u64()?;
                // Five subjects x five payloads malformed, five on an unknown subject.
                (dropped == 30
                    && logs.contains("dropping a malformed message")
                    && logs.contains("dropping a message on an unknown subject"))
                .then_some(())
            },
        )
        .await;
        assert!(!n.logs().contains("panicked"), "{}", n.logs());
        state_on(n, "settled", 2).await;
    }
    // Still working: a new node joins and the cluster sees it.
    let c = node(&url, "c", "1.0.0").await;
    state_on(&nodes[0], "settled", 3).await;
    announced_on(&c, "1.0.0", "baseline").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_cluster_key_unsigned_and_wrongly_signed_messages_are_dropped() {
    let nats = nats().await;
    let url = nats.url();
    let key = ScratchFile::new("cluster.key", b"a-shared-secret-for-the-test-cluster\n");
    let other = ScratchFile::new("other.key", b"some-other-secret-of-someone-else\n");
    let flags = ["--cluster-key-file", &key.arg()];
    let nodes = [
        node_with(&url, "a", "1.0.0", &flags).await,
        node_with(&url, "b", "1.0.0", &flags).await,
    ];
    announced_on(&nodes[0], "1.0.0", "baseline").await;
    state_on(&nodes[0], "settled", 2).await;

    // A forger on the same NATS, without the key: an old node joining and a
    // forged announcement notice.
    let client = async_nats::connect(&url).await.unwrap();
    let names = names();
    let intruder = Presence {
        id: "intruder".into(),
        version: semver::Version::new(0, 1, 0),
        incarnation: 1,
        leader: false,
        tabs: Default::default(),
        retiring: false,
    };
    for _ in 0..3 {
        client
            .publish(names.presence(PresenceKind::Up), encode(&intruder))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    // A node with another key is not a member either.
    let stranger = node_with(&url, "c", "0.1.0", &["--cluster-key-file", &other.arg()]).await;

    for n in &nodes {
        eventually(
            &format!("{} to count the forgeries", n.id),
            SETTLE,
            async || {
                let status = n.cluster().await?;
                (status["dropped_messages"].as_u64()? >= 4).then_some(())
            },
        )
        .await;
        state_on(n, "settled", 2).await;
        assert!(n
            .logs()
            .contains("dropping a message without a valid cluster MAC"));
    }
    drop(stranger);
    // Still working: a keyed newcomer joins.
    let c = node_with(&url, "d", "1.0.0", &flags).await;
    state_on(&nodes[0], "settled", 3).await;
    announced_on(&c, "1.0.0", "baseline").await;
}

#[test]
fn a_short_or_missing_cluster_key_stops_startup_naming_the_file() {
    let short = ScratchFile::new("short.key", b"tiny");
    let site = short.path.parent().unwrap().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    for (file, expect) in [
        (short.arg(), "at least 16 bytes"),
        (
            "/nonexistent/cluster.key".to_owned(),
            "/nonexistent/cluster.key",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_version-observer"))
            .args(["--listen", "127.0.0.1:0", "--nats", "nats://127.0.0.1:1"])
            .arg("--site-root")
            .arg(&site)
            .args(["--cluster-key-file", &file])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_new_nodes_release_reaches_the_record_and_the_browsers() {
    let nats = nats().await;
    let url = nats.url();
    let mut old = node(&url, "old-1", "0.1.0").await;
    announced_on(&old, "0.1.0", "baseline").await;
    let flags = [
        "--release-severity",
        "required",
        "--release-notes-url",
        "/releases/1.0.0",
        "--min-supported-version",
        "0.1.0",
    ];
    let new = [
        node_with(&url, "new-1", "1.0.0", &flags).await,
        node_with(&url, "new-2", "1.0.0", &flags).await,
    ];
    old.stop().await.unwrap();
    let want = serde_json::json!({
        "severity": "required",
        "notes_url": "/releases/1.0.0",
        "min_supported": "0.1.0"
    });
    for n in &new {
        let c = announced_on(n, "1.0.0", "announcement").await;
        assert_eq!(c["announced"]["record"]["release"], want, "{c}");
        let report: Value = reqwest::get(n.url("/api/version"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["cluster"]["announced_release"], want, "{report}");
    }
}

/// A retiring monitor hands the lease over, no longer counts (the deploy is
/// announced while it still runs), keeps serving the requests of its old
/// tab's page that other nodes forward, and exits once that tab is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_retiring_monitor_hands_over_does_not_hold_the_cluster_mixed_and_exits_after_its_tabs() {
    let nats = nats().await;
    let url = nats.url();
    let announced = Announcements::watch(&url).await;
    let retire = ["--retire-for", "60s", "--retire-grace", "1s"];
    let mut old = node_with(&url, "old-1", "0.1.0", &retire).await;
    announced_on(&old, "0.1.0", "baseline").await;
    let new = [
        node(&url, "new-1", "1.0.0").await,
        node(&url, "new-2", "1.0.0").await,
    ];
    state_on(&new[0], "mixed", 3).await;
    assert_eq!(leader_of(&[&old, &new[0], &new[1]]).await, "old-1");
    // An old tab, its stream on a new node.
    let tab = reqwest::get(new[0].url("/api/version/events?page=0.1.0"))
        .await
        .unwrap();
    assert_eq!(tab.status(), 200);

    assert!(old.terminate(), "SIGTERM");
    // Announced while it still runs: it no longer counts.
    for n in &new {
        announced_on(n, "1.0.0", "announcement").await;
    }
    assert_eq!(announced.versions(), vec!["1.0.0".to_string()]);
    assert!(old.is_running(), "a retiring node keeps running");
    assert_ne!(leader_of(&[&new[0], &new[1]]).await, "old-1");
    let ready = reqwest::get(old.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let view = new[0].cluster().await.unwrap();
    let member = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "old-1")
        .cloned()
        .expect("old-1 still a member");
    assert_eq!(member["retiring"], true, "{member}");
    assert_eq!(view["state"], "settled", "{view}");
    let m = parse_metrics(&new[0].metrics().await.unwrap());
    assert_eq!(
        metric(&m, "version_observer_retiring_members", None),
        Some(1.0)
    );
    // The old page's request on a new node: rendered by the retiring node.
    let page = reqwest::Client::new()
        .get(new[1].url("/?from-an-old-tab"))
        .header("x-version-observer-page", "0.1.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("old-1"), "{page}");
    // The tab goes: the retiring node exits by itself.
    drop(tab);
    let status = old
        .exited_within(SETTLE)
        .await
        .expect("the retiring node exits once no page needs it");
    assert!(status.success(), "{status:?}");
    announced
        .none_during(Duration::from_secs(2), "the retiring node left")
        .await;
}
