//! One event stream per browser, not per tab.
//!
//! Every tab of one origin asks for the same Web Lock (`navigator.locks`);
//! the tab that holds it opens the [`VersionStream`] and posts every report,
//! and whether the stream is open, on a `BroadcastChannel`; the other tabs
//! take them from there. A tab that joins asks the channel once (`hello`) and
//! the holder answers with its latest report. When the holder closes (or is
//! frozen by the browser: it lets go on `freeze` and asks again on
//! `resume`), the lock passes to a waiting tab, which opens the stream.
//! Without those APIs each tab keeps its own stream.

use super::stream::VersionStream;
use std::{
    cell::{Cell, RefCell},
    rc::{Rc, Weak},
};
use version_observer_core::VersionReport;
use wasm_bindgen::{prelude::Closure, JsCast, JsValue};
use web_sys::{AbortController, BroadcastChannel, Event, MessageEvent};

/// What the tabs say on the channel: `hello` (a tab joined: the holder
/// answers with its latest state), `live:1`/`live:0` (the holder's stream
/// opened or closed), `report:<the report's JSON, as the node sent it>`.
/// Plain text, so the page needs no JSON writer.
enum Wire {
    Hello,
    Live(bool),
    Report(String),
}

impl Wire {
    fn text(&self) -> String {
        match self {
            Self::Hello => "hello".to_owned(),
            Self::Live(open) => format!("live:{}", u8::from(*open)),
            Self::Report(json) => format!("report:{json}"),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "hello" => Some(Self::Hello),
            "live:1" => Some(Self::Live(true)),
            "live:0" => Some(Self::Live(false)),
            _ => text
                .strip_prefix("report:")
                .map(|json| Self::Report(json.to_owned())),
        }
    }
}

/// This tab's share of the browser's stream; dropping it leaves (and hands
/// the stream to another tab if this one held it).
pub enum BrowserStream {
    /// Shared through a lock and a channel.
    Shared(Rc<Shared>),
    /// This tab's own stream (no Web Locks or BroadcastChannel), held for
    /// its `Drop`.
    Own(#[allow(dead_code)] VersionStream),
}

type OnReport = Rc<dyn Fn(VersionReport)>;
type OnLive = Rc<dyn Fn(bool)>;

pub struct Shared {
    stream_url: String,
    lock_name: String,
    channel: BroadcastChannel,
    on_report: OnReport,
    on_live: OnLive,
    /// The stream, while this tab holds the lock.
    stream: RefCell<Option<VersionStream>>,
    /// Resolving it releases the lock.
    release: RefCell<Option<js_sys::Function>>,
    /// Aborts a pending lock request.
    pending: RefCell<Option<AbortController>>,
    /// The latest report's text.
    last: RefCell<Option<String>>,
    live: Cell<bool>,
    stopped: Cell<bool>,
    on_message: Closure<dyn FnMut(MessageEvent)>,
    on_granted: Closure<dyn FnMut(JsValue) -> JsValue>,
    ignore: Closure<dyn FnMut(JsValue)>,
    /// `freeze` and `resume`.
    on_lifecycle: Closure<dyn FnMut(Event)>,
}

impl BrowserStream {
    /// Joins the browser's stream for `events_url`, opening `stream_url` when
    /// this tab holds it.
    pub fn connect(
        events_url: &str,
        stream_url: &str,
        on_report: impl Fn(VersionReport) + 'static,
        on_live: impl Fn(bool) + 'static,
    ) -> Self {
        let locks = web_sys::window()
            .and_then(|w| js_sys::Reflect::get(&w.navigator(), &"locks".into()).ok())
            .filter(|l| l.is_object());
        let channel_name = format!("version-observer {events_url}");
        let channel = locks
            .is_some()
            .then(|| BroadcastChannel::new(&channel_name).ok())
            .flatten();
        let Some(channel) = channel else {
            return Self::Own(VersionStream::connect(
                stream_url,
                move |report, _| on_report(report),
                on_live,
            ));
        };
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let w = weak.clone();
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                if let Some(s) = w.upgrade() {
                    s.heard(&ev);
                }
            });
            let w = weak.clone();
            let on_granted = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |_lock| {
                match w.upgrade() {
                    Some(s) => s.granted(),
                    // Gone meanwhile: let go at once.
                    None => JsValue::UNDEFINED,
                }
            });
            let w = weak.clone();
            let on_lifecycle = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
                if let Some(s) = w.upgrade() {
                    match ev.type_().as_str() {
                        "freeze" => s.let_go(),
                        "resume" => s.ask(),
                        _ => {}
                    }
                }
            });
            Shared {
                stream_url: stream_url.to_owned(),
                lock_name: channel_name.clone(),
                channel,
                on_report: Rc::new(on_report),
                on_live: Rc::new(on_live),
                stream: RefCell::new(None),
                release: RefCell::new(None),
                pending: RefCell::new(None),
                last: RefCell::new(None),
                live: Cell::new(false),
                stopped: Cell::new(false),
                on_message,
                on_granted,
                ignore: Closure::<dyn FnMut(JsValue)>::new(|_| {}),
                on_lifecycle,
            }
        });
        shared
            .channel
            .set_onmessage(Some(shared.on_message.as_ref().unchecked_ref()));
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            for event in ["freeze", "resume"] {
                let _ = document.add_event_listener_with_callback(
                    event,
                    shared.on_lifecycle.as_ref().unchecked_ref(),
                );
            }
        }
        shared.ask();
        Self::Shared(shared)
    }
}

