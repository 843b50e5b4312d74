//! The browser entry point: cargo-leptos builds this crate to wasm and the page's
//! hydration script calls [`hydrate`] once the server-rendered HTML is in place.

/// Attaches the interactive UI to the server-rendered `<body>`.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
