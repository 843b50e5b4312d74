//! The site's bundle files (wasm, JS, CSS) under content-hashed names, and
//! the rules of the cluster's asset store, with no I/O: which request names
//! may be looked up at all, what cargo-leptos' hash file says, what a
//! version's index object holds, and which versions a node prunes.
//!
//! With `hash-files = true`, cargo-leptos names the bundle
//! `<output>.<hash>.<ext>` (the hash: 22 characters of unpadded base64url)
//! and writes the hashes to a file, one `ext: hash` line each:
//!
//! ```
//! use version_observer_core::assets::{bundle_files, is_hashed_name, parse_hash_file};
//! let hashes = parse_hash_file("js: AAAAAAAAAAAAAAAAAAAAAA\nwasm: BBBBBBBBBBBBBBBBBBBBBB\ncss: CCCCCCCCCCCCCCCCCCCCCC\n").unwrap();
//! let files = bundle_files("app", &hashes);
//! assert_eq!(files[0], ("js".to_string(), "app.AAAAAAAAAAAAAAAAAAAAAA.js".to_string()));
//! assert!(is_hashed_name("app.BBBBBBBBBBBBBBBBBBBBBB.wasm"));
//! assert!(!is_hashed_name("app.wasm"));
//! assert!(!is_hashed_name("../app.BBBBBBBBBBBBBBBBBBBBBB.wasm"));
//! ```

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest asset name looked up (a request's file name, an object name).
pub const MAX_NAME: usize = 128;
/// The length of cargo-leptos' content hash (MD5, unpadded base64url).
pub const HASH_LEN: usize = 22;
/// The extensions of the bundle's files, in the order the hash file lists them.
pub const BUNDLE_EXTENSIONS: [&str; 3] = ["js", "wasm", "css"];
/// The prefix of every version's index object in the asset store.
pub const INDEX_PREFIX: &str = "index/";
/// Versions whose bundles the store keeps by default.
pub const DEFAULT_KEEP_VERSIONS: usize = 5;

fn hash_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A file name a request may name: 1 to [`MAX_NAME`] bytes of
/// `[A-Za-z0-9._-]`, not starting with `.`, without `..`: never a path.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name.bytes().all(|b| hash_char(b) || b == b'.')
}

