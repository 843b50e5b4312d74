//! The listener's first look at a connection: any bytes, never a panic, and
//! the two checks agree (a head `check_head` accepts is one `classify` calls
//! a stream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use version_observer_core::stream_request::{check_head, classify};

fuzz_target!(|data: &[u8]| {
    let verdict = classify(data);
    if check_head(data).is_ok() {
        assert_eq!(
            verdict,
            Some(true),
            "an accepted head must classify as a stream"
        );
    }
    // Every prefix gives an answer, and once decided the verdict never changes.
    let mut decided = None;
    for end in 0..=data.len().min(64) {
        match (decided, classify(&data[..end])) {
            (None, Some(v)) => decided = Some(v),
            (Some(before), now) => assert_eq!(Some(before), now, "changed its mind at {end}"),
            _ => {}
        }
    }
});
