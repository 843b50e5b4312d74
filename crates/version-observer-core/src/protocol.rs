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
//! | KV `vo_<c>`, key `monitor`   | [`LeaseHolder`], with a per-message TTL | the elected monitor |
//! | KV `vo_<c>`, key `settled`   | [`SettledRecord`]  | the elected monitor, fenced |
//! | object store `vo_<c>_assets` | bundle files, `index/<version>` ([`crate::assets`]) | every node, at start |
//!
//! Payloads are JSON. Anything that does not decode is dropped with a log line
//! by the caller ([`decode`] never panics). With a cluster key every message
//! also carries a MAC, and KV values are sealed ([`crate::auth`]).
//!
//! The role is called the *monitor* everywhere but on the wire, whose field
//! names say `leader` (in [`Presence`], [`VersionRequest`] and
//! [`SettledRecord`]): they stay, so nodes of every version understand
//! each other.

use crate::release::Release;
use semver::Version;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The largest payload we try to decode.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// The key, in the cluster's bucket ([`Names::bucket`]), whose value is the
/// current [`LeaseHolder`]; its revision is the monitor's fencing token.
pub const LEASE_KEY: &str = "monitor";
/// The key, in the cluster's bucket ([`Names::bucket`]), whose value is the
/// cluster's [`SettledRecord`].
pub const STATE_KEY: &str = "settled";

/// Names of everything a cluster uses on NATS.
///
/// ```
/// use version_observer_core::protocol::{Names, PresenceKind, Subject};
/// let names = Names::new("shop");
/// assert_eq!(names.presence(PresenceKind::Heartbeat), "vo.shop.node.heartbeat");
/// assert_eq!(names.bucket(), "vo_shop");
/// let inbox = "_INBOX.abc";
/// assert_eq!(names.classify("vo.shop.version.request", inbox), Subject::VersionRequest);
/// assert_eq!(names.classify("_INBOX.abc.3", inbox), Subject::Reply(3));
/// ```
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

    /// The cluster's name, as given to [`new`](Self::new).
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The subject of presence messages of `kind`: `vo.<cluster>.node.<kind>`.
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

    /// `vo.<cluster>.version.request`: where the monitor publishes each
    /// round's [`VersionRequest`].
    pub fn version_request(&self) -> String {
        format!("vo.{}.version.request", self.cluster)
    }

    /// `vo.<cluster>.settled`: where the monitor publishes a [`SettledNotice`]
    /// for every record it writes, baseline or announcement.
    pub fn settled(&self) -> String {
        format!("vo.{}.settled", self.cluster)
    }

    /// `vo.<cluster>.announce`: where the monitor also publishes the
    /// [`SettledNotice`] of an announcement (never of a baseline).
    pub fn announce(&self) -> String {
        format!("vo.{}.announce", self.cluster)
    }

    /// The cluster's KV bucket, `vo_<cluster>`: the monitor lease
    /// ([`LEASE_KEY`]) and the settled record ([`STATE_KEY`]), in one stream.
    pub fn bucket(&self) -> String {
        format!("vo_{}", self.cluster)
    }

    /// `vo-fwd.<cluster>.<version>`: where requests from pages of `version`
    /// are forwarded ([`crate::affinity`]); every node of that version
    /// subscribes in one queue group, so NATS gives each request to one of
    /// them, and says at once when there is none. Outside `vo.<cluster>.>`,
    /// so forwarded bodies never reach the nodes' cluster subscription.
    /// The version's dots become `_` (a subject's separator otherwise).
    ///
    /// ```
    /// use version_observer_core::{protocol::Names, Version};
    /// let names = Names::new("shop");
    /// assert_eq!(names.forward(&"1.2.0-rc.1+b.7".parse().unwrap()), "vo-fwd.shop.1_2_0-rc_1+b_7");
    /// ```
    pub fn forward(&self, version: &Version) -> String {
        format!(
            "{}.{}",
            self.forward_all().trim_end_matches(".>"),
            version.to_string().replace('.', "_")
        )
    }

    /// `vo-fwd.<cluster>.>`: every forwarding subject of the cluster (for
    /// NATS permissions).
    pub fn forward_all(&self) -> String {
        format!("vo-fwd.{}.>", self.cluster)
    }

    /// The cluster's object store bucket, `vo_<cluster>_assets` (stream
    /// `OBJ_vo_<cluster>_assets`): every running version's bundle files under
    /// their hashed names, and one index object per version
    /// ([`crate::assets`]), so a node can serve another version's bundle.
    pub fn asset_bucket(&self) -> String {
        format!("vo_{}_assets", self.cluster)
    }
}