/// A content-hashed bundle file name, `<stem>.<hash>.<ext>`: a safe name
/// ([`is_safe_name`]) whose next-to-last part is a [`HASH_LEN`]-character
/// hash and whose extension is a bundle's (`js`, `wasm`, `css`). Only such
/// names are looked up in the asset store, and only they are served as
/// immutable.
pub fn is_hashed_name(name: &str) -> bool {
    if !is_safe_name(name) {
        return false;
    }
    let mut parts = name.rsplitn(3, '.');
    let (Some(ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !stem.is_empty()
        && BUNDLE_EXTENSIONS.contains(&ext)
        && hash.len() == HASH_LEN
        && hash.bytes().all(hash_char)
}

/// Whether a response for `path` must be revalidated by browsers: its last
/// segment names a bundle file (`.js`, `.wasm`, `.css`) that is not
/// content-hashed, so the same URL serves another build after a deploy (a
/// page reloaded onto a new build must not hydrate with a cached old wasm).
/// The request guard gives such responses `Cache-Control: no-cache` when
/// the app's file handler set none.
///
/// ```
/// use version_observer_core::assets::needs_revalidation;
/// assert!(needs_revalidation("/pkg/myapp.wasm"));
/// assert!(!needs_revalidation("/pkg/myapp.0123456789abcdefABCDEF.wasm"));
/// assert!(!needs_revalidation("/favicon.ico"));
/// ```
pub fn needs_revalidation(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((_, ext)) = name.rsplit_once('.') else {
        return false;
    };
    BUNDLE_EXTENSIONS.contains(&ext) && !is_hashed_name(name)
}

/// What is wrong with a hash file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashFileError {
    /// A line is not `ext: hash`, or its hash is not [`HASH_LEN`] hash characters.
    #[error("line {line}: expected `<ext>: <22-character hash>`")]
    BadLine {
        /// The line's number, from 1.
        line: usize,
    },
    /// A bundle extension has no hash.
    #[error("no hash for the .{0} file")]
    Missing(&'static str),
}

/// The hashes in cargo-leptos' hash file (`js: …`, `wasm: …`, `css: …`;
/// other entries, such as a split manifest's, are kept too): extension to
/// hash. Every bundle extension must be there.
pub fn parse_hash_file(text: &str) -> Result<BTreeMap<String, String>, HashFileError> {
    let mut hashes = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = HashFileError::BadLine { line: i + 1 };
        let (ext, hash) = line.split_once(':').ok_or(bad.clone())?;
        let (ext, hash) = (ext.trim(), hash.trim());
        if ext.is_empty()
            || !ext.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || hash.len() != HASH_LEN
            || !hash.bytes().all(hash_char)
        {
            return Err(bad);
        }
        hashes.insert(ext.to_owned(), hash.to_owned());
    }
    for ext in BUNDLE_EXTENSIONS {
        if !hashes.contains_key(ext) {
            return Err(HashFileError::Missing(ext));
        }
    }
    Ok(hashes)
}

/// The bundle's file names, `(ext, "<output>.<hash>.<ext>")`, in
/// [`BUNDLE_EXTENSIONS`] order, for the extensions `hashes` has.
pub fn bundle_files(output_name: &str, hashes: &BTreeMap<String, String>) -> Vec<(String, String)> {
    BUNDLE_EXTENSIONS
        .iter()
        .filter_map(|ext| {
            let hash = hashes.get(*ext)?;
            Some(((*ext).to_owned(), format!("{output_name}.{hash}.{ext}")))
        })
        .collect()
}

/// One version's index object in the asset store: the bundle files its
/// nodes put there, and when a node of it last started (refreshed by every
/// start, so the versions being deployed are the newest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetIndex {
    /// The version, as its nodes report it.
    pub version: String,
    /// Its bundle's hashed file names (the objects' names).
    pub files: Vec<String>,
    /// When one of its nodes last started, in Unix milliseconds.
    pub at_ms: u64,
}

/// The name of `version`'s index object: [`INDEX_PREFIX`] and the version,
/// `+` (build metadata) written `=` since object names cannot hold `+`.
/// It can never be a hashed name, nor a name a request can give (`/`).
pub fn index_object_name(version: &str) -> String {
    format!("{INDEX_PREFIX}{}", version.replace('+', "="))
}

/// What pruning removes: these versions' index objects, and the files only
/// they referenced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prune {
    /// Versions whose index objects go.
    pub versions: Vec<String>,
    /// Files no kept version references.
    pub files: Vec<String>,
}

