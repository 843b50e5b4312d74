//! Every timing default, in one place: the cluster protocol's settings
//! ([`Timings`]) and its fixed pace (the record refresh, bucket retries, the
//! round backoff), retiring, the server side (the NATS driver, HTTP and
//! version streams, forwarding, the asset store, fleet views), the
//! reference node's tools, and the browser's (a tab's stream, the reload
//! strategies), each in its own module below.
//!
//! A node's flags, the embeddable crate's settings, the lab and the tests all
//! start from these; what is derived from a setting (the heartbeat interval,
//! the lease margin, how long a KV call may take) is derived here or in the
//! state machine that uses it, never written twice.

use crate::cluster::monitor::Backoff;
use std::time::Duration;

/// How long no open page must have needed a retiring node before it exits,
/// by default: long enough for a tab whose stream is reconnecting (a retry
/// hint of 1 to 2 s, then a heartbeat of the node it reached) to be seen
/// again.
pub const DEFAULT_RETIRE_GRACE: Duration = Duration::from_secs(10);

/// How often a connected node re-reads the settled record, notices or not.
pub const RECORD_REFRESH: Duration = Duration::from_secs(5);
/// How soon a node tries again to open the cluster's bucket after an open
/// failed (or a KV call could not complete).
pub const BUCKET_RETRY: Duration = Duration::from_millis(500);
/// How soon it tries again when the bucket exists with settings it cannot use.
pub const BUCKET_MISCONFIGURED_RETRY: Duration = Duration::from_secs(10);
/// How the monitor retries a round some member did not answer.
pub const ROUND_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(1),
    attempts: 5,
};

/// How a cluster paces itself. Every node of one cluster should use the same
/// values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// A node not heard from for this long is gone (crash detection). Nodes
    /// send a heartbeat every third of it.
    pub node_timeout: Duration,
    /// The monitor's lease: a crashed monitor is replaced within about this
    /// long plus one attempt interval.
    pub lease: Duration,
    /// How long a collection round waits for replies.
    pub round_timeout: Duration,
    /// The monitor re-checks the cluster at least this often; every node
    /// checks this often that its bundle is still in the asset store.
    pub safety_interval: Duration,
}

/// A timing that is out of its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} = {value_ms} ms is out of range: use {min_ms} to {max_ms} ms")]
pub struct TimingError {
    /// The setting's name, as in [`Timings::RANGES_MS`] (`lease`, ...).
    pub name: &'static str,
    /// The value given, in milliseconds (saturated at `u64::MAX`).
    pub value_ms: u64,
    /// The smallest allowed value, in milliseconds.
    pub min_ms: u64,
    /// The largest allowed value, in milliseconds.
    pub max_ms: u64,
}

impl Timings {
    /// The product's defaults: what an operator gets without flags.
    pub const DEFAULT: Timings = Timings {
        node_timeout: Duration::from_millis(3_000),
        lease: Duration::from_millis(5_000),
        round_timeout: Duration::from_millis(500),
        safety_interval: Duration::from_millis(10_000),
    };

