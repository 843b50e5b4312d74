//! [`use_kept_signal`]: state that survives the reload to a new version.

use leptos::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

/// A signal whose value is kept across reloads of this tab: saved in the
/// tab's `sessionStorage` as it changes, and restored when the page loads
/// again in the same tab (after hydrating, so server and browser render the
/// same first). Mark the elements bound to it with
/// `data-version-observer-keep` so that typing into them does not count as
/// unsaved input (see [`use_unsaved_input`](crate::use_unsaved_input)):
/// automatic reloads may go ahead, nothing is lost.
///
/// `key` names the value in the tab's storage (one per kind of state).
///
/// ```
/// use leptos::prelude::*;
/// use version_observer::use_kept_signal;
///
/// #[component]
/// fn Draft() -> impl IntoView {
///     let text = use_kept_signal("draft", String::new());
///     view! {
///         <textarea
///             data-version-observer-keep
///             prop:value=move || text.get()
///             on:input=move |ev| text.set(event_target_value(&ev))
///         ></textarea>
///     }
/// }
/// ```
pub fn use_kept_signal<T>(key: &str, initial: T) -> RwSignal<T>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let signal = RwSignal::new(initial);
    #[cfg(feature = "hydrate")]
    {
        let key = format!("version-observer.kept.{key}");
        Effect::new(move |first: Option<()>| {
            if first.is_none() {
                if let Some(saved) =
                    storage::load(&key).and_then(|text| serde_json::from_str::<T>(&text).ok())
                {
                    signal.set(saved);
                }
            }
            // Tracks the signal: saved again on every change.
            signal.with(|value| {
                if let Ok(text) = serde_json::to_string(value) {
                    storage::save(&key, &text);
                }
            });
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = key;
    signal
}

/// The tab's `sessionStorage` (browser only); a full or disabled storage
/// only loses the convenience.
#[cfg(feature = "hydrate")]
pub(crate) mod storage {
    fn session() -> Option<web_sys::Storage> {
        web_sys::window()?.session_storage().ok()?
    }

    pub(crate) fn load(key: &str) -> Option<String> {
        session()?.get_item(key).ok()?
    }

    pub(crate) fn save(key: &str, value: &str) {
        if let Some(storage) = session() {
            let _ = storage.set_item(key, value);
        }
    }
}