/// What a message is, by its subject ([`Names::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A presence message of this kind (`node.up`, `node.heartbeat` or `node.down`).
    Presence(PresenceKind),
    /// The monitor asking every node for its version (`version.request`).
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

/// Which presence message a [`Presence`] is; the last token of its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceKind {
    /// Nodeup: sent by a node each time it connects (or reconnects) to NATS.
    Up,
    /// Sent by every connected node once every third of the node timeout.
    Heartbeat,
    /// Nodedown: sent by a node leaving gracefully, after it has handed back
    /// the lease if it held it.
    Down,
}

impl PresenceKind {
    /// The kind's token in a presence subject: `up`, `heartbeat` or `down`.
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
    /// The sender's node id ([`valid_node_id`]).
    pub id: String,
    /// The version the sender runs.
    pub version: Version,
    /// Distinguishes restarts of the same id; larger is newer.
    pub incarnation: u64,
    /// Whether the sender holds the monitor lease; on nodedown, whether it
    /// held it until just now and has handed it back (so the others try to
    /// take it at once).
    #[serde(default)]
    pub leader: bool,
    /// Open tabs (version streams) at the sender, by the version of their
    /// page, on nodeup and heartbeats: what fleet views add up. Optional on
    /// the wire; a receiver keeps at most [`MAX_TAB_VERSIONS`] entries.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tabs: std::collections::BTreeMap<String, u64>,
    /// Whether the sender is retiring: it has left the load balancer, no
    /// longer counts for settlement nor answers version requests, and
    /// serves only forwarded requests of its version until no open page
    /// needs it. Optional on the wire (absent: serving).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retiring: bool,
}

/// The most page versions a node counts its tabs under, and a receiver
/// keeps per member (beyond it, tabs are counted as `other`).
pub const MAX_TAB_VERSIONS: usize = 32;

/// The monitor asking every node for its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRequest {
    /// The node id of the monitor asking.
    pub leader: String,
    /// The number of the monitor's collection round; the request's reply
    /// subject ends with the same number ([`Names::reply_subject`]).
    pub round: u64,
}

/// A node's answer to a [`VersionRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReply {
    /// The replying node's id.
    pub id: String,
    /// The version the replying node runs.
    pub version: Version,
    /// The replying node's incarnation, as in its [`Presence`] messages.
    pub incarnation: u64,
    /// The release metadata the replying node was started with, if any.
    /// Optional on the wire (older nodes send none); decode replies with
    /// [`decode_with_release`], which drops an invalid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
}

/// The value of the lease key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// The node id of the node that wrote the lease key.
    pub id: String,
}

/// Whether a [`SettledRecord`] is news; `baseline` or `announcement` on the wire.
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
    /// The version the cluster settled on.
    pub version: Version,
    /// The recorded version this one replaced, for an announcement; `None`
    /// for a baseline.
    pub previous: Option<Version>,
    /// Whether this is the baseline or an announcement.
    pub kind: RecordKind,
    /// The lease revision of the monitor that wrote it (its fencing token).
    pub fence: u64,
    /// The node id of the monitor that wrote it.
    pub leader: String,
    /// When it was written, in milliseconds since the Unix epoch, by the
    /// writer's wall clock (as its driver told the
    /// [`Coordinator`](crate::cluster::Coordinator)); informational only,
    /// nothing decides on it.
    pub at_ms: u64,
    /// The settled version's release metadata, from the replies of the nodes
    /// that run it ([`Release::merge`]); absent when they gave none, and in
    /// records of older nodes. Decode records with [`decode_with_release`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
}

