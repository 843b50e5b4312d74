//! [`VersionBanner`]: "a new version is available", with a Reload button,
//! and the automatic reload strategies.

use super::{auto::use_auto_reload, hook::use_version_observer};
use leptos::prelude::*;
use version_observer_core::reload::{Action, Held, ReloadStrategy};

/// Every text of [`VersionBanner`], to replace (translate) through its
/// `texts` prop. The defaults are English.
///
/// ```
/// use version_observer::BannerTexts;
/// let german = BannerTexts {
///     message: "Eine neue Version, ".into(),
///     available: " ist verfügbar.".into(),
///     reload: "Neu laden".into(),
///     ..BannerTexts::default()
/// };
/// assert_eq!(german.cancel, "Cancel");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BannerTexts {
    /// Before the version [default: "A new version, "].
    pub message: String,
    /// After the version, for an optional update [default: ", is available."].
    pub available: String,
    /// After the version, for a required one [default: ", is required."].
    pub required: String,
    /// The Reload button [default: "Reload"].
    pub reload: String,
    /// The release-notes link [default: "What's new"].
    pub release_notes: String,
    /// The countdown; `{seconds}` is replaced by the seconds left
    /// [default: "Reloading in {seconds} s."].
    pub countdown: String,
    /// The button that stops the countdown [default: "Cancel"].
    pub cancel: String,
    /// Why an automatic reload waits [default: "Save your changes, then reload."].
    pub unsaved: String,
    /// Why automatic reloads stopped: they kept landing on the old version
    /// [default: "Reloading did not reach the new version yet; try again in a moment."].
    pub reload_failed: String,
}

impl Default for BannerTexts {
    fn default() -> Self {
        Self {
            message: "A new version, ".into(),
            available: ", is available.".into(),
            required: ", is required.".into(),
            reload: "Reload".into(),
            release_notes: "What's new".into(),
            countdown: "Reloading in {seconds} s.".into(),
            cancel: "Cancel".into(),
            unsaved: "Save your changes, then reload.".into(),
            reload_failed: "Reloading did not reach the new version yet; try again in a moment."
                .into(),
        }
    }
}

