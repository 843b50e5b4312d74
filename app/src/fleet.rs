//! The operators' fleet view, rendered on the server (feature `ssr`) for
//! the node's admin listener ([`FLEET_PATH`](crate::FLEET_PATH)): it
//! carries no wasm, so the page every user loads carries none of its code.
//! Each snapshot of the cluster renders [`FleetBody`] to HTML; a few lines
//! of script in the page replace its body with every new one. To show
//! more, add a component to [`FleetBody`]: it renders from one
//! [`ClusterStatus`].

#[cfg(doc)]
use crate::FLEET_EVENTS_PATH;
use leptos::prelude::*;
use version_observer::{ClusterState, ClusterStatus};

/// The fleet view's document (server only), for the node's admin listener:
/// what an operator keeps open during a deploy, every member with its
/// version, role and last heartbeat, the rollout as a bar, open tabs per
/// page version across the cluster, and the records, live.
///
/// It is rendered on the server and carries no wasm: a few lines of script
/// replace its body with each new snapshot the node renders
/// ([`fleet_body`]) and sends on [`FLEET_EVENTS_PATH`]. To show more, add a
/// component to [`FleetBody`]: it renders from one [`ClusterStatus`].
pub fn fleet_page(status: ClusterStatus, stylesheet: Option<&str>) -> String {
    let body = fleet_body(status);
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
pub fn fleet_body(status: ClusterStatus) -> String {
    Owner::new().with(|| view! { <FleetBody status/> }.to_html())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// One snapshot of the fleet (rendered on the server only).
#[component]
pub fn FleetBody(status: ClusterStatus) -> impl IntoView {
    let mut versions: std::collections::BTreeMap<String, usize> = Default::default();
    let mut tabs: std::collections::BTreeMap<String, u64> = Default::default();
    for m in &status.members {
        *versions.entry(m.version.to_string()).or_default() += 1;
        for (page, n) in &m.tabs {
            *tabs.entry(page.clone()).or_default() += n;
        }
    }
    let state = match status.state {
        ClusterState::Settled => "settled",
        ClusterState::Mixed => "mixed",
        ClusterState::Unknown => "unknown",
    };
    let summary = format!(
        "cluster {}: {} members, {state}; monitor {}",
        status.cluster.as_deref().unwrap_or("(single node)"),
        status.members.len(),
        status.leader.as_deref().unwrap_or("none"),
    );
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
            {versions
                .into_iter()
                .rev()
                .map(|(version, n)| {
                    view! {
                        <div class="segment" style=format!("flex-grow: {n}") data-version=version.clone()>
                            {format!("{version} ×{n}")}
                        </div>
                    }
                })
                .collect_view()}
        </div>
        <h2>"Members"</h2>
        <table class="members">
            <thead>
                <tr><th>"Node"</th><th>"Version"</th><th>"Role"</th><th>"Last heartbeat"</th><th>"Tabs"</th></tr>
            </thead>
            <tbody>
                {status
                    .members
                    .iter()
                    .map(|m| {
                        let open: u64 = m.tabs.values().sum();
                        view! {
                            <tr data-testid="fleet-member" data-node=m.id.clone()>
                                <td>{m.id.clone()}</td>
                                <td>{m.version.to_string()}</td>
                                <td>{if m.leader { "monitor" } else { "member" }}</td>
                                <td>{format!("{:.1} s ago", m.last_seen_ms_ago as f64 / 1000.0)}</td>
                                <td>{open}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
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
        <h2>"Record"</h2>
        <p data-testid="fleet-record">{current}</p>
        <p class="muted">"Records this node has seen, newest first:"</p>
        <ol class="recent" data-testid="fleet-recent">
            {recent.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}
        </ol>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_streams_from_the_events_path_and_escapes_its_stylesheet() {
        assert!(FLEET_SCRIPT.contains(&format!("'{}'", crate::FLEET_EVENTS_PATH)));
        let status: ClusterStatus = serde_json::from_value(serde_json::json!({
            "cluster": null, "node_id": "n1", "connected": false, "leader": null,
            "this_node_leads": true, "state": "settled", "settled_version": null,
            "announced": null, "members": [], "last_round": null, "dropped_messages": 0,
        }))
        .unwrap();
        let page = fleet_page(status, Some("/pkg/a.css?x=\"<"));
        assert!(page.contains(r#"href="/pkg/a.css?x=&quot;&lt;""#), "{page}");
        assert!(page.contains(r#"data-testid="fleet-summary""#), "{page}");
    }
}
