//! The admin listener (`--admin-listen`): the operators' routes, apart from
//! the public port, optionally behind a bearer token (`--admin-token-file`).
//!
//! | route                    | what                                              |
//! |--------------------------|---------------------------------------------------|
//! | `GET /fleet`             | the fleet view (rendered here, live, no wasm)     |
//! | `GET /fleet/events`      | the fleet view's body, every half second (SSE)    |
//! | `GET /api/fleet/events`  | the node's cluster status, every half second (SSE) |
//! | `GET /api/cluster`       | members, monitor, state, record, counters (JSON)  |
//! | `GET /metrics`           | Prometheus metrics                                |
//! | `GET /healthz`           | liveness (never asks for the token)               |
//! | `GET /pkg/*`             | the site's bundle, for the fleet view's stylesheet (no token) |
//!
//! With a token, every other request must carry `Authorization: Bearer
//! <token>`, or the cookie a browser gets by opening `/fleet?token=<token>`
//! once (`HttpOnly`, `SameSite=Strict`; the page's event stream cannot send
//! a header); a missing or wrong one gets `401` with `WWW-Authenticate:
//! Bearer` and nothing else (comparisons take the same time whatever the
//! guess).

use app::{FLEET_EVENTS_PATH, FLEET_PATH};
use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{Html, IntoResponse, Response},
    routing::get,
    Router,
};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};
use subtle::ConstantTimeEq;
use version_observer::{VersionObserver, VersionObserverRoutes};

/// The cookie that carries the token for the fleet view's browser.
const COOKIE: &str = "vo_admin";

/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The token the admin listener requires.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8]>);

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the admin token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the admin token in {path} is shorter than {MIN_TOKEN_LEN} bytes (leading and trailing whitespace aside)")]
    TooShort { path: PathBuf },
}

impl AdminToken {
    /// Reads the token from `path` (surrounding whitespace, such as a final
    /// newline, is not part of it).
    pub fn read(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read(path).map_err(|source| TokenError::Read {
            path: path.to_owned(),
            source,
        })?;
        let token = text.trim_ascii();
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort {
                path: path.to_owned(),
            });
        }
        Ok(Self(token.into()))
    }

    fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        self.matches(given)
    }

    fn matches(&self, given: &[u8]) -> bool {
        bool::from(given.ct_eq(&self.0))
    }

    /// The cookie value: the token in hex (any bytes fit a cookie so).
    fn cookie_value(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether a `Cookie` header carries this token.
    fn accepts_cookie(&self, header: Option<&[u8]>) -> bool {
        let Some(header) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return false;
        };
        let expected = self.cookie_value();
        header
            .split(';')
            .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .any(|value| bool::from(value.as_bytes().ct_eq(expected.as_bytes())))
    }
}

/// `token=<value>` in a query string, percent-decoded.
fn query_token(query: Option<&str>) -> Option<Vec<u8>> {
    use version_observer::core::query;
    query::decode(query::param(query?, "token")?, true)
}

/// The admin listener's router: the observer's admin routes and the fleet
/// view ([`FLEET_PATH`], rendered here on every request; its snapshots on
/// [`FLEET_EVENTS_PATH`]).
pub fn router(observer: &VersionObserver, token: Option<AdminToken>) -> Router {
    let guarded = Router::new()
        .route(FLEET_PATH, get(fleet_page))
        .route(FLEET_EVENTS_PATH, get(fleet_events))
        .with_state(observer.clone())
        .version_observer_admin_routes(observer);
    let guarded = match token {
        Some(token) => guarded.layer(axum::middleware::from_fn_with_state(token, require)),
        None => guarded,
    };
    // The stylesheet the fleet view links (public on the public port
    // anyway); anything else is a 404.
    Router::new()
        .route("/healthz", get(super::healthz))
        .merge(guarded)
        .version_observer_asset_routes(observer)
}

/// `GET /fleet`: the fleet view, with the site's stylesheet.
async fn fleet_page(State(observer): State<VersionObserver>) -> Response {
    let stylesheet = observer.bundle().and_then(|b| b.href("css"));
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(app::fleet::fleet_page(
            snapshot(&observer),
            stylesheet.as_deref(),
        )),
    )
        .into_response()
}

