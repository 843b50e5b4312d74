//! [`GuardedError`]: the error type of a server function behind the
//! request guard, whose [`StaleClient`] variant the app can match.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};
pub use version_observer_core::skew::StaleClient;

/// The error of a server function guarded by
/// [`VersionObserver::request_guard`](crate::VersionObserver::request_guard):
/// either the guard refused the call because this page and the server run
/// incompatible versions (the call did not run; the page is already showing
/// the banner, or reloading as its strategy says), or anything a server
/// function can fail with.
///
/// ```
/// use leptos::prelude::*;
/// use version_observer::GuardedError;
///
/// #[server]
/// pub async fn rename(id: u32, name: String) -> Result<(), GuardedError> {
///     Ok(())
/// }
///
/// # async fn demo() {
/// match rename(7, "new".into()).await {
///     Ok(()) => {}
///     // Not run: this page is older than the server; the banner is up.
///     Err(GuardedError::StaleClient(_)) => {}
///     Err(other) => leptos::logging::error!("{other}"),
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(untagged)]
pub enum GuardedError {
    /// The request guard refused the call (`409 Conflict`).
    #[error(transparent)]
    StaleClient(StaleClient),
    /// Any other failure: the server function's own, or the transport's.
    #[error(transparent)]
    ServerFn(ServerFnErrorErr),
}

impl FromServerFnError for GuardedError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        Self::ServerFn(value)
    }

    /// The guard's body first, then any other error: two plain readers
    /// instead of serde's untagged one, which costs the page more code.
    fn de(data: bytes::Bytes) -> Self {
        if let Ok(stale) = serde_json::from_slice::<StaleClient>(&data) {
            return Self::StaleClient(stale);
        }
        match serde_json::from_slice::<ServerFnErrorErr>(&data) {
            Ok(other) => Self::ServerFn(other),
            Err(e) => Self::ServerFn(ServerFnErrorErr::Deserialization(e.to_string())),
        }
    }
}

impl From<StaleClient> for GuardedError {
    fn from(value: StaleClient) -> Self {
        Self::StaleClient(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use version_observer_core::{skew::check, Compat, Version};

    #[test]
    fn the_guards_409_body_decodes_as_stale_client_and_other_errors_do_not() {
        let answer = check(
            &Version::new(1, 0, 0),
            &Version::new(2, 0, 0),
            Compat::Major,
            None,
        )
        .unwrap();
        let body = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            GuardedError::de(body.into()),
            GuardedError::StaleClient(answer)
        );
        let other = GuardedError::ServerFn(ServerFnErrorErr::ServerError("boom".into()));
        assert_eq!(GuardedError::de(other.ser()), other);
        assert!(matches!(
            GuardedError::de("not json".into()),
            GuardedError::ServerFn(ServerFnErrorErr::Deserialization(_))
        ));
    }
}
