//! Recognising a version-stream request from the first bytes of a
//! connection, and checking its head: what a node's listener does before it
//! serves a stream itself (plain functions on bytes, fuzzed in `fuzz/`).
//!
//! ```
//! use version_observer_core::stream_request::{check_head, classify};
//! assert_eq!(classify(b"GET /api/version/events HTTP/1.1\r\n"), Some(true));
//! assert_eq!(classify(b"GET /api/ver"), None); // not enough bytes yet
//! assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(false));
//! assert!(check_head(b"GET /api/version/events HTTP/1.1\r\nHost: x\r\n").is_ok());
//! ```

use crate::paths;

/// The largest request head a node reads for a stream.
pub const MAX_HEAD: usize = 8 * 1024;

/// Whether a connection whose first bytes are `start` asks for a stream:
/// `Some(true)`: a version stream; `Some(false)`: something else; `None`: too
/// few bytes to tell.
pub fn classify(start: &[u8]) -> Option<bool> {
    let request = stream_request_line();
    let known = start.len().min(request.len());
    if start[..known] != request[..known] {
        return Some(false);
    }
    match start.get(request.len()) {
        Some(b' ') | Some(b'?') => Some(true),
        Some(_) => Some(false),
        None => None,
    }
}

/// `GET /api/version/events`: the request line's start.
fn stream_request_line() -> &'static [u8] {
    static LINE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    LINE.get_or_init(|| format!("GET {}", paths::EVENTS).into_bytes())
}

/// Why a stream request is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// The head is longer than [`MAX_HEAD`].
    TooLarge,
    /// The request line is not `GET /api/version/events[?…] HTTP/1.x`, or
    /// the head is not text, or it ended early.
    Malformed,
}

/// Checks a request head (everything up to the blank line).
pub fn check_head(head: &[u8]) -> Result<(), BadRequest> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(BadRequest::Malformed)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| BadRequest::Malformed)?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some("HTTP/1.1" | "HTTP/1.0"), None)
            if target == paths::EVENTS
                || target
                    .strip_prefix(paths::EVENTS)
                    .is_some_and(|q| q.starts_with('?')) =>
        {
            Ok(())
        }
        _ => Err(BadRequest::Malformed),
    }
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
        // Not enough yet: wait for more.
        assert_eq!(classify(b""), None);
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
}
