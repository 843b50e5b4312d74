//! The browser's `EventSource` that carries the version signal.
//!
//! The browser reconnects an `EventSource` by itself after a network error, using
//! the server's `retry:` hint. After an HTTP error (a load balancer's 502 while
//! every node restarts, a node's 503 when it is full) it gives up for good, so
//! [`VersionStream`] opens a fresh one with capped, jittered backoff.
//!
//! A laptop that slept through a deploy must not wait out that backoff, nor
//! trust a connection that died while it slept: when the browser says it is
//! `online` again, when a page comes back from the back/forward cache, or
//! when a tab becomes visible after being hidden for [`WAKE_AFTER_MS`] or
//! more (or with no open stream), the stream is opened afresh at once, and
//! its first event carries the current report.

use std::{
    cell::{Cell, RefCell},
    rc::{Rc, Weak},
};
use version_observer_core::VersionReport;
use wasm_bindgen::{prelude::Closure, JsCast};
use web_sys::{Event, EventSource, MessageEvent};

const BACKOFF_START_MS: i32 = 1_000;
const BACKOFF_MAX_MS: i32 = 30_000;
/// A tab hidden at least this long reopens its stream when it is shown
/// again (a shorter absence, a mere tab switch, keeps it).
pub const WAKE_AFTER_MS: f64 = 30_000.0;

/// A live subscription; dropping it closes the connection and cancels retries.
pub struct VersionStream {
    shared: Rc<Shared>,
}

struct Shared {
    url: String,
    source: RefCell<Option<EventSource>>,
    retry_timer: Cell<Option<i32>>,
    failures: Cell<u32>,
    stopped: Cell<bool>,
    on_message: Closure<dyn FnMut(MessageEvent)>,
    on_open: Closure<dyn FnMut(Event)>,
    on_error: Closure<dyn FnMut(Event)>,
    reopen: Closure<dyn FnMut()>,
    /// `online`, `pageshow` and `visibilitychange`.
    on_wake: Closure<dyn FnMut(Event)>,
    /// When the tab was last hidden (`performance.now()`), if it is.
    hidden_since: Cell<Option<f64>>,
}

impl VersionStream {
    /// Subscribes to `url`; `on_report` gets every report (and its text, as
    /// the node sent it), `on_live` whether the connection is open.
    pub fn connect(
        url: &str,
        on_report: impl Fn(VersionReport, &str) + 'static,
        on_live: impl Fn(bool) + 'static,
    ) -> Self {
        Self::connect_dyn(url, Box::new(on_report), Rc::new(on_live))
    }

    /// [`connect`](Self::connect) for any callbacks: one copy of this code
    /// in the page, whoever calls it.
    fn connect_dyn(
        url: &str,
        on_report: Box<dyn Fn(VersionReport, &str)>,
        on_live: Rc<dyn Fn(bool)>,
    ) -> Self {
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                // A report we cannot read is skipped: the next one replaces it.
                if let Some(text) = ev.data().as_string() {
                    if let Some(report) = VersionReport::from_json(&text) {
                        on_report(report, &text);
                    }
                }
            });
            let (w, live) = (weak.clone(), on_live.clone());
            let on_open = Closure::<dyn FnMut(Event)>::new(move |_| {
                if let Some(s) = w.upgrade() {
                    s.failures.set(0);
                }
                live(true);
            });
            let (w, live) = (weak.clone(), on_live.clone());
            let on_error = Closure::<dyn FnMut(Event)>::new(move |_| {
                live(false);
                if let Some(s) = w.upgrade() {
                    s.after_error();
                }
            });
            let w = weak.clone();
            let reopen = Closure::<dyn FnMut()>::new(move || {
                if let Some(s) = w.upgrade() {
                    s.retry_timer.set(None);
                    s.open();
                }
            });
            let w = weak.clone();
            let on_wake = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
                if let Some(s) = w.upgrade() {
                    s.woke(&event);
                }
            });
            Shared {
                url: url.to_owned(),
                source: RefCell::new(None),
                retry_timer: Cell::new(None),
                failures: Cell::new(0),
                stopped: Cell::new(false),
                on_message,
                on_open,
                on_error,
                reopen,
                on_wake,
                hidden_since: Cell::new(None),
            }
        });
        shared.listen_for_wake(true);
        shared.open();
        Self { shared }
    }
}

