//! A small JSON reader for what a browser reads: the version report of the
//! event stream ([`VersionReport::from_json`]) and the request guard's
//! answer ([`StaleClient::from_json`]).
//!
//! The server writes these with serde; the page reads them with this
//! instead, because serde's derived readers are compiled into the page's
//! wasm once per type and per input kind, and cost every visitor more bytes
//! than the page's whole logic. The readers here read every text the
//! server writes as the derived ones do (unknown fields are ignored, a
//! missing or `null` optional field is `None`) and refuse malformed ones;
//! the tests hold them to serde on the server's texts and on every
//! one-field edit of them.
//!
//! The readers are written against [`JsonValue`], which this module's
//! [`Json`] implements and the browser's `JSON.parse` result does too: the
//! page then carries no JSON parser at all, and the tests here hold the
//! readers to serde through [`Json`].
//!
//! ```
//! use version_observer_core::{ClusterView, Compat, Mode, NodeInfo, Version, VersionReport};
//! let version = Version::new(1, 0, 0);
//! let report = VersionReport {
//!     node: NodeInfo { id: "web-1".into(), version: version.clone() },
//!     mode: Mode::Single,
//!     cluster: ClusterView::single_node(&version, Compat::Major),
//! };
//! let text = serde_json::to_string(&report).unwrap();
//! assert_eq!(VersionReport::from_json(&text), Some(report));
//! assert_eq!(VersionReport::from_json("{}"), None);
//! ```

use crate::{
    compat::Compat,
    release::{Release, Severity},
    report::{ClusterState, ClusterView, Mode, NodeInfo, VersionReport},
    skew::{ForwardFailure, Stale, StaleClient, StaleClientTag},
};
use semver::Version;

/// A parsed JSON value. Numbers keep only what these readers need: a
/// non-negative integer that fits `u64` (anything else is `Number(None)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number: `Some` for a non-negative integer that fits `u64`.
    Number(Option<u64>),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object's members, in order.
    Object(Vec<(String, Json)>),
}

/// Nesting deeper than this is refused (the texts read here nest 3 deep).
const MAX_DEPTH: u32 = 32;

impl Json {
    /// Parses a whole JSON text (surrounding whitespace allowed); `None`
    /// if it is not valid JSON or nests deeper than 32.
    ///
    /// ```
    /// use version_observer_core::json::Json;
    /// let v = Json::parse(r#" {"a": [1, "x\u00e9", null, true]} "#).unwrap();
    /// assert_eq!(v.get("a"), Some(&Json::Array(vec![
    ///     Json::Number(Some(1)), Json::String("xé".into()), Json::Null, Json::Bool(true),
    /// ])));
    /// assert_eq!(Json::parse("[1,]"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Json> {
        let mut reader = Reader {
            text: text.as_bytes(),
            at: 0,
        };
        let value = reader.value(0)?;
        reader.space();
        (reader.at == reader.text.len()).then_some(value)
    }

    /// An object's member (the last of that name, as serde_json's own
    /// value keeps it); `None` for a missing member or a non-object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        let found = self.text.get(self.at) == Some(&byte);
        self.at += usize::from(found);
        found
    }

    fn word(&mut self, word: &[u8], value: Json) -> Option<Json> {
        let found = self.text.get(self.at..self.at + word.len()) == Some(word);
        self.at += word.len();
        found.then_some(value)
    }

    fn value(&mut self, depth: u32) -> Option<Json> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.space();
        match *self.text.get(self.at)? {
            b'{' => {
                self.at += 1;
                let mut members = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.space();
                        let key = self.string()?;
                        if !self.eat(b':') {
                            return None;
                        }
                        members.push((key, self.value(depth + 1)?));
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                Some(Json::Object(members))
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                Some(Json::Array(items))
            }
            b'"' => self.string().map(Json::String),
            b't' => self.word(b"true", Json::Bool(true)),
            b'f' => self.word(b"false", Json::Bool(false)),
            b'n' => self.word(b"null", Json::Null),
            _ => self.number(),
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<Json> {
        let start = self.at;
        let negative = self.text.get(self.at) == Some(&b'-');
        self.at += usize::from(negative);
        let int_start = self.at;
        let digits = |r: &mut Self| {
            let from = r.at;
            while r.text.get(r.at).is_some_and(u8::is_ascii_digit) {
                r.at += 1;
            }
            r.at - from
        };
        let int_digits = digits(self);
        if int_digits == 0 || (int_digits > 1 && self.text[int_start] == b'0') {
            return None;
        }
        let mut integer = !negative;
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            integer = false;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.text.get(self.at) {
            self.at += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.text.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        let text = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        Some(Json::Number(if integer { text.parse().ok() } else { None }))
    }

    /// A string, the reader on its opening quote.
    fn string(&mut self) -> Option<String> {
        if self.text.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let byte = *self.text.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let escaped = *self.text.get(self.at)?;
                    self.at += 1;
                    let c = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                // A surrogate pair: `\uD83D\uDE00`.
                                if self.text.get(self.at..self.at + 2) != Some(b"\\u") {
                                    return None;
                                }
                                self.at += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return None;
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                // Control characters must be escaped.
                0..0x20 => return None,
                _ => out.push(byte),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.at..self.at + 4)?;
        self.at += 4;
        digits
            .iter()
            .try_fold(0, |acc, d| Some(acc * 16 + char::from(*d).to_digit(16)?))
    }
}