/// A record as written, with its KV revision (newer records have larger ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledNotice {
    /// The KV revision of [`STATE_KEY`] that holds the record.
    pub revision: u64,
    /// The record itself.
    pub record: SettledRecord,
}

/// Why a payload was dropped.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is longer than [`MAX_PAYLOAD`]; holds its length in bytes.
    #[error("payload of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    /// The payload is not valid JSON for the expected message type.
    #[error("not a valid message: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// Decodes a JSON payload as a `T`, refusing payloads longer than
/// [`MAX_PAYLOAD`] before parsing. Never panics, whatever the bytes.
///
/// ```
/// use version_observer_core::{protocol::{decode, encode, DecodeError, Presence}, Version};
/// let sent = Presence {
///     id: "web-1".into(),
///     version: Version::new(1, 2, 0),
///     incarnation: 7,
///     leader: false,
///     tabs: Default::default(),
///     retiring: false,
/// };
/// let received: Presence = decode(&encode(&sent)).unwrap();
/// assert_eq!(received, sent);
/// assert!(matches!(decode::<Presence>(b"not json"), Err(DecodeError::Invalid(_))));
/// ```
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(DecodeError::TooLarge(payload.len()));
    }
    Ok(serde_json::from_slice(payload)?)
}

/// A message that may carry release metadata: [`VersionReply`] and
/// [`SettledRecord`].
pub trait CarriesRelease {
    /// Where the message keeps its release.
    fn release_mut(&mut self) -> &mut Option<Release>;
}

impl CarriesRelease for VersionReply {
    fn release_mut(&mut self) -> &mut Option<Release> {
        &mut self.release
    }
}

impl CarriesRelease for SettledRecord {
    fn release_mut(&mut self) -> &mut Option<Release> {
        &mut self.release
    }
}

/// What [`decode_with_release`] made of a message's release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseCheck {
    /// The message carried no release, or a valid one (kept).
    Ok,
    /// The message carried a release that does not decode or fails
    /// [`Release::validate`]: it was dropped (the message keeps `None`) and
    /// must be counted.
    Dropped(String),
}

/// Decodes a message that may carry release metadata ([`CarriesRelease`]),
/// so that bad metadata never costs the message itself: the message is
/// decoded without its `release` field, and the release on its own; a
/// release that does not decode, or fails [`Release::validate`] (a
/// `javascript:` notes URL, say), is dropped and reported as
/// [`ReleaseCheck::Dropped`]. Errors only when the rest of the message is
/// malformed ([`decode`]). Never panics, whatever the bytes.
///
/// ```
/// use version_observer_core::protocol::{decode_with_release, ReleaseCheck, VersionReply};
/// let forged = br#"{"id":"web-1","version":"2.0.0","incarnation":1,
///     "release":{"severity":"required","notes_url":"javascript:alert(1)"}}"#;
/// let (reply, check) = decode_with_release::<VersionReply>(forged).unwrap();
/// assert_eq!((reply.id.as_str(), reply.release), ("web-1", None));
/// assert!(matches!(check, ReleaseCheck::Dropped(_)));
/// let old = br#"{"id":"web-1","version":"1.0.0","incarnation":1}"#;
/// assert_eq!(decode_with_release::<VersionReply>(old).unwrap().1, ReleaseCheck::Ok);
/// ```
pub fn decode_with_release<T: DeserializeOwned + CarriesRelease>(
    payload: &[u8],
) -> Result<(T, ReleaseCheck), DecodeError> {
    let mut value: serde_json::Value = decode(payload)?;
    let raw = value
        .as_object_mut()
        .and_then(|fields| fields.remove("release"));
    let mut message: T = serde_json::from_value(value)?;
    let (release, check) = match raw {
        None | Some(serde_json::Value::Null) => (None, ReleaseCheck::Ok),
        Some(raw) => match serde_json::from_value::<Release>(raw) {
            Ok(release) => match release.validate() {
                Ok(()) => (release.non_empty(), ReleaseCheck::Ok),
                Err(e) => (None, ReleaseCheck::Dropped(e.to_string())),
            },
            Err(e) => (None, ReleaseCheck::Dropped(format!("invalid release: {e}"))),
        },
    };
    *message.release_mut() = release;
    Ok((message, check))
}

