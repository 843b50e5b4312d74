//! The compatibility policy: when is a running page's version "the same API" as
//! the version the cluster settled on?
//!
//! Compatibility is an equivalence on a *key* taken from the version, so it is
//! symmetric (a rollback is judged like an upgrade) and transitive (a page that is
//! compatible with the announced version is compatible with every version that
//! settles without a new announcement). The key, per mode:
//!
//! | mode    | compared                                                         |
//! |---------|------------------------------------------------------------------|
//! | `major` | components up to the leftmost non-zero one (Cargo's caret rule)  |
//! | `minor` | at least `major.minor`, and up to the leftmost non-zero one      |
//! | `patch` | `major.minor.patch`                                              |
//! | `exact` | the whole version, pre-release and build metadata included       |
//!
//! So under `major`, `1.2.3 ~ 1.9.0` but `0.1.0 !~ 0.2.0` and `0.0.1 !~ 0.0.2`:
//! below 1.0 the leftmost non-zero component is the breaking one, as in Cargo.
//!
//! Pre-releases (`1.0.0-rc.1`) carry no compatibility promise in semver, so in
//! every mode but `exact` a pre-release is compatible only with the identical
//! pre-release; build metadata (`+abc`) is ignored, as semver requires for
//! precedence. `exact` treats any difference at all, build metadata included,
//! as a new version.

use semver::Version;
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// Which version changes make an open page stale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compat {
    /// A change in the leftmost non-zero component is breaking (the default).
    #[default]
    Major,
    /// A change in `major.minor` (or a more significant component) is breaking.
    Minor,
    /// Any change of `major.minor.patch` is breaking.
    Patch,
    /// Any change at all, build metadata included, is breaking.
    Exact,
}

/// A compatibility mode name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compatibility mode {0:?}: expected one of major, minor, patch, exact")]
pub struct UnknownCompat(pub String);

impl Compat {
    /// All modes, in order from the most lenient to the strictest.
    pub const ALL: [Compat; 4] = [Compat::Major, Compat::Minor, Compat::Patch, Compat::Exact];

    /// The mode's name as written on the command line and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Compat::Major => "major",
            Compat::Minor => "minor",
            Compat::Patch => "patch",
            Compat::Exact => "exact",
        }
    }

    /// Whether a page built as `a` keeps working against a back end built as `b`.
    pub fn compatible(self, a: &Version, b: &Version) -> bool {
        let components_compared = match self {
            Compat::Exact => return a == b,
            Compat::Major => 1,
            Compat::Minor => 2,
            Compat::Patch => 3,
        };
        if a.pre != b.pre {
            return false;
        }
        let compared = components_compared.max(leftmost_non_zero(a).max(leftmost_non_zero(b)));
        let (ka, kb) = ([a.major, a.minor, a.patch], [b.major, b.minor, b.patch]);
        ka[..compared] == kb[..compared]
    }
}

/// How many components, counted from the left, reach the first non-zero one
/// (3 for `0.0.0`).
fn leftmost_non_zero(v: &Version) -> usize {
    [v.major, v.minor, v.patch]
        .iter()
        .position(|c| *c != 0)
        .map_or(3, |i| i + 1)
}

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compat {
    type Err = UnknownCompat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compat::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownCompat(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// (a, b, [major, minor, patch, exact]) — whether a page on `a` works against `b`.
    const TABLE: &[(&str, &str, [bool; 4])] = &[
        // identical
        ("1.2.3", "1.2.3", [true, true, true, true]),
        // patch, minor and major bumps
        ("1.2.3", "1.2.4", [true, true, false, false]),
        ("1.2.3", "1.3.0", [true, false, false, false]),
        ("1.2.3", "2.0.0", [false, false, false, false]),
        ("0.1.0", "1.0.0", [false, false, false, false]),
        ("1.0.0", "1.1.0", [true, false, false, false]),
        // downgrades are judged like upgrades
        ("2.0.0", "1.9.9", [false, false, false, false]),
        ("1.3.0", "1.2.9", [true, false, false, false]),
        // below 1.0 the leftmost non-zero component breaks (Cargo's caret rule)
        ("0.1.0", "0.1.7", [true, true, false, false]),
        ("0.1.0", "0.2.0", [false, false, false, false]),
        ("0.0.1", "0.0.2", [false, false, false, false]),
        ("0.0.0", "0.0.0", [true, true, true, true]),
        // pre-releases: compatible only with the identical pre-release
        ("1.0.0-rc.1", "1.0.0-rc.1", [true, true, true, true]),
        ("1.0.0-rc.1", "1.0.0-rc.2", [false, false, false, false]),
        ("1.0.0-rc.1", "1.0.0", [false, false, false, false]),
        ("1.0.0", "1.1.0-alpha", [false, false, false, false]),
        ("2.0.0-beta", "1.0.0", [false, false, false, false]),
        // build metadata is ignored, except by `exact`
        ("1.0.0+abc", "1.0.0+def", [true, true, true, false]),
        ("1.0.0-rc.1+abc", "1.0.0-rc.1", [true, true, true, false]),
        ("1.0.0+abc", "1.4.0", [true, false, false, false]),
    ];

    #[test]
    fn compatibility_table() {
        for (a, b, expected) in TABLE {
            for (mode, want) in Compat::ALL.into_iter().zip(expected) {
                assert_eq!(
                    mode.compatible(&v(a), &v(b)),
                    *want,
                    "{mode}: {a} vs {b} should be {}",
                    if *want { "compatible" } else { "incompatible" }
                );
            }
        }
    }

    #[test]
    fn compatibility_is_symmetric() {
        for (a, b, _) in TABLE {
            for mode in Compat::ALL {
                assert_eq!(mode.compatible(&v(a), &v(b)), mode.compatible(&v(b), &v(a)));
            }
        }
    }

    #[test]
    fn stricter_modes_never_accept_more() {
        for (a, b, expected) in TABLE {
            for pair in expected.windows(2) {
                assert!(
                    pair[0] || !pair[1],
                    "{a} vs {b}: {expected:?} is not monotone"
                );
            }
        }
    }

    #[test]
    fn parses_mode_names() {
        assert_eq!("major".parse(), Ok(Compat::Major));
        assert_eq!(" Minor ".parse(), Ok(Compat::Minor));
        assert_eq!("patch".parse(), Ok(Compat::Patch));
        assert_eq!("exact".parse(), Ok(Compat::Exact));
        let err = "semver".parse::<Compat>().unwrap_err();
        assert!(err.to_string().contains("\"semver\""), "{err}");
    }

    #[test]
    fn serializes_as_lowercase_names() {
        assert_eq!(serde_json::to_string(&Compat::Minor).unwrap(), "\"minor\"");
        assert_eq!(
            serde_json::from_str::<Compat>("\"exact\"").unwrap(),
            Compat::Exact
        );
    }
}
