//! The isomorphic UI of version-observer.
//!
//! The same components render to HTML on the server (feature `ssr`) and hydrate
//! in the browser (feature `hydrate`). The page holds two pieces of state: its
//! own version, fixed when the server rendered it, and the node's latest
//! [`VersionReport`], pushed over Server-Sent Events. [`banner::stale_page_target`]
//! turns the two into the "new version, reload" banner.

pub use version_observer_core::{banner, compat};
/// The version signal's wire types.
pub mod signal {
    pub use version_observer_core::report::*;
}
#[cfg(feature = "hydrate")]
mod stream;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};
use semver::Version;
use serde::{Deserialize, Serialize};
use signal::{ClusterState, VersionReport};

/// Where the browser subscribes to the version signal.
pub const EVENTS_PATH: &str = "/api/version/events";

/// What the server knows when it renders a page: the node and its version.
/// The server provides it as context; during hydration the browser reads the
/// serialized copy, so both sides render the same version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    pub node_id: String,
    pub version: Version,
}

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
    let page = SharedValue::new(|| {
        use_context::<PageInfo>().unwrap_or_else(|| PageInfo {
            node_id: "unknown".into(),
            version: Version::new(0, 0, 0),
        })
    })
    .into_inner();
    let report = RwSignal::new(None::<VersionReport>);
    let live = RwSignal::new(false);

    #[cfg(feature = "hydrate")]
    {
        let stream = stream::VersionStream::connect(
            EVENTS_PATH,
            move |next| report.set(Some(next)),
            move |open| live.set(open),
        );
        let stream = send_wrapper::SendWrapper::new(stream);
        on_cleanup(move || drop(stream));
    }

    let page_version = page.version.clone();
    let stale_target = Memo::new(move |_| {
        report.with(|r| {
            r.as_ref()
                .and_then(|r| banner::stale_page_target(&page_version, &r.cluster).cloned())
        })
    });

    view! {
        <main class="page">
            <UpdateBanner target=stale_target/>
            <h1>"version-observer"</h1>
            <dl class="facts">
                <dt>"This page"</dt>
                <dd data-testid="page-version">{page.version.to_string()}</dd>
                <dt>"Rendered by"</dt>
                <dd data-testid="page-node">{page.node_id.clone()}</dd>
                <dt>"Cluster"</dt>
                <dd data-testid="cluster-state">{move || cluster_summary(report.get().as_ref())}</dd>
                <dt>"Live updates"</dt>
                <dd data-testid="stream-status">
                    {move || if live.get() { "connected" } else { "connecting" }}
                </dd>
            </dl>
            <Notes/>
        </main>
    }
}

/// One line describing the node's cluster view.
fn cluster_summary(report: Option<&VersionReport>) -> String {
    let Some(report) = report else {
        return "waiting for the node".into();
    };
    let c = &report.cluster;
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

/// The "new version, reload" banner. It never reloads by itself: the user
/// decides when, so nothing they are doing is lost.
#[component]
fn UpdateBanner(target: Memo<Option<Version>>) -> impl IntoView {
    move || {
        target.get().map(|version| {
            view! {
                <div class="banner" role="alert">
                    <span>"A new version, " <strong>{version.to_string()}</strong> ", is available."</span>
                    <button type="button" on:click=move |_| reload_page()>"Reload"</button>
                </div>
            }
        })
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
            if let Some(saved) = stream::load_note() {
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
                    stream::save_note(&value);
                    text.set(value);
                }
            ></textarea>
        </label>
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

fn reload_page() {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}