    /// The allowed range of each setting, in milliseconds: (name, min, max).
    pub const RANGES_MS: [(&'static str, u64, u64); 4] = [
        ("node_timeout", 300, 600_000),
        ("lease", 500, 600_000),
        ("round_timeout", 10, 60_000),
        ("safety_interval", 100, 3_600_000),
    ];

    /// How many heartbeats a node sends per node timeout.
    pub const HEARTBEATS_PER_TIMEOUT: u32 = 3;

    /// Checks every value against [`RANGES_MS`](Self::RANGES_MS).
    pub fn validate(&self) -> Result<(), TimingError> {
        let values = [
            self.node_timeout,
            self.lease,
            self.round_timeout,
            self.safety_interval,
        ];
        for ((name, min_ms, max_ms), value) in Self::RANGES_MS.into_iter().zip(values) {
            let value_ms = u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
            if !(min_ms..=max_ms).contains(&value_ms) {
                return Err(TimingError {
                    name,
                    value_ms,
                    min_ms,
                    max_ms,
                });
            }
        }
        Ok(())
    }

    /// How often a node says it is alive.
    pub fn heartbeat_interval(&self) -> Duration {
        self.node_timeout / Self::HEARTBEATS_PER_TIMEOUT
    }

    /// How many node timeouts a rollback is held for ([`rollback_hold`](Self::rollback_hold)).
    pub const ROLLBACK_HOLD_TIMEOUTS: u32 = 10;

    /// How long a rollback (a settled version older than the announced one)
    /// waits before it is announced, while a member of the announced version
    /// may only be cut off rather than gone: it expired (silent past the
    /// node timeout, no nodedown) this recently, or the monitor has been
    /// observing for less than this. Ten node timeouts: 30 s by default.
    pub fn rollback_hold(&self) -> Duration {
        self.node_timeout * Self::ROLLBACK_HOLD_TIMEOUTS
    }

    /// The longest a single KV call may take before it counts as failed: a
    /// stalled JetStream must not keep a lease call pending past the lease.
    pub fn kv_timeout(&self) -> Duration {
        (self.lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(2))
    }
}

impl Default for Timings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A duration as operators write it: `90s`, `5m`, `1h30m`, `250ms`, or a
/// whole number of seconds; never zero. The error names the value.
///
/// ```
/// use std::time::Duration;
/// use version_observer_core::timing::parse_duration;
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert!(parse_duration("5x").unwrap_err().contains("'5x'"));
/// ```
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("not a duration (like 90s, 5m, 1h30m or a number of seconds): '{value}'");
    let text = value.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return (seconds > 0)
            .then(|| Duration::from_secs(seconds))
            .ok_or_else(bad);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let step = match &rest[..unit] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(step);
        rest = &rest[unit..];
    }
    if total.is_zero() {
        return Err(bad());
    }
    Ok(total)
}

/// Defaults of the browser-facing side.
pub mod streams {
    use std::time::Duration;

    /// Seconds between keep-alive comments on every version stream: under
    /// the 55-60 s idle timeouts of common proxies and load balancers.
    pub const KEEPALIVE: Duration = Duration::from_secs(30);
    /// Most open version streams per node.
    pub const MAX_STREAMS: u32 = 100_000;
    /// The reconnect hint a stream sends: this much plus up to the same
    /// again at random, so many tabs do not reconnect in the same instant.
    pub const RETRY_BASE: Duration = Duration::from_millis(1_000);
}

/// The node's own HTTP listener (the lean stream listener in front of axum).
pub mod http {
    use std::time::Duration;

    /// How long a new connection may take to send its request head.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long a stream may take to accept one write before it is dropped
    /// (a reader that stopped reading).
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    /// How long a connection may pass no byte either way (between
    /// requests, or while a handler runs) before it is closed, by default
    /// (the builder's `idle_timeout`): longer than the 60-75 s idle
    /// timeouts of common proxies and load balancers, so they close their
    /// pooled connections first.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
    /// Out of file descriptors: how long the listener waits for one
    /// connection to refuse with `503` on its spare descriptor.
    pub const REFUSE_WAIT: Duration = Duration::from_millis(10);
    /// How long the listener pauses after any other accept error.
    pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
}

/// The NATS driver of a cluster node (`server/cluster.rs`).
pub mod driver {
    use std::time::Duration;

    /// How long start-up waits for the first connection and record read, so
    /// a browser that connects right after start-up gets the announced
    /// version at once. With NATS down the node starts anyway (state
    /// `unknown`).
    pub const STARTUP_WAIT: Duration = Duration::from_secs(2);
    /// The longest a single publish may wait for room in the client's queue.
    pub const PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);
    /// How long a leaving node waits for its last messages to reach NATS.
    pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
    /// How long leaving the cluster may take before the streams end anyway.
    pub const LEAVE_BOUND: Duration = Duration::from_secs(3);
    /// The status shows members' ages: refreshed at least this often.
    pub const STATUS_REFRESH: Duration = Duration::from_secs(1);
    /// Repeated NATS errors are logged at most this often.
    pub const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);
    /// The longest one connection attempt may take (less with a shorter
    /// node timeout).
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The first reconnect delay; each further one doubles, up to
    /// [`RECONNECT_MAX`], plus up to [`RECONNECT_JITTER`] at random.
    pub const RECONNECT_FIRST: Duration = Duration::from_millis(100);
    /// The longest reconnect delay (before jitter).
    pub const RECONNECT_MAX: Duration = Duration::from_secs(2);
    /// The most random delay added to each reconnect.
    pub const RECONNECT_JITTER: Duration = Duration::from_millis(100);
}

