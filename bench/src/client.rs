//! The load generator's clients, as small as a connection can be: a raw TCP
//! socket, bound to a chosen loopback source address (each of 127.0.0.x has
//! its own ~28,000 ephemeral ports), and one small buffer.
//!
//! - [`SseClient`]: `GET /api/version/events` (or any [`Stream`]: another
//!   server's EventSource path), then waits for a byte pattern in the stream
//!   (the first report, or a given announced version).
//! - [`Poller`]: `GET /api/version` on a kept-alive connection, the cheapest
//!   way a tab can poll.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// `127.0.0.<n>` for n in 1..=254.
pub fn loopback_source(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n.clamp(1, 254)))
}

/// What every report on a stream contains: marks the first event.
pub const ANY_REPORT: &[u8] = b"\"announced_version\"";

/// Which stream a client asks for, and what shows that it is open.
#[derive(Debug, Clone, Copy)]
pub struct Stream<'a> {
    /// The request path.
    pub path: &'a str,
    /// Bytes the server sends first on every new stream; empty: the response
    /// head alone shows it open.
    pub ready: &'a [u8],
}

/// A node's version stream, open once its first report has arrived.
pub const VERSION_EVENTS: Stream<'static> = Stream {
    path: "/api/version/events",
    ready: ANY_REPORT,
};

/// The bytes that show a report announcing `version`.
pub fn announced(version: &str) -> Vec<u8> {
    format!("\"announced_version\":\"{version}\"").into_bytes()
}

async fn connect(target: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Finds `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub struct SseClient {
    stream: TcpStream,
    /// Unconsumed bytes: at most one read plus a pattern's length.
    buf: Vec<u8>,
}

impl SseClient {
    /// Connects from `source`, asks for the node's version stream, and checks
    /// the status line.
    pub async fn open(target: SocketAddr, source: IpAddr) -> io::Result<Self> {
        Self::open_path(target, source, VERSION_EVENTS.path).await
    }

    /// Connects from `source`, asks for the stream at `path` as a browser's
    /// EventSource does, and checks the status line.
    pub async fn open_path(target: SocketAddr, source: IpAddr, path: &str) -> io::Result<Self> {
        let mut stream = connect(target, source).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut client = Self {
            stream,
            buf: Vec::with_capacity(1024),
        };
        client.wait_for(b"\r\n\r\n").await?;
        Ok(client)
    }

    /// Reads until `pattern` has arrived (after what was consumed before).
    pub async fn wait_for(&mut self, pattern: &[u8]) -> io::Result<()> {
        loop {
            if let Some(at) = find(&self.buf, pattern) {
                if pattern == b"\r\n\r\n" && !self.buf.starts_with(b"HTTP/1.1 200") {
                    let status = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                    return Err(io::Error::other(format!("refused: {status}")));
                }
                self.buf.drain(..at + pattern.len());
                return Ok(());
            }
            // Keep only a tail that could start a pattern split across reads.
            let keep = pattern.len().saturating_sub(1).min(self.buf.len());
            if self.buf.len() > 4096 {
                self.buf.drain(..self.buf.len() - keep);
            }
            let mut chunk = [0u8; 2048];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Opens a version stream and reads its first report, at most as many at
/// once as `gate` has permits (a node's accept backlog is finite, and
/// thousands of simultaneous connects would only be retried by the kernel).
pub async fn open_gated(
    target: SocketAddr,
    source: IpAddr,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
) -> io::Result<SseClient> {
    open_stream_gated(target, source, VERSION_EVENTS, gate).await
}

/// [`open_gated`] for any [`Stream`].
pub async fn open_stream_gated(
    target: SocketAddr,
    source: IpAddr,
    stream: Stream<'_>,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
) -> io::Result<SseClient> {
    let _permit = gate.acquire_owned().await;
    let mut sse = SseClient::open_path(target, source, stream.path).await?;
    if !stream.ready.is_empty() {
        sse.wait_for(stream.ready).await?;
    }
    Ok(sse)
}

/// The source address of the `i`th client, spread over 127.0.0.1..=`sources`.
pub fn spread(i: usize, sources: u8) -> IpAddr {
    loopback_source(1 + (i % sources.max(1) as usize) as u8)
}

pub struct Poller {
    target: SocketAddr,
    source: IpAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Poller {
    pub fn new(target: SocketAddr, source: IpAddr) -> Self {
        Self {
            target,
            source,
            stream: None,
            buf: Vec::new(),
        }
    }

    /// One `GET /api/version`; returns the body. Reconnects if the kept-alive
    /// connection was closed.
    pub async fn poll(&mut self) -> io::Result<Vec<u8>> {
        match self.try_poll().await {
            Ok(body) => Ok(body),
            Err(_) => {
                self.stream = None;
                self.try_poll().await
            }
        }
    }

    async fn try_poll(&mut self) -> io::Result<Vec<u8>> {
        if self.stream.is_none() {
            self.stream = Some(connect(self.target, self.source).await?);
        }
        let stream = self.stream.as_mut().expect("connected above");
        let request = format!("GET /api/version HTTP/1.1\r\nHost: {}\r\n\r\n", self.target);
        stream.write_all(request.as_bytes()).await?;
        self.buf.clear();
        let header_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            read_more(stream, &mut self.buf).await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..header_end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(io::Error::other(format!(
                "status: {}",
                head.lines().next().unwrap_or("")
            )));
        }
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no content-length"))?;
        while self.buf.len() < header_end + length {
            read_more(stream, &mut self.buf).await?;
        }
        Ok(self.buf[header_end..header_end + length].to_vec())
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_found() {
        assert_eq!(find(b"abc\r\n\r\nrest", b"\r\n\r\n"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(
            find(
                br#"data: {"announced_version":"2.0.0"}"#,
                &announced("2.0.0")
            ),
            Some(7)
        );
        assert_eq!(
            find(br#"{"announced_version":"1.0.0"}"#, &announced("2.0.0")),
            None
        );
    }

    #[test]
    fn sources_stay_on_loopback() {
        assert_eq!(loopback_source(0).to_string(), "127.0.0.1");
        assert_eq!(loopback_source(8).to_string(), "127.0.0.8");
        assert_eq!(loopback_source(255).to_string(), "127.0.0.254");
    }
}