impl Shared {
    /// Asks for the lock (queued behind the holder), and the holder for its
    /// latest state.
    fn ask(&self) {
        if self.stopped.get() || self.stream.borrow().is_some() || self.pending.borrow().is_some() {
            return;
        }
        let Some(window) = web_sys::window() else {
            return;
        };
        let Ok(locks) = js_sys::Reflect::get(&window.navigator(), &"locks".into()) else {
            return;
        };
        let Ok(request) = js_sys::Reflect::get(&locks, &"request".into())
            .and_then(|r| r.dyn_into::<js_sys::Function>().map_err(JsValue::from))
        else {
            return;
        };
        let Ok(abort) = AbortController::new() else {
            return;
        };
        let options = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&options, &"signal".into(), &abort.signal());
        let asked = request.call3(
            &locks,
            &JsValue::from_str(&self.lock_name),
            &options,
            self.on_granted.as_ref(),
        );
        if let Ok(promise) =
            asked.and_then(|p| p.dyn_into::<js_sys::Promise>().map_err(JsValue::from))
        {
            // An aborted request rejects: expected, not an error.
            let _ = promise.catch(&self.ignore);
        }
        self.pending.replace(Some(abort));
        self.post(&Wire::Hello);
    }

    /// This tab holds the lock: open the stream; the returned promise holds
    /// the lock until [`let_go`](Self::let_go) resolves it.
    fn granted(self: Rc<Self>) -> JsValue {
        self.pending.take();
        if self.stopped.get() {
            return JsValue::UNDEFINED;
        }
        let mut resolve = None;
        let held = js_sys::Promise::new(&mut |res, _rej| resolve = Some(res));
        self.release.replace(resolve);
        let (a, b) = (Rc::downgrade(&self), Rc::downgrade(&self));
        let stream = VersionStream::connect(
            &self.stream_url,
            move |report, text: &str| {
                if let Some(s) = a.upgrade() {
                    s.post(&Wire::Report(text.to_owned()));
                    s.last.replace(Some(text.to_owned()));
                    (s.on_report)(report);
                }
            },
            move |open| {
                if let Some(s) = b.upgrade() {
                    s.live.set(open);
                    s.post(&Wire::Live(open));
                    (s.on_live)(open);
                }
            },
        );
        self.stream.replace(Some(stream));
        held.into()
    }

    /// Closes the stream and lets the lock go (or stops waiting for it).
    fn let_go(&self) {
        if self.stream.take().is_some() {
            self.live.set(false);
            self.post(&Wire::Live(false));
        }
        if let Some(resolve) = self.release.take() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
        if let Some(abort) = self.pending.take() {
            abort.abort();
        }
    }

    fn heard(&self, ev: &MessageEvent) {
        let Some(wire) = ev.data().as_string().and_then(|text| Wire::parse(&text)) else {
            return;
        };
        let holding = self.stream.borrow().is_some();
        match wire {
            Wire::Hello if holding => {
                self.post(&Wire::Live(self.live.get()));
                if let Some(report) = self.last.borrow().clone() {
                    self.post(&Wire::Report(report));
                }
            }
            Wire::Live(open) if !holding => (self.on_live)(open),
            Wire::Report(json) if !holding => {
                // Another tab's report is checked like the node's own.
                if let Some(report) = VersionReport::from_json(&json) {
                    (self.on_report)(report);
                }
            }
            _ => {}
        }
    }

    fn post(&self, wire: &Wire) {
        let _ = self.channel.post_message(&JsValue::from_str(&wire.text()));
    }
}

impl Drop for BrowserStream {
    fn drop(&mut self) {
        if let Self::Shared(shared) = self {
            shared.stopped.set(true);
            shared.let_go();
            shared.channel.set_onmessage(None);
            shared.channel.close();
            if let Some(document) = web_sys::window().and_then(|w| w.document()) {
                for event in ["freeze", "resume"] {
                    let _ = document.remove_event_listener_with_callback(
                        event,
                        shared.on_lifecycle.as_ref().unchecked_ref(),
                    );
                }
            }
        }
    }
}
