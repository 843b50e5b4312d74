//! [`AutomaticReload`]: automatic reloads of a stale page, a component of its
//! own so that a page without them carries none of their code.
//!
//! The browser glue feeds what the page sees (stale target, severity,
//! `document.hidden`, unsaved input, the time) into the core's
//! [`AutoReload`](version_observer_core::reload::AutoReload) and does what
//! it says; the rules live there. Its countdown, Cancel button and hints
//! show in every [`VersionBanner`](crate::VersionBanner) of the page.

use leptos::prelude::*;
use version_observer_core::reload::ReloadStrategy;

/// Reloads a stale page by itself, as `strategy` says: while the tab is
/// hidden (`when_hidden`), or after a visible countdown with a Cancel
/// button (`immediate`, for every update or only required ones). None of
/// them reloads while the page has unsaved input (see
/// [`use_unsaved_input`](crate::use_unsaved_input)), and a loop guard stops
/// them after 2 reloads per version within 5 minutes (a reload that lands
/// on an old node again); the banner then asks instead.
///
/// It renders nothing; its countdown and hints show in the page's
/// [`VersionBanner`](crate::VersionBanner) (texts: [`BannerTexts`](crate::BannerTexts)).
/// One per page.
///
/// ```
/// use leptos::prelude::*;
/// use std::time::Duration;
/// use version_observer::{AutomaticReload, ReloadStrategy, VersionBanner};
///
/// #[component]
/// fn App() -> impl IntoView {
///     view! {
///         <VersionBanner/>
///         <AutomaticReload strategy=ReloadStrategy::prompt()
///             .when_hidden()
///             .immediate_when_required(Duration::from_secs(30))/>
///         <main>"Your app"</main>
///     }
/// }
/// ```
#[component]
pub fn AutomaticReload(
    /// What may happen without a click (`ReloadStrategy::prompt()`:
    /// nothing).
    strategy: ReloadStrategy,
    /// The hook's options (the events URL of routes under a prefix)
    /// [default: those in context, see [`UseVersionObserverOptions`](crate::UseVersionObserverOptions)].
    #[prop(optional)]
    options: Option<crate::UseVersionObserverOptions>,
) -> impl IntoView {
    // On both sides alike (it is shared data of the page).
    let page = super::page(options);
    #[cfg(feature = "hydrate")]
    if let Some(info) = &page.info {
        driver::start(&page.options, &info.version, strategy);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (page, strategy);
}

#[cfg(feature = "hydrate")]
mod driver {
    use super::*;
    use crate::{
        browser::page,
        ui::{
            banner::dom::{button, element, set, Parts, DECORATE},
            kept::storage,
            unsaved,
        },
    };
    use std::{cell::RefCell, rc::Rc, time::Duration};
    use version_observer_core::{
        reload::{Action, AutoReload, Held, LoopGuard, PageState},
        Version,
    };
    use wasm_bindgen::{prelude::Closure, JsCast};

    /// Where the loop guard is kept (the tab's `sessionStorage`).
    const GUARD_KEY: &str = "version-observer.reloads";

    /// The page's automatic-reload state, and what the glue holds for it.
    struct Driver {
        auto: AutoReload,
        /// What the banners show: the action (the countdown in whole
        /// seconds) and why a reload is held.
        shown: (Action, Held),
        /// The countdown's next wake-up.
        timer: Option<TimeoutHandle>,
        /// Set once a reload has started: nothing more to do.
        reloading: bool,
        on_cancel: Closure<dyn FnMut()>,
    }

    type Shared = Rc<RefCell<Driver>>;

    thread_local! {
        /// The page's driver, for the banners' decoration.
        static DRIVER: RefCell<Option<Shared>> = const { RefCell::new(None) };
    }

    /// Registered with the banners while a driver runs.
    fn decorate_banner(parts: &Parts<'_>) {
        if let Some(d) = DRIVER.with(|slot| slot.borrow().clone()) {
            decorate(&d.borrow(), parts);
        }
    }

    /// Drives the strategy for as long as the calling component lives.
    pub(super) fn start(
        options: &crate::UseVersionObserverOptions,
        version: &Version,
        strategy: ReloadStrategy,
    ) {
        let driver: Shared = Rc::new(RefCell::new(Driver {
            auto: AutoReload::new(strategy),
            shown: (Action::Current, Held::No),
            timer: None,
            reloading: false,
            on_cancel: Closure::new(|| {}),
        }));
        let d = Rc::downgrade(&driver);
        driver.borrow_mut().on_cancel = Closure::new(move || {
            if let Some(d) = d.upgrade() {
                d.borrow_mut().auto.cancel();
                poll(&d);
            }
        });
        let d = driver.clone();
        let joined = page::join(options, version, Rc::new(move || poll(&d)));
        // `visibilitychange` is fired at the document and bubbles to the window.
        let visibility = window_event_listener_untyped("visibilitychange", |_| page::poke());
        // Unsaved input is watched from now on.
        unsaved::page::dirty();
        DRIVER.with(|slot| slot.replace(Some(driver.clone())));
        DECORATE.with(|slot| slot.set(Some(decorate_banner)));
        let held = send_wrapper::SendWrapper::new((driver, joined));
        on_cleanup(move || {
            let (driver, joined) = held.take();
            visibility.remove();
            drop(joined);
            DECORATE.with(|slot| slot.set(None));
            DRIVER.with(|slot| slot.take());
            let timer = driver.borrow_mut().timer.take();
            if let Some(handle) = timer {
                handle.clear();
            }
        });
    }

    /// Polls the strategy with what the page is like now and does what it
    /// says; tells the banners when what they show changed.
    fn poll(driver: &Shared) {
        let changed = {
            let mut d = driver.borrow_mut();
            if d.reloading {
                return;
            }
            let (target, required) =
                page::with(|s| (s.knowledge.stale_target().cloned(), s.knowledge.required()))
                    .unwrap_or_default();
            let hidden = document().hidden();
            let state = PageState {
                target: target.as_ref(),
                required,
                hidden,
                dirty: unsaved::page::dirty(),
            };
            let mut guard = storage::load(GUARD_KEY)
                .map(|text| LoopGuard::from_text(&text))
                .unwrap_or_default();
            let now = js_sys::Date::now();
            let next = d.auto.poll(&state, &guard, now);
            if let Some(handle) = d.timer.take() {
                handle.clear();
            }
            let mut shown = next.clone();
            match &next {
                Action::Reload => {
                    if let Some(target) = &target {
                        guard.record(target, now);
                        storage::save(GUARD_KEY, &guard.to_text());
                    }
                    d.reloading = true;
                    crate::reload_page();
                    return;
                }
                Action::Countdown { remaining_ms } => {
                    // Wake at the next whole second shown, or the deadline.
                    let wait = remaining_ms % 1000.0;
                    let wait = if wait < 1.0 { 1000.0 } else { wait };
                    let wait = Duration::from_millis(wait.min(*remaining_ms).max(1.0) as u64);
                    let again = Rc::downgrade(driver);
                    d.timer = set_timeout_with_handle(
                        move || {
                            if let Some(d) = again.upgrade() {
                                poll(&d);
                            }
                        },
                        wait,
                    )
                    .ok();
                    // The banners show whole seconds.
                    shown = Action::Countdown {
                        remaining_ms: seconds(*remaining_ms) as f64,
                    };
                }
                Action::Current | Action::Prompt => {}
            }
            let shown = (shown, d.auto.held());
            let changed = d.shown != shown;
            d.shown = shown;
            changed
        };
        if changed {
            page::poke();
        }
    }

    fn seconds(remaining_ms: f64) -> u64 {
        (remaining_ms / 1000.0).ceil().max(0.0) as u64
    }

    /// The banner's share of the driver: `data-state`, the hint, the
    /// countdown and its Cancel button (kept while it counts, so a focused
    /// Cancel keeps the focus).
    fn decorate(d: &Driver, parts: &Parts<'_>) {
        let (action, held) = &d.shown;
        let t = parts.texts;
        let state = match (action, held) {
            (Action::Countdown { .. }, _) => "countdown",
            (_, Held::UnsavedInput) => "unsaved",
            (_, Held::LoopGuard) => "reload-failed",
            (_, Held::Cancelled) => "cancelled",
            _ => "prompt",
        };
        set(parts.root, "data-state", Some(state));
        let hint = match held {
            Held::UnsavedInput => Some(t.unsaved.as_str()),
            Held::LoopGuard => Some(t.reload_failed.as_str()),
            _ => None,
        };
        part(parts, ".version-observer-hint", hint, |text| {
            let span = element("span");
            set(&span, "class", Some("version-observer-hint"));
            span.set_text_content(Some(text));
            vec![span]
        });
        let countdown = match action {
            Action::Countdown { remaining_ms } => Some(
                t.countdown
                    .replace("{seconds}", &seconds(*remaining_ms).to_string()),
            ),
            _ => None,
        };
        part(
            parts,
            "[data-testid=version-countdown]",
            countdown.as_deref(),
            |text| {
                let span = element("span");
                // Not re-read to screen readers every second.
                set(&span, "aria-live", Some("off"));
                set(&span, "data-testid", Some("version-countdown"));
                span.set_text_content(Some(text));
                let cancel = button(
                    &t.cancel,
                    parts
                        .styled
                        .then_some(crate::ui::banner::dom::SECONDARY_STYLE),
                );
                set(&cancel, "data-version-observer-cancel", Some(""));
                let _ = cancel.add_event_listener_with_callback(
                    "click",
                    d.on_cancel.as_ref().unchecked_ref(),
                );
                vec![span, cancel]
            },
        );
        if countdown.is_none() {
            if let Ok(Some(cancel)) = parts.root.query_selector("[data-version-observer-cancel]") {
                cancel.remove();
            }
        }
    }

    /// Shows `text` in the banner's element `selector` (made by `make`,
    /// before the Reload button, when missing), or removes it.
    fn part(
        parts: &Parts<'_>,
        selector: &str,
        text: Option<&str>,
        make: impl FnOnce(&str) -> Vec<web_sys::Element>,
    ) {
        let existing = parts.root.query_selector(selector).ok().flatten();
        match (existing, text) {
            (Some(el), Some(text)) => el.set_text_content(Some(text)),
            (Some(el), None) => el.remove(),
            (None, Some(text)) => {
                for el in make(text) {
                    let _ = parts.root.insert_before(&el, Some(parts.reload));
                }
            }
            (None, None) => {}
        }
    }
}
