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
//!
//! One closure hears every event (the source's and the page's), by type:
//! each closure costs the page its own glue.

use std::{
    cell::{Cell, RefCell},
    rc::{Rc, Weak},
};
use version_observer_core::VersionReport;
use wasm_bindgen::{prelude::Closure, JsCast};
use web_sys::{Event, EventSource, EventTarget};

pub use version_observer_core::timing::browser::WAKE_AFTER_MS;
use version_observer_core::timing::browser::{
    STREAM_RETRY_FIRST_MS as BACKOFF_START_MS, STREAM_RETRY_MAX_MS as BACKOFF_MAX_MS,
};

/// The source's events, and the page's that wake it.
const SOURCE_EVENTS: [&str; 3] = ["message", "open", "error"];
const WINDOW_EVENTS: [&str; 2] = ["online", "pageshow"];
const VISIBILITY: &str = "visibilitychange";

/// What a stream tells its owner: every report (and its text, as the node
/// sent it), and whether the connection is open.
pub type OnReport = Box<dyn Fn(VersionReport, &str)>;
/// See [`OnReport`].
pub type OnLive = Box<dyn Fn(bool)>;

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
    on_report: OnReport,
    on_live: OnLive,
    on_event: Closure<dyn FnMut(Event)>,
    reopen: Closure<dyn FnMut()>,
    /// When the tab was last hidden (`performance.now()`), if it is.
    hidden_since: Cell<Option<f64>>,
}

impl VersionStream {
    /// Subscribes to `url`.
    pub fn connect(url: &str, on_report: OnReport, on_live: OnLive) -> Self {
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let w = weak.clone();
            let on_event = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
                if let Some(s) = w.upgrade() {
                    s.heard(&ev);
                }
            });
            let w = weak.clone();
            let reopen = Closure::<dyn FnMut()>::new(move || {
                if let Some(s) = w.upgrade() {
                    s.retry_timer.set(None);
                    s.open();
                }
            });
            Shared {
                url: url.to_owned(),
                source: RefCell::new(None),
                retry_timer: Cell::new(None),
                failures: Cell::new(0),
                stopped: Cell::new(false),
                on_report,
                on_live,
                on_event,
                reopen,
                hidden_since: Cell::new(None),
            }
        });
        shared.listen_for_wake(true);
        shared.open();
        Self { shared }
    }
}

/// (Un)registers `listener` for `events` of `target`.
pub(crate) fn listen(target: &EventTarget, events: &[&str], listener: &js_sys::Function, on: bool) {
    for event in events {
        let _ = if on {
            target.add_event_listener_with_callback(event, listener)
        } else {
            target.remove_event_listener_with_callback(event, listener)
        };
    }
}

impl Shared {
    fn listener(&self) -> &js_sys::Function {
        self.on_event.as_ref().unchecked_ref()
    }

    fn open(&self) {
        if self.stopped.get() {
            return;
        }
        match EventSource::new(&self.url) {
            Ok(source) => {
                listen(&source, &SOURCE_EVENTS, self.listener(), true);
                self.source.replace(Some(source));
            }
            Err(_) => self.schedule_reopen(),
        }
    }

    fn heard(&self, ev: &Event) {
        match ev.type_().as_str() {
            "message" => {
                // A report we cannot read is skipped: the next one replaces it.
                let data = ev.unchecked_ref::<web_sys::MessageEvent>().data();
                if let Some(text) = data.as_string() {
                    if let Some(report) = super::json::report(&text) {
                        (self.on_report)(report, &text);
                    }
                }
            }
            "open" => {
                self.failures.set(0);
                (self.on_live)(true);
            }
            "error" => {
                (self.on_live)(false);
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
            _ => self.woke(ev),
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
        let delay = base / 2 + (js_sys::Math::random() * f64::from(base / 2)) as i32;
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
        listen(&window, &WINDOW_EVENTS, self.listener(), on);
        if let Some(document) = window.document() {
            listen(&document, &[VISIBILITY], self.listener(), on);
        }
    }

    /// The browser is back: reopen now if the stream may be dead.
    fn woke(&self, event: &Event) {
        if self.stopped.get() {
            return;
        }
        let reopen = match event.type_().as_str() {
            "online" => true,
            // Restored from the back/forward cache: its connection is gone.
            "pageshow" => event
                .dyn_ref::<web_sys::PageTransitionEvent>()
                .is_some_and(|e| e.persisted()),
            VISIBILITY => {
                let now = web_sys::window()
                    .and_then(|w| w.performance())
                    .map_or(0.0, |p| p.now());
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
            self.clear_retry();
            self.failures.set(0);
            self.close_source();
            self.open();
        }
    }

    fn clear_retry(&self) {
        if let (Some(id), Some(window)) = (self.retry_timer.take(), web_sys::window()) {
            window.clear_timeout_with_handle(id);
        }
    }

    fn close_source(&self) {
        if let Some(source) = self.source.take() {
            listen(&source, &SOURCE_EVENTS, self.listener(), false);
            source.close();
        }
    }
}

impl Drop for VersionStream {
    fn drop(&mut self) {
        self.shared.stopped.set(true);
        self.shared.listen_for_wake(false);
        self.shared.close_source();
        self.shared.clear_retry();
    }
}
