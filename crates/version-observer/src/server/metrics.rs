//! One node's Prometheus metrics, encoded by `prometheus-client` from a
//! snapshot taken at each scrape (nothing is counted twice: the counts live
//! where things happen, in the streams and in the coordinator's
//! [`Counters`]). The list of metrics is in
//! [`VersionObserver::metrics_text`]'s docs: keep it in step with
//! [`encode`].

use super::observer::VersionObserver;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use std::fmt;
use version_observer_core::{
    skew::ForwardFailure,
    status::{ClusterStatus, Counters, DurationHistogram},
    ClusterState, Mode,
};

/// Everything one scrape shows, read at once.
#[derive(Debug)]
struct Snapshot {
    node_id: String,
    version: String,
    mode: Mode,
    streams: u64,
    stream_limit: u64,
    tabs: Vec<(String, u64)>,
    refused: [(&'static str, u64); 4],
    /// `None` for a single node.
    cluster: Option<ClusterStatus>,
    retiring: bool,
    /// `None` without version affinity.
    forward: Option<ForwardSnapshot>,
}

/// The forwarding counts of one scrape.
#[derive(Debug)]
struct ForwardSnapshot {
    sent: Vec<((String, &'static str), u64)>,
    latency: DurationHistogram,
    refusals: Vec<(&'static str, u64)>,
    served: u64,
    declined: Vec<(&'static str, u64)>,
}

/// The text exposition of `observer`'s metrics.
pub(crate) fn encode(observer: &VersionObserver) -> String {
    let streams = observer.streams();
    let page = observer.page_info();
    let snapshot = Snapshot {
        node_id: page.node_id.clone(),
        version: page.version.to_string(),
        mode: observer.mode(),
        streams: streams.open_streams(),
        stream_limit: u64::from(streams.max_streams),
        tabs: streams.tabs.snapshot(),
        refused: [
            ("streams", streams.refused.total()),
            ("open_files", streams.refused_open_files.total()),
            (
                "requests",
                streams
                    .refused_requests
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                "stale_client",
                streams
                    .refused_stale_clients
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        ],
        cluster: observer.is_clustered().then(|| observer.cluster_status()),
        retiring: observer.is_retiring(),
        forward: observer.affinity().map(|a| {
            let stats = &a.stats;
            ForwardSnapshot {
                sent: stats
                    .sent
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(k, n)| (k.clone(), *n))
                    .collect(),
                latency: stats
                    .latency
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                refusals: ForwardFailure::ALL
                    .iter()
                    .zip(&stats.failed)
                    .map(|(r, n)| (r.as_str(), n.load(std::sync::atomic::Ordering::Relaxed)))
                    .collect(),
                served: stats.served.load(std::sync::atomic::Ordering::Relaxed),
                declined: stats
                    .declined
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(k, n)| (*k, *n))
                    .collect(),
            }
        }),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let e = &mut encoder;
        let mode = match self.mode {
            Mode::Single => "single",
            Mode::Cluster => "cluster",
        };
        let info = [
            ("node_id", self.node_id.as_str()),
            ("version", self.version.as_str()),
            ("mode", mode),
        ];
        let mut m = e.encode_descriptor(
            "version_observer_node_info",
            "This node: its id, version and mode.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64).encode(m.encode_family(&info)?)?;
        gauge(
            e,
            "version_observer_streams",
            "Version streams open now.",
            self.streams,
        )?;
        gauge(
            e,
            "version_observer_stream_limit",
            "Most version streams this node holds (max_streams).",
            self.stream_limit,
        )?;
        let tabs: Vec<_> = self
            .tabs
            .iter()
            .map(|(version, n)| (version.as_str(), *n))
            .collect();
        labelled(
            e,
            "version_observer_tabs",
            "Open version streams by the version of the page that opened them.",
            MetricType::Gauge,
            "page_version",
            &tabs,
        )?;
        labelled(
            e,
            "version_observer_refused",
            "Connections and requests refused (503 when overloaded, 409 by the request guard), by reason.",
            MetricType::Counter,
            "reason",
            &self.refused,
        )?;
        if let Some(status) = &self.cluster {
            cluster(e, status)?;
            gauge(
                e,
                "version_observer_retiring",
                "1 while this node retires.",
                u64::from(self.retiring),
            )?;
            gauge(
                e,
                "version_observer_retiring_members",
                "Retiring members in this node's view.",
                status.members.iter().filter(|m| m.retiring).count() as u64,
            )?;
        }
        if let Some(forward) = &self.forward {
            forwarding(e, &self.version, forward)?;
        }
        Ok(())
    }
}

fn forwarding(e: &mut DescriptorEncoder<'_>, from: &str, f: &ForwardSnapshot) -> fmt::Result {
    let mut family = e.encode_descriptor(
        "version_observer_forwarded",
        "Requests this node passed on to a member of another version, by target version and outcome.",
        None,
        MetricType::Counter,
    )?;
    for ((to, outcome), n) in &f.sent {
        let labels = [
            ("from_version", from),
            ("to_version", to.as_str()),
            ("outcome", *outcome),
        ];
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    histogram(
        e,
        "version_observer_forward_duration_seconds",
        "How long forwarded requests took, from sending to their answer.",
        &f.latency,
    )?;
    labelled(
        e,
        "version_observer_forward_refusals",
        "Requests answered 409 (or 502/504) because forwarding failed, by reason.",
        MetricType::Counter,
        "reason",
        &f.refusals,
    )?;
    let mut rows = vec![("served", f.served)];
    rows.extend(f.declined.iter().copied());
    labelled(
        e,
        "version_observer_forwarded_in",
        "Requests forwarded to this node: served, or why not.",
        MetricType::Counter,
        "outcome",
        &rows,
    )
}

fn cluster(e: &mut DescriptorEncoder<'_>, status: &ClusterStatus) -> fmt::Result {
    let c: &Counters = &status.counters;
    gauge(
        e,
        "version_observer_nats_connected",
        "1 while this node is connected to NATS.",
        u64::from(status.connected),
    )?;
    counter(
        e,
        "version_observer_nats_connects",
        "Connections to NATS, the first included.",
        c.nats_connects,
    )?;
    let state = |s: ClusterState| u64::from(status.state == s);
    labelled(
        e,
        "version_observer_cluster_state",
        "1 for this node's current view of its cluster.",
        MetricType::Gauge,
        "state",
        &[
            ("settled", state(ClusterState::Settled)),
            ("mixed", state(ClusterState::Mixed)),
            ("unknown", state(ClusterState::Unknown)),
        ],
    )?;
    gauge(
        e,
        "version_observer_members",
        "Live members in this node's view.",
        status.members.len() as u64,
    )?;
    gauge(
        e,
        "version_observer_monitor",
        "1 while this node holds the monitor lease.",
        u64::from(status.this_node_leads),
    )?;
    counter(
        e,
        "version_observer_lease_acquisitions",
        "Times this node became the monitor.",
        c.lease_acquired,
    )?;
    counter(
        e,
        "version_observer_lease_losses",
        "Times this node stopped being the monitor without handing the lease back.",
        c.lease_lost,
    )?;
    labelled(
        e,
        "version_observer_records_written",
        "Settled records this node wrote as monitor, by kind.",
        MetricType::Counter,
        "kind",
        &[
            ("announcement", c.announcements_written),
            ("baseline", c.baselines_written),
        ],
    )?;
    labelled(
        e,
        "version_observer_rounds",
        "Collection rounds this node ran as monitor, by outcome.",
        MetricType::Counter,
        "outcome",
        &[
            ("settled", c.rounds_settled),
            ("mixed", c.rounds_mixed),
            ("incomplete", c.rounds_incomplete),
        ],
    )?;
    histogram(
        e,
        "version_observer_round_duration_seconds",
        "How long collection rounds took, from request to last reply (or deadline).",
        &c.round_durations,
    )?;
    let d = &c.dropped;
    labelled(
        e,
        "version_observer_messages_dropped",
        "Cluster messages dropped, by reason.",
        MetricType::Counter,
        "reason",
        &[
            ("malformed", d.malformed),
            ("bad_reply_subject", d.bad_reply_subject),
            ("unknown_subject", d.unknown_subject),
            ("unauthenticated", d.unauthenticated),
            ("bad_release", d.bad_release),
        ],
    )
}

/// A count as a gauge's value (saturating: gauges are signed).
fn const_gauge(value: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let gauge = const_gauge(value);
    gauge.encode(e.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// `name` without `_total`: the encoder adds it.
fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(e.encode_descriptor(name, help, None, counter.metric_type())?)
}

/// One metric family with one label.
fn labelled(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    label: &str,
    rows: &[(&str, u64)],
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, metric_type)?;
    for (value, n) in rows {
        let labels = [(label, *value)];
        let m = family.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(*n).encode(m)?,
            _ => const_gauge(*n).encode(m)?,
        }
    }
    Ok(())
}

/// A duration histogram, in seconds.
fn histogram(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &DurationHistogram,
) -> fmt::Result {
    let buckets: Vec<(f64, u64)> = DurationHistogram::BOUNDS_MS
        .iter()
        .map(|ms| ms / 1000.0)
        .chain([f64::INFINITY])
        .enumerate()
        .map(|(i, le)| (le, h.counts.get(i).copied().unwrap_or(0)))
        .collect();
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum_ms / 1000.0,
        h.count,
        &buckets,
        None,
    )
}