/// What the readers need of a parsed JSON value. [`Json`] (through `&Json`)
/// is one; the page's own `JSON.parse` result is the other (the browser
/// side of the crate implements it for a `JsValue`, so the page carries no
/// JSON parser of its own). The readers are written once, against this.
pub trait JsonValue: Sized {
    /// An object's member; `None` if it is missing or this is no object.
    fn member(&self, key: &str) -> Option<Self>;
    /// Whether this is an object (not an array, not `null`).
    fn is_object(&self) -> bool;
    /// Whether this is `null`.
    fn is_null(&self) -> bool;
    /// The string, if this is one.
    fn string(&self) -> Option<String>;
    /// The number, if this is a non-negative integer that fits `u64`.
    fn unsigned(&self) -> Option<u64>;
}

impl JsonValue for &Json {
    fn member(&self, key: &str) -> Option<Self> {
        self.get(key)
    }

    fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    fn string(&self) -> Option<String> {
        self.as_str().map(str::to_owned)
    }

    fn unsigned(&self) -> Option<u64> {
        match self {
            Json::Number(n) => *n,
            _ => None,
        }
    }
}

/// Reads the fields of one text; a field it cannot read marks the whole
/// text refused, and reading goes on with a filler value. One check at the
/// end instead of an early return per field: each early return would drop
/// what was read so far, and that cleanup code, repeated per field, is
/// most of a reader's size in the page.
struct Fields {
    refused: std::cell::Cell<bool>,
}

impl Fields {
    fn new() -> Self {
        Self {
            refused: std::cell::Cell::new(false),
        }
    }

    fn refuse<T>(&self, filler: T) -> T {
        self.refused.set(true);
        filler
    }

    /// A required member.
    fn member<J: JsonValue>(&self, object: &J, key: &str) -> Option<J> {
        let member = object.member(key);
        if member.is_none() {
            self.refused.set(true);
        }
        member
    }

    fn string<J: JsonValue>(&self, value: Option<J>) -> String {
        match value.and_then(|v| v.string()) {
            Some(s) => s,
            None => self.refuse(String::new()),
        }
    }

    fn version<J: JsonValue>(&self, value: Option<J>) -> Version {
        match value.and_then(|v| v.string()?.parse().ok()) {
            Some(v) => v,
            None => self.refuse(Version::new(0, 0, 0)),
        }
    }

    /// One of the names of a `rename_all = "lowercase"` enum (the first is
    /// the filler).
    fn name<J: JsonValue, T: Copy>(&self, value: Option<J>, names: &[(&str, T)]) -> T {
        let text = value.and_then(|v| v.string());
        match names.iter().find(|(n, _)| Some(*n) == text.as_deref()) {
            Some((_, v)) => *v,
            None => self.refuse(names[0].1),
        }
    }

    /// An optional member: missing or `null` is `None`; one `read` cannot
    /// read refuses the text (as serde does).
    fn optional<J: JsonValue, T>(
        &self,
        object: &J,
        key: &str,
        read: impl Fn(&Self, Option<J>) -> T,
    ) -> Option<T> {
        let value = object.member(key).filter(|v| !v.is_null())?;
        Some(read(self, Some(value)))
    }

