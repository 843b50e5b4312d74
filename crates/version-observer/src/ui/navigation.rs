//! [`ReloadOnNavigation`]: the `on-navigation` reload strategy.

use leptos::prelude::*;

/// Once this page is stale, the next client-side navigation (a router link,
/// `navigate`, back or forward) becomes a full page load of its target, so
/// the user lands on the new version with no prompt, at a moment they chose
/// to leave the page they were on. It renders nothing; put it anywhere (it
/// needs no router of its own: it turns the page's `history.pushState`
/// into a full load, and back or forward into a reload of the address they
/// reached), next to [`VersionBanner`](crate::VersionBanner) if the prompt
/// should show as well.
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
pub fn ReloadOnNavigation(
    /// The hook's options (the events URL of routes under a prefix)
    /// [default: those in context, see [`UseVersionObserverOptions`](crate::UseVersionObserverOptions)].
    #[prop(optional)]
    options: Option<crate::UseVersionObserverOptions>,
) -> impl IntoView {
    // On both sides alike (it is shared data of the page): calling it in the
    // browser only would shift the ids of every later `SharedValue` and
    // `Resource`, and hydration would fail.
    let page = super::page(options);
    #[cfg(feature = "hydrate")]
    if let Some(info) = &page.info {
        browser::start(&page.options, &info.version);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = page;
}

#[cfg(feature = "hydrate")]
mod browser {
    use crate::browser::page;
    use leptos::prelude::*;
    use std::rc::Rc;
    use version_observer_core::Version;
    use wasm_bindgen::{prelude::Closure, JsCast, JsValue};

    /// For as long as the calling component lives: once the page is
    /// stale, `pushState` (which routers call to navigate) loads its
    /// target in full, and back or forward (`popstate`) reloads the address
    /// they reached. One closure does both.
    pub(super) fn start(options: &crate::UseVersionObserverOptions, version: &Version) {
        // Joins the page's state (opening its stream if nothing else has).
        let joined = page::join(options, version, Rc::new(|| {}));
        let history = js_sys::Reflect::get(&window(), &"history".into()).unwrap_or_default();
        let original = js_sys::Reflect::get(&history, &"pushState".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        let (h, o) = (history.clone(), original.clone());
        let hook = Closure::<dyn FnMut(JsValue, JsValue, JsValue) -> JsValue>::new(
            move |state: JsValue, title: JsValue, url: JsValue| {
                let stale = page::with(|s| s.knowledge.stale_target().is_some()).unwrap_or(false);
                let location = window().location();
                if state.is_instance_of::<web_sys::PopStateEvent>() {
                    if stale {
                        let _ = location.reload();
                    }
                    return JsValue::UNDEFINED;
                }
                match (url.as_string(), &o) {
                    (Some(url), _) if stale => {
                        let _ = location.assign(&url);
                        JsValue::UNDEFINED
                    }
                    (_, Some(o)) => o.call3(&h, &state, &title, &url).unwrap_or_default(),
                    _ => JsValue::UNDEFINED,
                }
            },
        );
        let listener = hook.as_ref().unchecked_ref::<js_sys::Function>();
        if original.is_some() {
            let _ = js_sys::Reflect::set(&history, &"pushState".into(), listener);
        }
        let _ = window().add_event_listener_with_callback("popstate", listener);
        let held = send_wrapper::SendWrapper::new((joined, history, original, hook));
        on_cleanup(move || {
            let (joined, history, original, hook) = held.take();
            drop(joined);
            let _ = window()
                .remove_event_listener_with_callback("popstate", hook.as_ref().unchecked_ref());
            if let Some(original) = original {
                let _ = js_sys::Reflect::set(&history, &"pushState".into(), &original);
            }
        });
    }
}
