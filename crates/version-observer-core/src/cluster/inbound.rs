//! The one way in: every message a [`Coordinator`](super::Coordinator) or
//! a [`Watcher`](super::watcher::Watcher) receives, and every record value
//! either reads from KV, passes the same checks in the same order:
//!
//! 1. with a cluster key, the MAC (a message's over its subject and
//!    payload; a record's sealed inside the value): a missing or wrong
//!    one is `unauthenticated`;
//! 2. the subject: what it means to this listener (a watcher hears only
//!    presence); anything else is `unknown_subject`;
//! 3. decoding ([`protocol::decode`], bounded, never a panic): a payload or
//!    record that does not decode is `malformed`;
//! 4. release metadata, in version replies and records
//!    ([`protocol::decode_with_release`]): an invalid one is dropped from
//!    the message, which is kept, and counted as `bad_release`.
//!
//! Each drop is counted in the caller's [`Dropped`] and logged. Plain data.

use crate::{
    auth::ClusterKey,
    protocol::{self, *},
    status::Dropped,
};
use serde::de::DeserializeOwned;

/// Who is listening: what a subject can mean to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listener {
    /// A node, whose round replies come to `<inbox>.<round>`: every
    /// cluster subject means something.
    Node {
        /// Its reply inbox.
        inbox: String,
    },
    /// A watcher: only presence messages.
    Watcher,
}

/// A message that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Nodeup, heartbeat or nodedown.
    Presence(PresenceKind, Presence),
    /// A monitor asks for versions.
    VersionRequest(VersionRequest),
    /// A record was written: a hint to read it, never the record itself.
    Notice(SettledNotice),
    /// A reply to this node's round of that number.
    Reply(u64, VersionReply),
}

/// The checks. See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    names: Names,
    listener: Listener,
    key: Option<ClusterKey>,
}

impl Inbound {
    /// Checks for `listener` in the cluster `names`, with its key if it has one.
    pub(crate) fn new(names: Names, listener: Listener, key: Option<ClusterKey>) -> Self {
        Self {
            names,
            listener,
            key,
        }
    }

    /// Checks messages and records with `key` from now on.
    pub(crate) fn set_key(&mut self, key: ClusterKey) {
        self.key = Some(key);
    }

    /// What `subject` means to this listener.
    fn classify(&self, subject: &str) -> Subject {
        match &self.listener {
            Listener::Node { inbox } => self.names.classify(subject, inbox),
            Listener::Watcher => [
                PresenceKind::Up,
                PresenceKind::Heartbeat,
                PresenceKind::Down,
            ]
            .into_iter()
            .find(|kind| self.names.presence(*kind) == subject)
            .map_or(Subject::Other, Subject::Presence),
        }
    }

    /// The message on `subject` (with its `mac`), if it passes; otherwise
    /// `None`, and the reason counted in `dropped`.
    pub(crate) fn message(
        &self,
        subject: &str,
        payload: &[u8],
        mac: Option<&str>,
        dropped: &mut Dropped,
    ) -> Option<Message> {
        if let Some(key) = &self.key {
            if !mac.is_some_and(|mac| key.verify(subject, payload, mac)) {
                dropped.unauthenticated += 1;
                tracing::warn!(%subject, dropped = dropped.total(),
                    "dropping a message without a valid cluster MAC");
                return None;
            }
        }
        match self.classify(subject) {
            Subject::Presence(kind) => {
                decode(subject, payload, dropped).map(|p| Message::Presence(kind, p))
            }
            Subject::VersionRequest => {
                decode(subject, payload, dropped).map(Message::VersionRequest)
            }
            Subject::Notice => decode(subject, payload, dropped).map(Message::Notice),
            Subject::Reply(round) => {
                decode_with_release(subject, payload, dropped).map(|r| Message::Reply(round, r))
            }
            Subject::Other => {
                dropped.unknown_subject += 1;
                tracing::warn!(%subject, dropped = dropped.total(),
                    "dropping a message on an unknown subject");
                None
            }
        }
    }

    /// The record in a KV value of [`STATE_KEY`] at `revision`, if it
    /// passes; otherwise `None`, and the reason counted in `dropped`.
    pub(crate) fn record(
        &self,
        revision: u64,
        value: &[u8],
        dropped: &mut Dropped,
    ) -> Option<SettledNotice> {
        let value = match &self.key {
            Some(key) => match key.open(STATE_KEY, value) {
                Some(value) => value,
                None => {
                    dropped.unauthenticated += 1;
                    tracing::warn!(
                        revision,
                        dropped = dropped.total(),
                        "ignoring a settled record without a valid cluster MAC"
                    );
                    return None;
                }
            },
            None => value,
        };
        decode_with_release(STATE_KEY, value, dropped)
            .map(|record| SettledNotice { revision, record })
    }
}