/// The default UI: a banner that appears once this page is stale, names the
/// new version, says whether it is required, links the release notes when
/// the deploy gave some, and offers a Reload button.
///
/// By default (`prompt`) it never reloads by itself. A
/// [`ReloadStrategy`] adds automatic reloads: `when_hidden` (while the tab
/// is hidden) or `immediate` (after a visible countdown with a Cancel
/// button; for every update or only required ones). None of them reloads
/// while the page has unsaved input (see
/// [`use_unsaved_input`](crate::use_unsaved_input)), and a loop guard stops
/// them after 2 reloads per version within 5 minutes (a reload that lands
/// on an old node again); the banner then asks instead.
///
/// It announces itself politely to screen readers (`role="status"`,
/// `aria-live="polite"`) without taking the focus, its controls are plain
/// buttons and a link (keyboard-usable), it has no animation, and every
/// text can be replaced ([`BannerTexts`]).
///
/// Put it anywhere in your app (it renders nothing while the page is
/// current):
///
/// ```
/// use leptos::prelude::*;
/// use std::time::Duration;
/// use version_observer::{ReloadStrategy, VersionBanner};
///
/// #[component]
/// fn App() -> impl IntoView {
///     view! {
///         <VersionBanner strategy=ReloadStrategy::prompt()
///             .when_hidden()
///             .immediate_when_required(Duration::from_secs(30))/>
///         <main>"Your app"</main>
///     }
/// }
/// ```
///
/// Without `class` it carries a small built-in style (a sticky bar at the
/// top); with `class` it carries only your class, for your own CSS. The
/// element is `div.version-observer-banner[data-testid=version-banner]`
/// either way, with `data-state` one of `prompt`, `countdown`, `unsaved`,
/// `reload-failed`, `cancelled`, and `data-required` when the update is
/// required.
#[component]
pub fn VersionBanner(
    /// Your CSS class for the banner, instead of the built-in style.
    #[prop(optional, into)]
    class: Option<String>,
    /// What may happen without a click [default: `ReloadStrategy::prompt()`,
    /// nothing].
    #[prop(optional)]
    strategy: ReloadStrategy,
    /// Every text [default: English].
    #[prop(optional)]
    texts: Option<BannerTexts>,
    /// The text before the version (replaces `texts.message`).
    #[prop(optional, into)]
    message: Option<String>,
    /// The button's label (replaces `texts.reload`).
    #[prop(optional, into)]
    reload_label: Option<String>,
) -> impl IntoView {
    let observer = use_version_observer();
    let styled = class.is_none();
    let class = match class {
        Some(own) => format!("version-observer-banner {own}"),
        None => "version-observer-banner".to_owned(),
    };
    let mut texts = texts.unwrap_or_default();
    if let Some(message) = message {
        texts.message = message;
    }
    if let Some(label) = reload_label {
        texts.reload = label;
    }
    let texts = StoredValue::new(texts);
    let (stale, required, notes_url) = (observer.stale, observer.required, observer.notes_url);
    let auto = use_auto_reload(strategy, stale, required);
    move || {
        let version = stale.get()?;
        let (action, held) = auto.state.get();
        if action == Action::Current {
            return None;
        }
        let required = required.get();
        let state = match (&action, held) {
            (Action::Countdown { .. }, _) => "countdown",
            (_, Held::UnsavedInput) => "unsaved",
            (_, Held::LoopGuard) => "reload-failed",
            (_, Held::Cancelled) => "cancelled",
            _ => "prompt",
        };
        let t = texts.get_value();
        let after = if required {
            t.required.clone()
        } else {
            t.available.clone()
        };
        let notes = notes_url.get().map(|href| {
            view! {
                <a href=href target="_blank" rel="noopener noreferrer" data-testid="version-notes">
                    {t.release_notes.clone()}
                </a>
            }
        });
        let hint = match held {
            Held::UnsavedInput => Some(t.unsaved.clone()),
            Held::LoopGuard => Some(t.reload_failed.clone()),
            _ => None,
        }
        .map(|text| view! { <span class="version-observer-hint">{text}</span> });
        let countdown = match action {
            Action::Countdown { remaining_ms } => {
                let seconds = (remaining_ms / 1000.0).ceil().max(0.0) as u64;
                let text = t.countdown.replace("{seconds}", &seconds.to_string());
                Some(view! {
                    // Not re-read to screen readers every second.
                    <span aria-live="off" data-testid="version-countdown">{text}</span>
                    <button
                        type="button"
                        style=styled.then_some(SECONDARY_STYLE)
                        on:click=move |_| auto.cancel()
                    >
                        {t.cancel.clone()}
                    </button>
                })
            }
            _ => None,
        };
        Some(view! {
            <div
                class=class.clone()
                style=styled.then_some(BANNER_STYLE)
                role="status"
                aria-live="polite"
                data-testid="version-banner"
                data-state=state
                data-required=required.then_some("")
            >
                <span>{t.message.clone()} <strong>{version.to_string()}</strong> {after}</span>
                {notes}
                {hint}
                {countdown}
                <button
                    type="button"
                    style=styled.then_some(BUTTON_STYLE)
                    on:click=move |_| super::reload_page()
                >
                    {t.reload.clone()}
                </button>
            </div>
        })
    }
}

const BANNER_STYLE: &str = "position:sticky;top:0;z-index:1000;display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:1rem;margin:0 0 1rem;padding:.75rem 1rem;border-radius:.5rem;background:#fff4d6;color:#5a4300;box-shadow:0 2px 8px rgb(0 0 0/.08);font-family:system-ui,sans-serif";
const BUTTON_STYLE: &str = "font:inherit;padding:.4rem 1rem;border:0;border-radius:.35rem;background:#1f5eff;color:#fff;cursor:pointer";
const SECONDARY_STYLE: &str = "font:inherit;padding:.4rem 1rem;border:1px solid currentColor;border-radius:.35rem;background:transparent;color:inherit;cursor:pointer";