    fn release<J: JsonValue>(&self, value: Option<J>) -> Release {
        let Some(value) = value.filter(JsonValue::is_object) else {
            return self.refuse(Release::default());
        };
        Release {
            // `#[serde(default)]`: missing is the default, `null` is refused.
            severity: match value.member("severity") {
                None => Severity::default(),
                some => self.name(
                    some,
                    &[
                        ("optional", Severity::Optional),
                        ("required", Severity::Required),
                    ],
                ),
            },
            notes_url: self.optional(&value, "notes_url", Self::string),
            min_supported: self.optional(&value, "min_supported", Self::version),
        }
    }

    fn unsigned<J: JsonValue>(&self, value: Option<J>) -> u64 {
        match value.and_then(|v| v.unsigned()) {
            Some(n) => n,
            None => self.refuse(0),
        }
    }

    fn done<T>(self, read: T) -> Option<T> {
        (!self.refused.get()).then_some(read)
    }
}

impl VersionReport {
    /// Reads a report as the node writes it (`GET /api/version`, each event
    /// of the stream), without serde (see the [module docs](self)); `None`
    /// for anything serde would refuse.
    pub fn from_json(text: &str) -> Option<Self> {
        Self::from_json_value(&&Json::parse(text)?)
    }

    /// [`from_json`](Self::from_json) from a parsed value.
    pub fn from_json_value<J: JsonValue>(json: &J) -> Option<Self> {
        let f = Fields::new();
        let node = f.member(json, "node")?;
        let cluster = f.member(json, "cluster")?;
        let report = VersionReport {
            node: NodeInfo {
                id: f.string(node.member("id")),
                version: f.version(node.member("version")),
            },
            mode: f.name(
                json.member("mode"),
                &[("single", Mode::Single), ("cluster", Mode::Cluster)],
            ),
            cluster: ClusterView {
                state: f.name(
                    cluster.member("state"),
                    &[
                        ("settled", ClusterState::Settled),
                        ("mixed", ClusterState::Mixed),
                        ("unknown", ClusterState::Unknown),
                    ],
                ),
                settled_version: f.optional(&cluster, "settled_version", Fields::version),
                announced_version: f.optional(&cluster, "announced_version", Fields::version),
                announced_revision: f.optional(&cluster, "announced_revision", Fields::unsigned),
                compat: f.name(
                    cluster.member("compat"),
                    &[
                        ("major", Compat::Major),
                        ("minor", Compat::Minor),
                        ("patch", Compat::Patch),
                        ("exact", Compat::Exact),
                    ],
                ),
                announced_release: f.optional(&cluster, "announced_release", Fields::release),
            },
        };
        f.done(report)
    }
}

impl StaleClient {
    /// The body the request guard writes (serde's JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the request guard's `409` body, without serde (see the
    /// [module docs](self)); `None` for any other text, another JSON body
    /// included (its `error` must be `"stale_client"`). Fields it does not
    /// know are ignored.
    ///
    /// ```
    /// use version_observer_core::skew::{Stale, StaleClient};
    /// let body = r#"{"error":"stale_client","page_version":"1.0.0","server_version":"2.0.0","stale":"page","later":1}"#;
    /// assert_eq!(StaleClient::from_json(body).unwrap().stale, Stale::Page);
    /// assert_eq!(StaleClient::from_json(r#"{"error":"other"}"#), None);
    /// ```
    pub fn from_json(text: &str) -> Option<Self> {
        Self::from_json_value(&&Json::parse(text)?)
    }

