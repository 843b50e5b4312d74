//! The browser half of the request guard: every request the page makes to
//! its own origin through `fetch` (Leptos server functions included, with no
//! per-function code) carries the page's version in the
//! `x-version-observer-page` header, and a `409` answer with a
//! [`StaleClient`] body is reported at once, so the page turns stale before
//! its stream has said anything. `window.fetch` is wrapped once per page;
//! cross-origin requests are left exactly as they were (no header, no CORS
//! preflight).

use std::cell::Cell;
use version_observer_core::{
    skew::{StaleClient, PAGE_VERSION_HEADER, STATUS},
    Version,
};
use wasm_bindgen::{prelude::Closure, JsCast, JsValue};

thread_local! {
    /// Whether `window.fetch` is wrapped already.
    static WRAPPED: Cell<bool> = const { Cell::new(false) };
}

/// Wraps `window.fetch` (once per page) to name `page` on same-origin
/// requests, and calls `on_refused` with every refusal.
pub fn install(page: &Version, on_refused: fn(StaleClient)) {
    if !WRAPPED.with(|w| w.replace(true)) {
        wrap_fetch(page.to_string(), on_refused);
    }
}

fn wrap_fetch(page: String, on_refused: fn(StaleClient)) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Ok(original) = js_sys::Reflect::get(&window, &"fetch".into())
        .and_then(|f| f.dyn_into::<js_sys::Function>().map_err(JsValue::from))
    else {
        return;
    };
    let Ok(request_class) = js_sys::Reflect::get(&window, &"Request".into())
        .and_then(|f| f.dyn_into::<js_sys::Function>().map_err(JsValue::from))
    else {
        return;
    };
    // A same-origin request's absolute URL starts with this.
    let origin = window.location().origin().unwrap_or_default() + "/";
    // Reads a 409's body (from a clone: the caller still gets the whole
    // response) and reports it if it is the guard's.
    let on_response = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |response: JsValue| {
        if let Some(r) = response.dyn_ref::<web_sys::Response>() {
            if r.status() == STATUS {
                if let Ok(text) = r.clone().and_then(|c| c.text()) {
                    let read = Closure::<dyn FnMut(JsValue)>::new(move |body: JsValue| {
                        if let Some(answer) =
                            body.as_string().and_then(|t| super::json::stale_client(&t))
                        {
                            on_refused(answer);
                        }
                    });
                    let _ = text.then(&read);
                    read.forget();
                }
            }
        }
        response
    });
    let this = window.clone();
    let wrapper = Closure::<dyn FnMut(JsValue, JsValue) -> JsValue>::new(
        move |input: JsValue, init: JsValue| -> JsValue {
            let window = &this;
            let args = js_sys::Array::of2(&input, &init);
            // Anything we cannot read is passed on exactly as given.
            let Ok(request) = js_sys::Reflect::construct(&request_class, &args)
                .map(|r| r.unchecked_into::<web_sys::Request>())
            else {
                return original
                    .call2(window, &input, &init)
                    .unwrap_or(JsValue::UNDEFINED);
            };
            if !request.url().starts_with(&origin) {
                return original
                    .call2(window, &input, &init)
                    .unwrap_or(JsValue::UNDEFINED);
            }
            let _ = request.headers().set(PAGE_VERSION_HEADER, &page);
            match original.call1(window, &request) {
                // `promise.then(on_response)`, which passes the response on.
                Ok(promise) => js_sys::Reflect::get(&promise, &"then".into())
                    .and_then(|t| t.dyn_into::<js_sys::Function>().map_err(JsValue::from))
                    .and_then(|then| then.call1(&promise, on_response.as_ref()))
                    .unwrap_or(promise),
                Err(error) => js_sys::Promise::reject(&error).into(),
            }
        },
    );
    let _ = js_sys::Reflect::set(&window, &"fetch".into(), wrapper.as_ref());
    // They live as long as the page.
    wrapper.forget();
}
