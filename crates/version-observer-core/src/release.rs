//! Release metadata: what the operators of a new version say about it — how
//! urgent the reload is ([`Severity`]), where its release notes are, and the
//! oldest page version still supported. Set on the new version's nodes,
//! carried by their version replies into the cluster's record, and shown to
//! browsers with the announcement ([`ClusterView::announced_release`](crate::ClusterView::announced_release)).
//!
//! Everything here arrives over NATS, where anybody allowed to publish can
//! forge it, and ends up as a link in every open tab: [`Release::validate`]
//! is the one check every path applies (flags, replies, records, reports);
//! a release that fails it is dropped, never shown.
//!
//! ```
//! use version_observer_core::{Release, Severity, Version};
//! let release = Release {
//!     severity: Severity::Required,
//!     notes_url: Some("https://example.com/releases/2.0".into()),
//!     min_supported: Some(Version::new(1, 4, 0)),
//! };
//! assert!(release.validate().is_ok());
//! assert_eq!(
//!     serde_json::to_string(&release).unwrap(),
//!     r#"{"severity":"required","notes_url":"https://example.com/releases/2.0","min_supported":"1.4.0"}"#
//! );
//! let forged = Release { notes_url: Some("javascript:alert(1)".into()), ..Release::default() };
//! assert!(forged.validate().is_err());
//! ```

use semver::Version;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest release-notes URL accepted, in bytes.
pub const MAX_NOTES_URL: usize = 512;

/// How urgent reloading onto a new version is; `optional` or `required` on
/// the wire and in flags. Ordered: `Optional < Required`.
///
/// ```
/// use version_observer_core::Severity;
/// assert_eq!("required".parse::<Severity>(), Ok(Severity::Required));
/// assert_eq!(Severity::default(), Severity::Optional);
/// assert!(Severity::Optional < Severity::Required);
/// assert_eq!(Severity::Required.to_string(), "required");
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The page still works: reloading is offered (the default).
    #[default]
    Optional,
    /// The page no longer works with the servers: it must reload.
    Required,
}

impl Severity {
    /// `optional` or `required`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Optional => "optional",
            Severity::Required => "required",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "optional" => Ok(Severity::Optional),
            "required" => Ok(Severity::Required),
            other => Err(format!(
                "unknown severity {other:?}: use optional or required"
            )),
        }
    }
}

/// What a version's operators say about it (see the [module docs](self)).
/// Every field is optional on the wire; the default says nothing
/// (`optional`, no notes, no minimum).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Release {
    /// How urgent the reload is.
    #[serde(default)]
    pub severity: Severity,
    /// Where the release notes are: an absolute `https://` or `http://`
    /// URL, or a path on the site itself (`/releases/2.0`); see
    /// [`valid_notes_url`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes_url: Option<String>,
    /// The oldest page version that still works: pages older than it (by
    /// semver precedence) must reload, whatever `severity` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_supported: Option<Version>,
}

/// Why release metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid release notes URL {value:?}: {reason}")]
pub struct ReleaseError {
    /// The URL as given (cut to [`MAX_NOTES_URL`] bytes at most, for logs).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Whether `url` may be a release-notes link shown in every open tab: an
/// absolute `https://` or `http://` URL with a host, or a root-relative
/// path (`/` followed by anything but a second `/` or a `\`, which browsers
/// would take for another host); at most [`MAX_NOTES_URL`] bytes of
/// printable ASCII, without spaces, quotes, `<`, `>`, `` ` `` or `\`
/// (percent-encode anything else). Every other scheme (`javascript:`,
/// `data:`, …) and every relative reference is refused.
///
/// ```
/// use version_observer_core::release::valid_notes_url;
/// assert!(valid_notes_url("https://example.com/notes?v=2#top").is_ok());
/// assert!(valid_notes_url("/releases/2.0").is_ok());
/// for bad in ["javascript:alert(1)", "//evil.example", "/\\evil.example",
///             "notes.html", "https://", "https://a b", "data:text/html,x"] {
///     assert!(valid_notes_url(bad).is_err(), "{bad}");
/// }
/// ```
pub fn valid_notes_url(url: &str) -> Result<(), ReleaseError> {
    let fail = |reason| {
        let mut end = url.len().min(MAX_NOTES_URL);
        while !url.is_char_boundary(end) {
            end -= 1;
        }
        Err(ReleaseError {
            value: url[..end].to_owned(),
            reason,
        })
    };
    if url.is_empty() {
        return fail("it is empty");
    }
    if url.len() > MAX_NOTES_URL {
        return fail("it is longer than 512 bytes");
    }
    if !url
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'`' | b'\\'))
    {
        return fail(
            "use printable ASCII without spaces, quotes, '<', '>', '`' or '\\' (percent-encode the rest)",
        );
    }
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("http://") {
        rest
    } else if let Some(path) = url.strip_prefix('/') {
        if path.starts_with('/') {
            return fail("a path must start with a single '/' ('//' names another host)");
        }
        return Ok(());
    } else {
        return fail("use an https:// or http:// URL, or a path starting with '/'");
    };
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return fail("the URL has no host");
    }
    Ok(())
}

