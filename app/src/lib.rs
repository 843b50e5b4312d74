//! The isomorphic UI of version-observer's reference node.
//!
//! The same components render to HTML on the server (feature `ssr`) and
//! hydrate in the browser (feature `hydrate`). Everything version-related
//! comes from the `version-observer` crate's public API: the page's version,
//! the live cluster view and the stale state from [`use_version_observer`],
//! and the banner from [`VersionBanner`].

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};
use version_observer::{
    use_kept_signal, use_version_observer, BannerTexts, ClusterState, ClusterStatus, ClusterView,
    ReloadOnNavigation, ReloadStrategy, VersionBanner,
};

/// The fleet view's path. The node serves it on its admin listener only.
pub const FLEET_PATH: &str = "/fleet";

/// The HTML document around [`App`], rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // The build's own, content-hashed stylesheet: a page never
                // gets another version's CSS in a rolling deploy.
                <HashedStylesheet options=options.clone() id="leptos"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The root component: metadata, styles and the routes: the page users keep
/// open (`/`), and the operators' fleet view ([`FLEET_PATH`]).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Title text="version-observer"/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=StaticSegment("") view=VersionPage/>
                <Route path=StaticSegment("fleet") view=FleetPage/>
            </Routes>
        </Router>
    }
}

/// The reload strategy and texts a page asks for in its query, so the lab,
/// the demo and the browser tests can try each one on the same build:
/// `?reload=when-hidden,immediate,immediate-required&countdown=<seconds>`,
/// `&lang=de` for the German texts. Without them: the default, `prompt`.
fn strategy_from_query(reload: Option<String>, countdown: Option<String>) -> ReloadStrategy {
    let countdown = countdown.and_then(|s| s.parse::<u64>().ok()).map_or(
        ReloadStrategy::DEFAULT_COUNTDOWN,
        std::time::Duration::from_secs,
    );
    let mut strategy = ReloadStrategy::prompt();
    for name in reload.as_deref().unwrap_or("").split(',') {
        strategy = match name.trim() {
            "when-hidden" => strategy.when_hidden(),
            "immediate" => strategy.immediate(countdown),
            "immediate-required" => strategy.immediate_when_required(countdown),
            _ => strategy,
        };
    }
    strategy
}

/// The banner's texts in German: every text is replaceable.
fn german() -> BannerTexts {
    BannerTexts {
        message: "Eine neue Version, ".into(),
        available: ", ist verfügbar.".into(),
        required: ", ist erforderlich.".into(),
        reload: "Neu laden".into(),
        release_notes: "Was ist neu".into(),
        countdown: "Neu laden in {seconds} s.".into(),
        cancel: "Abbrechen".into(),
        unsaved: "Bitte zuerst speichern, dann neu laden.".into(),
        reload_failed: "Die neue Version ist noch nicht erreichbar; gleich noch einmal versuchen."
            .into(),
    }
}

/// The page a user keeps open: its own version, the live cluster view, a
/// notes field whose content survives a reload, a draft form whose unsaved
/// input holds automatic reloads back, and the banner when the page is
/// stale. Router navigations of a stale page load the new version.
#[component]
fn VersionPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let (strategy, texts) = query.with_untracked(|q| {
        (
            strategy_from_query(q.get("reload"), q.get("countdown")),
            (q.get("lang").as_deref() == Some("de")).then(german),
        )
    });
    let observer = use_version_observer();
    let (version, node) = match &observer.page {
        Some(page) => (page.version.to_string(), page.node_id.clone()),
        None => ("unknown".to_owned(), "unknown".to_owned()),
    };
    let cluster = observer.cluster;
    let connected = observer.connected;

    view! {
        <main class="page">
            <VersionBanner class="banner" strategy texts=texts.unwrap_or_default()/>
            <ReloadOnNavigation/>
            <h1>"version-observer"</h1>
            <dl class="facts">
                <dt>"This page"</dt>
                <dd data-testid="page-version">{version}</dd>
                <dt>"Rendered by"</dt>
                <dd data-testid="page-node">{node}</dd>
                <dt>"Cluster"</dt>
                <dd data-testid="cluster-state">{move || cluster_summary(cluster.get().as_ref())}</dd>
                <dt>"Live updates"</dt>
                <dd data-testid="stream-status">
                    {move || if connected.get() { "connected" } else { "connecting" }}
                </dd>
            </dl>
            <Notes/>
            <Draft/>
            <p><a href="/?again" data-testid="internal-link">"This page, by the router"</a></p>
        </main>
    }
}

