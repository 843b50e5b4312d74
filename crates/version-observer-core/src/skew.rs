//! The request guard's rule: which requests from an open page a node
//! refuses, and the typed answer it gives (`409 Conflict` with a
//! [`StaleClient`] body), so that an old tab never has a server function run
//! with the arguments of another build.
//!
//! A page names its version in the [`PAGE_VERSION_HEADER`] of every request
//! it makes to its own origin. A node refuses the request when that version
//! is incompatible with its own under the policy, or older than the node's
//! minimum supported version; requests without the header (curl, other
//! services, health checks, page loads) pass untouched.
//!
//! ```
//! use version_observer_core::{skew::{check, Stale}, Compat, Version};
//! let server = Version::new(2, 0, 0);
//! let refused = check(&Version::new(1, 4, 0), &server, Compat::Major, None).unwrap();
//! assert_eq!(refused.stale, Stale::Page);
//! assert_eq!(check(&Version::new(2, 1, 0), &server, Compat::Major, None), None);
//! ```

use crate::compat::Compat;
use semver::Version;
use serde::{Deserialize, Serialize};

/// The request header that carries the page's version.
pub const PAGE_VERSION_HEADER: &str = "x-version-observer-page";

/// The status of a refused request.
pub const STATUS: u16 = 409;

/// Which side is behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stale {
    /// The page is older than the server: it should reload.
    Page,
    /// The page is newer (a node of the previous version, mid-deploy): the
    /// page stays; retrying later reaches a new node.
    Server,
}

/// The `error` tag of a [`StaleClient`] body, always `"stale_client"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StaleClientTag {
    /// The only value.
    #[default]
    #[serde(rename = "stale_client")]
    StaleClient,
}

/// The body of a refused request (`409 Conflict`, `application/json`):
/// what the page has, what the server runs, and which side is behind.
///
/// ```
/// use version_observer_core::skew::StaleClient;
/// let body = r#"{"error":"stale_client","page_version":"1.0.0","server_version":"2.0.0","stale":"page"}"#;
/// let answer: StaleClient = serde_json::from_str(body).unwrap();
/// assert_eq!(answer.server_version, semver::Version::new(2, 0, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("this page ({page_version}) and the server ({server_version}) run incompatible versions")]
pub struct StaleClient {
    /// Always `"stale_client"`: tells this body from any other JSON.
    pub error: StaleClientTag,
    /// The version the page named.
    pub page_version: Version,
    /// The version the server runs.
    pub server_version: Version,
    /// Which side is behind.
    pub stale: Stale,
    /// The server's minimum supported version, when it has one and the page
    /// is older.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_supported: Option<Version>,
    /// Why the node did not pass the request on to a member that could
    /// serve this page ([`crate::affinity`]), when it tried; absent when
    /// forwarding is off (a single node, or turned off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<ForwardFailure>,
}

/// Why a request from a page of another version was answered `409`
/// although forwarding is on ([`StaleClient::forward`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardFailure {
    /// No live member runs a version that can serve the page: the call did
    /// not run.
    NoMember,
    /// The request is larger than a forwarded request may be (or its body
    /// would not end): the call did not run.
    TooLarge,
    /// The member did not answer within the forwarding timeout: the call
    /// **may have run** there, and is not retried.
    Timeout,
    /// The member declined it, or its answer was unreadable or not
    /// authentic: the call did not run, or (an unreadable answer) may have.
    Failed,
}

impl ForwardFailure {
    /// Every reason, for metrics.
    pub const ALL: [ForwardFailure; 4] = [
        ForwardFailure::NoMember,
        ForwardFailure::TooLarge,
        ForwardFailure::Timeout,
        ForwardFailure::Failed,
    ];

    /// Its name on the wire and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardFailure::NoMember => "no_member",
            ForwardFailure::TooLarge => "too_large",
            ForwardFailure::Timeout => "timeout",
            ForwardFailure::Failed => "failed",
        }
    }
}

/// Whether a server of version `server` refuses a request from a page of
/// version `page`, and its answer.
pub fn check(
    page: &Version,
    server: &Version,
    compat: Compat,
    min_supported: Option<&Version>,
) -> Option<StaleClient> {
    let unsupported = min_supported.filter(|min| page.cmp_precedence(min).is_lt());
    if compat.compatible(page, server) && unsupported.is_none() {
        return None;
    }
    let stale = if unsupported.is_some() || page.cmp_precedence(server).is_lt() {
        Stale::Page
    } else {
        Stale::Server
    };
    Some(StaleClient {
        error: StaleClientTag::StaleClient,
        page_version: page.clone(),
        server_version: server.clone(),
        stale,
        min_supported: unsupported.cloned(),
        forward: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn the_rule_table() {
        use Stale::*;
        // (page, server, policy, min supported, expected)
        type Row = (
            &'static str,
            &'static str,
            Compat,
            Option<&'static str>,
            Option<Stale>,
        );
        let table: &[Row] = &[
            ("1.0.0", "1.0.0", Compat::Major, None, None),
            ("1.0.0", "1.9.3", Compat::Major, None, None),
            ("1.9.3", "1.0.0", Compat::Major, None, None),
            ("1.0.0", "2.0.0", Compat::Major, None, Some(Page)),
            ("2.0.0", "1.0.0", Compat::Major, None, Some(Server)),
            ("1.0.0", "1.1.0", Compat::Minor, None, Some(Page)),
            ("1.0.0", "1.0.1", Compat::Minor, None, None),
            ("1.0.0", "1.0.1", Compat::Exact, None, Some(Page)),
            // Below the minimum supported version: refused even if compatible.
            ("1.4.0", "1.6.0", Compat::Major, Some("1.5.0"), Some(Page)),
            ("1.5.0", "1.6.0", Compat::Major, Some("1.5.0"), None),
            ("1.0.0", "2.0.0", Compat::Major, Some("0.1.0"), Some(Page)),
        ];
        for (page, server, compat, min, expected) in table {
            let min = min.map(v);
            let got = check(&v(page), &v(server), *compat, min.as_ref());
            assert_eq!(
                got.as_ref().map(|a| a.stale),
                *expected,
                "{page} -> {server} {compat:?} {min:?}"
            );
            if let Some(answer) = got {
                assert_eq!(answer.page_version, v(page));
                assert_eq!(answer.server_version, v(server));
            }
        }
    }

    #[test]
    fn the_body_round_trips_and_is_told_from_other_json() {
        let answer = check(&v("1.4.0"), &v("1.6.0"), Compat::Major, Some(&v("1.5.0"))).unwrap();
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            text,
            r#"{"error":"stale_client","page_version":"1.4.0","server_version":"1.6.0","stale":"page","min_supported":"1.5.0"}"#
        );
        assert_eq!(serde_json::from_str::<StaleClient>(&text).unwrap(), answer);
        for other in [
            r#"{"error":"other","page_version":"1.4.0","server_version":"1.6.0","stale":"page"}"#,
            r#"{"page_version":"1.4.0","server_version":"1.6.0","stale":"page"}"#,
            r#"{"ServerError":"boom"}"#,
        ] {
            assert!(
                serde_json::from_str::<StaleClient>(other).is_err(),
                "{other}"
            );
        }
    }
}