impl Release {
    /// Checks the release: its notes URL, if any, must pass
    /// [`valid_notes_url`]. The one check for flags, replies, records and
    /// reports alike.
    pub fn validate(&self) -> Result<(), ReleaseError> {
        match &self.notes_url {
            Some(url) => valid_notes_url(url),
            None => Ok(()),
        }
    }

    /// Whether it says nothing (the default): such a release is left out
    /// of messages and records (`None`).
    ///
    /// ```
    /// use version_observer_core::{Release, Severity};
    /// assert!(Release::default().is_empty());
    /// assert!(!Release { severity: Severity::Required, ..Release::default() }.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == Release::default()
    }

    /// `Some(self)` unless it [`is_empty`](Self::is_empty).
    pub fn non_empty(self) -> Option<Release> {
        (!self.is_empty()).then_some(self)
    }

    /// How urgent reloading is for a page of version `page`:
    /// [`Severity::Required`] if the release says so, or if `page` is older
    /// (semver precedence) than [`min_supported`](Self::min_supported);
    /// otherwise [`Severity::Optional`].
    ///
    /// ```
    /// use version_observer_core::{Release, Severity, Version};
    /// let release = Release { min_supported: Some(Version::new(1, 4, 0)), ..Release::default() };
    /// assert_eq!(release.severity_for(&Version::new(1, 3, 9)), Severity::Required);
    /// assert_eq!(release.severity_for(&Version::new(1, 4, 0)), Severity::Optional);
    /// ```
    pub fn severity_for(&self, page: &Version) -> Severity {
        let unsupported = self
            .min_supported
            .as_ref()
            .is_some_and(|min| page.cmp_precedence(min).is_lt());
        if unsupported {
            Severity::Required
        } else {
            self.severity
        }
    }

    /// The release of a settled version, from the releases its live nodes
    /// replied with (`(node id, release)`; `None` for a node that gave
    /// none). Nodes of one version normally agree; when they do not, the
    /// result is the same whatever the order of the replies:
    ///
    /// - the most severe [`severity`](Self::severity);
    /// - the highest [`min_supported`](Self::min_supported) (by semver order);
    /// - the [`notes_url`](Self::notes_url) of the lowest node id that has
    ///   one (and the lowest URL, for two processes of one id).
    ///
    /// `None` when no node gave a release, or the result says nothing.
    ///
    /// ```
    /// use version_observer_core::{Release, Severity, Version};
    /// let a = Release { notes_url: Some("/a".into()), ..Release::default() };
    /// let b = Release {
    ///     severity: Severity::Required,
    ///     notes_url: Some("/b".into()),
    ///     min_supported: Some(Version::new(1, 2, 0)),
    /// };
    /// let merged = Release::merge([("web-2", Some(&b)), ("web-1", Some(&a)), ("web-3", None)]);
    /// assert_eq!(merged, Some(Release { notes_url: Some("/a".into()), ..b }));
    /// ```
    pub fn merge<'a>(
        releases: impl IntoIterator<Item = (&'a str, Option<&'a Release>)>,
    ) -> Option<Release> {
        let mut merged = Release::default();
        let mut notes: Option<(&str, &str)> = None;
        for (id, release) in releases {
            let Some(release) = release else { continue };
            merged.severity = merged.severity.max(release.severity);
            if let Some(min) = &release.min_supported {
                if merged.min_supported.as_ref().is_none_or(|m| min > m) {
                    merged.min_supported = Some(min.clone());
                }
            }
            if let Some(url) = &release.notes_url {
                if notes.is_none_or(|known| (id, url.as_str()) < known) {
                    notes = Some((id, url));
                }
            }
        }
        merged.notes_url = notes.map(|(_, url)| url.to_owned());
        merged.non_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn notes_url_table() {
        let long_ok = format!("https://example.com/{}", "a".repeat(MAX_NOTES_URL - 20));
        assert_eq!(long_ok.len(), MAX_NOTES_URL);
        let too_long = format!("{long_ok}a");
        let cases: &[(&str, bool)] = &[
            ("https://example.com/notes", true),
            ("http://example.com", true),
            ("HTTPS://Example.com/X", true),
            ("https://example.com:8443/a/b?c=d&e=f#g", true),
            ("https://example.com/%E2%9C%93", true),
            ("/releases/2.0.0", true),
            ("/", true),
            ("/notes?x=1", true),
            (&long_ok, true),
            (&too_long, false),
            ("", false),
            ("javascript:alert(1)", false),
            ("JavaScript:alert(1)", false),
            (" javascript:alert(1)", false),
            ("java\tscript:alert(1)", false),
            ("data:text/html,<script>", false),
            ("vbscript:x", false),
            ("ftp://example.com", false),
            ("mailto:ops@example.com", false),
            ("//evil.example/x", false),
            ("/\\evil.example", false),
            ("\\\\evil.example", false),
            ("https:evil.example", false),
            ("https://", false),
            ("https:///path", false),
            ("https://?x", false),
            ("notes.html", false),
            ("./notes", false),
            ("https://example.com/a b", false),
            ("https://example.com/\n", false),
            ("https://example.com/\u{0}", false),
            ("https://example.com/\"onmouseover=\"x", false),
            ("https://example.com/<script>", false),
            ("https://example.com/`x`", false),
            ("https://exämple.com", false),
        ];
        for (url, ok) in cases {
            assert_eq!(valid_notes_url(url).is_ok(), *ok, "{url:?}");
            let release = Release {
                notes_url: Some((*url).to_owned()),
                ..Release::default()
            };
            assert_eq!(release.validate().is_ok(), *ok, "{url:?}");
        }
        assert!(Release::default().validate().is_ok());
        // The error names the value, cut to a bounded length.
        let err = valid_notes_url(&"x".repeat(10_000)).unwrap_err();
        assert_eq!(err.value.len(), MAX_NOTES_URL);
        let err = valid_notes_url("javascript:alert(1)").unwrap_err();
        assert!(err.to_string().contains("javascript:alert(1)"), "{err}");
    }

    #[test]
    fn severity_parses_and_serializes_lowercase() {
        for (text, severity) in [
            ("optional", Severity::Optional),
            ("required", Severity::Required),
        ] {
            assert_eq!(text.parse::<Severity>(), Ok(severity));
            assert_eq!(
                serde_json::to_string(&severity).unwrap(),
                format!("\"{text}\"")
            );
        }
        for bad in ["Required", "mandatory", ""] {
            let err = bad.parse::<Severity>().unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn a_release_decodes_from_any_subset_of_its_fields() {
        let empty: Release = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"severity":"optional"}"#
        );
        let some: Release = serde_json::from_str(r#"{"min_supported":"1.2.3"}"#).unwrap();
        assert_eq!(some.min_supported, Some(v("1.2.3")));
        assert_eq!(some.severity, Severity::Optional);
        assert_eq!(some.clone().non_empty(), Some(some));
        assert_eq!(Release::default().non_empty(), None);
    }

    #[test]
    fn severity_for_table() {
        // (release severity, min_supported, page, expected)
        let cases = [
            (Severity::Optional, None, "1.0.0", Severity::Optional),
            (Severity::Required, None, "1.0.0", Severity::Required),
            (
                Severity::Optional,
                Some("1.2.0"),
                "1.1.9",
                Severity::Required,
            ),
            (
                Severity::Optional,
                Some("1.2.0"),
                "1.2.0",
                Severity::Optional,
            ),
            (
                Severity::Optional,
                Some("1.2.0"),
                "1.3.0",
                Severity::Optional,
            ),
            // a pre-release precedes its release
            (
                Severity::Optional,
                Some("1.2.0"),
                "1.2.0-rc.1",
                Severity::Required,
            ),
            // build metadata has no precedence
            (
                Severity::Optional,
                Some("1.2.0+b"),
                "1.2.0+a",
                Severity::Optional,
            ),
            (
                Severity::Required,
                Some("1.2.0"),
                "2.0.0",
                Severity::Required,
            ),
        ];
        for (severity, min, page, want) in cases {
            let release = Release {
                severity,
                notes_url: None,
                min_supported: min.map(v),
            };
            assert_eq!(release.severity_for(&v(page)), want, "{release:?} {page}");
        }
    }

    fn r(severity: Severity, url: Option<&str>, min: Option<&str>) -> Release {
        Release {
            severity,
            notes_url: url.map(str::to_owned),
            min_supported: min.map(v),
        }
    }

    #[test]
    fn merge_is_deterministic() {
        use Severity::*;
        let a = r(Optional, Some("/a"), Some("1.0.0"));
        let b = r(Required, None, Some("1.5.0"));
        let c = r(Optional, Some("/c"), Some("1.2.0"));
        let want = Some(r(Required, Some("/a"), Some("1.5.0")));
        let orders: [[(&str, Option<&Release>); 4]; 3] = [
            [
                ("n-a", Some(&a)),
                ("n-b", Some(&b)),
                ("n-c", Some(&c)),
                ("n-d", None),
            ],
            [
                ("n-d", None),
                ("n-c", Some(&c)),
                ("n-b", Some(&b)),
                ("n-a", Some(&a)),
            ],
            [
                ("n-b", Some(&b)),
                ("n-d", None),
                ("n-a", Some(&a)),
                ("n-c", Some(&c)),
            ],
        ];
        for order in orders {
            assert_eq!(Release::merge(order), want, "{order:?}");
        }
        // The lowest id with a URL wins, not the lowest id.
        assert_eq!(
            Release::merge([("a", Some(&b)), ("z", Some(&c))]),
            Some(r(Required, Some("/c"), Some("1.5.0")))
        );
        // Two processes of one id: the lowest URL.
        let c2 = r(Optional, Some("/b"), None);
        assert_eq!(
            Release::merge([("x", Some(&c)), ("x", Some(&c2))])
                .unwrap()
                .notes_url,
            Some("/b".into())
        );
        // Nobody gave one, or only empty ones: none.
        assert_eq!(Release::merge([("a", None), ("b", None)]), None);
        assert_eq!(Release::merge([("a", Some(&Release::default()))]), None);
        assert_eq!(Release::merge([]), None);
    }
}
