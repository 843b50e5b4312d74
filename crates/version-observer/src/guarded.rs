//! [`GuardedError`]: the error type of a server function behind the
//! request guard, whose [`StaleClient`] variant the app can match.

use bytes::Bytes;
use leptos::server_fn::{
    error::{FromServerFnError, ServerFnErrorEncoding, ServerFnErrorErr},
    ContentType, Decodes, Encodes, Format, FormatType, ServerFnError,
};
pub use version_observer_core::skew::StaleClient;

/// The error of a server function guarded by
/// [`VersionObserver::request_guard`](crate::VersionObserver::request_guard):
/// either the guard refused the call because this page and the server run
/// incompatible versions (the call did not run; the page is already showing
/// the banner, or reloading as its strategy says), or anything a server
/// function can fail with.
///
/// Use it for every server function of your app, as you would
/// `ServerFnError`: any call can be refused, and one error type keeps your
/// wasm small (Leptos compiles its server-function code once per error
/// type; a second one costs a page about 6 KB).
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
///
/// On the wire, a refusal is the guard's JSON body ([`StaleClient`]) and
/// any other failure Leptos' own text form of a `ServerFnError`
/// (`ServerError|message`), read without serde.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuardedError {
    /// The request guard refused the call (`409 Conflict`).
    #[error(transparent)]
    StaleClient(StaleClient),
    /// Any other failure: the server function's own, or the transport's.
    #[error(transparent)]
    ServerFn(ServerFnErrorErr),
}

impl GuardedError {
    /// The wire form: the refusal's JSON, or Leptos' text form of any other
    /// failure.
    fn to_text(&self) -> String {
        match self {
            Self::StaleClient(answer) => answer.to_json(),
            Self::ServerFn(e) => {
                let e: ServerFnError = ServerFnError::from_server_fn_error(e.clone());
                ServerFnErrorEncoding::encode(&e)
                    .ok()
                    .and_then(|b| String::from_utf8(b.to_vec()).ok())
                    .unwrap_or_default()
            }
        }
    }

    /// Reads [`to_text`](Self::to_text)'s form back.
    fn from_text(text: &str) -> Self {
        if let Some(stale) = StaleClient::from_json(text) {
            return Self::StaleClient(stale);
        }
        let decoded: Result<ServerFnError, _> =
            ServerFnErrorEncoding::decode(Bytes::copy_from_slice(text.as_bytes()));
        Self::ServerFn(match decoded {
            Ok(e) => match e {
                ServerFnError::Registration(s) => ServerFnErrorErr::Registration(s),
                ServerFnError::Request(s) => ServerFnErrorErr::Request(s),
                ServerFnError::Response(s) => ServerFnErrorErr::Response(s),
                ServerFnError::ServerError(s) => ServerFnErrorErr::ServerError(s),
                ServerFnError::MiddlewareError(s) => ServerFnErrorErr::MiddlewareError(s),
                ServerFnError::Deserialization(s) => ServerFnErrorErr::Deserialization(s),
                ServerFnError::Serialization(s) => ServerFnErrorErr::Serialization(s),
                ServerFnError::Args(s) => ServerFnErrorErr::Args(s),
                ServerFnError::MissingArg(s) => ServerFnErrorErr::MissingArg(s),
                #[allow(deprecated)]
                ServerFnError::WrappedServerError(_) => {
                    ServerFnErrorErr::ServerError(String::new())
                }
            },
            Err(e) => ServerFnErrorErr::Deserialization(e),
        })
    }
}

/// [`GuardedError`]'s wire form (see its docs).
pub struct GuardedEncoding;

impl ContentType for GuardedEncoding {
    const CONTENT_TYPE: &'static str = "text/plain";
}

impl FormatType for GuardedEncoding {
    const FORMAT_TYPE: Format = Format::Text;
}

impl Encodes<GuardedError> for GuardedEncoding {
    type Error = std::convert::Infallible;

    fn encode(output: &GuardedError) -> Result<Bytes, Self::Error> {
        Ok(Bytes::from(output.to_text()))
    }
}

impl Decodes<GuardedError> for GuardedEncoding {
    type Error = std::convert::Infallible;

    fn decode(bytes: Bytes) -> Result<GuardedError, Self::Error> {
        Ok(GuardedError::from_text(&String::from_utf8_lossy(&bytes)))
    }
}

impl FromServerFnError for GuardedError {
    type Encoder = GuardedEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        Self::ServerFn(value)
    }
}

impl From<StaleClient> for GuardedError {
    fn from(value: StaleClient) -> Self {
        Self::StaleClient(value)
    }
}

/// As its wire form, a string: so a `Resource` of a guarded call's result
/// carries it into the page without a reader of its own.
impl serde::Serialize for GuardedError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_text())
    }
}

impl<'de> serde::Deserialize<'de> for GuardedError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::from_text(&text))
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
        // The guard's own body, as it writes it.
        let body = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            GuardedError::de(body.into()),
            GuardedError::StaleClient(answer.clone())
        );
        for other in [
            GuardedError::ServerFn(ServerFnErrorErr::ServerError("boom | bang".into())),
            GuardedError::ServerFn(ServerFnErrorErr::Request("offline".into())),
            GuardedError::ServerFn(ServerFnErrorErr::Args("x".into())),
            GuardedError::StaleClient(answer),
        ] {
            assert_eq!(GuardedError::de(other.ser()), other);
            // Through serde (a Resource's value), too.
            let json = serde_json::to_string(&other).unwrap();
            assert_eq!(serde_json::from_str::<GuardedError>(&json).unwrap(), other);
        }
        assert!(matches!(
            GuardedError::de("not json".into()),
            GuardedError::ServerFn(ServerFnErrorErr::Deserialization(_))
        ));
        // A message that is JSON, but not the guard's, stays a message.
        let message = GuardedError::ServerFn(ServerFnErrorErr::ServerError(
            r#"{"error":"stale_client"}"#.into(),
        ));
        assert_eq!(GuardedError::de(message.ser()), message);
    }
}
