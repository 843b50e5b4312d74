//! The fault proxy in front of a real nats-server: it passes a client's
//! traffic, closes it like a refusing partition, silences it like one that
//! drops packets, and lets clients back in afterwards.

use async_nats::{Client, ConnectOptions, Event};
use futures::StreamExt;
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use vo_lab::{wait, FaultProxy, NatsServer, ProxyMode};

/// Long enough for anything the proxy does at once to show.
const SOON: Duration = Duration::from_secs(5);
/// Long enough for a client's reconnection (its backoff included).
const RECONNECT: Duration = Duration::from_secs(15);

async fn server() -> NatsServer {
    NatsServer::start().await.unwrap_or_else(|e| panic!("{e}"))
}

async fn proxy(nats: &NatsServer) -> FaultProxy {
    FaultProxy::start(nats.port())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A client of `url` whose events arrive on the receiver.
async fn client_with_events(
    url: &str,
    options: ConnectOptions,
) -> (Client, mpsc::UnboundedReceiver<Event>) {
    let (sender, events) = mpsc::unbounded_channel();
    let client = options
        .connection_timeout(Duration::from_secs(1))
        .event_callback(move |event| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(event);
            }
        })
        .connect(url)
        .await
        .expect("connects through the proxy");
    (client, events)
}

/// Waits for `event` among `events` (skipping others), up to `timeout`.
async fn expect_event(
    events: &mut mpsc::UnboundedReceiver<Event>,
    event: Event,
    timeout: Duration,
) {
    let found = tokio::time::timeout(timeout, async {
        while let Some(seen) = events.recv().await {
            if seen == event {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no {event} event within {timeout:?}");
}

/// A responder on `subject`, on a client of the server itself (not proxied).
async fn echo(nats: &NatsServer, subject: &str) -> Client {
    let direct = async_nats::connect(nats.url()).await.expect("connects");
    let mut requests = direct
        .subscribe(subject.to_owned())
        .await
        .expect("subscribes");
    let responder = direct.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let _ = responder.publish(reply, request.payload).await;
            }
        }
    });
    // A client's commands are handled in order: once its own request is
    // answered, the server has its subscription (a flush only writes it).
    round_trip(&direct, subject, "ready").await;
    direct
}

/// A request from `client` to the echo on `subject` comes back.
async fn round_trip(client: &Client, subject: &str, payload: &'static str) {
    let reply = tokio::time::timeout(
        SOON,
        client.request(subject.to_owned(), payload.as_bytes().into()),
    )
    .await
    .expect("a reply in time")
    .expect("a reply");
    assert_eq!(&reply.payload[..], payload.as_bytes());
}

/// A raw TCP connection through the proxy that got the server's `INFO` line.
async fn raw_greeted(proxy: &FaultProxy) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port()))
        .await
        .expect("the proxy accepts");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(SOON, async {
        while !line.ends_with(b"\r\n") {
            stream.read_exact(&mut byte).await.expect("the greeting");
            line.push(byte[0]);
        }
    })
    .await
    .expect("the greeting in time");
    assert!(
        line.starts_with(b"INFO "),
        "{}",
        String::from_utf8_lossy(&line)
    );
    stream
}

/// Whether the peer closes `stream` within `timeout` (an end or an error,
/// after discarding whatever still arrives).
async fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(timeout, async {
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 {
                return;
            }
        }
    })
    .await
    .is_ok()
}

/// Whether nothing at all (no byte, no close) arrives on `stream` for `quiet`.
async fn nothing_arrives(stream: &mut TcpStream, quiet: Duration) -> bool {
    let mut byte = [0u8; 1];
    tokio::time::timeout(quiet, stream.read(&mut byte))
        .await
        .is_err()
}

