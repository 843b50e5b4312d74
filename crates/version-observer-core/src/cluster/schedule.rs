//! Test support: a seeded xorshift for long random schedules that are the
//! same on every run (no dependency, no I/O).

/// `below(n)` draws the next number in `0..n` of the sequence `seed` starts.
pub(crate) fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    }
}
