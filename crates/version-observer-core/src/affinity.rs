//! Version affinity: a request goes to code of the version its page was
//! built with, on whichever node the load balancer picked.
//!
//! A page names its version in every request it makes to its own origin
//! ([`PAGE_VERSION_HEADER`](crate::skew::PAGE_VERSION_HEADER)). A node that
//! cannot serve that version (the request guard would refuse it:
//! [`skew::check`]) passes the request to a live member that runs a
//! matching version and returns that member's answer unchanged; for
//! server-function routes it prefers a member of exactly the page's build
//! even when it could serve the request itself (Leptos derives server
//! function URLs from the build). [`route`] is that decision.
//!
//! The request and its answer travel over NATS request-reply as one
//! [`Frame`] each (a small binary framing: method, URI, headers, body; never
//! JSON, so header values and bodies pass byte for byte), to the subject of
//! the target version ([`Names::forward`](crate::protocol::Names::forward)),
//! which every node of that version subscribes to in one queue group.
//! [`Frame::decode`] never panics and bounds every length; a forwarded
//! request carries [`FORWARDED_HEADER`] inside its node and is never
//! forwarded again. With a cluster key, [`ReplayGuard`] refuses a frame that
//! is too old or seen before, so a captured request cannot run twice.
//!
//! ```
//! use version_observer_core::{affinity::{route, Route}, Compat, Version};
//! let page = Version::new(1, 0, 0);
//! let me = Version::new(2, 0, 0);
//! let live = || vec![Version::new(1, 0, 0), Version::new(2, 0, 0)];
//! // An old page's call on a new node goes to the old node.
//! match route(&page, &me, Compat::Major, None, false, live) {
//!     Route::Forward { targets, .. } => assert_eq!(targets, [Version::new(1, 0, 0)]),
//!     other => panic!("{other:?}"),
//! }
//! // A compatible page is served here.
//! assert_eq!(
//!     route(&Version::new(2, 1, 0), &me, Compat::Major, None, false, live),
//!     Route::Local
//! );
//! ```

use crate::{
    compat::Compat,
    skew::{self, ForwardFailure, StaleClient},
};
use semver::Version;
use std::{
    collections::{BTreeSet, VecDeque},
    time::Duration,
};

/// The header a node puts on a forwarded request inside itself (with a
/// secret only that process knows), so that its request guard serves it
/// and never forwards it again. From outside, the header is removed and
/// means nothing.
pub const FORWARDED_HEADER: &str = "x-version-observer-forwarded";

/// The most versions from the membership view a request is offered to, in
/// order, when the ones before have no live member (NATS says "no
/// responders" at once); the page's own version may come after them.
pub const MAX_TARGETS: usize = 3;

/// What a node does with a request from a page of another version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Serve it here.
    Local,
    /// Forward it to a member of the first of `targets` that has one (in
    /// order of preference); if none takes it, do `otherwise`.
    Forward {
        /// Versions of live members that can serve the page, best first.
        targets: Vec<Version>,
        /// What to do when no target takes the request.
        otherwise: Otherwise,
    },
    /// Refuse it (`409`): nobody alive can serve this page.
    Refuse(StaleClient),
}

/// What a node does when forwarding found no member to take the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Otherwise {
    /// Serve it here after all (the page is compatible; a member of its
    /// exact build would only have been better).
    Local,
    /// Refuse it with this answer (and the reason forwarding failed).
    Refuse(StaleClient),
}

impl Otherwise {
    /// The answer when forwarding failed for `reason`: serve here, or the
    /// refusal naming the reason.
    pub fn with_failure(self, reason: ForwardFailure) -> Self {
        match self {
            Otherwise::Local => Otherwise::Local,
            Otherwise::Refuse(mut answer) => {
                answer.forward = Some(reason);
                Otherwise::Refuse(answer)
            }
        }
    }
}

