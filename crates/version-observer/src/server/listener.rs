//! The observer's listener ([`StreamListener`]): version streams on new
//! connections are served here, lean; every other connection goes to axum.
//! Once a lean stream has its first event, the hub writes to its socket
//! directly (`fanout`). A stream asked for on a connection that already
//! carried other requests still works, through axum
//! (`sse::version_events`); both send the same bytes.

use super::{
    fanout::{Item, LeanConn},
    sse,
    streams::Streams,
};
use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{mpsc, Semaphore},
};
use version_observer_core::stream_request::{
    check_head, classify, head_query, page_version, BadRequest, MAX_HEAD,
};

use version_observer_core::timing::http::{
    ACCEPT_ERROR_PAUSE, REFUSE_WAIT, REQUEST_TIMEOUT, WRITE_TIMEOUT,
};
/// Connections whose first bytes are awaited at once ([`StreamListener`]'s
/// docs give the number).
pub(crate) const MAX_CLASSIFYING: usize = 4_096;

/// A TCP listener that serves version streams itself. Made by
/// [`VersionObserver::listener`](crate::VersionObserver::listener) and
/// handed to `axum::serve`.
///
/// Why: a version stream stays open for days and sends a few hundred bytes a
/// day. hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for every
/// HTTP/1.1 connection for as long as it is open (its minimum), which would be
/// most of what an open stream costs. So for each new connection the listener
/// reads the first bytes of the request line: if it is
/// `GET /api/version/events`, the observer answers it itself, holding only the
/// socket and two receivers (reports, keep-alive ticks); anything else is
/// handed to axum with the bytes already read replayed in front of the socket
/// (a [`Connection`]). A stream asked for on a connection that already
/// carried other requests still works, through axum; both send the same
/// bytes.
///
/// Reading never polls: each read waits for the socket, and a connection
/// that sends nothing useful within
/// [`REQUEST_TIMEOUT`](crate::core::timing::http::REQUEST_TIMEOUT) is
/// closed. At most 4,096 connections are read this way at once; beyond that
/// a new connection goes to axum unread.
///
/// A connection handed to axum that passes no byte either way for the
/// observer's idle timeout
/// ([`ObserverBuilder::idle_timeout`](crate::ObserverBuilder::idle_timeout):
/// [`DEFAULT_IDLE_TIMEOUT`](crate::ObserverBuilder::DEFAULT_IDLE_TIMEOUT) by
/// default, or twice the keep-alive interval, if that is longer) is closed:
/// axum's own server keeps an idle keep-alive connection open for ever, so
/// connections that send one request and then wait would otherwise hold
/// their file descriptors until the node runs out.
///
/// The lean response is `HTTP/1.1 200` with the stream's headers and
/// `connection: close`: the body runs until either side closes, so no
/// chunked framing is needed.
pub struct StreamListener {
    tcp: TcpListener,
    streams: Arc<Streams>,
    /// A descriptor kept open to be given up when the process runs out, so
    /// a waiting connection can still be accepted and refused cleanly.
    spare: Option<std::fs::File>,
    classifying: Arc<Semaphore>,
    others_tx: mpsc::Sender<(Connection, SocketAddr)>,
    others: mpsc::Receiver<(Connection, SocketAddr)>,
}

impl StreamListener {
    pub(crate) fn new(tcp: TcpListener, streams: Arc<Streams>) -> Self {
        let (others_tx, others) = mpsc::channel(1024);
        // Requests forwarded to this node reach the router through here.
        streams.offer_local_connections(super::forward::LocalConnections {
            accept: others_tx.clone(),
            idle_timeout: streams.idle_timeout,
        });
        Self {
            tcp,
            streams,
            spare: std::fs::File::open("/dev/null").ok(),
            classifying: Arc::new(Semaphore::new(MAX_CLASSIFYING)),
            others_tx,
            others,
        }
    }
}

impl std::fmt::Debug for StreamListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamListener")
            .field("local_addr", &self.tcp.local_addr().ok())
            .field(
                "classifying",
                &(MAX_CLASSIFYING - self.classifying.available_permits()),
            )
            .finish_non_exhaustive()
    }
}

