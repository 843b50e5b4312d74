//! What this page knows about versions, held once per page in plain Rust
//! state (no signals): the page's own version, the node's latest report,
//! the page's [`PageKnowledge`] and whether the stream is open. The banner,
//! the hook's signals and the reload components all read it and are told
//! when it changes; the stream and the request guard write it.
//!
//! One entry per events URL (a page has one, or a few): it opens the
//! browser's stream when its first user joins and closes it when the last
//! one leaves.

use super::shared::BrowserStream;
use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};
use version_observer_core::{banner::PageKnowledge, Version, VersionReport};

/// One page's knowledge, for one events URL.
pub struct State {
    /// The page's own version.
    pub page: Version,
    /// What the page learned from every report and refusal.
    pub knowledge: PageKnowledge,
    /// The latest report.
    pub report: Option<VersionReport>,
    /// Whether the stream is open.
    pub connected: bool,
}

type Listener = Rc<dyn Fn()>;

struct Entry {
    url: String,
    state: State,
    listeners: Vec<(u32, Listener)>,
    stream: Option<BrowserStream>,
}

thread_local! {
    /// A list, not a map: a page has one URL, or a few (and a map costs
    /// the page its own hashing code).
    static PAGES: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
}

/// A user's place on a page's entry: dropping it leaves (the last one to
/// leave closes the stream).
pub struct Joined {
    url: String,
    id: u32,
}

/// Joins the entry of `url` for a page of version `page` (opening its
/// stream if it is the first), and calls `on_change` after every change.
pub fn join(url: &str, page: &Version, on_change: Listener) -> Joined {
    let id = NEXT_ID.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    let opened = PAGES.with(|pages| {
        let mut pages = pages.borrow_mut();
        if let Some(entry) = pages.iter_mut().find(|e| e.url == url) {
            entry.listeners.push((id, on_change));
            return false;
        }
        pages.push(Entry {
            url: url.to_owned(),
            state: State {
                page: page.clone(),
                knowledge: PageKnowledge::default(),
                report: None,
                connected: false,
            },
            listeners: vec![(id, on_change)],
            stream: None,
        });
        true
    });
    if opened {
        // The request guard: this page's requests name its version, and a
        // refusal makes it stale at once (every entry: it is one page).
        super::guard::install(page, |answer| {
            changed(None, &mut |state| {
                state.knowledge.refused(&state.page, &answer)
            })
        });
        // The node counts open tabs per page version (its metrics).
        let stream_url = version_observer_core::stream_request::stream_url(url, page);
        let (a, b) = (url.to_owned(), url.to_owned());
        // One stream per browser: the tab holding it shares every report.
        // Opened outside the borrow: it may call back at once.
        let stream = BrowserStream::connect(
            url,
            &stream_url,
            Box::new(move |report: VersionReport, _: &str| {
                let mut report = Some(report);
                changed(Some(&a), &mut |state| {
                    let Some(report) = report.take() else {
                        return false;
                    };
                    state.knowledge.learn(&state.page, report.cluster.clone());
                    state.report = Some(report);
                    true
                })
            }),
            Box::new(move |open| {
                changed(Some(&b), &mut |state| {
                    let before = state.connected;
                    state.connected = open;
                    before != open
                })
            }),
        );
        PAGES.with(|pages| {
            if let Some(entry) = pages.borrow_mut().iter_mut().find(|e| e.url == url) {
                entry.stream = Some(stream);
            }
        });
    }
    Joined {
        url: url.to_owned(),
        id,
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        // Dropped outside the borrow: closing a stream may post to other tabs.
        let closed = PAGES.with(|pages| {
            let mut pages = pages.borrow_mut();
            let at = pages.iter().position(|e| e.url == self.url)?;
            pages[at].listeners.retain(|(id, _)| *id != self.id);
            pages[at]
                .listeners
                .is_empty()
                .then(|| pages.swap_remove(at))
        });
        drop(closed);
    }
}

/// Reads the state of `url`'s entry; `None` before anyone joined it.
pub fn with<R>(url: &str, read: impl FnOnce(&State) -> R) -> Option<R> {
    PAGES.with(|pages| {
        pages
            .borrow()
            .iter()
            .find(|e| e.url == url)
            .map(|e| read(&e.state))
    })
}

/// Applies `update` to the entry of `url` (every entry for `None`), then,
/// if it says something changed, calls their listeners (outside the
/// borrow: they read the state).
fn changed(url: Option<&str>, update: &mut dyn FnMut(&mut State) -> bool) {
    let listeners: Vec<Listener> = PAGES.with(|pages| {
        let mut pages = pages.borrow_mut();
        let mut out = Vec::new();
        for entry in pages.iter_mut().filter(|e| url.is_none_or(|u| u == e.url)) {
            if update(&mut entry.state) {
                out.extend(entry.listeners.iter().map(|(_, l)| l.clone()));
            }
        }
        out
    });
    for listener in listeners {
        listener();
    }
}

/// Calls every listener of every entry (something the state does not
/// hold changed: the tab's visibility, unsaved input, a timer).
pub fn poke() {
    changed(None, &mut |_| true);
}
