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
///
/// One signal for the action and the hold, and handles rather than more
/// signals: every distinct signal type costs the page its own copy of the
/// reactive code.
#[derive(Clone, Copy)]
pub(super) struct Auto {
    /// What to do now, and why an automatic reload is held.
    pub state: Signal<(Action, Held)>,
    cancel: Callback<()>,
}

impl Auto {
    pub fn cancel(&self) {
        self.cancel.run(());
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
            state: Signal::derive(move || {
                let action = if stale.with(Option::is_some) {
                    Action::Prompt
                } else {
                    Action::Current
                };
                (action, Held::No)
            }),
            cancel: Callback::new(|()| {}),
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

    /// The page's automatic-reload state, and what the glue holds for it.
    struct Driver {
        auto: AutoReload,
        /// The countdown's next wake-up.
        timer: Option<TimeoutHandle>,
        /// Set once a reload has started: nothing more to do.
        reloading: bool,
    }

    impl Driver {
        /// Polls the strategy and does what it says; `None` once reloading.
        /// `tick` is notified when the countdown shows its next second.
        fn step(&mut self, page: &PageState<'_>, tick: Trigger) -> Option<(Action, Held)> {
            if self.reloading {
                return None;
            }
            let mut guard = storage::load(GUARD_KEY)
                .map(|text| LoopGuard::from_text(&text))
                .unwrap_or_default();
            let now = js_sys::Date::now();
            let next = self.auto.poll(page, &guard, now);
            if let Some(handle) = self.timer.take() {
                handle.clear();
            }
            match &next {
                Action::Reload => {
                    if let Some(target) = page.target {
                        guard.record(target, now);
                        storage::save(GUARD_KEY, &guard.to_text());
                    }
                    self.reloading = true;
                    super::super::reload_page();
                }
                Action::Countdown { remaining_ms } => {
                    // Wake at the next whole second shown, or the deadline.
                    let wait = remaining_ms % 1000.0;
                    let wait = if wait < 1.0 { 1000.0 } else { wait };
                    let wait = Duration::from_millis(wait.min(*remaining_ms).max(1.0) as u64);
                    self.timer = set_timeout_with_handle(move || tick.notify(), wait).ok();
                }
                Action::Current | Action::Prompt => {}
            }
            Some((next, self.auto.held()))
        }
    }

    pub(super) fn use_auto_reload(
        strategy: ReloadStrategy,
        stale: Signal<Option<Version>>,
        required: Signal<bool>,
    ) -> Auto {
        let driver = StoredValue::new_local(Driver {
            auto: AutoReload::new(strategy),
            timer: None,
            reloading: false,
        });
        let state = RwSignal::new((Action::Current, Held::No));
        // Notified by the countdown's timer and by Cancel: poll again.
        let tick = Trigger::new();
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
            if let Some(Some(next)) = driver.try_update_value(|d| d.step(&page, tick)) {
                state.set(next);
            }
        });
        on_cleanup(move || {
            if let Some(handle) = driver.try_update_value(|d| d.timer.take()).flatten() {
                handle.clear();
            }
        });
        Auto {
            state: state.into(),
            cancel: Callback::new(move |()| {
                driver.update_value(|d| d.auto.cancel());
                tick.notify();
            }),
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