impl axum::serve::Listener for StreamListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            tokio::select! {
                Some(other) = self.others.recv() => return other,
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        // Version events are small writes: send each at once.
                        if let Err(e) = tcp.set_nodelay(true) {
                            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                        }
                        let idle = self.streams.idle_timeout;
                        let Ok(permit) = self.classifying.clone().try_acquire_owned() else {
                            return (Connection::new(Vec::new(), tcp, idle), addr);
                        };
                        let (streams, others) = (self.streams.clone(), self.others_tx.clone());
                        self.streams.tasks.spawn(async move {
                            let first = tokio::select! {
                                // A connection still silent when the node stops
                                // must not hold the shutdown up.
                                _ = streams.stopped.cancelled() => return,
                                first = read_start(tcp) => first,
                            };
                            drop(permit);
                            match first {
                                Some((tcp, start, true)) => serve_stream(tcp, start, &streams).await,
                                Some((tcp, start, false)) => {
                                    let _ = others.send((Connection::new(start, tcp, idle), addr)).await;
                                }
                                None => {}
                            }
                        });
                    }
                    Err(e) => self.accept_failed(e).await,
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A connection [`StreamListener`] hands to axum (its
/// [`Listener::Io`](axum::serve::Listener::Io)): the bytes the listener read
/// first, then the socket; closed (an end of file for axum) once it has
/// passed no byte either way for its idle timeout.
///
/// Nothing to build or call: it is named for code that is generic over
/// axum's listeners, e.g. a `ListenerExt::tap_io` callback.
pub struct Connection {
    prefix: Vec<u8>,
    at: usize,
    tcp: Io,
    idle_timeout: Duration,
    /// The last byte read or written.
    active_at: tokio::time::Instant,
    /// Wakes the reader to look at `active_at` again; moved on lazily, only
    /// when it fires, so activity costs no timer update.
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Connection");
        match &self.tcp {
            Io::Tcp(tcp) => d.field("peer_addr", &tcp.peer_addr().ok()),
            Io::Local(_) => d.field("peer_addr", &"in-process (a forwarded request)"),
        };
        d.field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// What a [`Connection`] reads and writes: a socket, or the in-process
/// end of a forwarded request ([`super::forward`]).
enum Io {
    Tcp(TcpStream),
    Local(tokio::io::DuplexStream),
}

macro_rules! delegate {
    ($io:expr, $inner:ident => $call:expr) => {
        match $io {
            Io::Tcp($inner) => $call,
            Io::Local($inner) => $call,
        }
    };
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self.get_mut(), io => Pin::new(io).poll_read(cx, buf))
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self.get_mut(), io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self.get_mut(), io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self.get_mut(), io => Pin::new(io).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self.get_mut(), io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        delegate!(self, io => io.is_write_vectored())
    }
}

impl Connection {
    fn new(prefix: Vec<u8>, tcp: TcpStream, idle_timeout: Duration) -> Self {
        Self::with_io(prefix, Io::Tcp(tcp), idle_timeout)
    }

    /// An in-process connection: a forwarded request to this node's router.
    pub(crate) fn local(io: tokio::io::DuplexStream, idle_timeout: Duration) -> Self {
        Self::with_io(Vec::new(), Io::Local(io), idle_timeout)
    }

    fn with_io(prefix: Vec<u8>, tcp: Io, idle_timeout: Duration) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            prefix,
            at: 0,
            tcp,
            idle_timeout,
            active_at: now,
            idle: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
        }
    }

    /// Whether the connection has been idle for its whole timeout; if not,
    /// the timer is moved to when it could be (and registered with `cx`).
    fn idle_for_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.active_at + self.idle_timeout;
            if tokio::time::Instant::now() >= deadline {
                return true;
            }
            self.idle.as_mut().reset(deadline);
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.active_at = tokio::time::Instant::now();
                Poll::Ready(Ok(()))
            }
            // Idle for too long: an end of file, and axum closes it.
            Poll::Pending if this.idle_for_too_long(cx) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.active_at = tokio::time::Instant::now();
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.active_at = tokio::time::Instant::now();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