/// Where a request from a page of version `page` goes, on a node of
/// version `me` (with `compat` and its minimum supported version), given
/// the versions its live members run (`live`, asked for only when they
/// matter; this node's own included or not; retiring members count, they
/// serve forwarded requests).
///
/// - The node can serve the page (the request guard passes it): here,
///   unless `exact_preferred` (a server-function route) and a member runs
///   exactly the page's version: then there first, and here if it does
///   not take it.
/// - It cannot: to members of versions compatible with the page, the
///   page's own first, then the newest; none: refused
///   ([`ForwardFailure::NoMember`]).
pub fn route(
    page: &Version,
    me: &Version,
    compat: Compat,
    min_supported: Option<&Version>,
    exact_preferred: bool,
    live: impl FnOnce() -> Vec<Version>,
) -> Route {
    let refusal = skew::check(page, me, compat, min_supported);
    if refusal.is_none() && !(exact_preferred && page != me) {
        // The common case decides without looking at the members.
        return Route::Local;
    }
    let others: BTreeSet<Version> = live().into_iter().filter(|v| v != me).collect();
    let Some(refusal) = refusal else {
        if others.contains(page) {
            return Route::Forward {
                targets: vec![page.clone()],
                otherwise: Otherwise::Local,
            };
        }
        return Route::Local;
    };
    let mut targets: Vec<Version> = Vec::new();
    if others.contains(page) {
        targets.push(page.clone());
    }
    // The newest compatible versions next (a set iterates oldest first).
    targets.extend(
        others
            .iter()
            .rev()
            .filter(|v| *v != page && compat.compatible(page, v))
            .cloned(),
    );
    targets.truncate(MAX_TARGETS);
    if page != me && !targets.contains(page) {
        // Last, the page's own version even if this node has not heard of
        // a member of it (it has just started, or a member just joined):
        // NATS says at once whether one listens.
        targets.push(page.clone());
    }
    if targets.is_empty() {
        let mut refusal = refusal;
        refusal.forward = Some(ForwardFailure::NoMember);
        return Route::Refuse(refusal);
    }
    Route::Forward {
        targets,
        otherwise: Otherwise::Refuse(refusal),
    }
}

/// A forwarded request or its answer, as it travels over NATS.
///
/// The framing (big-endian): the magic `VOF1`, a kind byte, then fields as
/// length-prefixed byte strings (`u32` length), headers as a `u16` count of
/// name/value pairs, and the body as the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A request, from the node a browser reached to a member of `target`.
    Request(ForwardRequest),
    /// The member's answer, whatever its status: passed to the browser as is.
    Response(ForwardResponse),
    /// The member did not run the request, and says why.
    Declined(Declined),
}

/// A request passed on to a member of another version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRequest {
    /// The node that passed it on (its id), for logs and metrics.
    pub from: String,
    /// The version the request is meant for: the receiver checks it is its own.
    pub target: Version,
    /// The sender's wall clock when it sent it (ms since the Unix epoch):
    /// with a cluster key, a frame much older than this is refused
    /// ([`ReplayGuard`]).
    pub at_ms: u64,
    /// Random per request: with a cluster key, one seen before is refused.
    pub nonce: u64,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path and query, as the browser sent them.
    pub uri: String,
    /// Every header, in order, values byte for byte.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// A member's answer to a [`ForwardRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardResponse {
    /// The HTTP status.
    pub status: u16,
    /// Every header, in order, values byte for byte.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why a member gives no answer of the app's: all but the last mean the
/// request did not run there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    /// It runs another version than the request's target (not run).
    WrongVersion,
    /// Too many forwarded requests in flight there, or it cannot serve
    /// forwarded requests (not run).
    Busy,
    /// The request was malformed, too old, or seen before (not run).
    Refused,
    /// The request **ran**, but its answer is larger than a message may
    /// be, or did not end in time: it cannot be passed back.
    AnswerLost,
}

impl Declined {
    /// Whether the request ran there although its answer is not coming.
    pub fn ran(self) -> bool {
        self == Declined::AnswerLost
    }
}