/// What the fleet view shows now.
fn snapshot(observer: &VersionObserver) -> app::fleet::Snapshot {
    app::fleet::Snapshot {
        status: observer.cluster_status(),
        history: observer.page_history(),
    }
}

/// How often `GET /fleet/events` sends a snapshot.
const FLEET_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /fleet/events`: the fleet view's body, rendered from the node's
/// cluster status at once and every [`FLEET_INTERVAL`] (members' ages
/// change all the time), as server-sent events, until the client leaves or
/// the node stops.
async fn fleet_events(State(observer): State<VersionObserver>) -> Response {
    let mut tick = tokio::time::interval(FLEET_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopped = Box::pin(observer.stopped());
    let events = futures::stream::unfold(
        (observer, tick, stopped),
        |(observer, mut tick, mut stopped)| async move {
            tokio::select! {
                _ = &mut stopped => return None,
                _ = tick.tick() => {}
            }
            let html = app::fleet::fleet_body(snapshot(&observer));
            let event = bytes::Bytes::from(sse_event(&html));
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (observer, tick, stopped),
            ))
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(events),
    )
        .into_response()
}

/// One server-sent event carrying `data` (a line of its own per line).
fn sse_event(data: &str) -> String {
    let mut event: String = data.lines().map(|line| format!("data: {line}\n")).collect();
    event.push('\n');
    event
}

async fn require(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bearer = token.accepts(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()));
    let cookie = token.accepts_cookie(headers.get(header::COOKIE).map(|v| v.as_bytes()));
    if bearer || cookie {
        return next.run(request).await;
    }
    // `/fleet?token=…` once: the browser keeps the token as a cookie, and
    // the address bar loses it.
    if request.uri().path() == FLEET_PATH {
        if let Some(given) = query_token(request.uri().query()) {
            if token.matches(&given) {
                return (
                    StatusCode::SEE_OTHER,
                    [
                        (header::LOCATION, FLEET_PATH.to_owned()),
                        (
                            header::SET_COOKIE,
                            format!(
                                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                                token.cookie_value()
                            ),
                        ),
                    ],
                )
                    .into_response();
            }
        }
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a valid admin token is required\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let token = AdminToken(b"0123456789abcdef".as_slice().into());
        assert!(token.accepts(Some(b"Bearer 0123456789abcdef")));
        for wrong in [
            &b"Bearer 0123456789abcdeF"[..],
            b"Bearer 0123456789abcdef0",
            b"Bearer 0123456789abcde",
            b"bearer 0123456789abcdef",
            b"0123456789abcdef",
            b"Basic MDEyMzQ1Njc4OWFiY2RlZg==",
            b"",
        ] {
            assert!(!token.accepts(Some(wrong)), "{wrong:?}");
        }
        assert!(!token.accepts(None));
    }

    #[test]
    fn the_fleet_views_cookie_and_query_carry_the_same_token() {
        let token = AdminToken(b"a b;c=d/0123456789".as_slice().into());
        let cookie = format!("theme=dark; {COOKIE}={}; x=1", token.cookie_value());
        assert!(token.accepts_cookie(Some(cookie.as_bytes())));
        for wrong in [
            "",
            "vo_admin=",
            "vo_admin=00",
            "other=612062",
            &format!("{COOKIE}x={}", token.cookie_value()),
        ] {
            assert!(!token.accepts_cookie(Some(wrong.as_bytes())), "{wrong:?}");
        }
        let given = query_token(Some("x=1&token=a+b%3Bc%3Dd%2F0123456789")).unwrap();
        assert!(token.matches(&given));
        assert_eq!(query_token(Some("token=%zz")), None);
        assert_eq!(query_token(Some("x=1")), None);
    }

    #[test]
    fn a_short_or_missing_token_file_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("vo-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "  too-short \n").unwrap();
        let e = AdminToken::read(&short).err().unwrap().to_string();
        assert!(e.contains(&short.display().to_string()), "{e}");
        let ok = dir.join("ok");
        std::fs::write(&ok, "0123456789abcdef\n").unwrap();
        assert!(AdminToken::read(&ok)
            .unwrap()
            .accepts(Some(b"Bearer 0123456789abcdef")));
        let missing = dir.join("missing");
        let e = AdminToken::read(&missing).err().unwrap().to_string();
        assert!(e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