/// Encodes a message as JSON, the wire format of every payload and KV value.
///
/// # Panics
///
/// If `message` cannot be serialized as JSON, which cannot happen for the
/// message types of this module.
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
        assert_eq!(n.bucket(), "vo_shop-prod");
        assert_eq!(n.asset_bucket(), "vo_shop-prod_assets");
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
            tabs: Default::default(),
            retiring: false,
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
                release: None,
            },
        };
        let json = String::from_utf8(encode(&notice).to_vec()).unwrap();
        assert!(json.contains(r#""kind":"announcement""#), "{json}");
        assert_eq!(decode::<SettledNotice>(json.as_bytes()).unwrap(), notice);
    }

    #[test]
    fn release_metadata_is_optional_on_the_wire_and_checked() {
        use crate::release::Severity;
        let release = Release {
            severity: Severity::Required,
            notes_url: Some("https://example.com/2.0".into()),
            min_supported: Some(Version::new(1, 5, 0)),
        };
        let reply = VersionReply {
            id: "n1".into(),
            version: Version::new(2, 0, 0),
            incarnation: 4,
            release: Some(release.clone()),
        };
        let (back, check) = decode_with_release::<VersionReply>(&encode(&reply)).unwrap();
        assert_eq!((back, check), (reply.clone(), ReleaseCheck::Ok));
        // Without one, the field is left out, so older nodes read it as before.
        let bare = VersionReply {
            release: None,
            ..reply.clone()
        };
        let json = String::from_utf8(encode(&bare).to_vec()).unwrap();
        assert!(!json.contains("release"), "{json}");
        assert_eq!(decode::<VersionReply>(json.as_bytes()).unwrap(), bare);
        // An empty release is none.
        let (empty, check) = decode_with_release::<VersionReply>(
            br#"{"id":"n1","version":"2.0.0","incarnation":4,"release":{}}"#,
        )
        .unwrap();
        assert_eq!((empty.release, check), (None, ReleaseCheck::Ok));
        // Bad metadata of every kind is dropped; the message itself is kept.
        for bad in [
            r#"{"notes_url":"javascript:alert(1)"}"#,
            r#"{"notes_url":"//evil.example"}"#,
            r#"{"severity":"urgent"}"#,
            r#"{"min_supported":"1.x"}"#,
            r#"{"notes_url":7}"#,
            r#""required""#,
        ] {
            let payload =
                format!(r#"{{"id":"n1","version":"2.0.0","incarnation":4,"release":{bad}}}"#);
            let (reply, check) = decode_with_release::<VersionReply>(payload.as_bytes()).unwrap();
            assert_eq!(reply.release, None, "{bad}");
            assert_eq!(reply.id, "n1");
            assert!(
                matches!(check, ReleaseCheck::Dropped(_)),
                "{bad}: {check:?}"
            );
        }
        // A malformed message is still malformed.
        assert!(decode_with_release::<VersionReply>(br#"{"id":"n1"}"#).is_err());
        assert!(decode_with_release::<VersionReply>(b"[1,2]").is_err());
        assert!(decode_with_release::<VersionReply>(b"not json").is_err());
        // Records: an old one (no field) decodes, a new one keeps its release.
        let old = br#"{"version":"1.0.0","previous":null,"kind":"baseline","fence":2,"leader":"n1","at_ms":0}"#;
        let (record, check) = decode_with_release::<SettledRecord>(old).unwrap();
        assert_eq!((record.release, check), (None, ReleaseCheck::Ok));
        let record = SettledRecord {
            release: Some(release),
            ..record
        };
        let (back, check) = decode_with_release::<SettledRecord>(&encode(&record)).unwrap();
        assert_eq!((back, check), (record, ReleaseCheck::Ok));
    }
}