impl Declined {
    fn code(self) -> u8 {
        match self {
            Declined::WrongVersion => 1,
            Declined::Busy => 2,
            Declined::Refused => 3,
            Declined::AnswerLost => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Declined::WrongVersion,
            2 => Declined::Busy,
            3 => Declined::Refused,
            4 => Declined::AnswerLost,
            _ => return None,
        })
    }

    /// Its name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Declined::WrongVersion => "wrong_version",
            Declined::Busy => "busy",
            Declined::Refused => "refused",
            Declined::AnswerLost => "answer_lost",
        }
    }
}

/// Why bytes are not a [`Frame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// It does not start with the magic bytes and a known kind.
    #[error("not a forwarding frame")]
    NotAFrame,
    /// A length runs past the end of the bytes.
    #[error("truncated frame")]
    Truncated,
    /// A field is too long, not UTF-8, or not what it must be.
    #[error("bad field in frame: {0}")]
    BadField(&'static str),
}

const MAGIC: &[u8; 4] = b"VOF1";
const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;
const KIND_DECLINED: u8 = 3;
/// The longest method, URI, header name or value, or node id a frame holds.
pub const MAX_FIELD: usize = 64 * 1024;
/// The most headers a frame holds.
pub const MAX_HEADERS: usize = 256;

impl Frame {
    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.body_len());
        out.extend_from_slice(MAGIC);
        match self {
            Frame::Request(r) => {
                out.push(KIND_REQUEST);
                put(&mut out, r.from.as_bytes());
                put(&mut out, r.target.to_string().as_bytes());
                out.extend_from_slice(&r.at_ms.to_be_bytes());
                out.extend_from_slice(&r.nonce.to_be_bytes());
                put(&mut out, r.method.as_bytes());
                put(&mut out, r.uri.as_bytes());
                put_headers(&mut out, &r.headers);
                out.extend_from_slice(&r.body);
            }
            Frame::Response(r) => {
                out.push(KIND_RESPONSE);
                out.extend_from_slice(&r.status.to_be_bytes());
                put_headers(&mut out, &r.headers);
                out.extend_from_slice(&r.body);
            }
            Frame::Declined(d) => {
                out.push(KIND_DECLINED);
                out.push(d.code());
            }
        }
        out
    }

    fn body_len(&self) -> usize {
        match self {
            Frame::Request(r) => r.body.len(),
            Frame::Response(r) => r.body.len(),
            Frame::Declined(_) => 0,
        }
    }

    /// Reads a frame; never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(FrameError::NotAFrame);
        }
        match r.take(1)?[0] {
            KIND_REQUEST => {
                let from = r.text("from")?;
                let target = r
                    .text("target")?
                    .parse()
                    .map_err(|_| FrameError::BadField("target"))?;
                let at_ms = r.u64()?;
                let nonce = r.u64()?;
                let method = r.text("method")?;
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(FrameError::BadField("method"));
                }
                let uri = r.text("uri")?;
                if !uri.starts_with('/') {
                    return Err(FrameError::BadField("uri"));
                }
                let headers = r.headers()?;
                Ok(Frame::Request(ForwardRequest {
                    from,
                    target,
                    at_ms,
                    nonce,
                    method,
                    uri,
                    headers,
                    body: r.rest().to_vec(),
                }))
            }
            KIND_RESPONSE => {
                let status = u16::from_be_bytes(r.array::<2>()?);
                if !(100..=999).contains(&status) {
                    return Err(FrameError::BadField("status"));
                }
                let headers = r.headers()?;
                Ok(Frame::Response(ForwardResponse {
                    status,
                    headers,
                    body: r.rest().to_vec(),
                }))
            }
            KIND_DECLINED => {
                let code = r.take(1)?[0];
                let declined = Declined::from_code(code).ok_or(FrameError::BadField("declined"))?;
                if !r.rest().is_empty() {
                    return Err(FrameError::BadField("declined"));
                }
                Ok(Frame::Declined(declined))
            }
            _ => Err(FrameError::NotAFrame),
        }
    }
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

