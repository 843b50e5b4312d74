//! Every documented way to reach a NATS that demands credentials, each
//! against a real nats-server configured for it: a user and password in the
//! URL, a token in the URL, a credentials file (operator mode: JWT + NKey),
//! and `tls://` with a private CA. A wrong credential is one clear start-up
//! error naming the server and never the secret. And the NATS permissions
//! the README documents: a node gets what it needs, and a user without them
//! cannot speak for the cluster.

use crate::support::{
    cluster::{eventually, names, node_with, NodeProcess, ScratchFile, CLUSTER},
    DEADLINE,
};
use std::{process::Command, time::Duration};
use version_observer::core::protocol::{
    encode, Presence, PresenceKind, SettledNotice, SettledRecord,
};
use vo_lab::{
    credentials::{OperatorMode, TlsFiles},
    NatsOptions, NatsServer,
};

pub(crate) async fn nats_with(config: String) -> NatsServer {
    NatsServer::start_with_options(NatsOptions {
        config: Some(config),
        ..NatsOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `url` with `userinfo@` put after the scheme.
pub(crate) fn with_userinfo(url: &str, userinfo: &str) -> String {
    url.replacen("://", &format!("://{userinfo}@"), 1)
}

/// The node has connected, and its cluster recorded a baseline (so its KV
/// calls work under these credentials too).
async fn works(node: &NodeProcess) {
    eventually(
        &format!("{} to record a baseline", node.id),
        DEADLINE * 2,
        async || {
            let status = node.cluster().await?;
            (status["connected"] == true && status["announced"]["record"]["kind"] == "baseline")
                .then_some(())
        },
    )
    .await;
}

/// Runs the node binary until it exits on its own (or the deadline); its
/// exit code and stderr.
fn refused(nats_url: &str, extra: &[&str]) -> (i32, String) {
    let site = ScratchFile::new("pkg/.keep", b"");
    let mut child = Command::new(env!("CARGO_BIN_EXE_version-observer"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--nats",
            nats_url,
            "--cluster",
            CLUSTER,
        ])
        .arg("--site-root")
        .arg(site.path.parent().unwrap().parent().unwrap())
        .args(extra)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code().unwrap_or(-1), stderr);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node kept running with refused credentials");
        }
        std::thread::sleep(Duration::from_millis(50)); // polling a process, not waiting for a condition
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_and_password_in_the_url() {
    let nats = nats_with("authorization { user: node, password: \"s3cr3t-pass\" }\n".into()).await;
    let good = with_userinfo(&nats.url(), "node:s3cr3t-pass");
    works(&node_with(&good, "a", "1.0.0", &[]).await).await;

    let (code, stderr) = refused(&with_userinfo(&nats.url(), "node:wrong-pass"), &[]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("refused this node's credentials"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", nats.port())),
        "names the server: {stderr}"
    );
    assert!(
        !stderr.contains("wrong-pass"),
        "the secret leaked: {stderr}"
    );
    assert!(
        stderr.lines().count() < 20,
        "one clear error, not a retry log: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_in_the_url() {
    let nats = nats_with("authorization { token: \"t0ken-abc\" }\n".into()).await;
    let good = with_userinfo(&nats.url(), "t0ken-abc");
    works(&node_with(&good, "a", "1.0.0", &[]).await).await;
    let (code, stderr) = refused(&with_userinfo(&nats.url(), "bad-token"), &[]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("refused this node's credentials"),
        "{stderr}"
    );
    assert!(!stderr.contains("bad-token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credentials_file_in_operator_mode() {
    let mode = OperatorMode::new().unwrap();
    let nats = nats_with(mode.server_config.clone()).await;
    let creds = ScratchFile::new("node.creds", mode.user_creds.as_bytes());
    works(&node_with(&nats.url(), "a", "1.0.0", &["--nats-creds", &creds.arg()]).await).await;
    // Without it, the same server refuses the node.
    let (code, stderr) = refused(&nats.url(), &[]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("refused this node's credentials"),
        "{stderr}"
    );
    // Credentials from another operator are refused too.
    let stranger = OperatorMode::new().unwrap();
    let other = ScratchFile::new("other.creds", stranger.user_creds.as_bytes());
    let (code, stderr) = refused(&nats.url(), &["--nats-creds", &other.arg()]);
    assert_ne!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_private_ca() {
    let dir = ScratchFile::new("readme", b"");
    let tls = TlsFiles::new(dir.path.parent().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let nats = nats_with(tls.server_config()).await;
    let url = nats.url().replacen("nats://", "tls://", 1);
    let ca = tls.ca.display().to_string();
    works(&node_with(&url, "a", "1.0.0", &["--nats-ca", &ca]).await).await;
    // Without the CA the server's certificate is not trusted: a clear error.
    let (code, stderr) = refused(&url, &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("cannot use NATS"), "{stderr}");
}

/// The README's node permissions (for its cluster `shop`, here `test`), and
/// a user that may only publish elsewhere.
pub(crate) fn permissions_config() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README");
    let start = readme
        .find("{ user: shop-node,")
        .expect("the README's node permissions");
    let block = &readme[start..];
    let block = &block[..block.find("```").unwrap()];
    let node = block
        .replace("shop-node", "node")
        .replace("\"...\"", "nodepass")
        .replace("vo.shop.", &format!("vo.{CLUSTER}."))
        .replace("vo-fwd.shop.", &format!("vo-fwd.{CLUSTER}."))
        .replace("vo_shop", &format!("vo_{CLUSTER}"));
    format!(
        "authorization {{\n  users = [\n{node}\n    {{ user: outsider, password: outpass, permissions: {{\n        publish: [\"public.>\"]\n        subscribe: [\"vo.{CLUSTER}.>\", \"_INBOX.>\"] }} }}\n  ]\n}}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_permissions_let_nodes_coordinate_and_stop_anyone_else_from_announcing() {
    let nats = nats_with(permissions_config()).await;
    let url = with_userinfo(&nats.url(), "node:nodepass");
    let nodes = [
        node_with(&url, "a", "1.0.0", &[]).await,
        node_with(&url, "b", "1.0.0", &[]).await,
    ];
    for n in &nodes {
        works(n).await;
    }
    // The outsider can listen, but what it publishes on the cluster's
    // subjects never reaches anyone.
    // A node-permitted watcher on the cluster's subjects, to see what gets through.
    let watcher =
        async_nats::ConnectOptions::with_user_and_password("node".into(), "nodepass".into())
            .connect(nats.url())
            .await
            .unwrap();
    let mut seen = watcher.subscribe(format!("vo.{CLUSTER}.>")).await.unwrap();
    let marker = "_INBOX.test-marker";
    let mut markers = watcher.subscribe(marker).await.unwrap();
    watcher.flush().await.unwrap();
    let (violations_tx, mut violations) = tokio::sync::mpsc::unbounded_channel();
    let outsider =
        async_nats::ConnectOptions::with_user_and_password("outsider".into(), "outpass".into())
            .event_callback(move |event| {
                let tx = violations_tx.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        let _ = tx.send(e.to_string());
                    }
                }
            })
            .connect(nats.url())
            .await
            .unwrap();
    let names = names();
    let forged = SettledNotice {
        revision: 1_000,
        record: SettledRecord {
            version: "9.0.0".parse().unwrap(),
            previous: Some("1.0.0".parse().unwrap()),
            kind: version_observer::core::protocol::RecordKind::Announcement,
            fence: 0,
            leader: "outsider".into(),
            at_ms: 0,
            release: None,
        },
    };
    let intruder = Presence {
        id: "outsider".into(),
        version: "0.1.0".parse().unwrap(),
        incarnation: 1,
        leader: false,
        tabs: Default::default(),
        retiring: false,
    };
    let _ = outsider.publish(names.announce(), encode(&forged)).await;
    let _ = outsider.publish(names.settled(), encode(&forged)).await;
    let _ = outsider
        .publish(names.presence(PresenceKind::Up), encode(&intruder))
        .await;
    let _ = outsider.flush().await;
    // The server refused every one of them...
    for _ in 0..3 {
        let e = tokio::time::timeout(DEADLINE, violations.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(e.to_lowercase().contains("permissions violation"), "{e}");
    }
    // ...and relayed none: nothing of theirs reaches the watcher before a
    // marker sent after them (one connection delivers in order).
    watcher.publish(marker, "x".into()).await.unwrap();
    loop {
        tokio::select! {
            biased;
            message = futures::StreamExt::next(&mut seen) => {
                let text = String::from_utf8_lossy(&message.unwrap().payload).into_owned();
                assert!(!text.contains("outsider"), "a forged message got through: {text}");
            }
            _ = futures::StreamExt::next(&mut markers) => break,
            _ = tokio::time::sleep(DEADLINE) => panic!("the marker never came"),
        }
    }
    // A marker the nodes do see: a node joining after the forgeries were sent.
    let c = node_with(&url, "c", "1.0.0", &[]).await;
    works(&c).await;
    for n in &nodes {
        // Once they see c, they would have seen the earlier forgeries too.
        eventually(&format!("{} to see c", n.id), DEADLINE, async || {
            let status = n.cluster().await?;
            (status["members"].as_array()?.len() == 3).then_some(())
        })
        .await;
        let status = n.cluster().await.unwrap();
        assert_eq!(status["dropped_messages"], 0, "nothing reached {}", n.id);
        assert_eq!(status["announced"]["record"]["version"], "1.0.0");
        let ids: Vec<_> = status["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].clone())
            .collect();
        assert!(!ids.contains(&"outsider".into()), "{status}");
    }
}
