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

/// The query string of a request head's target (after `?`, before the
/// space), if it has one.
///
/// ```
/// use version_observer_core::stream_request::head_query;
/// assert_eq!(head_query(b"GET /api/version/events?page=1.0.0 HTTP/1.1\r\n"), Some("page=1.0.0"));
/// assert_eq!(head_query(b"GET /api/version/events HTTP/1.1\r\n"), None);
/// ```
pub fn head_query(head: &[u8]) -> Option<&str> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let target = line.split(' ').nth(1)?;
    target.split_once('?').map(|(_, query)| query)
}

/// The page version a tab named in its stream request's query
/// (`page=<semver>`, [`paths::PAGE_PARAM`]), percent-decoded; `None` if it
/// is absent or not a version.
///
/// ```
/// use version_observer_core::stream_request::page_version;
/// assert_eq!(page_version("page=1.2.3").unwrap().to_string(), "1.2.3");
/// assert_eq!(page_version("x=1&page=2.0.0-rc.1%2Bb5").unwrap().to_string(), "2.0.0-rc.1+b5");
/// assert_eq!(page_version("page=latest"), None);
/// ```
pub fn page_version(query: &str) -> Option<semver::Version> {
    let value = crate::query::decode(crate::query::param(query, paths::PAGE_PARAM)?, false)?;
    semver::Version::parse(std::str::from_utf8(&value).ok()?).ok()
}

/// The stream URL for a page of `version`: `events_url` with
/// `page=<version>` added to its query (`+` escaped), what the browser opens.
///
/// ```
/// use version_observer_core::stream_request::{page_version, stream_url};
/// let url = stream_url("/api/version/events", &"1.0.0+b7".parse().unwrap());
/// assert_eq!(url, "/api/version/events?page=1.0.0%2Bb7");
/// assert_eq!(page_version(url.split_once('?').unwrap().1).unwrap().to_string(), "1.0.0+b7");
/// assert_eq!(stream_url("/e?x=1", &"2.0.0".parse().unwrap()), "/e?x=1&page=2.0.0");
/// ```
pub fn stream_url(events_url: &str, version: &semver::Version) -> String {
    let separator = if events_url.contains('?') { '&' } else { '?' };
    let version = version.to_string().replace('+', "%2B");
    format!("{events_url}{separator}{}={version}", paths::PAGE_PARAM)
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
    fn the_page_version_comes_from_the_query_or_not_at_all() {
        assert_eq!(
            page_version("page=1.0.0"),
            Some(semver::Version::new(1, 0, 0))
        );
        assert_eq!(
            page_version("a=b&page=3.4.5&c"),
            Some(semver::Version::new(3, 4, 5))
        );
        for bad in [
            "",
            "page",
            "page=",
            "pages=1.0.0",
            "page=1.0",
            "page=%ZZ",
            "page=%",
            "page=%ff%fe",
            "xpage=1.0.0",
        ] {
            assert_eq!(page_version(bad), None, "{bad:?}");
        }
        assert_eq!(head_query(b"GET /a?b HTTP/1.1\r\nX: ?y\r\n"), Some("b"));
        assert_eq!(head_query(b"\xff?x HTTP/1.1\r\n"), None);
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
