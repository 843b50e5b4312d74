//! The isomorphic UI of version-observer's reference node.
//!
//! The same components render to HTML on the server (feature `ssr`) and
//! hydrate in the browser (feature `hydrate`). Everything version-related
//! comes from the `version-observer` crate's public API: the page's version,
//! the live cluster view and the stale state from [`use_version_observer`],
//! and the banner from [`VersionBanner`].

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};
use version_observer::{use_version_observer, ClusterState, ClusterView, VersionBanner};

/// The HTML document around [`App`], rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
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

/// The root component: metadata, styles and the single route.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/version-observer.css"/>
        <Title text="version-observer"/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=StaticSegment("") view=VersionPage/>
            </Routes>
        </Router>
    }
}

/// The page a user keeps open: its own version, the live cluster view, a notes
/// field whose content survives a reload, and the banner when the page is stale.
#[component]
fn VersionPage() -> impl IntoView {
    let observer = use_version_observer();
    let (version, node) = match &observer.page {
        Some(page) => (page.version.to_string(), page.node_id.clone()),
        None => ("unknown".to_owned(), "unknown".to_owned()),
    };
    let cluster = observer.cluster;
    let connected = observer.connected;

    view! {
        <main class="page">
            <VersionBanner class="banner"/>
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

/// A scratch field standing in for the user's work: kept in `localStorage`, so
/// reloading for a new version loses nothing.
#[component]
fn Notes() -> impl IntoView {
    let text = RwSignal::new(String::new());

    #[cfg(feature = "hydrate")]
    Effect::new(move |first: Option<()>| {
        if first.is_none() {
            if let Some(saved) = notes::load() {
                text.set(saved);
            }
        }
    });

    view! {
        <label class="notes">
            "Notes (kept across reloads)"
            <textarea
                data-testid="notes"
                prop:value=move || text.get()
                on:input=move |ev| {
                    let value = event_target_value(&ev);
                    #[cfg(feature = "hydrate")]
                    notes::save(&value);
                    text.set(value);
                }
            ></textarea>
        </label>
    }
}

/// The notes' `localStorage` slot (browser only).
#[cfg(feature = "hydrate")]
mod notes {
    const KEY: &str = "version-observer.notes";

    fn storage() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok()?
    }

    /// The notes saved by an earlier page, if any.
    pub fn load() -> Option<String> {
        storage()?.get_item(KEY).ok()?
    }

    /// Saves the notes; a full or disabled storage only loses the convenience.
    pub fn save(text: &str) {
        if let Some(storage) = storage() {
            let _ = storage.set_item(KEY, text);
        }
    }
}

/// Shown for any path but `/`.
#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! { <main class="page"><h1>"Not found"</h1></main> }
}
