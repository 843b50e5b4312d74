//! What this page knows about versions, held once per page in plain Rust
//! state (no signals): the page's own version, the node's latest report,
//! the page's [`PageKnowledge`] and whether the stream is open. The banner,
//! the hook's signals and the reload components all read it and are told
//! when it changes; the stream and the request guard write it.
//!
//! A page has one stream: the first user to join opens it (on its events
//! URL), the last one to leave closes it.

use super::shared::BrowserStream;
use crate::UseVersionObserverOptions;
use std::{cell::RefCell, rc::Rc};
use version_observer_core::{banner::PageKnowledge, Version, VersionReport};

/// The page's knowledge.
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

struct Page {
    state: State,
    /// Every user's listener (`None` once it left).
    listeners: Vec<Option<Listener>>,
    stream: Option<BrowserStream>,
}

thread_local! {
    static PAGE: RefCell<Option<Page>> = const { RefCell::new(None) };
}

/// A user's place on the page's state: dropping it leaves (the last one to
/// leave closes the stream).
pub struct Joined(usize);

/// Joins the page's state for a page of version `page` (the first to join
/// opens the stream where its `options` say, and wraps `fetch` if they
/// say so), and calls `on_change` after every change.
pub fn join(options: &UseVersionObserverOptions, page: &Version, on_change: Listener) -> Joined {
    let (at, opened) = PAGE.with(|p| {
        let mut p = p.borrow_mut();
        let opened = p.is_none();
        let p = p.get_or_insert_with(|| Page {
            state: State {
                page: page.clone(),
                knowledge: PageKnowledge::default(),
                report: None,
                connected: false,
            },
            listeners: Vec::new(),
            stream: None,
        });

        // A slot a user left, or a new one.
        let at = match p.listeners.iter().position(Option::is_none) {
            Some(at) => at,
            None => {
                p.listeners.push(None);
                p.listeners.len() - 1
            }
        };
        p.listeners[at] = Some(on_change);
        (at, opened)
    });
    let url = options.url();
    if opened && options.wraps_fetch() {
        // The request guard: this page's requests name its version, and a
        // refusal makes it stale at once.
        super::guard::install(page, |answer| {
            changed(&mut |state| state.knowledge.refused(&state.page, &answer))
        });
    }
    if opened {
        // The node counts open tabs per page version (its metrics).
        let stream_url = version_observer_core::stream_request::stream_url(url, page);
        // One stream per browser: the tab holding it shares every report.
        // Opened outside the borrow: it may call back at once.
        let stream = BrowserStream::connect(
            url,
            &stream_url,
            Box::new(|report: VersionReport, _: &str| {
                let mut report = Some(report);
                changed(&mut |state| {
                    let Some(report) = report.take() else {
                        return false;
                    };
                    state.knowledge.learn(&state.page, report.cluster.clone());
                    state.report = Some(report);
                    true
                })
            }),
            Box::new(|open| {
                changed(&mut |state| {
                    let before = state.connected;
                    state.connected = open;
                    before != open
                })
            }),
        );
        PAGE.with(|p| {
            if let Some(p) = p.borrow_mut().as_mut() {
                p.stream = Some(stream);
            }
        });
    }
    Joined(at)
}

impl Drop for Joined {
    fn drop(&mut self) {
        // Dropped outside the borrow: closing a stream may post to other tabs.
        let closed = PAGE.with(|p| {
            let mut p = p.borrow_mut();
            let page = p.as_mut()?;
            page.listeners[self.0] = None;
            page.listeners.iter().all(Option::is_none).then(|| p.take())
        });
        drop(closed);
    }
}

/// Reads the page's state; `None` before anyone joined it.
pub fn with<R>(read: impl FnOnce(&State) -> R) -> Option<R> {
    PAGE.with(|p| p.borrow().as_ref().map(|p| read(&p.state)))
}

/// Applies `update` to the page's state, then, if it says something
/// changed, calls the listeners (outside the borrow: they read the state).
fn changed(update: &mut dyn FnMut(&mut State) -> bool) {
    let listeners: Vec<Listener> = PAGE.with(|p| {
        let mut p = p.borrow_mut();
        let Some(p) = p.as_mut() else {
            return Vec::new();
        };
        if !update(&mut p.state) {
            return Vec::new();
        }
        p.listeners.iter().flatten().cloned().collect()
    });
    for listener in listeners {
        listener();
    }
}

/// Calls every listener (something the state does not hold changed: the
/// tab's visibility, unsaved input, a timer).
pub fn poke() {
    changed(&mut |_| true);
}
