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
pub fn ReloadOnNavigation() -> impl IntoView {
    // On both sides alike (it is shared data of the page): calling it in the
    // browser only would shift the ids of every later `SharedValue` and
    // `Resource`, and hydration would fail.
    let page = super::page_info();
    #[cfg(feature = "hydrate")]
    if let Some(page) = page {
        browser::start(&page.version);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = page;
}

#[cfg(feature = "hydrate")]
mod browser {
    use crate::browser::page;
    use leptos::prelude::*;
    use std::{cell::RefCell, rc::Rc};
    use version_observer_core::{paths, Version};
    use wasm_bindgen::{prelude::Closure, JsCast, JsValue};

    /// What is in place while the page is stale: the page's own
    /// `pushState`, to put back, and the listeners.
    struct Installed {
        history: JsValue,
        push_state: JsValue,
        _push: Closure<dyn FnMut(JsValue, JsValue, JsValue) -> JsValue>,
        on_pop: WindowListenerHandle,
    }

    /// For as long as the calling component lives.
    pub(super) fn start(version: &Version) {
        let installed: Rc<RefCell<Option<Installed>>> = Rc::default();
        let i = installed.clone();
        let joined = page::join(
            paths::EVENTS,
            version,
            Rc::new(move || {
                let stale = page::with(paths::EVENTS, |s| s.knowledge.stale_target().is_some())
                    .unwrap_or(false);
                if stale && i.borrow().is_none() {
                    *i.borrow_mut() = install();
                }
            }),
        );
        let held = send_wrapper::SendWrapper::new((installed, joined));
        on_cleanup(move || {
            let (installed, joined) = held.take();
            drop(joined);
            if let Some(installed) = installed.take() {
                let _ = js_sys::Reflect::set(
                    &installed.history,
                    &"pushState".into(),
                    &installed.push_state,
                );
                installed.on_pop.remove();
            }
        });
    }

    /// A navigation to a new address loads it in full; back and forward
    /// reload the address they reached.
    fn install() -> Option<Installed> {
        let history = js_sys::Reflect::get(&window(), &"history".into()).ok()?;
        let push_state = js_sys::Reflect::get(&history, &"pushState".into()).ok()?;
        let original = push_state.clone().dyn_into::<js_sys::Function>().ok()?;
        let h = history.clone();
        let push = Closure::<dyn FnMut(JsValue, JsValue, JsValue) -> JsValue>::new(
            move |state: JsValue, title: JsValue, url: JsValue| match url.as_string() {
                Some(url) => {
                    let _ = window().location().assign(&url);
                    JsValue::UNDEFINED
                }
                None => original
                    .call3(&h, &state, &title, &url)
                    .unwrap_or(JsValue::UNDEFINED),
            },
        );
        js_sys::Reflect::set(&history, &"pushState".into(), push.as_ref()).ok()?;
        let on_pop = window_event_listener_untyped("popstate", |_| {
            let _ = window().location().reload();
        });
        Some(Installed {
            history,
            push_state,
            _push: push,
            on_pop,
        })
    }
}
