//! The cluster timings a lab gives its nodes. The product's defaults are the
//! core's [`Timings::DEFAULT`] and are never written here; this module only
//! adds the shorter presets that tests use, and turns timings into node flags
//! and into the JSON `vo-lab serve` prints.

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr, time::Duration};
pub use version_observer_core::Timings;

/// Crash detection in 1 s and failover in about 2 s, so the Rust cluster
/// tests stay short.
pub const FAST: Timings = Timings {
    node_timeout: Duration::from_millis(1_000),
    lease: Duration::from_millis(2_000),
    round_timeout: Duration::from_millis(300),
    safety_interval: Duration::from_millis(2_000),
};

/// For the browser scenes (`vo-lab serve --timings e2e`): short enough for
/// tests, long enough for a loaded 2-core machine running a browser too.
pub const E2E: Timings = Timings {
    node_timeout: Duration::from_millis(1_500),
    lease: Duration::from_millis(3_000),
    round_timeout: Duration::from_millis(300),
    safety_interval: Duration::from_millis(2_000),
};

/// A named set of timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// The product's defaults ([`Timings::DEFAULT`]).
    #[default]
    Default,
    /// [`FAST`].
    Fast,
    /// [`E2E`].
    E2e,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Default, Preset::Fast, Preset::E2e];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Default => "default",
            Preset::Fast => "fast",
            Preset::E2e => "e2e",
        }
    }

    pub fn timings(self) -> Timings {
        match self {
            Preset::Default => Timings::DEFAULT,
            Preset::Fast => FAST,
            Preset::E2e => E2E,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
                format!("no timings preset {name:?}: use {}", names.join(", "))
            })
    }
}

/// Timings in whole milliseconds, as the node's flags take them and as
/// `vo-lab serve` prints them (`"timings":{"node_timeout_ms":...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimingsMs {
    pub node_timeout_ms: u64,
    pub lease_ms: u64,
    pub round_timeout_ms: u64,
    pub safety_interval_ms: u64,
}

impl From<Timings> for TimingsMs {
    fn from(t: Timings) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            node_timeout_ms: ms(t.node_timeout),
            lease_ms: ms(t.lease),
            round_timeout_ms: ms(t.round_timeout),
            safety_interval_ms: ms(t.safety_interval),
        }
    }
}

impl From<TimingsMs> for Timings {
    fn from(t: TimingsMs) -> Self {
        Self {
            node_timeout: Duration::from_millis(t.node_timeout_ms),
            lease: Duration::from_millis(t.lease_ms),
            round_timeout: Duration::from_millis(t.round_timeout_ms),
            safety_interval: Duration::from_millis(t.safety_interval_ms),
        }
    }
}

/// The node's timing flags for `timings`.
pub fn node_flags(timings: &Timings) -> Vec<String> {
    let t = TimingsMs::from(*timings);
    vec![
        "--node-timeout-ms".into(),
        t.node_timeout_ms.to_string(),
        "--lease-ms".into(),
        t.lease_ms.to_string(),
        "--round-timeout-ms".into(),
        t.round_timeout_ms.to_string(),
        "--safety-interval-ms".into(),
        t.safety_interval_ms.to_string(),
    ]
}

/// The same timings as `VO_*` environment variables (what a host app's
/// `ObserverBuilder::with_env` reads).
pub fn node_env(timings: &Timings) -> Vec<(String, String)> {
    let t = TimingsMs::from(*timings);
    vec![
        ("VO_NODE_TIMEOUT_MS".into(), t.node_timeout_ms.to_string()),
        ("VO_LEASE_MS".into(), t.lease_ms.to_string()),
        ("VO_ROUND_TIMEOUT_MS".into(), t.round_timeout_ms.to_string()),
        (
            "VO_SAFETY_INTERVAL_MS".into(),
            t.safety_interval_ms.to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_named_once() {
        for preset in Preset::ALL {
            assert_eq!(preset.timings().validate(), Ok(()), "{preset}");
            assert_eq!(preset.name().parse::<Preset>(), Ok(preset));
        }
        assert_eq!(Preset::default().timings(), Timings::DEFAULT);
        assert!("slow".parse::<Preset>().unwrap_err().contains("e2e"));
    }

    #[test]
    fn milliseconds_round_trip() {
        for preset in Preset::ALL {
            let t = preset.timings();
            assert_eq!(Timings::from(TimingsMs::from(t)), t);
        }
        assert_eq!(
            serde_json::to_value(TimingsMs::from(E2E)).unwrap(),
            serde_json::json!({
                "node_timeout_ms": 1500, "lease_ms": 3000,
                "round_timeout_ms": 300, "safety_interval_ms": 2000
            })
        );
    }

    #[test]
    fn flags_carry_the_default_values() {
        let flags = node_flags(&Timings::DEFAULT).join(" ");
        let ms = TimingsMs::from(Timings::DEFAULT);
        assert_eq!(
            flags,
            format!(
                "--node-timeout-ms {} --lease-ms {} --round-timeout-ms {} --safety-interval-ms {}",
                ms.node_timeout_ms, ms.lease_ms, ms.round_timeout_ms, ms.safety_interval_ms
            )
        );
    }
}
