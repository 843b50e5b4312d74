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

use super::stream::{listen, OnLive, OnReport, VersionStream};
use std::{
    cell::{Cell, RefCell},
    rc::{Rc, Weak},
};
use wasm_bindgen::{prelude::Closure, JsCast, JsValue};
use web_sys::{AbortController, BroadcastChannel, Event};

/// What the tabs say on the channel: `hello` (a tab joined: the holder
/// answers with its latest state), `live:1`/`live:0` (the holder's stream
/// opened or closed), `report:<the report's JSON, as the node sent it>`.
/// Plain text, so the page needs no JSON writer.
const HELLO: &str = "hello";
const LIVE: &str = "live:";
const REPORT: &str = "report:";

/// The page's lifecycle events: a frozen holder lets go, and asks again
/// when it resumes.
const LIFECYCLE: [&str; 2] = ["freeze", "resume"];

/// This tab's share of the browser's stream; dropping it leaves (and hands
/// the stream to another tab if this one held it).
pub enum BrowserStream {
    /// Shared through a lock and a channel.
    Shared(Rc<Shared>),
    /// This tab's own stream (no Web Locks or BroadcastChannel), held for
    /// its `Drop`.
    Own(#[allow(dead_code)] VersionStream),
}

pub struct Shared {
    stream_url: String,
    lock_name: String,
    channel: BroadcastChannel,
    on_report: Rc<OnReport>,
    on_live: Rc<OnLive>,
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
    /// The channel's messages and the page's lifecycle.
    on_event: Closure<dyn FnMut(Event)>,
    on_granted: Closure<dyn FnMut(JsValue) -> JsValue>,
    ignore: Closure<dyn FnMut(JsValue)>,
}

impl BrowserStream {
    /// Joins the browser's stream for `events_url`, opening `stream_url` when
    /// this tab holds it.
    pub fn connect(
        events_url: &str,
        stream_url: &str,
        on_report: OnReport,
        on_live: OnLive,
    ) -> Self {
        let locks = web_sys::window()
            .and_then(|w| js_sys::Reflect::get(&w.navigator(), &"locks".into()).ok())
            .filter(|l| l.is_object());
        let channel_name = ["version-observer ", events_url].concat();
        let channel = locks
            .is_some()
            .then(|| BroadcastChannel::new(&channel_name).ok())
            .flatten();
        let Some(channel) = channel else {
            return Self::Own(VersionStream::connect(stream_url, on_report, on_live));
        };
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let w = weak.clone();
            let on_event = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
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
            Shared {
                stream_url: stream_url.to_owned(),
                lock_name: channel_name,
                channel,
                on_report: Rc::new(on_report),
                on_live: Rc::new(on_live),
                stream: RefCell::new(None),
                release: RefCell::new(None),
                pending: RefCell::new(None),
                last: RefCell::new(None),
                live: Cell::new(false),
                stopped: Cell::new(false),
                on_event,
                on_granted,
                ignore: Closure::<dyn FnMut(JsValue)>::new(|_| {}),
            }
        });
        shared.listen(true);
        shared.ask();
        Self::Shared(shared)
    }
}

impl Shared {
    /// (Un)registers the channel's and the lifecycle's listener.
    fn listen(&self, on: bool) {
        let listener = self.on_event.as_ref().unchecked_ref();
        listen(&self.channel, &["message"], listener, on);
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            listen(&document, &LIFECYCLE, listener, on);
        }
    }

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
        if let Ok(promise) = asked {
            // An aborted request rejects: expected, not an error.
            let _ = promise
                .unchecked_into::<js_sys::Promise>()
                .catch(&self.ignore);
        }
        self.pending.replace(Some(abort));
        self.post(HELLO);
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
            Box::new(move |report, text: &str| {
                if let Some(s) = a.upgrade() {
                    s.post_report(text);
                    s.last.replace(Some(text.to_owned()));
                    (s.on_report)(report, text);
                }
            }),
            Box::new(move |open| {
                if let Some(s) = b.upgrade() {
                    s.live.set(open);
                    s.post_live(open);
                    (s.on_live)(open);
                }
            }),
        );
        self.stream.replace(Some(stream));
        held.into()
    }

    /// Closes the stream and lets the lock go (or stops waiting for it).
    fn let_go(&self) {
        if self.stream.take().is_some() {
            self.live.set(false);
            self.post_live(false);
        }
        if let Some(resolve) = self.release.take() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
        if let Some(abort) = self.pending.take() {
            abort.abort();
        }
    }

    fn heard(&self, ev: &Event) {
        match ev.type_().as_str() {
            "freeze" => return self.let_go(),
            "resume" => return self.ask(),
            _ => {}
        }
        let data = ev.unchecked_ref::<web_sys::MessageEvent>().data();
        let Some(text) = data.as_string() else {
            return;
        };
        let holding = self.stream.borrow().is_some();
        if holding {
            if text == HELLO {
                self.post_live(self.live.get());
                if let Some(report) = self.last.borrow().as_deref() {
                    self.post_report(report);
                }
            }
        } else if let Some(open) = text.strip_prefix(LIVE) {
            (self.on_live)(open == "1");
        } else if let Some(json) = text.strip_prefix(REPORT) {
            // Another tab's report is checked like the node's own.
            if let Some(report) = super::json::report(json) {
                (self.on_report)(report, json);
            }
        }
    }

    fn post_live(&self, open: bool) {
        self.post(if open { "live:1" } else { "live:0" });
    }

    fn post_report(&self, json: &str) {
        self.post(&[REPORT, json].concat());
    }

    fn post(&self, text: &str) {
        let _ = self.channel.post_message(&JsValue::from_str(text));
    }
}

impl Drop for BrowserStream {
    fn drop(&mut self) {
        if let Self::Shared(shared) = self {
            shared.stopped.set(true);
            shared.let_go();
            shared.listen(false);
            shared.channel.close();
        }
    }
}
