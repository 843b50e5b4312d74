//! [`use_version_observer`]: the page's version, the node's live report and
//! whether the page is stale, as signals.
//!
//! In the browser, every caller on a page shares one event stream (opened by
//! the first, closed when the last one is cleaned up) and one
//! [`PageKnowledge`]: so the banner and your own status line always agree,
//! and an announcement, once seen, is never taken back by a node that knows
//! less. On the server nothing streams: the signals hold their initial
//! values, which is what the page hydrates with.

use super::PageInfo;
use leptos::prelude::*;
use version_observer_core::{banner::PageKnowledge, paths, ClusterView, Version, VersionReport};

/// Options of [`use_version_observer_with_options`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseVersionObserverOptions {
    events_url: String,
}

impl Default for UseVersionObserverOptions {
    fn default() -> Self {
        Self {
            events_url: paths::EVENTS.to_owned(),
        }
    }
}

impl UseVersionObserverOptions {
    /// Where the event stream is served [default: `/api/version/events`,
    /// where [`VersionObserverRoutes`](crate::VersionObserverRoutes) puts it].
    ///
    /// ```
    /// let options = version_observer::UseVersionObserverOptions::default()
    ///     .events_url("/app/api/version/events");
    /// ```
    pub fn events_url(mut self, url: impl Into<String>) -> Self {
        self.events_url = url.into();
        self
    }
}

/// What [`use_version_observer`] returns.
#[derive(Clone, Debug)]
pub struct UseVersionObserverReturn {
    /// The node that rendered this page and its version; `None` if the
    /// server did not provide [`PageInfo`] (see
    /// [`VersionObserver::context`](crate::VersionObserver::context)).
    pub page: Option<PageInfo>,
    /// The node's latest report, as received.
    pub report: Signal<Option<VersionReport>>,
    /// The cluster as this page knows it: the latest report's view, with the
    /// newest announcement seen on any report.
    pub cluster: Signal<Option<ClusterView>>,
    /// Whether the event stream is open.
    pub connected: Signal<bool>,
    /// The version to reload for, once this page is stale (see
    /// [`PageKnowledge`]); `None` while it is current.
    pub stale: Signal<Option<Version>>,
    /// Whether the update this page is stale for is required (the release
    /// says so, or the page is older than its minimum supported version).
    pub required: Signal<bool>,
    /// The release notes of the announced version, if the deploy named them.
    pub notes_url: Signal<Option<String>>,
}

impl UseVersionObserverReturn {
    /// Reloads the page (in the browser).
    pub fn reload(&self) {
        super::reload_page()
    }
}

/// The version signals of this page, from the default event stream.
///
/// ```
/// use leptos::prelude::*;
/// use version_observer::use_version_observer;
///
/// #[component]
/// fn UpdateNotice() -> impl IntoView {
///     let observer = use_version_observer();
///     let page = observer.page.clone();
///     view! {
///         <p>"This page: " {page.map(|p| p.version.to_string())}</p>
///         <Show when=move || observer.stale.get().is_some()>
///             <button on:click=move |_| version_observer::reload_page()>"Update"</button>
///         </Show>
///     }
/// }
/// ```
pub fn use_version_observer() -> UseVersionObserverReturn {
    use_version_observer_with_options(UseVersionObserverOptions::default())
}

/// [`use_version_observer`] with options.
///
/// Like every Leptos hook that reads data the server rendered (a
/// `Resource`, a `SharedValue`), call it the same way on the server and in
/// the browser: never only under `#[cfg(feature = "hydrate")]`, or every
/// resource created after it reads another one's data and the page fails
/// to hydrate.
pub fn use_version_observer_with_options(
    options: UseVersionObserverOptions,
) -> UseVersionObserverReturn {
    // Serialized into the page on the server, read back while hydrating, so
    // both sides render the same version.
    let page = SharedValue::new(use_context::<PageInfo>).into_inner();
    let signals = live::signals(&options.events_url, page.as_ref().map(|p| &p.version));
    let knowledge = signals.knowledge.clone();
    let cluster = Signal::derive(move || knowledge.with(|k| k.view().cloned()));
    let knowledge = signals.knowledge.clone();
    let stale = Signal::derive(move || knowledge.with(|k| k.stale_target().cloned()));
    let knowledge = signals.knowledge.clone();
    let required = Signal::derive(move || knowledge.with(|k| k.required()));
    let knowledge = signals.knowledge;
    let notes_url = Signal::derive(move || knowledge.with(|k| k.notes_url().map(str::to_owned)));
    UseVersionObserverReturn {
        page,
        report: signals.report.into(),
        cluster,
        connected: signals.connected.into(),
        stale,
        required,
        notes_url,
    }
}