/// Forwarding a request to a node of the page's version (version affinity).
pub mod forward {
    use std::time::Duration;

    /// How long a forwarded request may take, by default (the builder's
    /// `forward_timeout`).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// How far a forwarded request's clock may be from ours (with a cluster
    /// key): older ones are refused as replays.
    pub const REPLAY_WINDOW: Duration = Duration::from_secs(60);
    /// How soon a node tries again to subscribe to its version's forwarded
    /// requests.
    pub const SUBSCRIBE_RETRY: Duration = Duration::from_secs(1);
}

/// The cluster's asset store.
pub mod assets {
    use std::time::Duration;

    /// How long start-up waits for the bundle to be in the store.
    pub const STARTUP_WAIT: Duration = Duration::from_secs(10);
    /// One store lookup, at most (opening the bucket included).
    pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
    /// One step of publishing, at most.
    pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
    /// The first delay before publishing again after a failed step; each
    /// further one doubles, up to [`RETRY_MAX`], plus up to
    /// [`RETRY_JITTER`] at random.
    pub const RETRY_FIRST: Duration = Duration::from_millis(500);
    /// The longest delay between two attempts (before jitter).
    pub const RETRY_MAX: Duration = Duration::from_secs(30);
    /// The most random delay added to each.
    pub const RETRY_JITTER: Duration = Duration::from_millis(250);
}

/// A cluster watched from outside (fleet views).
pub mod fleet {
    use std::time::Duration;

    /// How often the settled record is read again (it is also read at once
    /// when a node publishes a settled or announce notice).
    pub const RECORD_POLL: Duration = Duration::from_millis(500);
    /// How often `GET /api/fleet/events` sends the node's status.
    pub const EVENTS_INTERVAL: Duration = Duration::from_millis(500);
    /// How often a node samples the open pages by version for their
    /// history (`VersionObserver::page_history`).
    pub const HISTORY_SAMPLE: Duration = Duration::from_secs(1);
    /// How far back that history goes: the last hour.
    pub const HISTORY_WINDOW: Duration = Duration::from_secs(3600);
}

/// A tab's version stream (the `EventSource` the crate opens in the
/// browser); in milliseconds, as the browser's timers take them.
pub mod browser {
    /// The first delay before a tab opens its stream again after it
    /// failed; each further failure doubles it, up to
    /// [`STREAM_RETRY_MAX_MS`]. A tab waits between half and all of it, at
    /// random, so many tabs do not reconnect at once.
    pub const STREAM_RETRY_FIRST_MS: i32 = 1_000;
    /// The longest delay before a tab opens its stream again.
    pub const STREAM_RETRY_MAX_MS: i32 = 30_000;
    /// A tab hidden at least this long reopens its stream when it is shown
    /// again (a shorter absence, a mere tab switch, keeps it).
    pub const WAKE_AFTER_MS: f64 = 30_000.0;
}

/// The reference node's tools (`version-observer wait` and `status`).
pub mod tools {
    use std::time::Duration;

    /// How often `wait` looks at the cluster again (at the latest; a
    /// change wakes it at once).
    pub const WAIT_POLL: Duration = Duration::from_millis(250);
    /// How often `status` looks again until its view is complete.
    pub const STATUS_POLL: Duration = Duration::from_millis(100);
    /// How long `status` waits beyond one node timeout for a complete view
    /// and the record.
    pub const STATUS_GRACE: Duration = Duration::from_secs(5);
}

/// The browser's reload strategies ([`crate::reload`]).
pub mod reload {
    use std::time::Duration;

    /// The countdown of `immediate` unless given.
    pub const COUNTDOWN: Duration = Duration::from_secs(10);
    /// The loop guard's window.
    pub const LOOP_WINDOW: Duration = Duration::from_secs(300);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_in_range_and_derive_sensibly() {
        let t = Timings::DEFAULT;
        assert_eq!(t.validate(), Ok(()));
        assert_eq!(t.heartbeat_interval(), Duration::from_millis(1_000));
        assert_eq!(t.kv_timeout(), Duration::from_millis(1_250));
    }

    #[test]
    fn out_of_range_values_are_named() {
        let t = Timings {
            lease: Duration::from_millis(10),
            ..Timings::DEFAULT
        };
        let err = t.validate().unwrap_err();
        assert_eq!(err.name, "lease");
        assert!(err.to_string().contains("10 ms"), "{err}");
    }
}
