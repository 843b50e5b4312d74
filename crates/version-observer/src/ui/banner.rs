//! [`VersionBanner`]: "a new version is available", with a Reload button.

use super::hook::use_version_observer;
use leptos::prelude::*;

/// The default UI: a banner that appears once this page is stale, names the
/// new version, and offers a Reload button. It never reloads by itself, so
/// nothing the user is doing is lost; it announces itself politely to screen
/// readers (`role="status"`) without taking the focus.
///
/// Put it anywhere in your app (it renders nothing while the page is
/// current):
///
/// ```
/// use leptos::prelude::*;
/// use version_observer::VersionBanner;
///
/// #[component]
/// fn App() -> impl IntoView {
///     view! {
///         <VersionBanner/>
///         <main>"Your app"</main>
///     }
/// }
/// ```
///
/// Without `class` it carries a small built-in style (a sticky bar at the
/// top); with `class` it carries only your class, for your own CSS. The
/// element is `div.version-observer-banner[data-testid=version-banner]`
/// either way.
#[component]
pub fn VersionBanner(
    /// Your CSS class for the banner, instead of the built-in style.
    #[prop(optional, into)]
    class: Option<String>,
    /// The text before the version [default: "A new version, "].
    #[prop(optional, into)]
    message: Option<String>,
    /// The button's label [default: "Reload"].
    #[prop(optional, into)]
    reload_label: Option<String>,
) -> impl IntoView {
    let observer = use_version_observer();
    let styled = class.is_none();
    let class = match class {
        Some(own) => format!("version-observer-banner {own}"),
        None => "version-observer-banner".to_owned(),
    };
    let message = message.unwrap_or_else(|| "A new version, ".to_owned());
    let reload_label = reload_label.unwrap_or_else(|| "Reload".to_owned());
    let stale = observer.stale;
    move || {
        stale.get().map(|version| {
            view! {
                <div
                    class=class.clone()
                    style=styled.then_some(BANNER_STYLE)
                    role="status"
                    data-testid="version-banner"
                >
                    <span>{message.clone()} <strong>{version.to_string()}</strong> ", is available."</span>
                    <button
                        type="button"
                        style=styled.then_some(BUTTON_STYLE)
                        on:click=move |_| super::reload_page()
                    >
                        {reload_label.clone()}
                    </button>
                </div>
            }
        })
    }
}

const BANNER_STYLE: &str = "position:sticky;top:0;z-index:1000;display:flex;align-items:center;justify-content:space-between;gap:1rem;margin:0 0 1rem;padding:.75rem 1rem;border-radius:.5rem;background:#fff4d6;color:#5a4300;box-shadow:0 2px 8px rgb(0 0 0/.08);font-family:system-ui,sans-serif";
const BUTTON_STYLE: &str = "font:inherit;padding:.4rem 1rem;border:0;border-radius:.35rem;background:#1f5eff;color:#fff;cursor:pointer";
