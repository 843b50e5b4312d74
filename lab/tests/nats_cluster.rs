//! A cluster of nats-servers with JetStream: an R3 bucket survives a
//! crashed server, which rejoins when restarted; everything dies with it.

use async_nats::{jetstream, ConnectOptions};
use std::time::Duration;
use tokio::net::TcpStream;
use vo_lab::{wait, NatsCluster};

/// Long enough for a new stream leader to be elected, or a restarted server
/// to catch up.
const CONVERGE: Duration = Duration::from_secs(30);

/// A bucket handle through a client that knows only `url`.
async fn bucket(url: &str, name: &str) -> jetstream::kv::Store {
    let client = ConnectOptions::new()
        .ignore_discovered_servers()
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    assert!(
        client.server_info().connect_urls.is_empty(),
        "the servers do not advertise each other"
    );
    jetstream::new(client)
        .get_key_value(name)
        .await
        .unwrap_or_else(|e| panic!("no bucket {name} through {url}: {e}"))
}

/// Waits until `key` reads `value` through `kv`.
async fn reads(kv: &jetstream::kv::Store, key: &str, value: &str, cluster: &NatsCluster) {
    wait::eventually(&format!("{key} = {value}"), CONVERGE, async || {
        let got = kv.get(key).await.ok().flatten()?;
        (&got[..] == value.as_bytes()).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", all_logs(cluster)));
}

/// Writes `value` to `key` through `kv`, retrying while the stream has no
/// leader.
async fn writes(kv: &jetstream::kv::Store, key: &str, value: &str, cluster: &NatsCluster) {
    wait::eventually(&format!("a put of {key} = {value}"), CONVERGE, async || {
        kv.put(key, value.to_owned().into()).await.ok().map(|_| ())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", all_logs(cluster)));
}

fn all_logs(cluster: &NatsCluster) -> String {
    (0..cluster.len())
        .map(|i| format!("--- server {i}:\n{}", cluster.logs(i)))
        .collect()
}

#[tokio::test]
async fn an_r3_bucket_survives_a_crash_and_the_server_rejoins() {
    let mut cluster = NatsCluster::start(3)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cluster.len(), 3);
    let urls = cluster.urls();
    assert_eq!(cluster.url(), urls.join(","));
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(url, &format!("nats://127.0.0.1:{}", cluster.port(i)));
    }
    let mut ports: Vec<u16> = (0..3).map(|i| cluster.port(i)).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "each server has its own port");

    let client = async_nats::connect(&urls[0]).await.expect("connects");
    let kv0 = jetstream::new(client)
        .create_key_value(jetstream::kv::Config {
            bucket: "lab_cluster".into(),
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .expect("an R3 bucket");
    // A new R3 stream may still be electing its leader: the first put polls too.
    writes(&kv0, "key", "one", &cluster).await;
    let kv2 = bucket(&urls[2], "lab_cluster").await;
    reads(&kv2, "key", "one", &cluster).await;

    // A crash: two of three is still a quorum.
    cluster.kill(1).await;
    assert!(
        TcpStream::connect(("127.0.0.1", cluster.port(1)))
            .await
            .is_err(),
        "server 1 is down"
    );
    writes(&kv0, "key", "two", &cluster).await;
    reads(&kv2, "key", "two", &cluster).await;
    writes(&kv2, "other", "written through 2", &cluster).await;
    reads(&kv0, "other", "written through 2", &cluster).await;

    // Back on the same port and store, it catches up.
    cluster
        .restart(1)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(1)));
    assert_eq!(cluster.urls(), urls, "the same ports after a restart");
    let kv1 = wait::eventually("the bucket through server 1", CONVERGE, async || {
        let client = ConnectOptions::new()
            .ignore_discovered_servers()
            .connect(&urls[1])
            .await
            .ok()?;
        jetstream::new(client)
            .get_key_value("lab_cluster")
            .await
            .ok()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", all_logs(&cluster)));
    reads(&kv1, "key", "two", &cluster).await;
    reads(&kv1, "other", "written through 2", &cluster).await;
    assert_eq!(
        cluster.logs(1).matches("Starting nats-server").count(),
        2,
        "server 1's log covers both runs"
    );
}

#[tokio::test]
async fn dropping_the_cluster_kills_every_server() {
    let cluster = NatsCluster::start(2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ports: Vec<u16> = (0..cluster.len()).map(|i| cluster.port(i)).collect();
    drop(cluster);
    for port in ports {
        wait::eventually(
            "a server's port to refuse",
            Duration::from_secs(10),
            async || {
                TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_err()
                    .then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test]
async fn a_cluster_of_one_is_a_plain_jetstream_server() {
    let cluster = NatsCluster::start(1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cluster.len(), 1);
    assert_eq!(cluster.url(), cluster.urls()[0]);
    let client = async_nats::connect(cluster.url()).await.expect("connects");
    let kv = jetstream::new(client)
        .create_key_value(jetstream::kv::Config {
            bucket: "lab_single".into(),
            ..Default::default()
        })
        .await
        .expect("a bucket");
    kv.put("key", "value".into()).await.expect("a put");
}

#[tokio::test]
async fn a_whole_cluster_comes_back_on_its_stores() {
    let mut cluster = NatsCluster::start(3)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = async_nats::connect(&cluster.urls()[0])
        .await
        .expect("connects");
    let kv = jetstream::new(client)
        .create_key_value(jetstream::kv::Config {
            bucket: "lab_stores".into(),
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .expect("an R3 bucket");
    kv.put("key", "stored".into()).await.expect("a put");

    for i in 0..3 {
        cluster.kill(i).await;
    }
    for i in 0..3 {
        cluster
            .restart(i)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(i)));
    }
    // Nothing but the stores kept the bucket.
    for url in cluster.urls() {
        let kv = wait::eventually("the bucket after a full restart", CONVERGE, async || {
            let client = ConnectOptions::new()
                .ignore_discovered_servers()
                .connect(&url)
                .await
                .ok()?;
            jetstream::new(client)
                .get_key_value("lab_stores")
                .await
                .ok()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", all_logs(&cluster)));
        reads(&kv, "key", "stored", &cluster).await;
    }
}
