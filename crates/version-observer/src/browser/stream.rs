//! The browser's `EventSource` that carries the version signal.
//!
//! The browser reconnects an `EventSource` by itself after a network error, using
//! the server's `retry:` hint. After an HTTP error (a load balancer's 502 while
//! every node restarts, a node's 503 when it is full) it gives up for good, so
//! [`VersionStream`] opens a fresh one with capped, jittered backoff.

use std::{
    cell::{Cell, RefCell},
    rc::{Rc, Weak},
};
use version_observer_core::VersionReport;
use wasm_bindgen::{prelude::Closure, JsCast};
use web_sys::{Event, EventSource, MessageEvent};

const BACKOFF_START_MS: i32 = 1_000;
const BACKOFF_MAX_MS: i32 = 30_000;

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
}

impl VersionStream {
    /// Subscribes to `url`; `on_report` gets every report, `on_live` whether the
    /// connection is open.
    pub fn connect(
        url: &str,
        on_report: impl Fn(VersionReport) + 'static,
        on_live: impl Fn(bool) + 'static,
    ) -> Self {
        let on_live = Rc::new(on_live);
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                // A report we cannot read is skipped: the next one replaces it.
                if let Some(report) = ev
                    .data()
                    .as_string()
                    .and_then(|text| serde_json::from_str::<VersionReport>(&text).ok())
                {
                    on_report(report);
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
            }
        });
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
        self.shared.close_source();
        if let (Some(id), Some(window)) = (self.shared.retry_timer.take(), web_sys::window()) {
            window.clear_timeout_with_handle(id);
        }
    }
}

fn js_random() -> f64 {
    js_sys::Math::random()
}
