//! A fault-injecting TCP proxy on loopback, in front of one upstream port (a
//! nats-server): clients connect to the proxy's URL, and the test decides
//! whether their bytes get through.
//!
//! - [`ProxyMode::Pass`]: bytes are forwarded both ways;
//! - [`ProxyMode::Closed`]: a partition where the peer's host refuses: every
//!   proxied connection is closed (both sides) at once, and a new one is
//!   accepted and closed straight away, so clients see the drop and fail to
//!   reconnect;
//! - [`ProxyMode::Silent`]: a partition where packets are dropped: every
//!   socket stays open but nothing is forwarded either way (what arrives is
//!   read and discarded), and a new connection is accepted and held without
//!   an upstream; a NATS client notices only by its missing PONGs.
//!
//! A connection that lived through a partition stays dead: once the mode is
//! back to `Pass`, it is closed, and new connections (the clients'
//! reconnections) are forwarded again.
//!
//! The mode lives in a `watch` channel: every connection's two tasks (one per
//! direction) and the accept loop see a change at once. Dropping the proxy
//! stops the accept loop and drops the channel's sender, which closes every
//! proxied connection.

use crate::LabError;
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpListener, TcpStream,
    },
    sync::watch,
    task::JoinHandle,
};

/// What the proxy does with the bytes of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward bytes both ways.
    Pass,
    /// Close every connection, and every new one at once.
    Closed,
    /// Keep every socket open and forward nothing.
    Silent,
}

/// How long the proxy may take to reach its upstream for a new connection.
const CONNECT: Duration = Duration::from_secs(5);

/// A TCP proxy on 127.0.0.1 in front of one upstream port; see the module
/// documentation for its modes. Everything stops when it is dropped.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    state: watch::Sender<State>,
    accept: JoinHandle<()>,
}

/// The mode, and how many partitions (changes to a mode other than `Pass`)
/// there have been: a connection remembers the count it was opened under, so
/// it can tell it has lived through one even if it missed the mode itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    mode: ProxyMode,
    partitions: u64,
}

impl FaultProxy {
    /// A proxy on a port it picks itself, in front of `127.0.0.1:upstream_port`,
    /// in [`ProxyMode::Pass`].
    pub async fn start(upstream_port: u16) -> Result<FaultProxy, LabError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| LabError::io("cannot bind the fault proxy", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| LabError::io("cannot read the fault proxy's port", e))?
            .port();
        let (state, receiver) = watch::channel(State {
            mode: ProxyMode::Pass,
            partitions: 0,
        });
        let accept = tokio::spawn(accept_loop(listener, upstream_port, receiver));
        Ok(FaultProxy {
            port,
            state,
            accept,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Switches the mode; it takes effect at once on existing and new
    /// connections.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.state.send_if_modified(|state| {
            if state.mode == mode {
                return false;
            }
            state.mode = mode;
            if mode != ProxyMode::Pass {
                state.partitions += 1;
            }
            true
        });
    }

    pub fn mode(&self) -> ProxyMode {
        self.state.borrow().mode
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The listener goes with the accept loop; the connections' tasks see
        // the sender (dropped with `self`) gone and close their sockets.
        self.accept.abort();
    }
}

/// What a connection does with the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Forward,
    Discard,
    Close,
}

/// What a connection opened under `born` partitions does in `state`.
fn verdict(born: u64, state: State) -> Verdict {
    match state.mode {
        ProxyMode::Pass if state.partitions == born => Verdict::Forward,
        // Silent since it opened, with nothing else in between (a change the
        // connection did not see counts: `Silent -> Closed -> Silent` closes).
        ProxyMode::Silent if state.partitions == born + 1 => Verdict::Discard,
        // Closed, or it lived through a partition: it stays dead.
        _ => Verdict::Close,
    }
}

async fn accept_loop(listener: TcpListener, upstream: u16, mut state: watch::Receiver<State>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of descriptors, say: back off, then accept again.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let now = *state.borrow_and_update();
        match now.mode {
            ProxyMode::Closed => drop(client),
            ProxyMode::Silent => {
                tokio::spawn(hold(client, state.clone()));
            }
            ProxyMode::Pass => {
                tokio::spawn(forward(client, upstream, state.clone(), now.partitions));
            }
        }
    }
}

