//! What nodes say to each other over NATS: subjects, payloads and buckets.
//! Every name lives under the cluster's namespace, so several apps or
//! environments can share one NATS.
//!
//! | subject / bucket              | payload            | who                       |
//! |-------------------------------|--------------------|---------------------------|
//! | `vo.<c>.node.up`              | [`Presence`]       | a node that (re)connects  |
//! | `vo.<c>.node.heartbeat`       | [`Presence`]       | every node, `timeout / 3` |
//! | `vo.<c>.node.down`            | [`Presence`]       | a node stopping gracefully|
//! | `vo.<c>.version.request`      | [`VersionRequest`] | the monitor (reply inbox) |
//! |  (its reply)                  | [`VersionReply`]   | every node                |
//! | `vo.<c>.settled`              | [`SettledNotice`]  | the monitor, each record  |
//! | `vo.<c>.announce`             | [`SettledNotice`]  | the monitor, news only    |
//! | KV `vo_<c>_lease`, key `monitor` | [`LeaseHolder`] | the elected monitor       |
//! | KV `vo_<c>_state`, key `settled` | [`SettledRecord`] | the elected monitor     |
//!
//! Payloads are JSON. Anything that does not decode is dropped with a log line
//! by the caller ([`decode`] never panics).

use semver::Version;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The largest payload we try to decode.
pub const MAX_PAYLOAD: usize = 64 * 1024;
pub const LEASE_KEY: &str = "monitor";
pub const STATE_KEY: &str = "settled";

/// Names of everything a cluster uses on NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    cluster: String,
}

impl Names {
    /// `cluster` must be valid ([`valid_cluster_name`]).
    pub fn new(cluster: &str) -> Self {
        debug_assert!(valid_cluster_name(cluster).is_ok());
        Self {
            cluster: cluster.to_owned(),
        }
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn presence(&self, kind: PresenceKind) -> String {
        format!("vo.{}.node.{}", self.cluster, kind.as_str())
    }

    /// Every presence subject.
    pub fn presence_all(&self) -> String {
        format!("vo.{}.node.*", self.cluster)
    }

    /// Every subject of the cluster, for the one subscription a node needs:
    /// one subscription keeps presence, requests and notices in order.
    pub fn all(&self) -> String {
        format!("vo.{}.>", self.cluster)
    }

    /// What a message on `subject` is, for a node whose round replies come
    /// to `inbox.<round>`.
    pub fn classify(&self, subject: &str, inbox: &str) -> Subject {
        if let Some(round) = subject
            .strip_prefix(inbox)
            .and_then(|rest| rest.strip_prefix('.'))
        {
            return round.parse().map_or(Subject::Other, Subject::Reply);
        }
        let Some(rest) = subject
            .strip_prefix("vo.")
            .and_then(|s| s.strip_prefix(self.cluster.as_str()))
            .and_then(|s| s.strip_prefix('.'))
        else {
            return Subject::Other;
        };
        match rest {
            "node.up" => Subject::Presence(PresenceKind::Up),
            "node.heartbeat" => Subject::Presence(PresenceKind::Heartbeat),
            "node.down" => Subject::Presence(PresenceKind::Down),
            "version.request" => Subject::VersionRequest,
            "settled" | "announce" => Subject::Notice,
            _ => Subject::Other,
        }
    }

    /// Where the replies to round `round` go, for a node whose inbox is `inbox`.
    pub fn reply_subject(inbox: &str, round: u64) -> String {
        format!("{inbox}.{round}")
    }

    pub fn version_request(&self) -> String {
        format!("vo.{}.version.request", self.cluster)
    }

    pub fn settled(&self) -> String {
        format!("vo.{}.settled", self.cluster)
    }

    pub fn announce(&self) -> String {
        format!("vo.{}.announce", self.cluster)
    }

    pub fn lease_bucket(&self) -> String {
        format!("vo_{}_lease", self.cluster)
    }

    pub fn state_bucket(&self) -> String {
        format!("vo_{}_state", self.cluster)
    }
}

/// What a message is, by its subject ([`Names::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Presence(PresenceKind),
    VersionRequest,
    /// `settled` or `announce`: a hint that the record changed.
    Notice,
    /// A reply to this node's collection round of that number.
    Reply(u64),
    /// Nothing a node acts on.
    Other,
}

