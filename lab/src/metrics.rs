//! Reading a node's `/metrics` in tests, with a real Prometheus text-format
//! parser (`prometheus-parse`).

pub use prometheus_parse::Scrape;

/// `text` parsed; panics, showing the text, if it is not the Prometheus
/// text format.
pub fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not the Prometheus text format: {e}\n{text}"))
}

/// The value of the sample `name` (with `label` = `value`, if given).
pub fn value(scrape: &Scrape, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: not a number: {other:?}"),
        })
}
