//! The Leptos side, rendered on the server (`ssr`) and hydrated in the
//! browser (`hydrate`): [`use_version_observer`] for your own UI, and
//! [`VersionBanner`], the default one built on it; [`ReloadOnNavigation`],
//! the `on-navigation` reload strategy; [`AutomaticReload`], the automatic
//! ones; [`use_unsaved_input`] and
//! [`use_kept_signal`], so that no reload loses the user's work.

mod auto;
mod banner;
mod hook;
mod kept;
mod navigation;
mod unsaved;

pub use auto::AutomaticReload;
pub use banner::{BannerTexts, VersionBanner};
pub use hook::{
    use_version_observer, use_version_observer_with_options, UseVersionObserverOptions,
    UseVersionObserverReturn,
};
pub use kept::use_kept_signal;
pub use navigation::ReloadOnNavigation;
pub use unsaved::{use_unsaved_input, UnsavedInput};

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use version_observer_core::Version;

/// What the server knew when it rendered the page: the node and its version.
///
/// The server provides it as context while rendering
/// ([`VersionObserver::context`](crate::VersionObserver::context)); the
/// hook sends it along with the page, so the browser knows which version it
/// runs, whatever version the wasm was built as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    /// The node that rendered the page.
    pub node_id: String,
    /// The version the page was rendered as.
    pub version: Version,
}

impl PageInfo {
    /// The form the page carries it in: `<version> <node id>`, then
    /// ` <events URL> <1 or 0: fetch wrapped>` when the server's context
    /// holds options other than the defaults (none of them has a space).
    #[cfg(not(feature = "hydrate"))]
    fn to_text(&self, options: Option<&UseVersionObserverOptions>) -> String {
        match options.filter(|o| **o != UseVersionObserverOptions::default()) {
            Some(o) => format!(
                "{} {} {} {}",
                self.version,
                self.node_id,
                o.url(),
                u8::from(o.wraps_fetch())
            ),
            None => format!("{} {}", self.version, self.node_id),
        }
    }

    fn from_text(text: &str) -> Option<(Self, Option<UseVersionObserverOptions>)> {
        let mut parts = text.split(' ');
        let (version, node_id) = (parts.next()?, parts.next()?);
        let info = Self {
            node_id: node_id.to_owned(),
            version: version.parse().ok()?,
        };
        let options = match (parts.next(), parts.next()) {
            (Some(url), Some(wrap)) => Some(
                UseVersionObserverOptions::default()
                    .events_url(url)
                    .wrap_fetch(wrap == "1"),
            ),
            _ => None,
        };
        Some((info, options))
    }
}

/// What this page's components join it with: its [`PageInfo`] and the
/// options every one of them uses.
pub(crate) struct Page {
    pub(crate) info: Option<PageInfo>,
    pub(crate) options: UseVersionObserverOptions,
}

/// This page's [`PageInfo`] and the options a component uses: its own
/// (`options`), else the [`UseVersionObserverOptions`] in context, else
/// those in the server's context when it rendered the page, else the
/// defaults.
///
/// Like [`page_info`], call it on both sides alike.
pub(crate) fn page(options: Option<UseVersionObserverOptions>) -> Page {
    let (info, served) = match page_info() {
        Some((info, served)) => (Some(info), served),
        None => (None, None),
    };
    // The context's options are read on the server, which sends them with
    // the page (`served`): the browser has no context lookup of its own.
    #[cfg(not(feature = "hydrate"))]
    let served = served.or_else(use_context::<UseVersionObserverOptions>);
    let options = options.or(served).unwrap_or_default();
    Page { info, options }
}

/// This page's [`PageInfo`]: the server's context while it renders,
/// carried into the page and read back while hydrating.
///
/// It creates a `SharedValue` (one id of the page's shared data), so every
/// component that calls it must call it on the server and in the browser
/// alike, or the ids of every later `SharedValue` and `Resource` shift and
/// hydration breaks. It is carried as plain text, not JSON: no reader of its
/// own in the wasm.
fn page_info() -> Option<(PageInfo, Option<UseVersionObserverOptions>)> {
    let text = SharedValue::new_str(|| {
        // Only the server has it (the browser reads the server's).
        #[cfg(not(feature = "hydrate"))]
        return match use_context::<PageInfo>() {
            Some(info) => info.to_text(use_context::<UseVersionObserverOptions>().as_ref()),
            None => {
                warn_once(&NO_CONTEXT_WARNED);
                String::new()
            }
        };
        #[cfg(feature = "hydrate")]
        String::new()
    })
    .into_inner();
    let read = PageInfo::from_text(&text);
    #[cfg(feature = "hydrate")]
    if read.is_none() {
        warn_once(&NO_CONTEXT_WARNED);
    }
    read
}

/// Whether the page (or, on the server, the process) has said that a page
/// was rendered without the observer's context.
static NO_CONTEXT_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What a page rendered without [`PageInfo`] says, once: in the browser's
/// console, and in the server's log.
pub(crate) const NO_CONTEXT: &str = "version-observer: this page was rendered without observer.context() in leptos_routes_with_context, so its banner never shows (README: Add it to your app)";

/// A warning for the developer: the browser's console, or the server's log.
pub(crate) fn warn(text: &str) {
    #[cfg(feature = "hydrate")]
    web_sys::console::warn_1(&text.into());
    #[cfg(not(feature = "hydrate"))]
    tracing::warn!("{text}");
}

fn warn_once(warned: &std::sync::atomic::AtomicBool) {
    if !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
        warn(NO_CONTEXT);
    }
}

/// Reloads the page (a full load of the current URL), in the browser; does
/// nothing on the server.
pub fn reload_page() {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}

#[cfg(all(test, not(feature = "hydrate")))]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_its_info_and_the_servers_options_as_text() {
        let info = PageInfo {
            node_id: "web-1".into(),
            version: "1.2.3-rc.1+build.5".parse().unwrap(),
        };
        // The defaults are not carried.
        for options in [None, Some(UseVersionObserverOptions::default())] {
            let text = info.to_text(options.as_ref());
            assert_eq!(text, "1.2.3-rc.1+build.5 web-1");
            assert_eq!(PageInfo::from_text(&text), Some((info.clone(), None)));
        }
        for options in [
            UseVersionObserverOptions::default().events_url("/app/api/version/events"),
            UseVersionObserverOptions::default().wrap_fetch(false),
            UseVersionObserverOptions::default()
                .events_url("/vo/api/version/events")
                .wrap_fetch(false),
        ] {
            let text = info.to_text(Some(&options));
            assert_eq!(
                PageInfo::from_text(&text),
                Some((info.clone(), Some(options))),
                "{text}"
            );
        }
        for bad in ["", "1.0.0", "one web-1"] {
            assert_eq!(PageInfo::from_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_components_options_are_its_own_else_the_contexts_else_the_defaults() {
        let prefixed = UseVersionObserverOptions::default().events_url("/app/api/version/events");
        let own = UseVersionObserverOptions::default().wrap_fetch(false);
        Owner::new().with(|| {
            assert_eq!(page(None).options, UseVersionObserverOptions::default());
            provide_context(prefixed.clone());
            assert_eq!(page(None).options, prefixed);
            assert_eq!(page(Some(own.clone())).options, own);
        });
    }
}