/// The prefix of every reply inbox a node answers to (NATS' default).
pub const INBOX_PREFIX: &str = "_INBOX.";

/// Whether a request's reply subject is one a node may publish to: a reply
/// inbox, never a cluster subject, a JetStream or KV API subject (`$JS`,
/// `$KV`) or any other system subject. A forged request cannot make a node
/// publish where it would be trusted.
pub fn is_reply_inbox(subject: &str) -> bool {
    subject.len() > INBOX_PREFIX.len()
        && subject.len() <= 256
        && subject.starts_with(INBOX_PREFIX)
        && subject
            .split('.')
            .all(|token| !token.is_empty() && token != "*" && token != ">")
        && subject
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
}

/// Cluster names become part of subjects and bucket names.
pub fn valid_cluster_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 32 || !name.chars().all(ok) {
        return Err("use 1 to 32 letters, digits, '_' or '-'".into());
    }
    Ok(())
}

/// Node ids travel in every message and show in logs and status pages.
pub fn valid_node_id(id: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > 64 || !id.chars().all(ok) {
        return Err("use 1 to 64 letters, digits, '.', '_' or '-'".into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceKind {
    Up,
    Heartbeat,
    Down,
}

impl PresenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceKind::Up => "up",
            PresenceKind::Heartbeat => "heartbeat",
            PresenceKind::Down => "down",
        }
    }

    /// The kind named by the last token of a presence subject.
    pub fn from_subject(subject: &str) -> Option<Self> {
        match subject.rsplit('.').next()? {
            "up" => Some(PresenceKind::Up),
            "heartbeat" => Some(PresenceKind::Heartbeat),
            "down" => Some(PresenceKind::Down),
            _ => None,
        }
    }
}

/// A node saying it is (still) here, or leaving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub id: String,
    pub version: Version,
    /// Distinguishes restarts of the same id; larger is newer.
    pub incarnation: u64,
    /// Whether the sender holds the monitor lease.
    #[serde(default)]
    pub leader: bool,
}

/// The monitor asking every node for its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRequest {
    pub leader: String,
    pub round: u64,
}

/// A node's answer to a [`VersionRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReply {
    pub id: String,
    pub version: Version,
    pub incarnation: u64,
}

/// The value of the lease key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// The first version a new cluster settled on: recorded, not news.
    Baseline,
    /// An incompatible version the cluster settled on: news.
    Announcement,
}

/// The last version the cluster announced (or its baseline), kept in KV so a
/// new monitor neither forgets nor repeats it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledRecord {
    pub version: Version,
    pub previous: Option<Version>,
    pub kind: RecordKind,
    /// The lease revision of the monitor that wrote it (its fencing token).
    pub fence: u64,
    pub leader: String,
    /// When it was written, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A record as written, with its KV revision (newer records have larger ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledNotice {
    pub revision: u64,
    pub record: SettledRecord,
}

/// Why a payload was dropped.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("payload of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("not a valid message: {0}")]
    Invalid(#[from] serde_json::Error),
}

pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(DecodeError::TooLarge(payload.len()));
    }
    Ok(serde_json::from_slice(payload)?)
}

