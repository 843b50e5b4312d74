//! The node's listener: version streams on new connections are served here,
//! lean; every other connection goes to axum.
//!
//! Why: a version stream stays open for days and sends a few hundred bytes a
//! day. hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for every
//! HTTP/1.1 connection for as long as it is open (its minimum), which would be
//! most of what an open stream costs. So for each new connection the listener
//! looks at the first request line without consuming it (`peek`): if it is
//! `GET /api/version/events`, the node answers it itself, holding only the
//! socket and two receivers (reports, keep-alive ticks); anything else is handed to axum
//! untouched. A stream asked for on a connection that already carried other
//! requests still works, through axum ([`super::sse::version_events`]); both
//! send the same bytes.
//!
//! The lean response is `HTTP/1.1 200` with the stream's headers and
//! `connection: close`: the body runs until either side closes, so no
//! chunked framing is needed.

use super::sse;
use crate::hub::VersionHub;
use futures::StreamExt;
use std::{io, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The request line prefix of a version stream.
const STREAM_REQUEST: &[u8] = b"GET /api/version/events";
/// How long a new connection may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head the lean path reads.
const MAX_HEAD: usize = 8 * 1024;

/// What the lean streams need from the node.
#[derive(Clone)]
pub struct StreamContext {
    pub hub: Arc<VersionHub>,
    pub slots: Arc<Semaphore>,
    /// Cancelled when the node stops: ends every stream.
    pub stop: CancellationToken,
    /// Every lean stream's task, so shutdown can wait for them.
    pub tasks: TaskTracker,
}

/// Accepts connections; serves version streams, passes the rest to axum.
pub struct StreamListener {
    tcp: TcpListener,
    context: StreamContext,
    others_tx: mpsc::Sender<(TcpStream, SocketAddr)>,
    others: mpsc::Receiver<(TcpStream, SocketAddr)>,
}

impl StreamListener {
    pub fn new(tcp: TcpListener, context: StreamContext) -> Self {
        let (others_tx, others) = mpsc::channel(1024);
        Self {
            tcp,
            context,
            others_tx,
            others,
        }
    }
}

impl axum::serve::Listener for StreamListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            tokio::select! {
                Some(other) = self.others.recv() => return other,
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        // Version events are small writes: send each at once.
                        if let Err(e) = tcp.set_nodelay(true) {
                            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                        }
                        let (context, others) = (self.context.clone(), self.others_tx.clone());
                        self.context.tasks.spawn(async move {
                            let stream = tokio::select! {
                                // A connection still silent when the node stops
                                // must not hold the shutdown up.
                                _ = context.stop.cancelled() => return,
                                stream = is_version_stream(&tcp) => stream,
                            };
                            if stream {
                                serve_stream(tcp, context).await;
                            } else {
                                let _ = others.send((tcp, addr)).await;
                            }
                        });
                    }
                    Err(e) => accept_failed(e).await,
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Like axum's own listener: a connection that failed on its way in is
/// nobody's problem; anything else (e.g. out of file descriptors) is logged
/// and waited out, rather than retried in a tight loop.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection; pausing for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Whether the first request on `tcp` is a version stream, judged on its
/// first bytes (peeked: nothing is consumed, so axum reads them as usual).
async fn is_version_stream(tcp: &TcpStream) -> bool {
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let mut start = [0u8; 32];
    loop {
        let peeked = tokio::time::timeout_at(deadline, tcp.peek(&mut start)).await;
        let Ok(Ok(n)) = peeked else {
            return false;
        };
        match classify(&start[..n]) {
            Some(verdict) => return verdict,
            // Only part of the request line so far: wait a little for the rest.
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await // peek does not wait for *more* bytes
            }
            None => return false,
        }
    }
}

/// `Some(true)`: a version stream; `Some(false)`: something else; `None`: too
/// few bytes to tell (an empty read means closed: something else).
fn classify(start: &[u8]) -> Option<bool> {
    if start.is_empty() {
        return Some(false);
    }
    let known = start.len().min(STREAM_REQUEST.len());
    if start[..known] != STREAM_REQUEST[..known] {
        return Some(false);
    }
    match start.get(STREAM_REQUEST.len()) {
        Some(b' ') | Some(b'?') => Some(true),
        Some(_) => Some(false),
        None => None,
    }
}