/// Which versions (and files) to delete so that the store keeps the `keep`
/// most recently started versions (by [`AssetIndex::at_ms`], then version
/// string, newest first), and always `own` (the pruning node's version,
/// whatever the clocks say, and listed or not: it takes one of the `keep`
/// places), and every version in `live` (what the cluster's live nodes run,
/// as far as the pruning node knows: their pages still load these files;
/// kept beyond `keep` if need be). A file shared with a kept version
/// stays. `keep` is at least 1 (0 is taken as 1).
pub fn prune_plan(
    indexes: &[AssetIndex],
    keep: usize,
    own: &str,
    live: &BTreeSet<String>,
) -> Prune {
    let mut order: Vec<&AssetIndex> = indexes.iter().collect();
    order.sort_by(|a, b| {
        b.at_ms
            .cmp(&a.at_ms)
            .then_with(|| b.version.cmp(&a.version))
    });
    // The own version always takes one of the `keep` places, listed or not
    // (its index may not be visible yet); the newest others take the rest.
    let others = keep.max(1) - 1;
    let mut kept_others = BTreeSet::new();
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for index in order {
        if index.version == own
            || live.contains(&index.version)
            || kept_others.contains(&index.version)
            || kept_others.len() < others
        {
            if index.version != own {
                kept_others.insert(index.version.clone());
            }
            kept.push(index);
        } else {
            dropped.push(index);
        }
    }
    let kept_files: BTreeSet<&str> = kept
        .iter()
        .flat_map(|i| i.files.iter().map(String::as_str))
        .collect();
    let versions: BTreeSet<String> = dropped.iter().map(|i| i.version.clone()).collect();
    let files: BTreeSet<String> = dropped
        .iter()
        .flat_map(|i| i.files.iter())
        .filter(|f| !kept_files.contains(f.as_str()))
        .cloned()
        .collect();
    Prune {
        versions: versions.into_iter().collect(),
        files: files.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "AAAAAAAAAAAAAAAAAAAAAA";
    const H2: &str = "abcdefghijklmnopqrst-_";

    #[test]
    fn hashed_names_are_recognised_and_nothing_else() {
        for ok in [
            format!("version-observer.{H1}.wasm"),
            format!("version-observer.{H2}.js"),
            format!("a.{H1}.css"),
            format!("my.app.{H1}.css"),
        ] {
            assert!(is_hashed_name(&ok), "{ok}");
        }
        for bad in [
            "version-observer.wasm".to_owned(),
            format!("{H1}.wasm"),
            format!(".{H1}.wasm"),
            format!("x.{H1}.exe"),
            format!("x.{H1}x.wasm"),
            format!("x.{}.wasm", &H1[1..]),
            format!("../x.{H1}.wasm"),
            format!("..%2fx.{H1}.wasm"),
            format!("x/y.{H1}.wasm"),
            format!("x\\y.{H1}.wasm"),
            format!("x..{H1}.wasm"),
            format!("{}.{H1}.wasm", "a".repeat(MAX_NAME)),
            format!("x.{H1}.wasm\n"),
            format!("x y.{H1}.wasm"),
            String::new(),
        ] {
            assert!(!is_hashed_name(&bad), "{bad:?}");
        }
    }

    #[test]
    fn safe_names_are_never_paths() {
        assert!(is_safe_name("version-observer.css"));
        for bad in [
            "", ".", "..", "../a", "a/b", ".hidden", "a..b", "a.", "%2e%2e", "a b",
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(!is_safe_name(&"a".repeat(MAX_NAME + 1)));
        assert!(is_safe_name(&"a".repeat(MAX_NAME)));
    }

    #[test]
    fn hash_files_parse_like_cargo_leptos_writes_them() {
        let text = format!("js: {H1}\nwasm: {H2}\ncss: {H1}\nmanifest: {H2}\n");
        let hashes = parse_hash_file(&text).unwrap();
        assert_eq!(
            bundle_files("vo", &hashes),
            vec![
                ("js".to_owned(), format!("vo.{H1}.js")),
                ("wasm".to_owned(), format!("vo.{H2}.wasm")),
                ("css".to_owned(), format!("vo.{H1}.css")),
            ]
        );
        assert_eq!(
            parse_hash_file(&format!("js: {H1}\nwasm: {H2}\n")),
            Err(HashFileError::Missing("css"))
        );
        assert_eq!(
            parse_hash_file(&format!("js: {H1}\nwasm: ../etc\ncss: {H1}")),
            Err(HashFileError::BadLine { line: 2 })
        );
        assert_eq!(
            parse_hash_file("garbage"),
            Err(HashFileError::BadLine { line: 1 })
        );
    }

    #[test]
    fn index_names_hold_any_version_and_are_never_request_names() {
        assert_eq!(index_object_name("1.0.0"), "index/1.0.0");
        assert_eq!(
            index_object_name("2.0.0-rc.1+build.5"),
            "index/2.0.0-rc.1=build.5"
        );
        assert!(!is_safe_name(&index_object_name("1.0.0")));
    }

    fn index(version: &str, at_ms: u64, files: &[&str]) -> AssetIndex {
        AssetIndex {
            version: version.into(),
            files: files.iter().map(|f| f.to_string()).collect(),
            at_ms,
        }
    }

    #[test]
    fn the_newest_versions_are_kept_and_the_rest_pruned() {
        let indexes = [
            index("1.0.0", 100, &["a1.js", "shared.css"]),
            index("2.0.0", 200, &["a2.js", "shared.css"]),
            index("3.0.0", 300, &["a3.js", "c3.css"]),
        ];
        assert_eq!(
            prune_plan(&indexes, 2, "3.0.0", &none()),
            Prune {
                versions: vec!["1.0.0".into()],
                files: vec!["a1.js".into()],
            },
            "the CSS 2.0.0 still uses stays"
        );
        assert_eq!(
            prune_plan(&indexes, 1, "3.0.0", &none()),
            Prune {
                versions: vec!["1.0.0".into(), "2.0.0".into()],
                files: vec!["a1.js".into(), "a2.js".into(), "shared.css".into()],
            }
        );
        assert_eq!(prune_plan(&indexes, 3, "3.0.0", &none()), Prune::default());
        assert_eq!(prune_plan(&indexes, 5, "3.0.0", &none()), Prune::default());
        assert_eq!(prune_plan(&[], 2, "3.0.0", &none()), Prune::default());
    }

    #[test]
    fn the_pruning_nodes_own_version_is_always_kept() {
        // Its clock is behind: its own index looks oldest.
        let indexes = [
            index("1.0.0", 100, &["a1.js"]),
            index("2.0.0", 200, &["a2.js"]),
            index("3.0.0", 300, &["a3.js"]),
        ];
        assert_eq!(
            prune_plan(&indexes, 2, "1.0.0", &none()),
            Prune {
                versions: vec!["2.0.0".into()],
                files: vec!["a2.js".into()],
            }
        );
        assert_eq!(
            prune_plan(&indexes, 1, "1.0.0", &none()),
            Prune {
                versions: vec!["2.0.0".into(), "3.0.0".into()],
                files: vec!["a2.js".into(), "a3.js".into()],
            }
        );
        // 0 is taken as 1: never the own version's files.
        assert_eq!(
            prune_plan(&indexes, 0, "3.0.0", &none()).versions,
            ["1.0.0", "2.0.0"]
        );
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn a_version_live_nodes_run_is_never_pruned() {
        // Three versions live mid-deploy with room for two: the old one stays.
        let indexes = [
            index("1.0.0", 100, &["a1.js", "shared.css"]),
            index("2.0.0", 200, &["a2.js", "shared.css"]),
            index("3.0.0", 300, &["a3.js"]),
            index("0.9.0", 50, &["a0.js"]),
        ];
        let live = ["1.0.0".to_owned(), "3.0.0".to_owned()].into();
        assert_eq!(
            prune_plan(&indexes, 2, "3.0.0", &live),
            Prune {
                versions: vec!["0.9.0".into()],
                files: vec!["a0.js".into()],
            },
            "1.0.0 is live: kept beyond the two places"
        );
        assert_eq!(
            prune_plan(&indexes, 1, "1.0.0", &live).versions,
            ["0.9.0", "2.0.0"]
        );
    }

    #[test]
    fn ties_are_broken_the_same_way_on_every_node() {
        let indexes = [index("1.0.0", 5, &["a"]), index("2.0.0", 5, &["b"])];
        let reversed = [indexes[1].clone(), indexes[0].clone()];
        assert_eq!(
            prune_plan(&indexes, 2, "9.0.0", &none()),
            prune_plan(&reversed, 2, "9.0.0", &none())
        );
        // The own version (not listed yet) takes one place of two.
        assert_eq!(
            prune_plan(&indexes, 2, "9.0.0", &none()).versions,
            ["1.0.0"]
        );
        assert_eq!(
            prune_plan(&indexes, 1, "9.0.0", &none()).versions,
            ["1.0.0", "2.0.0"]
        );
    }
}
