//! [`use_version_observer`]: the page's version, the node's live report and
//! whether the page is stale, as signals.
//!
//! In the browser, every caller on a page (this hook, the banner, the reload
//! components) shares one event stream (opened by the first, closed when the
//! last one is cleaned up) and one [`PageKnowledge`](crate::PageKnowledge),
//! held in plain Rust state: so the banner and your own status line always
//! agree, and an announcement, once seen, is never taken back by a node that
//! knows less. The signals here read that state, woken by one trigger it
//! pokes on every change. On the server nothing streams: the signals hold
//! their initial values, which is what the page hydrates with.

use super::PageInfo;
use leptos::prelude::*;
use version_observer_core::{paths, ClusterView, Version, VersionReport};

/// Options of [`use_version_observer_with_options`], and of the components
/// ([`VersionBanner`](crate::VersionBanner),
/// [`ReloadOnNavigation`](crate::ReloadOnNavigation),
/// [`AutomaticReload`](crate::AutomaticReload): their `options` prop).
///
/// Set them once for the whole page by providing them as context at the
/// top of your app (the hook without options and every component without
/// the prop read it there):
///
/// ```
/// use leptos::prelude::*;
/// use version_observer::{UseVersionObserverOptions, VersionBanner};
///
/// #[component]
/// fn App() -> impl IntoView {
///     // The observer's routes are nested under /app on the server.
///     provide_context(UseVersionObserverOptions::default().events_url("/app/api/version/events"));
///     view! { <VersionBanner/> }
/// }
/// ```
///
/// A server that knows them at run time instead (from its configuration)
/// provides them in the context of its Leptos routes, beside
/// [`VersionObserver::context`](crate::VersionObserver::context): the page
/// then carries the events URL to the browser, where every component uses
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseVersionObserverOptions {
    events_url: String,
    wrap_fetch: bool,
}

impl Default for UseVersionObserverOptions {
    fn default() -> Self {
        Self {
            events_url: paths::EVENTS.to_owned(),
            wrap_fetch: true,
        }
    }
}

impl UseVersionObserverOptions {
    /// Where the event stream is served [default: `/api/version/events`,
    /// where [`VersionObserverRoutes`](crate::VersionObserverRoutes) puts it].
    ///
    /// A page has one stream: the first of its callers to run (this hook,
    /// or a [`VersionBanner`](crate::VersionBanner), which uses the default)
    /// opens it on its URL, and the others share it.
    ///
    /// ```
    /// let options = version_observer::UseVersionObserverOptions::default()
    ///     .events_url("/app/api/version/events");
    /// ```
    pub fn events_url(mut self, url: impl Into<String>) -> Self {
        self.events_url = url.into();
        self
    }

    /// Whether the page wraps `window.fetch` [default: `true`]: the browser
    /// half of the request guard. Wrapped, every request the page makes to
    /// its own origin through `fetch` (Leptos server functions included)
    /// carries the page's version in the `x-version-observer-page` header,
    /// so the server's [`request_guard`](crate::VersionObserver::request_guard)
    /// can refuse (or, in a cluster, forward) a request from a page of an
    /// incompatible version, and a `409` it answers makes the page stale at
    /// once. Cross-origin requests are left exactly as they were.
    ///
    /// With `false` nothing is wrapped: the page's requests carry no
    /// header, so the server's guard passes them as it passes any request
    /// without one, and the banner shows when the stream tells. To guard
    /// your own client instead, send the header yourself
    /// (`x-version-observer-page: <page version>`, the version in
    /// [`UseVersionObserverReturn::page`]).
    ///
    /// The first of a page's callers to run decides (it opens the page's
    /// stream): give them all the same options (context does).
    ///
    /// ```
    /// let options = version_observer::UseVersionObserverOptions::default().wrap_fetch(false);
    /// ```
    pub fn wrap_fetch(mut self, wrap: bool) -> Self {
        self.wrap_fetch = wrap;
        self
    }

