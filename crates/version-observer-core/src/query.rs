//! Query strings: one parameter's raw value, and percent-decoding, for the
//! few parameters nodes read (a tab's page version, the fleet view's token).
//!
//! ```
//! use version_observer_core::query::{decode, param};
//! let value = param("x=1&page=2.0.0%2Bb5", "page").unwrap();
//! assert_eq!(decode(value, false).unwrap(), b"2.0.0+b5");
//! assert_eq!(decode("a+b", true).unwrap(), b"a b");
//! assert_eq!(decode("%zz", false), None);
//! ```

/// The raw (still encoded) value of the first `name=…` in `query`.
pub fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// `value` with its `%XX` escapes decoded (and `+` as a space, when
/// `plus_is_space`, as in form encoding); `None` for a broken escape.
pub fn decode(value: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
                continue;
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}
