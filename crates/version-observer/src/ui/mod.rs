//! The Leptos side, rendered on the server (`ssr`) and hydrated in the
//! browser (`hydrate`): [`use_version_observer`] for your own UI, and
//! [`VersionBanner`], the default one built on it; [`ReloadOnNavigation`],
//! the `on-navigation` reload strategy; [`use_unsaved_input`] and
//! [`use_kept_signal`], so that no reload loses the user's work.

mod auto;
mod banner;
mod hook;
mod kept;
mod navigation;
mod unsaved;

pub use banner::{BannerTexts, VersionBanner};
pub use hook::{
    use_version_observer, use_version_observer_with_options, UseVersionObserverOptions,
    UseVersionObserverReturn,
};
pub use kept::use_kept_signal;
pub use navigation::ReloadOnNavigation;
pub use unsaved::{use_unsaved_input, UnsavedInput};

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

/// Reloads the page (a full load of the current URL), in the browser; does
/// nothing on the server.
pub fn reload_page() {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}