    /// [`from_json`](Self::from_json) from a parsed value.
    pub fn from_json_value<J: JsonValue>(json: &J) -> Option<Self> {
        let f = Fields::new();
        let answer = StaleClient {
            error: f.name(
                json.member("error"),
                &[("stale_client", StaleClientTag::StaleClient)],
            ),
            page_version: f.version(json.member("page_version")),
            server_version: f.version(json.member("server_version")),
            stale: f.name(
                json.member("stale"),
                &[("page", Stale::Page), ("server", Stale::Server)],
            ),
            min_supported: f.optional(json, "min_supported", Fields::version),
            forward: f.optional(json, "forward", |f, value| {
                let names = ForwardFailure::ALL.map(|reason| (reason.as_str(), reason));
                f.name(value, &names)
            }),
        };
        f.done(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_serde_json_parses_and_refuses_the_rest() {
        let good = [
            "null",
            "true",
            " false ",
            "0",
            "-1",
            "12.5e-3",
            "1E10",
            "18446744073709551615",
            "18446744073709551616",
            r#""""#,
            r#""a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\ud83d\ude00""#,
            "[]",
            "[1, [2, [3]], {}]",
            r#"{"a":1,"b":{"c":[true,null]},"a":2}"#,
            "\n{ \"k\" :\t\"v\" }\r\n",
            "\"é ü 日本\"",
        ];
        for text in good {
            let ours = Json::parse(text).unwrap_or_else(|| panic!("refused {text}"));
            let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(normalized(ours), from_serde(&theirs), "{text}");
        }
        let bad = [
            "",
            " ",
            "nul",
            "truee",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "[1,]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{a:1}",
            "\"unterminated",
            "\"bad \\x escape\"",
            "\"\\ud83d alone\"",
            "\"\\ude00\"",
            "\"\\u12\"",
            "\"raw \n newline\"",
            "[1] 2",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        ];
        for text in bad {
            assert_eq!(Json::parse(text), None, "{text}");
        }
        // The last of duplicate members, as serde_json's value keeps it.
        let twice = Json::parse(r#"{"a":1,"b":true,"a":2}"#).unwrap();
        assert_eq!(twice.get("a"), Some(&Json::Number(Some(2))));
        assert_eq!(twice.get("c"), None);
        assert_eq!(Json::Null.get("a"), None);
    }

    /// serde_json's value as ours: integers that fit u64 kept, other numbers not.
    fn from_serde(value: &serde_json::Value) -> Json {
        use serde_json::Value as V;
        match value {
            V::Null => Json::Null,
            V::Bool(b) => Json::Bool(*b),
            V::Number(n) => Json::Number(if n.is_u64() { n.as_u64() } else { None }),
            V::String(s) => Json::String(s.clone()),
            V::Array(items) => Json::Array(items.iter().map(from_serde).collect()),
            // Sorted by key (serde_json's map is a BTreeMap).
            V::Object(members) => Json::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), from_serde(v)))
                    .collect(),
            ),
        }
    }

    /// Ours as serde_json keeps it: objects sorted by key, the last of
    /// duplicate members kept.
    fn normalized(value: Json) -> Json {
        match value {
            Json::Array(items) => Json::Array(items.into_iter().map(normalized).collect()),
            Json::Object(members) => {
                let mut last: Vec<(String, Json)> = Vec::new();
                for (key, value) in members {
                    last.retain(|(k, _)| *k != key);
                    last.push((key, normalized(value)));
                }
                last.sort_by(|a, b| a.0.cmp(&b.0));
                Json::Object(last)
            }
            other => other,
        }
    }

    fn report_texts() -> Vec<VersionReport> {
        let v = |s: &str| Version::parse(s).unwrap();
        let mut reports = Vec::new();
        for (state, settled, announced, revision, compat, release) in [
            (
                ClusterState::Settled,
                Some("1.0.0"),
                Some("1.0.0"),
                None,
                Compat::Major,
                None,
            ),
            (
                ClusterState::Mixed,
                None,
                Some("0.1.0"),
                Some(7),
                Compat::Minor,
                None,
            ),
            (
                ClusterState::Unknown,
                None,
                None,
                Some(u64::MAX),
                Compat::Exact,
                Some(Release {
                    severity: Severity::Required,
                    notes_url: Some("https://example.com/n?a=\"b\"&c=\u{e9}".into()),
                    min_supported: Some(v("1.4.0-rc.1+build.5")),
                }),
            ),
            (
                ClusterState::Settled,
                Some("2.0.0+x"),
                Some("2.0.0-alpha.1"),
                Some(0),
                Compat::Patch,
                Some(Release::default()),
            ),
        ] {
            reports.push(VersionReport {
                node: NodeInfo {
                    id: "web-1.é\"\\".into(),
                    version: v("1.2.3"),
                },
                mode: if revision.is_some() {
                    Mode::Cluster
                } else {
                    Mode::Single
                },
                cluster: ClusterView {
                    state,
                    settled_version: settled.map(v),
                    announced_version: announced.map(v),
                    announced_revision: revision,
                    compat,
                    announced_release: release,
                },
            });
        }
        reports
    }

    #[test]
    fn reports_read_back_as_serde_wrote_them() {
        for report in report_texts() {
            let text = serde_json::to_string(&report).unwrap();
            assert_eq!(
                VersionReport::from_json(&text),
                Some(report.clone()),
                "{text}"
            );
            let pretty = serde_json::to_string_pretty(&report).unwrap();
            assert_eq!(VersionReport::from_json(&pretty), Some(report), "{pretty}");
        }
    }

    /// Every edit of a report's text: ours accepts it exactly when serde's
    /// derived reader does, and then reads the same report.
    #[test]
    fn reports_are_refused_exactly_when_serde_refuses_them() {
        let base = serde_json::to_value(&report_texts()[2]).unwrap();
        let mut texts = vec![
            "{}".to_owned(),
            "[]".to_owned(),
            "null".to_owned(),
            "not json".to_owned(),
        ];
        // Each field dropped, set to null, to a number, to another string,
        // and an unknown field added, at every level.
        let edits: [serde_json::Value; 4] = [
            serde_json::Value::Null,
            serde_json::json!(3),
            serde_json::json!("nonsense"),
            serde_json::json!({}),
        ];
        for path in paths(&base, Vec::new()) {
            let mut dropped = base.clone();
            remove(&mut dropped, &path);
            texts.push(dropped.to_string());
            for edit in &edits {
                let mut edited = base.clone();
                *at(&mut edited, &path) = edit.clone();
                texts.push(edited.to_string());
            }
            let mut extra = base.clone();
            if let Some(parent) = at(&mut extra, &path[..path.len() - 1]).as_object_mut() {
                parent.insert("forward".into(), serde_json::json!("timeout"));
            }
            texts.push(extra.to_string());
        }
        for text in texts {
            let theirs = serde_json::from_str::<VersionReport>(&text).ok();
            assert_eq!(VersionReport::from_json(&text), theirs, "{text}");
        }
    }

    fn paths(value: &serde_json::Value, prefix: Vec<String>) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        if let Some(object) = value.as_object() {
            for (key, child) in object {
                let mut path = prefix.clone();
                path.push(key.clone());
                all.push(path.clone());
                all.extend(paths(child, path));
            }
        }
        all
    }

    fn at<'a>(value: &'a mut serde_json::Value, path: &[String]) -> &'a mut serde_json::Value {
        path.iter().fold(value, |v, key| &mut v[key.as_str()])
    }

    fn remove(value: &mut serde_json::Value, path: &[String]) {
        let (last, parent) = path.split_last().unwrap();
        at(value, parent).as_object_mut().unwrap().remove(last);
    }

    #[test]
    fn the_guards_answer_reads_back_and_other_bodies_do_not() {
        let v = |s: &str| Version::parse(s).unwrap();
        for min in [None, Some(v("1.5.0"))] {
            let answer =
                crate::skew::check(&v("1.4.0"), &v("2.0.0"), Compat::Major, min.as_ref()).unwrap();
            let text = serde_json::to_string(&answer).unwrap();
            assert_eq!(
                StaleClient::from_json(&text),
                Some(answer.clone()),
                "{text}"
            );
            // Every forwarding outcome reads back as serde writes it.
            for reason in ForwardFailure::ALL {
                let forwarded = StaleClient {
                    forward: Some(reason),
                    ..answer.clone()
                };
                let text = serde_json::to_string(&forwarded).unwrap();
                assert_eq!(StaleClient::from_json(&text), Some(forwarded), "{text}");
            }
            // A field added later is ignored.
            let later = text.replace('}', r#","later":1}"#);
            assert_eq!(StaleClient::from_json(&later), Some(answer), "{later}");
        }
        for other in [
            r#"{"error":"other","page_version":"1.4.0","server_version":"1.6.0","stale":"page"}"#,
            r#"{"page_version":"1.4.0","server_version":"1.6.0","stale":"page"}"#,
            r#"{"error":"stale_client","page_version":"1.4","server_version":"1.6.0","stale":"page"}"#,
            r#"{"error":"stale_client","page_version":"1.4.0","server_version":"1.6.0","stale":"both"}"#,
            r#"{"error":"stale_client","page_version":"1.4.0","server_version":"1.6.0","stale":"page","forward":"lost"}"#,
            r#"{"ServerError":"boom"}"#,
            "ServerError|boom",
            "",
        ] {
            assert_eq!(StaleClient::from_json(other), None, "{other}");
            assert!(
                serde_json::from_str::<StaleClient>(other).is_err(),
                "{other}"
            );
        }
    }
}
