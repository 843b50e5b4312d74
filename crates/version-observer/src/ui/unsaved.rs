//! [`use_unsaved_input`]: whether the page has input the user has not
//! saved, so nothing reloads it by itself meanwhile.
//!
//! It is detected for you: typing into an `input`, `textarea`, `select` or
//! editable element anywhere on the page marks it dirty, and submitting (or
//! resetting) a form marks it clean. Elements inside
//! `[data-version-observer-keep]` do not count: their state is kept across
//! the reload (see [`use_kept_signal`](crate::use_kept_signal)). Saving
//! without a form (a server function on a button, autosave) says so with
//! [`UnsavedInput::mark_clean`]; state the detection cannot see (a drawing
//! canvas, a drag in progress) with [`UnsavedInput::mark_dirty`].

use leptos::prelude::*;

/// What [`use_unsaved_input`] returns (one state per page).
#[derive(Clone, Copy, Debug)]
pub struct UnsavedInput {
    /// Whether the page has unsaved input.
    pub dirty: Signal<bool>,
}

impl UnsavedInput {
    /// The page has unsaved state the detection cannot see.
    pub fn mark_dirty(&self) {
        page::mark(Some(true), None);
    }

    /// Everything is saved (also what was typed into fields).
    pub fn mark_clean(&self) {
        page::mark(Some(false), Some(false));
    }
}

/// This page's unsaved-input state.
///
/// ```
/// use leptos::prelude::*;
/// use version_observer::use_unsaved_input;
///
/// #[component]
/// fn Editor() -> impl IntoView {
///     let unsaved = use_unsaved_input();
///     view! {
///         <textarea></textarea>
///         // Saved by a server function, not a form: say so.
///         <button on:click=move |_| unsaved.mark_clean()>"Save"</button>
///         <Show when=move || unsaved.dirty.get()>"Unsaved changes"</Show>
///     }
/// }
/// ```
pub fn use_unsaved_input() -> UnsavedInput {
    UnsavedInput {
        dirty: page::dirty_signal(),
    }
}

#[cfg(not(feature = "hydrate"))]
mod page {
    use super::*;

    /// On the server nothing is typed.
    pub(super) fn dirty_signal() -> Signal<bool> {
        Signal::derive(|| false)
    }

    pub(super) fn mark(_marked: Option<bool>, _typed: Option<bool>) {}
}

#[cfg(feature = "hydrate")]
pub(crate) mod page {
    use super::*;
    use std::cell::Cell;
    use wasm_bindgen::{prelude::Closure, JsCast};
    use web_sys::{Element, Event};

    /// Kept elements are marked with this attribute (on them or an ancestor).
    const KEEP: &str = "[data-version-observer-keep]";

    thread_local! {
        /// (typed into a field, marked by the app); the listeners are
        /// installed with the first use.
        static STATE: Cell<Option<(bool, bool)>> = const { Cell::new(None) };
        static CHANGED: ArcTrigger = ArcTrigger::new();
    }

    /// Whether the page has unsaved input (listening from the first call
    /// on, for the page's lifetime).
    pub(crate) fn dirty() -> bool {
        let (typed, marked) = STATE.with(|s| {
            s.get().unwrap_or_else(|| {
                install();
                (false, false)
            })
        });
        typed || marked
    }

    pub(super) fn dirty_signal() -> Signal<bool> {
        dirty();
        let changed = CHANGED.with(Clone::clone);
        Signal::derive(move || {
            changed.track();
            dirty()
        })
    }

    /// Sets what is given; tells the page (automatic reloads re-check) and
    /// the `dirty` signals.
    pub(super) fn mark(marked: Option<bool>, typed: Option<bool>) {
        dirty();
        let (t, m) = STATE.with(Cell::get).unwrap_or_default();
        let next = (typed.unwrap_or(t), marked.unwrap_or(m));
        STATE.with(|s| s.set(Some(next)));
        if next != (t, m) {
            CHANGED.with(|c| c.notify());
            crate::browser::page::poke();
        }
    }

    /// Listens on the document for the page's lifetime.
    fn install() {
        STATE.with(|s| s.set(Some((false, false))));
        let Some(document) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        let on_input = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
            if ev
                .target()
                .and_then(|t| t.dyn_into::<Element>().ok())
                .is_some_and(|el| counts(&el))
            {
                mark(None, Some(true));
            }
        });
        let on_saved = Closure::<dyn FnMut(Event)>::new(move |_| mark(None, Some(false)));
        // Capture: an app that stops propagation still has it seen.
        let _ = document.add_event_listener_with_callback_and_bool(
            "input",
            on_input.as_ref().unchecked_ref(),
            true,
        );
        for event in ["submit", "reset"] {
            let _ = document.add_event_listener_with_callback_and_bool(
                event,
                on_saved.as_ref().unchecked_ref(),
                true,
            );
        }
        // They live as long as the page.
        on_input.forget();
        on_saved.forget();
    }

    /// Whether input into `el` is unsaved work.
    fn counts(el: &Element) -> bool {
        if el.closest(KEEP).ok().flatten().is_some() {
            return false;
        }
        let editable = el
            .dyn_ref::<web_sys::HtmlElement>()
            .is_some_and(|h| h.is_content_editable());
        editable || matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
    }
}
