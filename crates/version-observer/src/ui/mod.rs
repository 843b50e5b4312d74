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
    /// The form the page carries it in: `<version> <node id>` (neither
    /// has a space).
    #[cfg(not(feature = "hydrate"))]
    fn to_text(&self) -> String {
        format!("{} {}", self.version, self.node_id)
    }

    fn from_text(text: &str) -> Option<Self> {
        let (version, node_id) = text.split_once(' ')?;
        Some(Self {
            node_id: node_id.to_owned(),
            version: version.parse().ok()?,
        })
    }
}

/// This page's [`PageInfo`]: the server's context while it renders,
/// carried into the page and read back while hydrating.
///
/// It creates a `SharedValue` (one id of the page's shared data), so every
/// component that calls it must call it on the server and in the browser
/// alike, or the ids of every later `SharedValue` and `Resource` shift and
/// hydration breaks. It is carried as plain text, not JSON: no reader of its
/// own in the wasm.
pub(crate) fn page_info() -> Option<PageInfo> {
    let text = SharedValue::new_str(|| {
        // Only the server has it (the browser reads the server's).
        #[cfg(not(feature = "hydrate"))]
        return use_context::<PageInfo>()
            .map(|p| p.to_text())
            .unwrap_or_default();
        #[cfg(feature = "hydrate")]
        String::new()
    })
    .into_inner();
    PageInfo::from_text(&text)
}

/// Reloads the page (a full load of the current URL), in the browser; does
/// nothing on the server.
pub fn reload_page() {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}
