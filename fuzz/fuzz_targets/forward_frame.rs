//! A forwarded request or answer as it comes off NATS: any bytes, never a
//! panic, and what decodes encodes back to the same bytes (a frame means
//! one thing only).
#![no_main]

use libfuzzer_sys::fuzz_target;
use version_observer_core::affinity::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        let again = frame.encode();
        assert_eq!(
            Frame::decode(&again).as_ref(),
            Ok(&frame),
            "re-encoded frame reads differently"
        );
    }
});