impl Shared {
    fn open(&self) {
        if self.stopped.get() {
            return;
        }
        match EventSource::new(&self.url) {
            Ok(source) => {
                source.set_onmessage(Some(self.on_message.as_ref().unchecked_ref()));
                source.set_onopen(Some(self.on_open.as_ref().unchecked_ref()));
                source.set_onerror(Some(self.on_error.as_ref().unchecked_ref()));
                self.source.replace(Some(source));
            }
            Err(_) => self.schedule_reopen(),
        }
    }

    fn after_error(&self) {
        let gave_up = self
            .source
            .borrow()
            .as_ref()
            .is_some_and(|s| s.ready_state() == EventSource::CLOSED);
        if gave_up {
            self.close_source();
            self.schedule_reopen();
        }
    }

    fn schedule_reopen(&self) {
        if self.stopped.get() || self.retry_timer.get().is_some() {
            return;
        }
        let failures = self.failures.get().min(8);
        self.failures.set(failures + 1);
        let base = (BACKOFF_START_MS << failures).min(BACKOFF_MAX_MS);
        // Jitter spreads the reconnects of many tabs after a shared outage.
        let delay = base / 2 + (js_random() * f64::from(base / 2)) as i32;
        if let Some(window) = web_sys::window() {
            if let Ok(id) = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                self.reopen.as_ref().unchecked_ref(),
                delay,
            ) {
                self.retry_timer.set(Some(id));
            }
        }
    }

    /// (Un)registers the wake-up listeners.
    fn listen_for_wake(&self, on: bool) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let listener = self.on_wake.as_ref().unchecked_ref();
        for event in ["online", "pageshow"] {
            let _ = if on {
                window.add_event_listener_with_callback(event, listener)
            } else {
                window.remove_event_listener_with_callback(event, listener)
            };
        }
        if let Some(document) = window.document() {
            let _ = if on {
                document.add_event_listener_with_callback("visibilitychange", listener)
            } else {
                document.remove_event_listener_with_callback("visibilitychange", listener)
            };
        }
    }

    /// The browser is back: reopen now if the stream may be dead.
    fn woke(&self, event: &Event) {
        if self.stopped.get() {
            return;
        }
        let now = web_sys::window()
            .and_then(|w| w.performance())
            .map_or(0.0, |p| p.now());
        let reopen = match event.type_().as_str() {
            "online" => true,
            // Restored from the back/forward cache: its connection is gone.
            "pageshow" => event
                .dyn_ref::<web_sys::PageTransitionEvent>()
                .is_some_and(|e| e.persisted()),
            "visibilitychange" => {
                let hidden = web_sys::window()
                    .and_then(|w| w.document())
                    .is_some_and(|d| d.hidden());
                if hidden {
                    if self.hidden_since.get().is_none() {
                        self.hidden_since.set(Some(now));
                    }
                    false
                } else {
                    let away = self.hidden_since.take().map_or(0.0, |t| now - t);
                    let open = self
                        .source
                        .borrow()
                        .as_ref()
                        .is_some_and(|s| s.ready_state() == EventSource::OPEN);
                    away >= WAKE_AFTER_MS || !open
                }
            }
            _ => false,
        };
        if reopen {
            if let (Some(id), Some(window)) = (self.retry_timer.take(), web_sys::window()) {
                window.clear_timeout_with_handle(id);
            }
            self.failures.set(0);
            self.close_source();
            self.open();
        }
    }

    fn close_source(&self) {
        if let Some(source) = self.source.take() {
            source.set_onmessage(None);
            source.set_onopen(None);
            source.set_onerror(None);
            source.close();
        }
    }
}

impl Drop for VersionStream {
    fn drop(&mut self) {
        self.shared.stopped.set(true);
        self.shared.listen_for_wake(false);
        self.shared.close_source();
        if let (Some(id), Some(window)) = (self.shared.retry_timer.take(), web_sys::window()) {
            window.clear_timeout_with_handle(id);
        }
    }
}

fn js_random() -> f64 {
    js_sys::Math::random()
}
