//! The browser glue of the automatic reloads: it feeds what the page sees
//! (stale target, severity, `document.hidden`, unsaved input, the time) into
//! the core's [`AutoReload`](version_observer_core::reload::AutoReload) and
//! does what it says. The rules live there; this is I/O only.

use leptos::prelude::*;
use version_observer_core::{
    reload::{Action, Held, ReloadStrategy},
    Version,
};

/// What the banner shows, and its Cancel.
#[derive(Clone, Copy)]
pub(super) struct Auto {
    pub action: Signal<Action>,
    pub held: Signal<Held>,
    cancel: StoredValue<Option<Callback<()>>>,
}

impl Auto {
    pub fn cancel(&self) {
        if let Some(cancel) = self.cancel.get_value() {
            cancel.run(());
        }
    }
}

/// Drives the strategy for as long as the calling component lives.
pub(super) fn use_auto_reload(
    strategy: ReloadStrategy,
    stale: Signal<Option<Version>>,
    required: Signal<bool>,
) -> Auto {
    imp::use_auto_reload(strategy, stale, required)
}

#[cfg(not(feature = "hydrate"))]
mod imp {
    use super::*;

    /// On the server: the banner follows `stale`, nothing automatic.
    pub(super) fn use_auto_reload(
        _strategy: ReloadStrategy,
        stale: Signal<Option<Version>>,
        _required: Signal<bool>,
    ) -> Auto {
        Auto {
            action: Signal::derive(move || match stale.get() {
                Some(_) => Action::Prompt,
                None => Action::Current,
            }),
            held: Signal::stored(Held::No),
            cancel: StoredValue::new(None),
        }
    }
}

#[cfg(feature = "hydrate")]
mod imp {
    use super::*;
    use crate::ui::{kept::storage, unsaved::use_unsaved_input};
    use std::time::Duration;
    use version_observer_core::reload::{AutoReload, LoopGuard, PageState};

    /// Where the loop guard is kept (the tab's `sessionStorage`).
    const GUARD_KEY: &str = "version-observer.reloads";

    pub(super) fn use_auto_reload(
        strategy: ReloadStrategy,
        stale: Signal<Option<Version>>,
        required: Signal<bool>,
    ) -> Auto {
        let auto = StoredValue::new_local(AutoReload::new(strategy));
        let timer = StoredValue::new_local(None::<TimeoutHandle>);
        let reloading = StoredValue::new_local(false);
        let action = RwSignal::new(Action::Current);
        let held = RwSignal::new(Held::No);
        // Bumped by the countdown's timer and by Cancel: poll again.
        let tick = RwSignal::new(0u32);
        let hidden = hidden_signal();
        let dirty = use_unsaved_input().dirty;

        Effect::new(move |_| {
            tick.track();
            let target = stale.get();
            let page = PageState {
                target: target.as_ref(),
                required: required.get(),
                hidden: hidden.get(),
                dirty: dirty.get(),
            };
            if reloading.get_value() {
                return;
            }
            let mut guard = storage::load(GUARD_KEY)
                .map(|text| LoopGuard::from_text(&text))
                .unwrap_or_default();
            let now = js_sys::Date::now();
            let next = auto.try_update_value(|a| a.poll(&page, &guard, now));
            let Some(next) = next else { return };
            held.set(auto.with_value(|a| a.held()));
            if let Some(handle) = timer.try_update_value(Option::take).flatten() {
                handle.clear();
            }
            match &next {
                Action::Reload => {
                    if let Some(target) = &target {
                        guard.record(target, now);
                        storage::save(GUARD_KEY, &guard.to_text());
                    }
                    reloading.set_value(true);
                    super::super::reload_page();
                }
                Action::Countdown { remaining_ms } => {
                    // Wake at the next whole second shown, or the deadline.
                    let wait = remaining_ms % 1000.0;
                    let wait = if wait < 1.0 { 1000.0 } else { wait };
                    let wait = Duration::from_millis(wait.min(*remaining_ms).max(1.0) as u64);
                    let handle = set_timeout_with_handle(move || tick.update(|t| *t += 1), wait);
                    timer.set_value(handle.ok());
                }
                Action::Current | Action::Prompt => {}
            }
            action.set(next);
        });
        on_cleanup(move || {
            if let Some(handle) = timer.try_update_value(Option::take).flatten() {
                handle.clear();
            }
        });
        let cancel = Callback::new(move |()| {
            auto.update_value(|a| a.cancel());
            tick.update(|t| *t += 1);
        });
        Auto {
            action: action.into(),
            held: held.into(),
            cancel: StoredValue::new(Some(cancel)),
        }
    }

    /// `document.hidden`, live.
    fn hidden_signal() -> Signal<bool> {
        let is_hidden = || {
            web_sys::window()
                .and_then(|w| w.document())
                .is_some_and(|d| d.hidden())
        };
        let hidden = RwSignal::new(is_hidden());
        // `visibilitychange` is fired at the document and bubbles to the window.
        let handle =
            window_event_listener_untyped("visibilitychange", move |_| hidden.set(is_hidden()));
        on_cleanup(move || handle.remove());
        hidden.into()
    }
}
