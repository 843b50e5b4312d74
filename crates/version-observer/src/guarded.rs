//! [`GuardedError`]: the error type of a server function behind the
//! request guard, whose [`StaleClient`] variant the app can match.

use bytes::Bytes;
use leptos::server_fn::{
    error::{FromServerFnError, ServerFnErrorErr},
    ContentType, Decodes, Encodes, Format, FormatType,
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

/// The names of Leptos' text form of a `ServerFnError` (`Name|message`).
const NAMES: [&str; 9] = [
    "Registration",
    "Request",
    "Response",
    "ServerError",
    "MiddlewareError",
    "Deserialization",
    "Serialization",
    "Args",
    "MissingArg",
];

impl GuardedError {
    /// The wire form: the refusal's JSON, or Leptos' text form of any other
    /// failure (`ServerError|message`, as `ServerFnError` writes it).
    fn to_text(&self) -> String {
        use ServerFnErrorErr as E;
        let (at, message) = match self {
            Self::StaleClient(answer) => return answer.to_json(),
            Self::ServerFn(e) => match e {
                E::Registration(m) => (0, m),
                // Leptos writes an unsupported method as a `Request` error.
                E::Request(m) | E::UnsupportedRequestMethod(m) => (1, m),
                E::Response(m) => (2, m),
                E::ServerError(m) => (3, m),
                E::MiddlewareError(m) => (4, m),
                E::Deserialization(m) => (5, m),
                E::Serialization(m) => (6, m),
                E::Args(m) => (7, m),
                E::MissingArg(m) => (8, m),
            },
        };
        format!("{}|{message}", NAMES[at])
    }

    /// Reads [`to_text`](Self::to_text)'s form back (by hand: Leptos' own
    /// reader quotes what it cannot read with `Debug`, which costs a page
    /// its formatting code).
    fn from_text(text: &str) -> Self {
        // In the page, through its own `JSON.parse`.
        #[cfg(feature = "hydrate")]
        let stale = crate::browser::json::stale_client(text);
        #[cfg(not(feature = "hydrate"))]
        let stale = StaleClient::from_json(text);
        if let Some(stale) = stale {
            return Self::StaleClient(stale);
        }
        use ServerFnErrorErr as E;
        let known = text.split_once('|').and_then(|(name, message)| {
            let make = [
                E::Registration,
                E::Request,
                E::Response,
                E::ServerError,
                E::MiddlewareError,
                E::Deserialization,
                E::Serialization,
                E::Args,
                E::MissingArg,
            ][NAMES.iter().position(|n| *n == name)?];
            Some(make(message.to_owned()))
        });
        Self::ServerFn(known.unwrap_or_else(|| E::Deserialization(text.to_owned())))
    }
}

/// [`GuardedError`]'s wire form (see its docs): its
/// `FromServerFnError::Encoder`, which Leptos uses; you never need to name it.
#[derive(Debug, Clone, Copy)]
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
        // Every other failure in Leptos' own text form, both ways.
        use leptos::server_fn::ServerFnError;
        use ServerFnErrorErr as E;
        let m = || "a | message".to_owned();
        for e in [
            E::Registration(m()),
            E::Request(m()),
            E::Response(m()),
            E::ServerError(m()),
            E::MiddlewareError(m()),
            E::Deserialization(m()),
            E::Serialization(m()),
            E::Args(m()),
            E::MissingArg(m()),
        ] {
            let ours = GuardedError::ServerFn(e.clone());
            let leptos: ServerFnError = ServerFnError::from_server_fn_error(e);
            assert_eq!(ours.ser(), leptos.ser());
            assert_eq!(GuardedError::de(leptos.ser()), ours);
        }
        assert_eq!(
            GuardedError::ServerFn(E::UnsupportedRequestMethod(m())).ser(),
            GuardedError::ServerFn(E::Request(m())).ser()
        );
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