fn put_headers(out: &mut Vec<u8>, headers: &[(String, Vec<u8>)]) {
    let headers = &headers[..headers.len().min(MAX_HEADERS)];
    out.extend_from_slice(&(headers.len() as u16).to_be_bytes());
    for (name, value) in headers {
        put(out, name.as_bytes());
        put(out, value);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.at.checked_add(n).ok_or(FrameError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(FrameError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(self.array::<8>()?))
    }

    fn field(&mut self, what: &'static str) -> Result<&'a [u8], FrameError> {
        let len = u32::from_be_bytes(self.array::<4>()?) as usize;
        if len > MAX_FIELD {
            return Err(FrameError::BadField(what));
        }
        self.take(len)
    }

    fn text(&mut self, what: &'static str) -> Result<String, FrameError> {
        let bytes = self.field(what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| FrameError::BadField(what))
    }

    fn headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, FrameError> {
        let count = u16::from_be_bytes(self.array::<2>()?) as usize;
        if count > MAX_HEADERS {
            return Err(FrameError::BadField("headers"));
        }
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let name = self.text("header name")?;
            if name.is_empty() {
                return Err(FrameError::BadField("header name"));
            }
            let value = self.field("header value")?.to_vec();
            headers.push((name, value));
        }
        Ok(headers)
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at.min(self.bytes.len())..];
        self.at = self.bytes.len();
        rest
    }
}

/// Why [`ReplayGuard::check`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Sent longer ago (or further ahead) than the guard's window.
    Stale,
    /// Its nonce was seen within the window.
    Repeated,
    /// The guard remembers as many nonces as it may, all still in the
    /// window (a flood): refused rather than forgetting one.
    Full,
}

/// Refuses forwarded requests that are too old, or that were seen before,
/// so that a captured request cannot be run again (with a cluster key:
/// without one, anyone who may publish can forge any request anyway).
/// Remembers the nonces of the last `window`, at most `capacity` of them
/// (a flood beyond that makes it refuse until the oldest fall out of the
/// window: it never forgets one still in its window).
///
/// ```
/// use std::time::Duration;
/// use version_observer_core::affinity::{Replay, ReplayGuard};
/// let mut guard = ReplayGuard::new(Duration::from_secs(60), 1_000);
/// assert_eq!(guard.check(7, 10_000, 10_000), Ok(()));
/// assert_eq!(guard.check(7, 10_000, 10_500), Err(Replay::Repeated));
/// assert_eq!(guard.check(8, 10_000, 90_000), Err(Replay::Stale));
/// ```
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    /// (nonce, the frame's own time), in arrival order.
    seen: VecDeque<(u64, u64)>,
    nonces: BTreeSet<u64>,
}

impl ReplayGuard {
    /// A guard that takes frames sent within `window` of its clock, and
    /// remembers at most `capacity` nonces.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            capacity: capacity.max(1),
            seen: VecDeque::new(),
            nonces: BTreeSet::new(),
        }
    }

    /// Whether a frame with `nonce`, sent at `at_ms` by its sender's clock,
    /// may run now (`now_ms`, this node's clock); remembers it if so.
    pub fn check(&mut self, nonce: u64, at_ms: u64, now_ms: u64) -> Result<(), Replay> {
        if at_ms.abs_diff(now_ms) > self.window_ms {
            return Err(Replay::Stale);
        }
        // Forget the nonces of frames that would now be refused as stale
        // anyway (kept in arrival order: a later one may be older, and is
        // then kept a little longer, never forgotten too soon).
        while let Some(&(old, at)) = self.seen.front() {
            if now_ms.saturating_sub(at) <= self.window_ms {
                break;
            }
            self.seen.pop_front();
            self.nonces.remove(&old);
        }
        if self.nonces.contains(&nonce) {
            return Err(Replay::Repeated);
        }
        if self.seen.len() >= self.capacity {
            // Full of nonces still in the window: refuse, forget nothing.
            return Err(Replay::Full);
        }
        self.nonces.insert(nonce);
        self.seen.push_back((nonce, at_ms));
        Ok(())
    }

    /// How many nonces it remembers now.
    pub fn remembered(&self) -> usize {
        self.nonces.len()
    }
}