#[tokio::test]
async fn passing_forwards_both_ways() {
    let nats = server().await;
    let proxy = proxy(&nats).await;
    assert_eq!(proxy.mode(), ProxyMode::Pass);
    assert_ne!(proxy.port(), nats.port());
    assert_eq!(proxy.url(), format!("nats://127.0.0.1:{}", proxy.port()));

    let direct = echo(&nats, "echo").await;
    let proxied = async_nats::connect(proxy.url())
        .await
        .expect("connects through the proxy");
    round_trip(&proxied, "echo", "through the proxy").await;

    // And a publication from the server's side reaches the proxied subscriber.
    let mut news = proxied.subscribe("news").await.expect("subscribes");
    round_trip(&proxied, "echo", "subscribed").await;
    direct
        .publish("news", "hello".into())
        .await
        .expect("publishes");
    let message = tokio::time::timeout(SOON, news.next())
        .await
        .expect("the message in time")
        .expect("a message");
    assert_eq!(&message.payload[..], b"hello");
}

#[tokio::test]
async fn closed_drops_every_connection_and_refuses_new_ones_until_it_passes_again() {
    let nats = server().await;
    let proxy = proxy(&nats).await;
    let _direct = echo(&nats, "echo").await;
    let (client, mut events) = client_with_events(&proxy.url(), ConnectOptions::new()).await;
    let mut raw = raw_greeted(&proxy).await;

    proxy.set_mode(ProxyMode::Closed);
    assert_eq!(proxy.mode(), ProxyMode::Closed);
    expect_event(&mut events, Event::Disconnected, SOON).await;
    assert!(
        closed_within(&mut raw, SOON).await,
        "the open connection is closed"
    );

    // A new connection is accepted and closed at once: no greeting.
    let mut fresh = TcpStream::connect(("127.0.0.1", proxy.port()))
        .await
        .expect("accepted");
    assert!(closed_within(&mut fresh, SOON).await, "closed at once");
    let refused = ConnectOptions::new()
        .connection_timeout(Duration::from_secs(1))
        .connect(proxy.url())
        .await;
    assert!(refused.is_err(), "a new client cannot connect");
    assert_ne!(
        client.connection_state(),
        async_nats::connection::State::Connected
    );

    proxy.set_mode(ProxyMode::Pass);
    expect_event(&mut events, Event::Connected, RECONNECT).await;
    round_trip(&client, "echo", "after the partition").await;
}

#[tokio::test]
async fn silent_keeps_sockets_open_forwards_nothing_and_clients_reconnect_after_it() {
    let nats = server().await;
    let proxy = proxy(&nats).await;
    let _direct = echo(&nats, "echo").await;
    let (client, mut events) = client_with_events(
        &proxy.url(),
        ConnectOptions::new().ping_interval(Duration::from_millis(200)),
    )
    .await;
    round_trip(&client, "echo", "before").await;
    let mut raw = raw_greeted(&proxy).await;

    proxy.set_mode(ProxyMode::Silent);
    assert_eq!(proxy.mode(), ProxyMode::Silent);
    // The client notices by its unanswered pings alone.
    expect_event(&mut events, Event::Disconnected, SOON).await;

    // The older connection is still open: a ping goes in, no pong comes
    // back, and the proxy does not close it.
    raw.write_all(b"PING\r\n")
        .await
        .expect("the socket is open");
    assert!(
        nothing_arrives(&mut raw, Duration::from_millis(500)).await,
        "silence"
    );
    // A new one is accepted and held: no greeting, no close.
    let mut held = TcpStream::connect(("127.0.0.1", proxy.port()))
        .await
        .expect("accepted");
    assert!(
        nothing_arrives(&mut held, Duration::from_millis(500)).await,
        "held in silence"
    );
    held.write_all(b"CONNECT {}\r\n").await.expect("still open");

    proxy.set_mode(ProxyMode::Pass);
    // The connections from the partition stay dead...
    assert!(closed_within(&mut raw, SOON).await, "the old one is closed");
    assert!(
        closed_within(&mut held, SOON).await,
        "the held one is closed"
    );
    // ...and the client comes back on a new one.
    expect_event(&mut events, Event::Connected, RECONNECT).await;
    round_trip(&client, "echo", "after the silence").await;
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections_and_its_port() {
    let nats = server().await;
    let proxy = proxy(&nats).await;
    let port = proxy.port();
    let mut raw = raw_greeted(&proxy).await;

    drop(proxy);
    assert!(
        closed_within(&mut raw, SOON).await,
        "the connection is closed"
    );
    wait::eventually("the proxy's port to refuse", SOON, async || {
        TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}
