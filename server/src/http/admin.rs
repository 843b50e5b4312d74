//! The admin listener (`--admin-listen`): the operators' routes, apart from
//! the public port, optionally behind a bearer token (`--admin-token-file`).
//!
//! | route              | what                                              |
//! |--------------------|---------------------------------------------------|
//! | `GET /api/cluster` | members, monitor, state, record, counters (JSON)  |
//! | `GET /metrics`     | Prometheus metrics                                |
//! | `GET /healthz`     | liveness (never asks for the token)               |
//!
//! With a token, every other request must carry `Authorization: Bearer
//! <token>`; a missing or wrong one gets `401` with `WWW-Authenticate:
//! Bearer` and nothing else (the comparison takes the same time whatever
//! the guess).

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};
use subtle::ConstantTimeEq;
use version_observer::{VersionObserver, VersionObserverRoutes};

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
        bool::from(given.ct_eq(&self.0))
    }
}

/// The admin listener's router.
pub fn router(observer: &VersionObserver, token: Option<AdminToken>) -> Router {
    let guarded = Router::new().version_observer_admin_routes(observer);
    let guarded = match token {
        Some(token) => guarded.layer(axum::middleware::from_fn_with_state(token, require)),
        None => guarded,
    };
    Router::new()
        .route("/healthz", get(super::healthz))
        .merge(guarded)
}

async fn require(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !token.accepts(given) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid admin token is required\n",
        )
            .into_response();
    }
    next.run(request).await
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
