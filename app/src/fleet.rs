//! The operators' fleet view, rendered on the server (feature `ssr`) for
//! the node's admin listener ([`FLEET_PATH`](crate::FLEET_PATH)): it
//! carries no wasm, so the page every user loads carries none of its code.
//! Each snapshot of the cluster renders [`FleetBody`] to HTML; a few lines
//! of script in the page replace its body with every new one. To show
//! more, add a component to [`FleetBody`]: it renders from one
//! [`Snapshot`] (the node's [`ClusterStatus`] and its [`PageHistory`]).

#[cfg(doc)]
use crate::FLEET_EVENTS_PATH;
use leptos::prelude::*;
use version_observer::core::history::PageHistory;
use version_observer::{ClusterState, ClusterStatus};

/// What one rendering of the fleet view shows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The node's view of its cluster.
    pub status: ClusterStatus,
    /// Open pages by version over the last hour
    /// ([`VersionObserver::page_history`](version_observer::VersionObserver::page_history)).
    /// The chart ends at its latest sample ([`PageHistory::until_ms`]).
    pub history: PageHistory,
}

/// The fleet view's document (server only), for the node's admin listener:
/// what an operator keeps open during a deploy, every member with its
/// version, role, state (serving or retiring) and last heartbeat, the
/// rollout as a bar, the retiring members and the pages they are kept for,
/// open tabs per page version across the cluster now and as a chart of the
/// last hour (the drain curve), and the records, live.
///
/// It is rendered on the server and carries no wasm: a few lines of script
/// replace its body with each new snapshot the node renders
/// ([`fleet_body`]) and sends on [`FLEET_EVENTS_PATH`]. To show more, add a
/// component to [`FleetBody`]: it renders from one [`Snapshot`].
pub fn fleet_page(snapshot: Snapshot, stylesheet: Option<&str>) -> String {
    let body = fleet_body(snapshot);
    let stylesheet = stylesheet
        .map(|href| format!(r#"<link rel="stylesheet" href="{}">"#, escape(href)))
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>version-observer: fleet</title>{stylesheet}</head><body><main class="page fleet"><h1>Fleet</h1><p class="fleet-live" data-testid="fleet-live">connecting</p><div id="fleet-body">{body}</div></main><script>{FLEET_SCRIPT}</script></body></html>"#
    )
}

/// The fleet view's only script: each event on [`FLEET_EVENTS_PATH`]
/// replaces the body.
const FLEET_SCRIPT: &str = r#"(()=>{const live=document.querySelector('[data-testid=fleet-live]'),body=document.getElementById('fleet-body'),events=new EventSource('/fleet/events');events.onmessage=(e)=>{body.innerHTML=e.data;live.textContent='live'};events.onerror=()=>{live.textContent='connecting'}})()"#;

/// One snapshot of the fleet as HTML ([`FleetBody`], server only).
pub fn fleet_body(snapshot: Snapshot) -> String {
    Owner::new().with(|| view! { <FleetBody snapshot/> }.to_html())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// One snapshot of the fleet (rendered on the server only).
#[component]
pub fn FleetBody(snapshot: Snapshot) -> impl IntoView {
    let Snapshot { status, history } = snapshot;
    // The rollout: serving members by version, then retiring ones.
    let mut rollout: std::collections::BTreeMap<(bool, String), usize> = Default::default();
    let mut tabs: std::collections::BTreeMap<String, u64> = Default::default();
    for m in &status.members {
        *rollout
            .entry((!m.retiring, m.version.to_string()))
            .or_default() += 1;
        for (page, n) in &m.tabs {
            *tabs.entry(page.clone()).or_default() += n;
        }
    }
    let state = match status.state {
        ClusterState::Settled => "settled",
        ClusterState::Mixed => "mixed",
        ClusterState::Unknown => "unknown",
    };
    let retiring: Vec<_> = status.members.iter().filter(|m| m.retiring).collect();
    let summary = format!(
        "cluster {}: {} members{}, {state}; monitor {}",
        status.cluster.as_deref().unwrap_or("(single node)"),
        status.members.len(),
        match retiring.len() {
            0 => String::new(),
            n => format!(" ({n} retiring)"),
        },
        status.leader.as_deref().unwrap_or("none"),
    );
    // What a retiring member is still there for: the open pages of its
    // build across the cluster.
    let retiring = retiring
        .iter()
        .map(|m| {
            let version = m.version.to_string();
            let pages = tabs.get(&version).copied().unwrap_or(0);
            let plural = if pages == 1 { "" } else { "s" };
            (
                m.id.clone(),
                format!(
                    "{} ({version}): {pages} open page{plural} of its build",
                    m.id
                ),
            )
        })
        .collect::<Vec<_>>();
    let record = |n: &version_observer::core::protocol::SettledNotice| {
        let kind = match n.record.kind {
            version_observer::core::protocol::RecordKind::Baseline => "baseline",
            version_observer::core::protocol::RecordKind::Announcement => "announced",
        };
        format!(
            "{} ({kind}, revision {}, by {})",
            n.record.version, n.revision, n.record.leader
        )
    };
    let current = status
        .announced
        .as_ref()
        .map(record)
        .unwrap_or_else(|| "none yet".to_owned());
    let recent: Vec<String> = status.recent_records.iter().map(record).collect();
    view! {
        <p data-testid="fleet-summary">{summary}</p>
        <h2>"Rollout"</h2>
        <div class="rollout" data-testid="fleet-rollout">
            {rollout
                .into_iter()
                .rev()
                .map(|((serving, version), n)| {
                    let label = if serving {
                        format!("{version} ×{n}")
                    } else {
                        format!("{version} ×{n} retiring")
                    };
                    view! {
                        <div
                            class=if serving { "segment" } else { "segment retiring" }
                            style=format!("flex-grow: {n}")
                            data-version=version.clone()
                        >
                            {label}
                        </div>
                    }
                })
                .collect_view()}
        </div>
        <h2>"Members"</h2>
        <table class="members">
            <thead>
                <tr><th>"Node"</th><th>"Version"</th><th>"Role"</th><th>"State"</th><th>"Last heartbeat"</th><th>"Tabs"</th></tr>
            </thead>
            <tbody>
                {status
                    .members
                    .iter()
                    .map(|m| {
                        let open: u64 = m.tabs.values().sum();
                        let state = if m.retiring { "retiring" } else { "serving" };
                        view! {
                            <tr data-testid="fleet-member" data-node=m.id.clone() data-state=state>
                                <td>{m.id.clone()}</td>
                                <td>{m.version.to_string()}</td>
                                <td>{if m.leader { "monitor" } else { "member" }}</td>
                                <td>{state}</td>
                                <td>{format!("{:.1} s ago", m.last_seen_ms_ago as f64 / 1000.0)}</td>
                                <td>{open}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        <h2>"Retiring"</h2>
        <ul class="retiring" data-testid="fleet-retiring">
            {if retiring.is_empty() {
                view! { <li>"none"</li> }.into_any()
            } else {
                retiring
                    .into_iter()
                    .map(|(id, line)| view! { <li data-node=id>{line}</li> })
                    .collect_view()
                    .into_any()
            }}
        </ul>
        <h2>"Open tabs by page version"</h2>
        <ul class="tabs" data-testid="fleet-tabs">
            {if tabs.is_empty() {
                view! { <li>"none"</li> }.into_any()
            } else {
                tabs.into_iter()
                    .rev()
                    .map(|(page, n)| view! { <li data-version=page.clone()>{format!("{page}: {n}")}</li> })
                    .collect_view()
                    .into_any()
            }}
        </ul>
        <DrainChart chart=drain_chart(&history)/>
        <h2>"Record"</h2>
        <p data-testid="fleet-record">{current}</p>
        <p class="muted">"Records this node has seen, newest first:"</p>
        <ol class="recent" data-testid="fleet-recent">
            {recent.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}
        </ol>
    }
}

/// The chart's plot area, in SVG units (the picture scales to the page's
/// width).
const CHART_WIDTH: f64 = 600.0;
const CHART_HEIGHT: f64 = 140.0;
/// Room on the left for the tab counts and below for the times.
const CHART_LEFT: f64 = 40.0;
const CHART_BOTTOM: f64 = 20.0;
/// A colour per version, oldest first (then again).
const CHART_COLOURS: [&str; 6] = [
    "#a9b2c3", "#2f6fde", "#e08a2c", "#3a9d6a", "#8a5cc2", "#c2455c",
];

/// Open pages by version over a history's window, as stacked areas (the
/// oldest version at the bottom): a rollout's drain curve.
#[derive(Debug, Clone, PartialEq)]
struct Drain {
    /// One area per version that had open pages in the window.
    layers: Vec<Layer>,
    /// The most tabs open at once (the top of the scale).
    peak: u64,
    /// How far back the chart reaches, in milliseconds: the history's
    /// window, or less while the history is younger (at least a minute).
    span_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Layer {
    version: String,
    /// Its open tabs now.
    now: u64,
    /// The area's outline (SVG path data, in the plot's units).
    path: String,
    colour: &'static str,
}

/// The history's stacked areas over its window up to its latest sample
/// (or, while the history is younger than that, since its first point, at
/// least a minute): each point holds from its time to the next point's (the
/// last to the latest sample); a point before the window holds from the
/// window's start.
fn drain_chart(history: &PageHistory) -> Drain {
    let now_ms = history.until_ms();
    let points = history.points();
    let age = points
        .first()
        .map_or(0, |first| now_ms.saturating_sub(first.at_ms));
    let window = history.window_ms().min(age.max(MIN_SPAN_MS));
    let start = now_ms.saturating_sub(window);
    let peak = history.peak();
    let x = |at: u64| {
        let at = at.clamp(start, now_ms);
        (at - start) as f64 / window.max(1) as f64 * CHART_WIDTH
    };
    let y = |tabs: u64| CHART_HEIGHT - tabs as f64 / peak.max(1) as f64 * CHART_HEIGHT;
    // Each point's span on the x axis.
    let spans: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| (x(p.at_ms), x(points.get(i + 1).map_or(now_ms, |n| n.at_ms))))
        .collect();
    let versions = history.versions();
    let mut below = vec![0u64; points.len()];
    let mut layers = Vec::new();
    for (k, version) in versions.into_iter().enumerate() {
        let counts: Vec<u64> = points
            .iter()
            .map(|p| p.tabs.get(&version).copied().unwrap_or(0))
            .collect();
        let top: Vec<u64> = below.iter().zip(&counts).map(|(b, c)| b + c).collect();
        let mut path = String::new();
        // Along the top, left to right, then back along the bottom.
        for (i, (from, to)) in spans.iter().enumerate() {
            if i == 0 {
                path.push_str(&format!("M{from:.1} {:.1}", y(top[i])));
            } else {
                path.push_str(&format!("V{:.1}", y(top[i])));
            }
            path.push_str(&format!("H{to:.1}"));
        }
        for (i, (from, _)) in spans.iter().enumerate().rev() {
            path.push_str(&format!("V{:.1}H{from:.1}", y(below[i])));
        }
        path.push('Z');
        layers.push(Layer {
            now: counts.last().copied().unwrap_or(0),
            version,
            path,
            colour: CHART_COLOURS[k % CHART_COLOURS.len()],
        });
        below = top;
    }
    Drain {
        layers,
        peak,
        span_ms: window,
    }
}

/// The shortest span the chart shows: a minute.
const MIN_SPAN_MS: u64 = 60_000;

/// `90 s`, `45 min`: how long ago, on the chart's axis.
fn ago(ms: u64) -> String {
    if ms >= 2 * 60_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", ms / 1000)
    }
}

/// Open pages by version over the last hour, as a picture.
#[component]
fn DrainChart(chart: Drain) -> impl IntoView {
    let Drain {
        layers,
        peak,
        span_ms,
    } = chart;
    let description = format!(
        "Open pages by version over the last {}: {}",
        ago(span_ms),
        if layers.is_empty() {
            "none".to_owned()
        } else {
            layers
                .iter()
                .map(|l| format!("{} {} now", l.version, l.now))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let label = description.clone();
    let (w, h) = (
        CHART_LEFT + CHART_WIDTH + 8.0,
        CHART_HEIGHT + CHART_BOTTOM + 8.0,
    );
    let ticks = [
        (0.0, format!("−{}", ago(span_ms)), "start"),
        (
            CHART_WIDTH / 2.0,
            format!("−{}", ago(span_ms / 2)),
            "middle",
        ),
        (CHART_WIDTH, "now".to_owned(), "end"),
    ];
    let legend = layers
        .iter()
        .map(|l| {
            (
                l.version.clone(),
                l.colour,
                format!("{}: {} now", l.version, l.now),
            )
        })
        .collect::<Vec<_>>();
    view! {
        <h2>"Open pages by version, the last hour"</h2>
        <figure class="drain" data-testid="fleet-drain">
            <svg
                viewBox=format!("0 0 {w} {h}")
                role="img"
                aria-label=label
                xmlns="http://www.w3.org/2000/svg"
            >
                <title>{description}</title>
                <g transform=format!("translate({CHART_LEFT} 4)")>
                    <rect class="plot" width=CHART_WIDTH height=CHART_HEIGHT></rect>
                    {layers
                        .into_iter()
                        .map(|l| view! { <path d=l.path fill=l.colour data-version=l.version></path> })
                        .collect_view()}
                    <text class="axis" x="-6" y="10" text-anchor="end">{peak.to_string()}</text>
                    <text class="axis" x="-6" y=CHART_HEIGHT text-anchor="end">"0"</text>
                    {ticks
                        .into_iter()
                        .map(|(x, label, anchor)| {
                            view! {
                                <text class="axis" x=x y={CHART_HEIGHT + 16.0} text-anchor=anchor>
                                    {label}
                                </text>
                            }
                        })
                        .collect_view()}
                </g>
            </svg>
            <figcaption>
                <ul class="legend">
                    {if legend.is_empty() {
                        view! { <li>"No open pages in this window."</li> }.into_any()
                    } else {
                        legend
                            .into_iter()
                            .map(|(version, colour, text)| {
                                view! {
                                    <li data-version=version>
                                        <span class="swatch" style=format!("background: {colour}")></span>
                                        {text}
                                    </li>
                                }
                            })
                            .collect_view()
                            .into_any()
                    }}
                </ul>
            </figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::BTreeMap, time::Duration};

    fn status(members: serde_json::Value) -> ClusterStatus {
        serde_json::from_value(serde_json::json!({
            "cluster": "shop", "node_id": "n1", "connected": true, "leader": "n2",
            "this_node_leads": false, "state": "settled", "settled_version": null,
            "announced": null, "members": members, "last_round": null, "dropped_messages": 0,
        }))
        .unwrap()
    }

    fn tabs(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(v, n)| (v.to_string(), *n)).collect()
    }

    const HOUR: u64 = 3_600_000;
    /// A clock far from zero, as the Unix epoch's is.
    const NOW: u64 = 10 * HOUR;

    /// `history` sampled once more at `NOW`, unchanged.
    fn until_now(mut history: PageHistory) -> PageHistory {
        let last = history.points().last().map(|p| p.tabs.clone());
        history.record(NOW, &last.unwrap_or_default());
        history
    }

    #[test]
    fn the_page_streams_from_the_events_path_and_escapes_its_stylesheet() {
        assert!(FLEET_SCRIPT.contains(&format!("'{}'", crate::FLEET_EVENTS_PATH)));
        let snapshot = Snapshot {
            status: status(serde_json::json!([])),
            history: PageHistory::default(),
        };
        let page = fleet_page(snapshot, Some("/pkg/a.css?x=\"<"));
        assert!(page.contains(r#"href="/pkg/a.css?x=&quot;&lt;""#), "{page}");
        assert!(page.contains(r#"data-testid="fleet-summary""#), "{page}");
        assert!(page.contains("No open pages in this window."), "{page}");
    }

    #[test]
    fn one_version_all_hour_fills_the_plot() {
        let mut history = PageHistory::new(Duration::from_millis(HOUR));
        history.record(NOW - 2 * HOUR, &tabs(&[("1.0.0", 10)]));
        let chart = drain_chart(&until_now(history));
        assert_eq!(chart.peak, 10);
        assert_eq!(chart.span_ms, HOUR);
        assert_eq!(chart.layers.len(), 1);
        assert_eq!(chart.layers[0].path, "M0.0 0.0H600.0V140.0H0.0Z");
        assert_eq!(chart.layers[0].now, 10);
    }

    #[test]
    fn a_rollout_stacks_the_new_version_on_the_old_one() {
        let mut history = PageHistory::new(Duration::from_millis(HOUR));
        // An hour and a half ago 4 old tabs; a quarter of an hour ago 2
        // old, 2 new; 6 minutes ago only new ones.
        history.record(NOW - 3 * HOUR / 2, &tabs(&[("1.0.0", 4)]));
        history.record(NOW - HOUR / 4, &tabs(&[("1.0.0", 2), ("2.0.0", 2)]));
        history.record(NOW - HOUR / 10, &tabs(&[("2.0.0", 3)]));
        let chart = drain_chart(&until_now(history));
        assert_eq!(chart.peak, 4);
        assert_eq!(chart.span_ms, HOUR);
        let paths: Vec<(&str, &str, u64)> = chart
            .layers
            .iter()
            .map(|l| (l.version.as_str(), l.path.as_str(), l.now))
            .collect();
        assert_eq!(
            paths,
            [
                // At the bottom: 4 (from the window's start), then 2, then none.
                (
                    "1.0.0",
                    "M0.0 0.0H450.0V70.0H540.0V140.0H600.0V140.0H540.0V140.0H450.0V140.0H0.0Z",
                    0
                ),
                // Above it: from 2 to 4 (stacked on the old 2), then 0 to 3.
                (
                    "2.0.0",
                    "M0.0 0.0H450.0V0.0H540.0V35.0H600.0V140.0H540.0V70.0H450.0V0.0H0.0Z",
                    3
                ),
            ]
        );
    }

    #[test]
    fn a_young_history_spans_its_age_and_at_least_a_minute() {
        let mut history = PageHistory::new(Duration::from_millis(HOUR));
        history.record(NOW - 10 * 60_000, &tabs(&[("1.0.0", 2)]));
        history.record(NOW - 5 * 60_000, &tabs(&[("1.0.0", 1)]));
        let chart = drain_chart(&until_now(history));
        assert_eq!(chart.span_ms, 10 * 60_000);
        assert_eq!(
            chart.layers[0].path,
            "M0.0 0.0H300.0V70.0H600.0V140.0H300.0V140.0H0.0Z"
        );
        // Ten seconds old: the last minute, the area at its right end.
        let mut young = PageHistory::new(Duration::from_millis(HOUR));
        young.record(NOW - 10_000, &tabs(&[("1.0.0", 1)]));
        let chart = drain_chart(&until_now(young));
        assert_eq!(chart.span_ms, 60_000);
        assert_eq!(chart.layers[0].path, "M500.0 0.0H600.0V140.0H500.0Z");
        assert_eq!(
            (ago(chart.span_ms), ago(HOUR)),
            ("60 s".to_owned(), "60 min".to_owned())
        );
    }

    #[test]
    fn retiring_members_are_shown_with_the_pages_they_are_kept_for() {
        let status = status(serde_json::json!([
            {"id": "n1", "incarnation": 1, "version": "1.0.0", "last_seen_ms_ago": 200,
             "leader": false, "tabs": {"1.0.0": 1}, "retiring": true},
            {"id": "n2", "incarnation": 1, "version": "2.0.0", "last_seen_ms_ago": 0,
             "leader": true, "tabs": {"1.0.0": 2, "2.0.0": 5}, "retiring": false},
        ]));
        let mut history = PageHistory::new(Duration::from_millis(HOUR));
        history.record(NOW - HOUR / 2, &tabs(&[("1.0.0", 3), ("2.0.0", 5)]));
        let body = fleet_body(Snapshot {
            status,
            history: until_now(history),
        });
        for wanted in [
            "2 members (1 retiring), settled; monitor n2",
            r#"class="segment retiring""#,
            "1.0.0 ×1 retiring",
            r#"data-node="n1" data-state="retiring""#,
            r#"data-node="n2" data-state="serving""#,
            "n1 (1.0.0): 3 open pages of its build",
            r##"<path d="M0.0 87.5H600.0V140.0H0.0Z" fill="#a9b2c3" data-version="1.0.0">"##,
            "1.0.0 3 now, 2.0.0 5 now",
        ] {
            assert!(body.contains(wanted), "{wanted} in {body}");
        }
    }
}
