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
    use_kept_signal, use_version_observer, AutomaticReload, BannerTexts, ClusterState, ClusterView,
    ReloadOnNavigation, ReloadStrategy, VersionBanner,
};

/// The fleet view's path. The node serves it on its admin listener only.
pub const FLEET_PATH: &str = "/fleet";

/// Where the fleet view's snapshots stream (an event of
/// [`fleet::fleet_body`]'s HTML each half second), beside [`FLEET_PATH`] on
/// the admin listener.
pub const FLEET_EVENTS_PATH: &str = "/fleet/events";

#[cfg(feature = "ssr")]
pub mod fleet;

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

/// The root component: metadata, styles and the page users keep open
/// (`/`). The operators' fleet view ([`FLEET_PATH`]) is not one of its
/// routes: the node renders it on its admin listener ([`fleet_page`]), so
/// the page every user loads carries none of its code.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Title text="version-observer"/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=StaticSegment("") view=VersionPage/>
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
            <VersionBanner class="banner" texts=texts.unwrap_or_default()/>
            <AutomaticReload strategy/>
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

/// Shown for any other path.
#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! { <main class="page"><h1>"Not found"</h1></main> }
}
