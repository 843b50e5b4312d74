//! Any message on any subject, with any reply subject and MAC, fed to a
//! connected coordinator (with and without a cluster key) between timeouts:
//! never a panic, never a publish outside an `_INBOX.` reply or the
//! cluster's own subjects, and never a record written that nobody settled.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use version_observer_core::{
    auth::ClusterKey,
    cluster::{Action, Coordinator, Identity},
    protocol::{is_reply_inbox, Names},
    Compat, Timings, Version,
};

/// Splits the input into (subject, reply, mac, payload) chunks on 0xFF.
fn messages(data: &[u8]) -> Vec<(String, Option<String>, Option<String>, Vec<u8>)> {
    let subjects = [
        "vo.c.node.up",
        "vo.c.node.heartbeat",
        "vo.c.node.down",
        "vo.c.version.request",
        "vo.c.settled",
        "vo.c.announce",
        "_INBOX.me.1",
        "vo.c.other",
    ];
    data.split(|b| *b == 0xFF)
        .filter(|chunk| !chunk.is_empty())
        .map(|chunk| {
            let subject = subjects[usize::from(chunk[0]) % subjects.len()].to_owned();
            let rest = &chunk[1..];
            let (reply, rest) = match rest.split_first() {
                Some((b, rest)) if b % 3 == 0 => (Some("_INBOX.x.1".to_owned()), rest),
                Some((b, rest)) if b % 3 == 1 => (
                    Some(String::from_utf8_lossy(&rest[..rest.len().min(12)]).into_owned()),
                    rest,
                ),
                _ => (None, rest),
            };
            (subject, reply, None, rest.to_vec())
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    for keyed in [false, true] {
        let t0 = Instant::now();
        let me = Identity {
            id: "me".into(),
            version: Version::new(1, 0, 0),
            incarnation: 7,
        };
        let mut coordinator = Coordinator::new(
            me,
            Names::new("c"),
            "_INBOX.me".into(),
            Compat::Major,
            Timings::DEFAULT,
            t0,
        );
        if keyed {
            coordinator = coordinator.with_key(ClusterKey::new(b"a-fuzzing-cluster-key").unwrap());
        }
        coordinator.handle_connected(t0);
        let mut now = t0;
        let key = ClusterKey::new(b"a-fuzzing-cluster-key").unwrap();
        for (i, (subject, reply, _, payload)) in messages(data).into_iter().enumerate() {
            now += Duration::from_millis(37 * (i as u64 % 50));
            // Keyed: every other message is properly signed, so the fuzzer
            // reaches past the MAC check too.
            let mac = (keyed && i % 2 == 0).then(|| key.sign(&subject, &payload));
            coordinator.handle_message(&subject, reply.as_deref(), &payload, mac.as_deref(), now);
            coordinator.handle_timeout(now);
            while let Some(action) = coordinator.poll_action() {
                match action {
                    Action::Publish { subject, .. } => assert!(
                        subject.starts_with("vo.c.") || is_reply_inbox(&subject),
                        "published on {subject}"
                    ),
                    Action::WriteRecord { .. } => panic!("wrote a record without a bucket"),
                    _ => {}
                }
            }
        }
    }
});