    pub(crate) fn url(&self) -> &str {
        &self.events_url
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub(crate) fn wraps_fetch(&self) -> bool {
        self.wrap_fetch
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
    /// [`PageKnowledge`](crate::PageKnowledge)); `None` while it is current.
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

/// The version signals of this page: [`use_version_observer_with_options`]
/// with the [`UseVersionObserverOptions`] in context, else the defaults.
///
/// In the browser it wraps `window.fetch` (once per page) so that the
/// page's own requests name its version, the browser half of the request
/// guard; [`UseVersionObserverOptions::wrap_fetch`] turns that off.
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
    let page = super::page(None);
    live::signals(page.options, page.info)
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
    // both sides render the same version (on both sides alike: it is shared
    // data of the page).
    let page = super::page(Some(options));
    live::signals(page.options, page.info)
}

#[cfg(not(feature = "hydrate"))]
mod live {
    use super::*;

    /// On the server (and in native tests): nothing streams; the signals
    /// hold what the page hydrates with.
    pub(super) fn signals(
        _options: UseVersionObserverOptions,
        page: Option<PageInfo>,
    ) -> UseVersionObserverReturn {
        UseVersionObserverReturn {
            page,
            report: Signal::derive(|| None),
            cluster: Signal::derive(|| None),
            connected: Signal::derive(|| false),
            stale: Signal::derive(|| None),
            required: Signal::derive(|| false),
            notes_url: Signal::derive(|| None),
        }
    }
}

#[cfg(feature = "hydrate")]
mod live {
    use super::*;
    use crate::browser::page::{self, State};
    use std::rc::Rc;

    /// Signals over the page's state, all woken by one trigger that the
    /// state pokes on every change: one signal type per value, and no
    /// copy of the state.
    pub(super) fn signals(
        options: UseVersionObserverOptions,
        page: Option<PageInfo>,
    ) -> UseVersionObserverReturn {
        let changed = ArcTrigger::new();
        if let Some(info) = &page {
            let t = changed.clone();
            let joined = send_wrapper::SendWrapper::new(page::join(
                &options,
                &info.version,
                Rc::new(move || t.notify()),
            ));
            on_cleanup(move || drop(joined.take()));
        }
        let read = move |f: fn(&State) -> Value| {
            let changed = changed.clone();
            move || {
                changed.track();
                page::with(f).unwrap_or(Value::None)
            }
        };
        UseVersionObserverReturn {
            page,
            report: Signal::derive(unwrap(read(|s| Value::Report(s.report.clone())))),
            cluster: Signal::derive(unwrap(read(|s| {
                Value::Cluster(s.knowledge.view().cloned())
            }))),
            connected: Signal::derive(unwrap(read(|s| Value::Flag(s.connected)))),
            stale: Signal::derive(unwrap(read(|s| {
                Value::Version(s.knowledge.stale_target().cloned())
            }))),
            required: Signal::derive(unwrap(read(|s| Value::Flag(s.knowledge.required())))),
            notes_url: Signal::derive(unwrap(read(|s| {
                Value::Text(s.knowledge.notes_url().map(str::to_owned))
            }))),
        }
    }

    /// One reader type for every signal (each closure type would be its
    /// own copy of the reading code).
    enum Value {
        None,
        Report(Option<VersionReport>),
        Cluster(Option<ClusterView>),
        Flag(bool),
        Version(Option<Version>),
        Text(Option<String>),
    }

    fn unwrap<T: FromValue>(
        read: impl Fn() -> Value + Send + Sync + 'static,
    ) -> impl Fn() -> T + Send + Sync + 'static {
        move || T::from_value(read())
    }

    trait FromValue {
        fn from_value(value: Value) -> Self;
    }

    macro_rules! from_value {
        ($t:ty, $variant:ident, $default:expr) => {
            impl FromValue for $t {
                fn from_value(value: Value) -> Self {
                    match value {
                        Value::$variant(v) => v,
                        _ => $default,
                    }
                }
            }
        };
    }
    from_value!(Option<VersionReport>, Report, None);
    from_value!(Option<ClusterView>, Cluster, None);
    from_value!(bool, Flag, false);
    from_value!(Option<Version>, Version, None);
    from_value!(Option<String>, Text, None);
}