/// Why a lean request was not served.
#[derive(Debug, PartialEq, Eq)]
enum BadRequest {
    TooLarge,
    Malformed,
}

/// Checks a request head (everything up to the blank line).
fn check_head(head: &[u8]) -> Result<(), BadRequest> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(BadRequest::Malformed)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| BadRequest::Malformed)?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some("HTTP/1.1" | "HTTP/1.0"), None)
            if target == "/api/version/events" || target.starts_with("/api/version/events?") =>
        {
            Ok(())
        }
        _ => Err(BadRequest::Malformed),
    }
}

/// Reads the request head, up to and including the blank line.
async fn read_head(tcp: &mut TcpStream) -> Result<(), BadRequest> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let read = async {
        loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                return check_head(&head[..end + 2]);
            }
            if head.len() >= MAX_HEAD {
                return Err(BadRequest::TooLarge);
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(BadRequest::Malformed),
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .unwrap_or(Err(BadRequest::Malformed))
}

const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nx-accel-buffering: no\r\nconnection: close\r\n\r\n";
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 26\r\nconnection: close\r\n\r\noverloaded, retry shortly\n";
const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// One lean version stream, from request to close.
async fn serve_stream(mut tcp: TcpStream, context: StreamContext) {
    if let Err(bad) = read_head(&mut tcp).await {
        let answer = if bad == BadRequest::TooLarge {
            TOO_LARGE
        } else {
            BAD
        };
        let _ = tcp.write_all(answer).await;
        return;
    }
    let Ok(_slot) = context.slots.clone().try_acquire_owned() else {
        tracing::warn!("refusing a version stream: --max-streams reached");
        let _ = tcp.write_all(BUSY).await;
        return;
    };
    if tcp.write_all(OK_HEAD).await.is_err() {
        return;
    }
    let mut events = std::pin::pin!(sse::events(&context.hub, context.stop.clone()));
    let mut ignored = [0u8; 64];
    loop {
        tokio::select! {
            next = events.next() => {
                let Some(bytes) = next else { break };
                tokio::select! {
                    written = tcp.write_all(&bytes) => if written.is_err() { break },
                    // A client that stopped reading must not hold up shutdown.
                    _ = context.stop.cancelled() => break,
                }
            }
            // The client sends nothing after its request: a read that
            // returns means it closed (or misbehaves).
            read = tcp.read(&mut ignored) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    let _ = tcp.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_decide() {
        assert_eq!(
            classify(b"GET /api/version/events HTTP/1.1\r\n"),
            Some(true)
        );
        assert_eq!(
            classify(b"GET /api/version/events?x=1 HTTP/1.1"),
            Some(true)
        );
        assert_eq!(classify(b"GET /api/version/eventsX HTTP/1.1"), Some(false));
        assert_eq!(classify(b"GET /api/version HTTP/1.1\r\n\r\n"), Some(false));
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(classify(b"POST /api/version/events HTTP/1.1"), Some(false));
        assert_eq!(classify(b"\x16\x03\x01"), Some(false), "TLS is not ours");
        assert_eq!(classify(b""), Some(false), "closed before a byte");
        // Not enough yet: wait for more.
        assert_eq!(classify(b"GET /api/ver"), None);
        assert_eq!(classify(b"GET /api/version/events"), None);
    }

    #[test]
    fn request_heads_are_checked() {
        let ok = b"GET /api/version/events HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(check_head(ok), Ok(()));
        assert_eq!(
            check_head(b"GET /api/version/events?since=3 HTTP/1.0\r\n"),
            Ok(())
        );
        for bad in [
            &b"GET /api/version/events HTTP/2\r\n"[..],
            b"GET /api/version/events  HTTP/1.1\r\n",
            b"GET /api/version/events HTTP/1.1 extra\r\n",
            b"GET /api/version/eventsX HTTP/1.1\r\n",
            b"GET /api/version/events HTTP/1.1",
            b"\xff\xfe\r\n",
        ] {
            assert_eq!(check_head(bad), Err(BadRequest::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn canned_responses_are_well_formed() {
        let busy = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = busy.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{busy}"
        );
        for response in [OK_HEAD, BAD, TOO_LARGE] {
            assert!(response.ends_with(b"\r\n\r\n"));
            assert!(response.starts_with(b"HTTP/1.1 "));
        }
    }
}