/// Decodes `payload`, counting a malformed one.
fn decode<T: DeserializeOwned>(subject: &str, payload: &[u8], dropped: &mut Dropped) -> Option<T> {
    match protocol::decode::<T>(payload) {
        Ok(message) => Some(message),
        Err(e) => {
            dropped.malformed += 1;
            tracing::warn!(%subject, error = %e, dropped = dropped.total(), "dropping a malformed message");
            None
        }
    }
}

/// [`decode`] for a message that may carry release metadata: bad metadata
/// is dropped and counted, the message kept.
fn decode_with_release<T: DeserializeOwned + CarriesRelease>(
    subject: &str,
    payload: &[u8],
    dropped: &mut Dropped,
) -> Option<T> {
    match protocol::decode_with_release::<T>(payload) {
        Ok((message, check)) => {
            if let ReleaseCheck::Dropped(reason) = check {
                dropped.bad_release += 1;
                tracing::warn!(%subject, %reason, dropped = dropped.total(),
                    "ignoring invalid release metadata");
            }
            Some(message)
        }
        Err(e) => {
            dropped.malformed += 1;
            tracing::warn!(%subject, error = %e, dropped = dropped.total(), "dropping a malformed message");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{Release, Severity};
    use semver::Version;

    const INBOX: &str = "_INBOX.me";

    fn key() -> ClusterKey {
        ClusterKey::new(b"0123456789abcdef-inbound").unwrap()
    }

    fn node(key: Option<ClusterKey>) -> Inbound {
        let listener = Listener::Node {
            inbox: INBOX.into(),
        };
        Inbound::new(Names::new("c"), listener, key)
    }

    fn watcher(key: Option<ClusterKey>) -> Inbound {
        Inbound::new(Names::new("c"), Listener::Watcher, key)
    }

    fn presence() -> Presence {
        Presence {
            id: "a".into(),
            version: Version::new(1, 0, 0),
            incarnation: 1,
            leader: false,
            tabs: Default::default(),
            retiring: false,
        }
    }

    fn reply(release: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "a", "version": "1.0.0", "incarnation": 1, "release": release
        }))
        .unwrap()
    }

    fn record() -> SettledRecord {
        SettledRecord {
            version: Version::new(2, 0, 0),
            previous: None,
            kind: RecordKind::Baseline,
            fence: 3,
            leader: "a".into(),
            at_ms: 0,
            release: None,
        }
    }

    fn dropped(f: impl FnOnce(&mut Dropped)) -> Dropped {
        let mut d = Dropped::default();
        f(&mut d);
        d
    }

    #[test]
    fn a_node_hears_every_cluster_subject_and_its_own_replies() {
        let inbound = node(None);
        let mut d = Dropped::default();
        let hello = protocol::encode(&presence());
        let request = protocol::encode(&VersionRequest {
            leader: "a".into(),
            round: 4,
        });
        let notice = protocol::encode(&SettledNotice {
            revision: 9,
            record: record(),
        });
        let cases: Vec<(&str, &[u8], Message)> = vec![
            (
                "vo.c.node.down",
                &hello,
                Message::Presence(PresenceKind::Down, presence()),
            ),
            (
                "vo.c.version.request",
                &request,
                Message::VersionRequest(VersionRequest {
                    leader: "a".into(),
                    round: 4,
                }),
            ),
            (
                "vo.c.announce",
                &notice,
                Message::Notice(SettledNotice {
                    revision: 9,
                    record: record(),
                }),
            ),
        ];
        for (subject, payload, want) in cases {
            assert_eq!(inbound.message(subject, payload, None, &mut d), Some(want));
        }
        let Some(Message::Reply(7, answer)) =
            inbound.message("_INBOX.me.7", &reply(serde_json::Value::Null), None, &mut d)
        else {
            panic!("a reply to round 7")
        };
        assert_eq!(answer.id, "a");
        assert_eq!(d, Dropped::default());
    }

    #[test]
    fn what_fails_is_dropped_and_counted_by_reason() {
        // (listener, subject, payload, what is counted)
        let hello = protocol::encode(&presence());
        let malformed = Dropped {
            malformed: 1,
            ..Dropped::default()
        };
        let unknown = Dropped {
            unknown_subject: 1,
            ..Dropped::default()
        };
        let cases: Vec<(Inbound, &str, Vec<u8>, Dropped)> = vec![
            (node(None), "vo.c.node.up", b"{not json".to_vec(), malformed),
            (node(None), "vo.c.settled", b"[]".to_vec(), malformed),
            (
                node(None),
                "vo.c.node.up",
                vec![b' '; MAX_PAYLOAD + 1],
                malformed,
            ),
            (node(None), "vo.c.other", hello.to_vec(), unknown),
            (node(None), "vo.d.node.up", hello.to_vec(), unknown),
            (node(None), "_INBOX.me.x", hello.to_vec(), unknown),
            (node(None), "_INBOX.other.1", hello.to_vec(), unknown),
            // A watcher hears presence only: no decoding of the rest.
            (
                watcher(None),
                "vo.c.version.request",
                b"?".to_vec(),
                unknown,
            ),
            (watcher(None), "_INBOX.me.1", hello.to_vec(), unknown),
            (
                watcher(None),
                "vo.c.node.heartbeat",
                b"?".to_vec(),
                malformed,
            ),
        ];
        for (inbound, subject, payload, want) in cases {
            let got = dropped(|d| {
                assert_eq!(
                    inbound.message(subject, &payload, None, d),
                    None,
                    "{subject}"
                );
            });
            assert_eq!(got, want, "{subject} {:?}", inbound.listener);
        }
    }

    #[test]
    fn with_a_key_only_a_valid_mac_for_this_subject_passes_first() {
        let key = key();
        let hello = protocol::encode(&presence());
        let heartbeat = "vo.c.node.heartbeat";
        let good = key.sign(heartbeat, &hello);
        let unauthenticated = Dropped {
            unauthenticated: 1,
            ..Dropped::default()
        };
        for inbound in [node(Some(key.clone())), watcher(Some(key.clone()))] {
            for (subject, mac) in [
                (heartbeat, None),
                (heartbeat, Some("bm90IGEgbWFj")),
                // Replayed on another subject.
                ("vo.c.node.down", Some(good.as_str())),
                // Checked before the subject.
                ("vo.c.other", None),
            ] {
                let got = dropped(|d| assert_eq!(inbound.message(subject, &hello, mac, d), None));
                assert_eq!(got, unauthenticated, "{subject} {mac:?}");
            }
            let got = dropped(|d| {
                assert!(inbound.message(heartbeat, &hello, Some(&good), d).is_some());
            });
            assert_eq!(got, Dropped::default());
        }
    }

    #[test]
    fn bad_release_metadata_is_counted_and_the_message_kept() {
        let inbound = node(None);
        let mut d = Dropped::default();
        let forged = reply(serde_json::json!({"notes_url": "javascript:alert(1)"}));
        let Some(Message::Reply(1, answer)) = inbound.message("_INBOX.me.1", &forged, None, &mut d)
        else {
            panic!("kept")
        };
        assert_eq!(answer.release, None);
        assert_eq!(d.bad_release, 1);
        let good = reply(serde_json::json!({"severity": "required"}));
        let Some(Message::Reply(1, answer)) = inbound.message("_INBOX.me.1", &good, None, &mut d)
        else {
            panic!("kept")
        };
        assert_eq!(answer.release.map(|r| r.severity), Some(Severity::Required));
        assert_eq!(d.total(), 1);
    }

    #[test]
    fn a_record_is_opened_checked_and_decoded() {
        let key = key();
        let plain = protocol::encode(&record());
        let sealed = key.seal(STATE_KEY, &plain);
        let notice = SettledNotice {
            revision: 5,
            record: record(),
        };
        let mut d = Dropped::default();
        assert_eq!(node(None).record(5, &plain, &mut d), Some(notice.clone()));
        assert_eq!(
            watcher(Some(key.clone())).record(5, &sealed, &mut d),
            Some(notice)
        );
        assert_eq!(d, Dropped::default());
        // (listener, value, what is counted)
        let forged = key.seal("monitor", &plain);
        let cases: Vec<(Inbound, &[u8], Dropped)> = vec![
            (
                node(Some(key.clone())),
                &plain,
                Dropped {
                    unauthenticated: 1,
                    ..Dropped::default()
                },
            ),
            (
                node(Some(key.clone())),
                &forged,
                Dropped {
                    unauthenticated: 1,
                    ..Dropped::default()
                },
            ),
            (
                watcher(None),
                b"{not a record",
                Dropped {
                    malformed: 1,
                    ..Dropped::default()
                },
            ),
        ];
        for (inbound, value, want) in cases {
            assert_eq!(
                dropped(|d| assert_eq!(inbound.record(5, value, d), None)),
                want
            );
        }
        // A record with a script for notes: kept, its release dropped.
        let mut bad = record();
        bad.release = Some(Release {
            notes_url: Some("javascript:alert(1)".into()),
            ..Release::default()
        });
        let mut d = Dropped::default();
        let got = node(None)
            .record(6, &protocol::encode(&bad), &mut d)
            .unwrap();
        assert_eq!(got.record.release, None);
        assert_eq!(d.bad_release, 1);
    }
}