/// Whether a request head may be forwarded at all: never an upgrade
/// (WebSocket), never `CONNECT`; its method must be a token.
pub fn forwardable(method: &str, has_upgrade: bool) -> bool {
    !has_upgrade
        && !method.eq_ignore_ascii_case("CONNECT")
        && !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Hop-by-hop headers: they describe one connection, never travel with a
/// forwarded request or answer (RFC 9110 §7.6.1), and the framing is
/// redone on each side.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Whether header `name` travels with a forwarded request or answer.
pub fn travels(name: &str) -> bool {
    !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        && !name.eq_ignore_ascii_case(FORWARDED_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn vs(list: &[&str]) -> Vec<Version> {
        list.iter().map(|s| v(s)).collect()
    }

    /// (page, me, compat, min supported, exact preferred, live, expected)
    type Row = (
        &'static str,
        &'static str,
        Compat,
        Option<&'static str>,
        bool,
        &'static [&'static str],
        Expected,
    );

    #[derive(Debug)]
    enum Expected {
        Local,
        Forward(&'static [&'static str], bool),
        Refuse,
    }

    #[test]
    fn the_route_table() {
        use Compat::*;
        use Expected::*;
        #[rustfmt::skip]
        let table: &[Row] = &[
            // Served here: compatible, nobody better.
            ("1.0.0", "1.0.0", Major, None, false, &["1.0.0", "2.0.0"], Local),
            ("1.0.0", "1.2.0", Major, None, false, &["1.0.0", "1.2.0"], Local),
            // A server function prefers the page's exact build when alive...
            ("1.0.0", "1.2.0", Major, None, true, &["1.0.0", "1.2.0"], Forward(&["1.0.0"], true)),
            // ...and is served here without one.
            ("1.0.0", "1.2.0", Major, None, true, &["1.2.0", "2.0.0"], Local),
            ("1.2.0", "1.2.0", Major, None, true, &["1.0.0", "1.2.0"], Local),
            // An old page on a new node: to the old version.
            ("1.0.0", "2.0.0", Major, None, false, &["1.0.0", "2.0.0"], Forward(&["1.0.0"], false)),
            // A new page on an old node (mid-deploy): to the new version.
            ("2.0.0", "1.0.0", Major, None, false, &["1.0.0", "2.0.0"], Forward(&["2.0.0"], false)),
            // The exact build first, then compatible ones, newest first.
            ("1.0.0", "2.0.0", Major, None, false, &["1.0.0", "1.1.0", "1.3.0", "2.0.0"],
                Forward(&["1.0.0", "1.3.0", "1.1.0"], false)),
            // The page's own version last when no member of it is known
            // (NATS tells at once whether one listens).
            ("1.0.0", "2.0.0", Major, None, false, &["1.1.0", "1.3.0", "2.0.0"],
                Forward(&["1.3.0", "1.1.0", "1.0.0"], false)),
            // At most MAX_TARGETS.
            ("1.0.0", "2.0.0", Major, None, false, &["1.0.0", "1.1.0", "1.2.0", "1.3.0"],
                Forward(&["1.0.0", "1.3.0", "1.2.0"], false)),
            ("1.0.0", "2.0.0", Major, None, false, &["1.1.0", "1.2.0", "1.3.0", "1.4.0"],
                Forward(&["1.4.0", "1.3.0", "1.2.0", "1.0.0"], false)),
            // Nobody of a compatible version known: the page's own version
            // only (refused with no_member if NATS has none).
            ("1.0.0", "2.0.0", Major, None, false, &["2.0.0", "3.0.0"], Forward(&["1.0.0"], false)),
            ("1.0.0", "2.0.0", Major, None, false, &[], Forward(&["1.0.0"], false)),
            // The policy decides what matches.
            ("1.0.0", "1.1.0", Minor, None, false, &["1.0.5", "1.1.0"], Forward(&["1.0.5", "1.0.0"], false)),
            ("1.0.0", "1.0.1", Exact, None, false, &["1.0.1", "1.0.2"], Forward(&["1.0.0"], false)),
            // Below this node's minimum: to a member that still serves it.
            ("1.4.0", "1.6.0", Major, Some("1.5.0"), false, &["1.4.0", "1.6.0"], Forward(&["1.4.0"], false)),
            // A page of this very version below its own minimum: a
            // compatible member may still take it (or refuse it itself)...
            ("1.4.0", "1.4.0", Major, Some("1.5.0"), false, &["1.6.0"], Forward(&["1.6.0"], false)),
            // ...and without one it is refused at once.
            ("1.4.0", "1.4.0", Major, Some("1.5.0"), false, &["2.0.0"], Refuse),
        ];
        for (page, me, compat, min, exact, live, expected) in table {
            let min = min.map(v);
            let live = vs(live);
            let got = route(&v(page), &v(me), *compat, min.as_ref(), *exact, || {
                live.clone()
            });
            let ok = match (&got, expected) {
                (Route::Local, Local) => true,
                (Route::Forward { targets, otherwise }, Forward(want, local)) => {
                    *targets == vs(want)
                        && match otherwise {
                            Otherwise::Local => *local,
                            Otherwise::Refuse(answer) => {
                                !*local
                                    && answer.page_version == v(page)
                                    && answer.forward.is_none()
                            }
                        }
                }
                (Route::Refuse(answer), Refuse) => {
                    answer.forward == Some(ForwardFailure::NoMember)
                        && answer.server_version == v(me)
                }
                _ => false,
            };
            assert!(ok, "{page} on {me} {compat:?} {min:?} exact={exact} live={live:?}: {got:?}, want {expected:?}");
        }
    }

    #[test]
    fn the_common_case_never_asks_for_the_members() {
        let unasked = || -> Vec<Version> { panic!("asked for the members") };
        for (page, exact) in [("2.1.0", false), ("2.0.0", true), ("2.0.0", false)] {
            assert_eq!(
                route(&v(page), &v("2.0.0"), Compat::Major, None, exact, unasked),
                Route::Local
            );
        }
    }

    #[test]
    fn a_failed_forward_names_its_reason_or_serves_here() {
        let Route::Forward { otherwise, .. } =
            route(&v("1.0.0"), &v("2.0.0"), Compat::Major, None, false, || {
                vs(&["1.0.0"])
            })
        else {
            panic!()
        };
        let Otherwise::Refuse(answer) = otherwise.with_failure(ForwardFailure::Timeout) else {
            panic!()
        };
        assert_eq!(answer.forward, Some(ForwardFailure::Timeout));
        assert_eq!(
            Otherwise::Local.with_failure(ForwardFailure::Timeout),
            Otherwise::Local
        );
    }

    fn request() -> ForwardRequest {
        ForwardRequest {
            from: "web-1".into(),
            target: v("1.0.0+build.7"),
            at_ms: 1_700_000_000_000,
            nonce: 42,
            method: "POST".into(),
            uri: "/api/add_todo?x=1".into(),
            headers: vec![
                (
                    "content-type".into(),
                    b"application/x-www-form-urlencoded".to_vec(),
                ),
                ("x-bytes".into(), vec![0xff, 0x00, b'a']),
                ("cookie".into(), b"a=1".to_vec()),
                ("cookie".into(), b"b=2".to_vec()),
            ],
            body: b"text=buy+milk".to_vec(),
        }
    }

    #[test]
    fn frames_round_trip_byte_for_byte() {
        let frames = [
            Frame::Request(request()),
            Frame::Request(ForwardRequest {
                body: Vec::new(),
                headers: Vec::new(),
                ..request()
            }),
            Frame::Response(ForwardResponse {
                status: 200,
                headers: vec![("set-cookie".into(), b"s=1; HttpOnly".to_vec())],
                body: vec![0, 1, 2, 255],
            }),
            Frame::Response(ForwardResponse {
                status: 409,
                headers: Vec::new(),
                body: Vec::new(),
            }),
            Frame::Declined(Declined::Busy),
            Frame::Declined(Declined::WrongVersion),
            Frame::Declined(Declined::Refused),
            Frame::Declined(Declined::AnswerLost),
        ];
        for frame in frames {
            assert_eq!(
                Frame::decode(&frame.encode()),
                Ok(frame.clone()),
                "{frame:?}"
            );
        }
    }

    #[test]
    fn bad_frames_are_errors_never_panics() {
        let good = Frame::Request(request()).encode();
        // Every truncation of a request is an error, except where the cut
        // falls inside the body (the rest is the body).
        let body_starts = good.len() - request().body.len();
        for cut in 0..body_starts {
            assert!(Frame::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(Frame::decode(b"HTTP/1.1"), Err(FrameError::NotAFrame));
        assert_eq!(Frame::decode(b"VOF1\x09"), Err(FrameError::NotAFrame));
        assert!(Frame::decode(b"VOF1\x03\x09").is_err());
        assert!(Frame::decode(b"VOF1\x03\x02extra").is_err());
        // A length far past the end, and one over the field limit.
        let mut huge = b"VOF1\x01".to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Frame::decode(&huge).is_err());
        // A status out of range, a bad method, a URI that is not a path.
        let mut bad_status = b"VOF1\x02".to_vec();
        bad_status.extend_from_slice(&42u16.to_be_bytes());
        bad_status.extend_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            Frame::decode(&bad_status),
            Err(FrameError::BadField("status"))
        );
        for (method, uri, field) in [
            ("GE T", "/", "method"),
            ("", "/", "method"),
            ("GET", "http://evil/", "uri"),
        ] {
            let frame = Frame::Request(ForwardRequest {
                method: method.into(),
                uri: uri.into(),
                ..request()
            });
            assert_eq!(
                Frame::decode(&frame.encode()),
                Err(FrameError::BadField(field))
            );
        }
        // Random bytes after the magic: any answer but a panic.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            let mut bytes = MAGIC.to_vec();
            for _ in 0..(seed % 64) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(seed as u8);
            }
            let _ = Frame::decode(&bytes);
        }
    }

    #[test]
    fn the_replay_guard_refuses_old_and_repeated_frames_and_stays_bounded() {
        let mut guard = ReplayGuard::new(Duration::from_secs(60), 100);
        let t = 1_000_000;
        assert_eq!(guard.check(1, t, t), Ok(()));
        assert_eq!(guard.check(1, t, t + 1), Err(Replay::Repeated));
        assert_eq!(guard.check(2, t - 60_000, t), Ok(()), "at the edge");
        assert_eq!(guard.check(3, t - 60_001, t), Err(Replay::Stale));
        assert_eq!(guard.check(4, t + 60_001, t), Err(Replay::Stale));
        // Full of nonces still in the window: refuses rather than forgets.
        for n in 10..108 {
            assert_eq!(guard.check(n, t, t), Ok(()), "nonce {n}");
        }
        assert_eq!(guard.remembered(), 100);
        assert_eq!(guard.check(500, t, t), Err(Replay::Full));
        // Once they are out of the window, room again, and a nonce seen
        // long ago is too old to matter anyway.
        let later = t + 60_001;
        assert_eq!(guard.check(500, later, later), Ok(()));
        assert_eq!(guard.remembered(), 1);
        assert_eq!(guard.check(1, t, later), Err(Replay::Stale));
    }

    #[test]
    fn hop_by_hop_headers_and_the_marker_never_travel() {
        for name in [
            "Connection",
            "transfer-encoding",
            "content-length",
            FORWARDED_HEADER,
        ] {
            assert!(!travels(name), "{name}");
        }
        for name in [
            "cookie",
            "content-type",
            "x-version-observer-page",
            "accept",
            "Host",
        ] {
            assert!(travels(name), "{name}");
        }
        assert!(forwardable("POST", false));
        assert!(!forwardable("GET", true));
        assert!(!forwardable("CONNECT", false));
        assert!(!forwardable("G T", false));
    }
}