impl StreamListener {
    /// A connection that failed on its way in is nobody's problem. Out of
    /// file descriptors, the waiting connection is refused at once with a
    /// 503 (using the descriptor kept spare for this), so clients hear
    /// "busy" instead of hanging in the backlog, and the loop goes on; other
    /// errors are logged and waited out briefly.
    async fn accept_failed(&mut self, e: io::Error) {
        use io::ErrorKind::*;
        if matches!(
            e.kind(),
            ConnectionRefused | ConnectionAborted | ConnectionReset
        ) {
            return;
        }
        let out_of_descriptors = matches!(
            e.raw_os_error(),
            Some(libc_emfile::EMFILE | libc_emfile::ENFILE)
        );
        if out_of_descriptors {
            if let Some(refused) = self.streams.refused_open_files.bump() {
                tracing::warn!(
                    refused,
                    "out of file descriptors: refusing connections with 503"
                );
            }
            self.spare = None;
            if let Ok(Ok((tcp, _))) = tokio::time::timeout(REFUSE_WAIT, self.tcp.accept()).await {
                let _ = tcp.try_write(BUSY);
            }
            self.spare = std::fs::File::open("/dev/null").ok();
            return;
        }
        tracing::error!(error = %e, "cannot accept a connection; pausing for 100 ms");
        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
    }
}

/// The two errors that mean "no file descriptor left" (Linux values; the
/// crate serves on Unix).
mod libc_emfile {
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
}

/// Reads until the first bytes tell whether this is a version stream;
/// returns the socket, the bytes read, and the verdict. `None`: closed, or
/// silent past the timeout.
async fn read_start(mut tcp: TcpStream) -> Option<(TcpStream, Vec<u8>, bool)> {
    let mut start = Vec::with_capacity(64);
    let read = async {
        let mut chunk = [0u8; 512];
        loop {
            if let Some(verdict) = classify(&start) {
                return Some(verdict);
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => start.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let verdict = tokio::time::timeout(REQUEST_TIMEOUT, read).await.ok()??;
    Some((tcp, start, verdict))
}

/// Reads the rest of the request head, after the `start` already read.
/// Returns the page version the request names, if any.
async fn read_head(
    tcp: &mut TcpStream,
    mut head: Vec<u8>,
) -> Result<Option<semver::Version>, BadRequest> {
    let mut chunk = [0u8; 512];
    let read = async {
        loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = &head[..end + 2];
                check_head(head)?;
                return Ok(head_query(head).and_then(page_version));
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

/// One lean version stream, from request to close. The stream's task writes
/// the head and the first event, then only reads (to notice the client
/// leave) and writes a backlog when there is one: changes and keep-alives are
/// written by the hub's task (`super::fanout`).
async fn serve_stream(mut tcp: TcpStream, start: Vec<u8>, streams: &Streams) {
    let page = match read_head(&mut tcp, start).await {
        Ok(page) => page,
        Err(bad) => {
            let answer = if bad == BadRequest::TooLarge {
                TOO_LARGE
            } else {
                BAD
            };
            let _ = tcp.write_all(answer).await;
            return;
        }
    };
    let Some(_slot) = streams.try_slot(page.as_ref()) else {
        let _ = tcp.write_all(BUSY).await;
        return;
    };
    let hub = &streams.hub;
    let snapshot = hub.current();
    let mut first = OK_HEAD.to_vec();
    first.extend_from_slice(&sse::first_event(&snapshot));
    let written = tokio::select! {
        written = tokio::time::timeout(WRITE_TIMEOUT, tcp.write_all(&first)) => written,
        _ = streams.end.cancelled() => return,
    };
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    let conn = Arc::new(LeanConn::new(tcp, snapshot.seq));
    let _registered = hub.lean.register(conn.clone());
    // A change published after `snapshot` was taken and before the stream
    // was registered: send it now (a report already sent is skipped).
    conn.offer(&Item::report(&hub.current()));
    let mut ignored = [0u8; 64];
    loop {
        tokio::select! {
            // A client that stopped reading must not hold up shutdown.
            _ = streams.end.cancelled() => break,
            () = conn.wake.notified() => {
                let flushed = tokio::select! {
                    flushed = conn.flush(WRITE_TIMEOUT) => flushed,
                    _ = streams.end.cancelled() => break,
                };
                if flushed.is_err() {
                    break;
                }
            }
            // The client sends nothing after its request: data that arrives
            // means it closed (or misbehaves).
            readable = conn.tcp.readable() => {
                if readable.is_err() {
                    break;
                }
                match conn.tcp.try_read(&mut ignored) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