/// A connection accepted during a silent partition: read and discarded,
/// never forwarded, and closed when the mode changes (or the proxy goes).
async fn hold(mut client: TcpStream, mut state: watch::Receiver<State>) {
    if state.borrow_and_update().mode != ProxyMode::Silent {
        return; // the partition ended while it was being accepted
    }
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = state.changed() => return,
            read = client.read(&mut buffer) => if matches!(read, Ok(0) | Err(_)) {
                // The client gave up; as with dropped packets, nothing tells
                // anyone until the partition ends.
                let _ = state.changed().await;
                return;
            }
        }
    }
}

/// A connection accepted while passing: connects upstream and runs one task
/// per direction.
async fn forward(client: TcpStream, upstream: u16, state: watch::Receiver<State>, born: u64) {
    let Ok(Ok(server)) =
        tokio::time::timeout(CONNECT, TcpStream::connect(("127.0.0.1", upstream))).await
    else {
        return; // as if the upstream refused: the client sees the close
    };
    if verdict(born, *state.borrow()) != Verdict::Forward {
        return;
    }
    // Small NATS protocol lines go out at once, as they would without a proxy.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::spawn(pump(client_read, server_write, state.clone(), born));
    tokio::spawn(pump(server_read, client_write, state, born));
}

/// One direction of a proxied connection: `from`'s bytes go to `to` while
/// the verdict is to forward, are discarded while it is to discard, and both
/// halves are dropped (closing the sockets, with the other direction) when it
/// is to close or the proxy is dropped.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<State>,
    born: u64,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let now = verdict(born, *state.borrow_and_update());
        if now == Verdict::Close {
            return;
        }
        tokio::select! {
            changed = state.changed() => if changed.is_err() {
                return; // the proxy is gone
            },
            read = from.read(&mut buffer) => {
                let n = match read {
                    Ok(n) if n > 0 => n,
                    _ if now == Verdict::Discard => {
                        // Silence: not even the close gets through. The
                        // connection dies when the partition ends.
                        let _ = state.changed().await;
                        return;
                    }
                    // An end or an error passes through as a close.
                    _ => return,
                };
                let after = verdict(born, *state.borrow_and_update());
                match after {
                    Verdict::Forward => tokio::select! {
                        // A change mid-write drops the rest: the connection
                        // is dead or silent from now on.
                        _ = state.changed() => {}
                        written = to.write_all(&buffer[..n]) => if written.is_err() {
                            return;
                        },
                    },
                    Verdict::Discard => {}
                    Verdict::Close => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(mode: ProxyMode, partitions: u64) -> State {
        State { mode, partitions }
    }

    #[test]
    fn a_connection_forwards_only_while_no_partition_came_since_it_opened() {
        assert_eq!(verdict(0, state(ProxyMode::Pass, 0)), Verdict::Forward);
        assert_eq!(verdict(0, state(ProxyMode::Silent, 1)), Verdict::Discard);
        assert_eq!(verdict(0, state(ProxyMode::Closed, 1)), Verdict::Close);
        assert_eq!(
            verdict(0, state(ProxyMode::Pass, 1)),
            Verdict::Close,
            "back to Pass after a partition: it stays dead"
        );
        assert_eq!(
            verdict(1, state(ProxyMode::Pass, 1)),
            Verdict::Forward,
            "a connection opened after the partition"
        );
        assert_eq!(
            verdict(0, state(ProxyMode::Silent, 3)),
            Verdict::Close,
            "silent again, but it missed a Closed in between"
        );
    }

    #[tokio::test]
    async fn a_partition_is_counted_once_per_change() {
        let proxy = FaultProxy::start(1).await.unwrap();
        assert_eq!(proxy.mode(), ProxyMode::Pass);
        proxy.set_mode(ProxyMode::Pass);
        assert_eq!(proxy.state.borrow().partitions, 0);
        proxy.set_mode(ProxyMode::Silent);
        proxy.set_mode(ProxyMode::Silent);
        assert_eq!(*proxy.state.borrow(), state(ProxyMode::Silent, 1));
        proxy.set_mode(ProxyMode::Closed);
        proxy.set_mode(ProxyMode::Pass);
        assert_eq!(*proxy.state.borrow(), state(ProxyMode::Pass, 2));
        assert_eq!(proxy.mode(), ProxyMode::Pass);
    }
}