pub fn encode<T: Serialize>(message: &T) -> bytes::Bytes {
    serde_json::to_vec(message)
        .expect("protocol messages always serialize")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_by_cluster() {
        let n = Names::new("shop-prod");
        assert_eq!(
            n.presence(PresenceKind::Heartbeat),
            "vo.shop-prod.node.heartbeat"
        );
        assert_eq!(n.presence_all(), "vo.shop-prod.node.*");
        assert_eq!(n.version_request(), "vo.shop-prod.version.request");
        assert_eq!(n.settled(), "vo.shop-prod.settled");
        assert_eq!(n.announce(), "vo.shop-prod.announce");
        assert_eq!(n.lease_bucket(), "vo_shop-prod_lease");
        assert_eq!(n.state_bucket(), "vo_shop-prod_state");
        for kind in [
            PresenceKind::Up,
            PresenceKind::Heartbeat,
            PresenceKind::Down,
        ] {
            assert_eq!(PresenceKind::from_subject(&n.presence(kind)), Some(kind));
        }
        assert_eq!(PresenceKind::from_subject("vo.x.node.sideways"), None);
        assert_eq!(n.all(), "vo.shop-prod.>");
    }

    #[test]
    fn subjects_are_classified() {
        let n = Names::new("c");
        let inbox = "_INBOX.abc";
        let cases = [
            ("vo.c.node.up", Subject::Presence(PresenceKind::Up)),
            (
                "vo.c.node.heartbeat",
                Subject::Presence(PresenceKind::Heartbeat),
            ),
            ("vo.c.node.down", Subject::Presence(PresenceKind::Down)),
            ("vo.c.version.request", Subject::VersionRequest),
            ("vo.c.settled", Subject::Notice),
            ("vo.c.announce", Subject::Notice),
            ("_INBOX.abc.7", Subject::Reply(7)),
            ("_INBOX.abc.x", Subject::Other),
            ("_INBOX.abcd.7", Subject::Other),
            ("vo.cc.node.up", Subject::Other),
            ("vo.c.node.sideways", Subject::Other),
            ("vo.c", Subject::Other),
            ("$KV.x", Subject::Other),
        ];
        for (subject, want) in cases {
            assert_eq!(n.classify(subject, inbox), want, "{subject}");
        }
        assert_eq!(Names::reply_subject(inbox, 7), "_INBOX.abc.7");
        for kind in [
            PresenceKind::Up,
            PresenceKind::Heartbeat,
            PresenceKind::Down,
        ] {
            assert_eq!(
                n.classify(&n.presence(kind), inbox),
                Subject::Presence(kind)
            );
        }
        assert_eq!(
            n.classify(&n.version_request(), inbox),
            Subject::VersionRequest
        );
    }

    #[test]
    fn replies_go_only_to_inboxes() {
        for ok in ["_INBOX.abc", "_INBOX.abc.7", "_INBOX.a-b_c.d"] {
            assert!(is_reply_inbox(ok), "{ok}");
        }
        for bad in [
            "vo.c.node.down",
            "vo.c.announce",
            "$KV.vo_c_state.settled",
            "$JS.API.STREAM.DELETE.KV_vo_c_state",
            "$SYS.REQ.SERVER.PING",
            "_INBOX.",
            "_INBOX",
            "_INBOX.*",
            "_INBOX.>",
            "_INBOX..x",
            "_INBOX.a b",
            "inbox.x",
            "",
        ] {
            assert!(!is_reply_inbox(bad), "{bad}");
        }
    }

    #[test]
    fn cluster_names_are_checked() {
        assert!(valid_cluster_name("default").is_ok());
        assert!(valid_cluster_name("a_b-9").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", &"x".repeat(33)] {
            assert!(valid_cluster_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage: &[&[u8]] = &[
            b"",
            b"not json",
            b"{}",
            b"{\"id\":\"a\",\"version\":\"1.0\",\"incarnation\":1}",
            b"{\"id\":\"a\",\"version\":\"1.0.0\",\"incarnation\":-1}",
            &[0xff, 0xfe, 0x00],
        ];
        for payload in garbage {
            assert!(decode::<Presence>(payload).is_err(), "{payload:?}");
        }
        assert!(matches!(
            decode::<Presence>(&vec![b' '; MAX_PAYLOAD + 1]),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn messages_round_trip_with_pre_releases() {
        let p = Presence {
            id: "n1".into(),
            version: Version::parse("2.0.0-rc.1+b7").unwrap(),
            incarnation: 42,
            leader: true,
        };
        assert_eq!(decode::<Presence>(&encode(&p)).unwrap(), p);
        // `leader` is optional on the wire.
        let bare: Presence = decode(br#"{"id":"n1","version":"1.0.0","incarnation":1}"#).unwrap();
        assert!(!bare.leader);
        let notice = SettledNotice {
            revision: 7,
            record: SettledRecord {
                version: Version::new(1, 0, 0),
                previous: Some(Version::new(0, 1, 0)),
                kind: RecordKind::Announcement,
                fence: 3,
                leader: "n2".into(),
                at_ms: 1,
            },
        };
        let json = String::from_utf8(encode(&notice).to_vec()).unwrap();
        assert!(json.contains(r#""kind":"announcement""#), "{json}");
        assert_eq!(decode::<SettledNotice>(json.as_bytes()).unwrap(), notice);
    }
}
