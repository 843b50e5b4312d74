//! Authenticating cluster messages with a shared key (HMAC-SHA256).
//!
//! With a [`ClusterKey`], every message a node publishes carries a MAC of
//! its subject and payload in the [`MAC_HEADER`] header, and every value it
//! writes to KV is [sealed](ClusterKey::seal) (the MAC travels inside the
//! value, as KV reads return no headers). A node drops, counts and logs any
//! message or value whose MAC is missing or wrong, so only holders of the
//! key can speak for the cluster, whoever else may publish on its subjects.
//!
//! The MAC binds the subject too, so a captured heartbeat cannot be replayed
//! as a nodedown, nor a reply as a request. It does not stop a replay of the
//! same message on the same subject; the membership rules bound what such a
//! replay can do (see the README's trust model).
//!
//! ```
//! use version_observer_core::auth::ClusterKey;
//! let key = ClusterKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
//! let mac = key.sign("vo.shop.node.heartbeat", b"{}");
//! assert!(key.verify("vo.shop.node.heartbeat", b"{}", &mac));
//! assert!(!key.verify("vo.shop.node.down", b"{}", &mac));
//! let sealed = key.seal("settled", b"{\"v\":1}");
//! assert_eq!(key.open("settled", &sealed), Some(&b"{\"v\":1}"[..]));
//! ```

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The NATS header that carries a message's MAC.
pub const MAC_HEADER: &str = "Vo-Mac";

/// What a sealed KV value starts with.
const SEAL_PREFIX: &[u8] = b"vo-mac:";

/// A cluster's shared secret.
#[derive(Clone)]
pub struct ClusterKey {
    key: Vec<u8>,
}

/// A key that is too short to be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a cluster key must be at least {min} bytes (this one has {len}); e.g. `openssl rand -base64 32`")]
pub struct KeyError {
    /// The key's length, after trimming surrounding whitespace.
    pub len: usize,
    /// The least length accepted.
    pub min: usize,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(***)")
    }
}

impl ClusterKey {
    /// The least key length accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key from a secret (a key file's contents; surrounding whitespace,
    /// such as a final newline, is not part of it).
    pub fn new(secret: &[u8]) -> Result<Self, KeyError> {
        let secret = secret.trim_ascii();
        if secret.len() < Self::MIN_LEN {
            return Err(KeyError {
                len: secret.len(),
                min: Self::MIN_LEN,
            });
        }
        Ok(Self {
            key: secret.to_vec(),
        })
    }

    fn mac(&self, context: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        // Length-prefixed, so no (context, payload) pair can pass for another.
        mac.update(&(context.len() as u64).to_be_bytes());
        mac.update(context.as_bytes());
        mac.update(payload);
        mac
    }

    /// The MAC of a message on `subject`, for [`MAC_HEADER`].
    pub fn sign(&self, subject: &str, payload: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(subject, payload).finalize().into_bytes())
    }

    /// Whether `mac` is the MAC of this message (compared in constant time).
    pub fn verify(&self, subject: &str, payload: &[u8], mac: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(mac.trim())
            .is_ok_and(|tag| self.mac(subject, payload).verify_slice(&tag).is_ok())
    }

    /// A KV value with its MAC inside, bound to `context` (the key name).
    pub fn seal(&self, context: &str, value: &[u8]) -> Bytes {
        let mac = self.sign(context, value);
        let mut sealed = Vec::with_capacity(SEAL_PREFIX.len() + mac.len() + 1 + value.len());
        sealed.extend_from_slice(SEAL_PREFIX);
        sealed.extend_from_slice(mac.as_bytes());
        sealed.push(b'\n');
        sealed.extend_from_slice(value);
        sealed.into()
    }

    /// The value inside `sealed`, if its MAC is right for `context`.
    pub fn open<'a>(&self, context: &str, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let rest = sealed.strip_prefix(SEAL_PREFIX)?;
        let newline = rest.iter().position(|b| *b == b'\n')?;
        let (mac, value) = (
            std::str::from_utf8(&rest[..newline]).ok()?,
            &rest[newline + 1..],
        );
        self.verify(context, value, mac).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClusterKey {
        ClusterKey::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn short_keys_are_refused_and_whitespace_is_trimmed() {
        assert_eq!(ClusterKey::new(b"short").unwrap_err().len, 5);
        let err = ClusterKey::new(b"  0123456789abcde \n").unwrap_err();
        assert_eq!(err.len, 15);
        let a = key("0123456789abcdef\n");
        let b = key("0123456789abcdef");
        assert!(b.verify("s", b"p", &a.sign("s", b"p")));
        assert_eq!(format!("{a:?}"), "ClusterKey(***)");
    }

    #[test]
    fn a_mac_binds_key_subject_and_payload() {
        let k = key("the-cluster-secret-0001");
        let mac = k.sign("vo.c.node.heartbeat", b"{\"id\":\"n1\"}");
        assert!(k.verify("vo.c.node.heartbeat", b"{\"id\":\"n1\"}", &mac));
        assert!(!k.verify("vo.c.node.down", b"{\"id\":\"n1\"}", &mac));
        assert!(!k.verify("vo.c.node.heartbeat", b"{\"id\":\"n2\"}", &mac));
        assert!(!key("another-secret-000001").verify(
            "vo.c.node.heartbeat",
            b"{\"id\":\"n1\"}",
            &mac
        ));
        assert!(!k.verify("vo.c.node.heartbeat", b"{\"id\":\"n1\"}", "garbage!"));
        assert!(!k.verify("vo.c.node.heartbeat", b"{\"id\":\"n1\"}", ""));
        // The length prefix: moving bytes between subject and payload fails.
        assert!(!k.verify("vo.c.node.heartbeat{", b"\"id\":\"n1\"}", &mac));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let k = key("the-cluster-secret-0001");
        let sealed = k.seal("settled", b"{\"version\":\"1.0.0\"}");
        assert_eq!(
            k.open("settled", &sealed),
            Some(&b"{\"version\":\"1.0.0\"}"[..])
        );
        assert_eq!(k.open("monitor", &sealed), None);
        assert_eq!(key("another-secret-000001").open("settled", &sealed), None);
        assert_eq!(
            k.open("settled", b"{\"version\":\"9.0.0\"}"),
            None,
            "unsealed"
        );
        let mut forged = sealed.to_vec();
        *forged.last_mut().unwrap() = b']';
        assert_eq!(k.open("settled", &forged), None);
        assert_eq!(k.open("settled", b"vo-mac:"), None);
    }
}