/// The signals a page's callers share.
#[derive(Clone)]
struct Signals {
    report: ArcRwSignal<Option<VersionReport>>,
    knowledge: ArcRwSignal<PageKnowledge>,
    connected: ArcRwSignal<bool>,
}

#[cfg(not(feature = "hydrate"))]
mod live {
    use super::*;

    /// On the server (and in native tests): nothing streams.
    pub(super) fn signals(_url: &str, _page: Option<&Version>) -> Signals {
        Signals {
            report: ArcRwSignal::new(None),
            knowledge: ArcRwSignal::new(PageKnowledge::default()),
            connected: ArcRwSignal::new(false),
        }
    }
}

#[cfg(feature = "hydrate")]
mod live {
    use super::*;
    use crate::browser::shared::BrowserStream;
    use std::{cell::RefCell, rc::Rc};

    /// One stream per URL per page, and the signals it feeds.
    struct Live {
        url: String,
        signals: Signals,
        users: usize,
        _stream: BrowserStream,
    }

    thread_local! {
        /// A list, not a map: a page has one URL, or a few (and a map
        /// costs the page its own hashing code).
        static LIVE: RefCell<Vec<Live>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn signals(url: &str, page: Option<&Version>) -> Signals {
        let signals = LIVE.with(|live| {
            let mut live = live.borrow_mut();
            if let Some(existing) = live.iter_mut().find(|l| l.url == url) {
                existing.users += 1;
                return existing.signals.clone();
            }
            let signals = Signals {
                report: ArcRwSignal::new(None),
                knowledge: ArcRwSignal::new(PageKnowledge::default()),
                connected: ArcRwSignal::new(false),
            };
            let (report, knowledge, connected) = (
                signals.report.clone(),
                signals.knowledge.clone(),
                signals.connected.clone(),
            );
            let page = page.cloned();
            // The request guard: this page's requests name its version, and
            // a refusal makes it stale at once.
            if let Some(page) = page.clone() {
                let knowledge = signals.knowledge.clone();
                crate::browser::guard::install(&page.clone(), move |answer| {
                    knowledge.update(|k| {
                        k.refused(&page, &answer);
                    })
                });
            }
            // The node counts open tabs per page version (its metrics).
            let stream_url = match &page {
                Some(page) => version_observer_core::stream_request::stream_url(url, page),
                None => url.to_owned(),
            };
            // One stream per browser: the tab holding it shares every report.
            let stream = BrowserStream::connect(
                url,
                &stream_url,
                move |next: VersionReport| {
                    if let Some(page) = &page {
                        knowledge.update(|k| k.learn(page, next.cluster.clone()));
                    }
                    report.set(Some(next));
                },
                move |open| connected.set(open),
            );
            live.push(Live {
                url: url.to_owned(),
                signals: signals.clone(),
                users: 1,
                _stream: stream,
            });
            signals
        });
        let url = Rc::new(url.to_owned());
        let release = send_wrapper::SendWrapper::new(move || {
            LIVE.with(|live| {
                let mut live = live.borrow_mut();
                if let Some(at) = live.iter().position(|l| l.url == *url) {
                    live[at].users -= 1;
                    if live[at].users == 0 {
                        // Closes the stream.
                        live.swap_remove(at);
                    }
                }
            })
        });
        on_cleanup(move || (release.take())());
        signals
    }
}
