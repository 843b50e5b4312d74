//! [`ReloadOnNavigation`]: the `on-navigation` reload strategy.

use leptos::prelude::*;

/// Once this page is stale, the next client-side navigation (a router link,
/// `navigate`, back or forward) becomes a full page load of its target, so
/// the user lands on the new version with no prompt, at a moment they chose
/// to leave the page they were on. It renders nothing; put it inside your
/// `<Router>` (it reads the router's location), next to
/// [`VersionBanner`](crate::VersionBanner) if the prompt should show as well.
///
/// ```
/// use leptos::prelude::*;
/// use leptos_router::components::Router;
/// use version_observer::{ReloadOnNavigation, VersionBanner};
///
/// #[component]
/// fn App() -> impl IntoView {
///     view! {
///         <Router>
///             <VersionBanner/>
///             <ReloadOnNavigation/>
///             <main>"Your routes"</main>
///         </Router>
///     }
/// }
/// ```
#[component]
pub fn ReloadOnNavigation() -> impl IntoView {
    // On both sides, before anything else: the hook reads the page's
    // version through a `SharedValue`, whose id is its place in the order
    // of everything the page shares from server to browser. Called in the
    // browser only, it would shift every later resource's id, and the
    // page would fail to hydrate.
    let stale = super::use_version_observer().stale;
    #[cfg(not(feature = "hydrate"))]
    let _ = stale;
    #[cfg(feature = "hydrate")]
    {
        let location = leptos_router::hooks::use_location();
        Effect::new(move |previous: Option<String>| {
            let target = format!(
                "{}{}{}",
                location.pathname.get(),
                location.search.get(),
                location.hash.get()
            );
            // A full load of the target (the router may not have updated
            // the address bar yet, so this names it rather than reloading).
            if previous.is_some_and(|before| before != target) && stale.get_untracked().is_some() {
                if let Some(window) = web_sys::window() {
                    let _ = window.location().assign(&target);
                }
            }
            target
        });
    }
}
