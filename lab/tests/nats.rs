//! nats-server picks its own ports, and a restart comes back on them with
//! its JetStream store.

use std::time::Duration;
use vo_lab::{wait, NatsServer};

#[tokio::test]
async fn nats_picks_its_port_and_a_restart_keeps_it_and_the_store() {
    let mut nats = NatsServer::start_with(true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = nats.url();
    assert_ne!(nats.port(), 0);
    assert_eq!(url, format!("nats://127.0.0.1:{}", nats.port()));
    let monitoring = nats.monitoring_url().expect("monitoring was asked for");
    let varz: serde_json::Value = reqwest::get(format!("{monitoring}/varz"))
        .await
        .and_then(|r| r.error_for_status())
        .expect("/varz answers")
        .json()
        .await
        .expect("/varz is JSON");
    assert_eq!(varz["port"].as_u64(), Some(nats.port().into()), "{varz}");

    let client = async_nats::connect(&url).await.expect("connects");
    let js = async_nats::jetstream::new(client.clone());
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "lab_test".into(),
            ..Default::default()
        })
        .await
        .expect("a bucket");
    kv.put("key", "kept".into()).await.expect("a put");

    nats.restart().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nats.url(), url, "the same port after a restart");
    assert_eq!(nats.monitoring_url().as_deref(), Some(monitoring.as_str()));

    // The client reconnects by itself, and the store survived.
    let value = wait::eventually(
        "the value after the restart",
        Duration::from_secs(15),
        async || kv.get("key").await.ok().flatten(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", nats.logs()));
    assert_eq!(&value[..], b"kept");
}

#[tokio::test]
async fn two_servers_get_two_ports() {
    let (a, b) = tokio::join!(NatsServer::start(), NatsServer::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.port(), b.port());
    assert_eq!(a.monitoring_url(), None);
}
