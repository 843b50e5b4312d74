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
    // On both sides alike (it is shared data of the page): calling it in the
    // browser only would shift the ids of every later `SharedValue` and
    // `Resource`, and hydration would fail.
    let page = super::page_info();
    #[cfg(feature = "hydrate")]
    if let Some(page) = page {
        use crate::browser::page as state;
        use version_observer_core::paths;
        // Joins the page's state (opening its stream if nothing else has).
        let joined = send_wrapper::SendWrapper::new(state::join(
            paths::EVENTS,
            &page.version,
            std::rc::Rc::new(|| {}),
        ));
        on_cleanup(move || drop(joined.take()));
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
            let stale = || {
                state::with(paths::EVENTS, |s| s.knowledge.stale_target().is_some())
                    .unwrap_or(false)
            };
            if previous.is_some_and(|before| before != target) && stale() {
                if let Some(window) = web_sys::window() {
                    let _ = window.location().assign(&target);
                }
            }
            target
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = page;
}