/// One line describing the cluster as the page knows it.
fn cluster_summary(view: Option<&ClusterView>) -> String {
    let Some(c) = view else {
        return "waiting for the node".into();
    };
    let settled = match (c.state, &c.settled_version) {
        (ClusterState::Settled, Some(v)) => format!("settled on {v}"),
        (ClusterState::Mixed, _) => "mixed versions (deploy in progress)".into(),
        _ => "state unknown".into(),
    };
    match &c.announced_version {
        Some(a) => format!("{settled}; announced {a}; policy {}", c.compat),
        None => format!("{settled}; nothing announced yet; policy {}", c.compat),
    }
}

/// A scratch field standing in for the user's work, kept across reloads of
/// the tab ([`use_kept_signal`]): reloading for a new version loses nothing,
/// so typing here does not hold automatic reloads back.
#[component]
fn Notes() -> impl IntoView {
    let text = use_kept_signal("notes", String::new());
    view! {
        <label class="notes">
            "Notes (kept across reloads)"
            <textarea
                data-testid="notes"
                data-version-observer-keep
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            ></textarea>
        </label>
    }
}

/// A message form that is not kept: while it holds unsent input, the page
/// does not reload by itself; sending it (the form's submit) clears that.
#[component]
fn Draft() -> impl IntoView {
    let sent = RwSignal::new(0u32);
    view! {
        <form
            class="draft"
            data-testid="draft-form"
            on:submit=move |ev| {
                ev.prevent_default();
                sent.update(|n| *n += 1);
            }
        >
            <label>
                "Message (not kept)"
                <input type="text" data-testid="draft" name="draft"/>
            </label>
            <button type="submit">"Send"</button>
            <span data-testid="draft-sent">{move || format!("sent {}", sent.get())}</span>
        </form>
    }
}

/// What an operator keeps open during a deploy: every member with its
/// version, role and last heartbeat, the rollout as a bar, open tabs per
/// page version across the cluster, and the records, live from the node's
/// `/api/fleet/events`.
#[component]
fn FleetPage() -> impl IntoView {
    let status = RwSignal::new(None::<ClusterStatus>);
    let live = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    fleet_stream::connect(status, live);

    view! {
        <Title text="version-observer: fleet"/>
        <main class="page fleet">
            <h1>"Fleet"</h1>
            <p class="fleet-live" data-testid="fleet-live">
                {move || if live.get() { "live" } else { "connecting" }}
            </p>
            {move || status.get().map(|s| view! { <FleetBody status=s/> })}
        </main>
    }
}

/// One snapshot of the fleet.
#[component]
fn FleetBody(status: ClusterStatus) -> impl IntoView {
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

/// The fleet view's event stream (browser only).
#[cfg(feature = "hydrate")]
mod fleet_stream {
    use leptos::prelude::*;
    use version_observer::{core::paths, ClusterStatus};
    use wasm_bindgen::{closure::Closure, JsCast};

    /// Opens `/api/fleet/events`; closed when the page's owner is cleaned up.
    pub fn connect(status: RwSignal<Option<ClusterStatus>>, live: RwSignal<bool>) {
        let Ok(source) = web_sys::EventSource::new(paths::FLEET_EVENTS) else {
            return;
        };
        let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
            move |event: web_sys::MessageEvent| {
                let parsed = event
                    .data()
                    .as_string()
                    .and_then(|text| serde_json::from_str::<ClusterStatus>(&text).ok());
                if let Some(next) = parsed {
                    status.set(Some(next));
                    live.set(true);
                }
            },
        );
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| live.set(false));
        source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let held = send_wrapper::SendWrapper::new((source, on_message, on_error));
        on_cleanup(move || held.0.close());
    }
}

/// Shown for any other path.
#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! { <main class="page"><h1>"Not found"</h1></main> }
}
