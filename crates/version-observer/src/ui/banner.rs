//! [`VersionBanner`]: "a new version is available", with a Reload button.
//!
//! The banner is never part of the server's HTML (a page is current when
//! it is rendered), so it is not a Leptos view: the component renders an
//! empty `<template>` where it stands, and the browser builds the banner
//! right after it, with a few DOM calls, once the page is stale. A view
//! with a branch for every state costs a page more than the rest of the
//! banner together (Leptos compiles its hydration, build and update code
//! for every shape of it).

use leptos::prelude::*;

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
    /// The countdown of [`AutomaticReload`](crate::AutomaticReload); `{seconds}` is
    /// replaced by the seconds left [default: "Reloading in {seconds} s."].
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
/// the deploy gave some, and offers a Reload button. It never reloads by
/// itself; add [`AutomaticReload`](crate::AutomaticReload) for automatic reloads (its
/// countdown and hints then show in this banner).
///
/// It announces itself politely to screen readers (`role="status"`,
/// `aria-live="polite"`) without taking the focus, its controls are plain
/// buttons and a link (keyboard-usable), it has no animation, and every
/// text can be replaced ([`BannerTexts`]).
///
/// Put it anywhere in your app (it shows nothing while the page is
/// current):
///
/// ```
/// use leptos::prelude::*;
/// use version_observer::VersionBanner;
///
/// #[component]
/// fn App() -> impl IntoView {
///     view! {
///         <VersionBanner/>
///         <main>"Your app"</main>
///     }
/// }
/// ```
///
/// Without `class` it carries a small built-in style (a sticky bar at the
/// top); with `class` it carries only your class, for your own CSS. The
/// element is `div.version-observer-banner[data-testid=version-banner]`
/// either way, with `data-state` one of `prompt`, `countdown`, `unsaved`,
/// `reload-failed`, `cancelled` (the last four with
/// [`AutomaticReload`](crate::AutomaticReload)), and `data-required` when the update
/// is required. It is inserted right after the component's place, an empty
/// `<template data-version-observer-banner>` element.
#[component]
pub fn VersionBanner(
    /// Your CSS class for the banner, instead of the built-in style.
    #[prop(optional, into)]
    class: Option<String>,
    /// Every text [default: English].
    #[prop(optional)]
    texts: Option<BannerTexts>,
    /// The text before the version (replaces `texts.message`).
    #[prop(optional, into)]
    message: Option<String>,
    /// The button's label (replaces `texts.reload`).
    #[prop(optional, into)]
    reload_label: Option<String>,
    /// The hook's options (the events URL of routes under a prefix)
    /// [default: those in context, see [`UseVersionObserverOptions`](crate::UseVersionObserverOptions)].
    #[prop(optional)]
    options: Option<crate::UseVersionObserverOptions>,
) -> impl IntoView {
    // On both sides alike (it is shared data of the page).
    let page = super::page(options);
    let mut texts = texts.unwrap_or_default();
    if let Some(message) = message {
        texts.message = message;
    }
    if let Some(label) = reload_label {
        texts.reload = label;
    }
    #[cfg(feature = "hydrate")]
    {
        let anchor = dom::Banner::start(page, class, texts);
        use dom::anchor as version_observer_anchor;
        view! { <template data-version-observer-banner use:version_observer_anchor=anchor></template> }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (page, class, texts);
        view! { <template data-version-observer-banner></template> }
    }
}

#[cfg(feature = "hydrate")]
pub(crate) mod dom {
    use super::*;
    use crate::browser::page;
    use std::{cell::RefCell, rc::Rc};
    use version_observer_core::banner::Staleness;
    use wasm_bindgen::{prelude::Closure, JsCast};
    use web_sys::Element;

    /// The built-in style (without the `class` prop).
    pub(crate) const BANNER_STYLE: &str = "position:sticky;top:0;z-index:1000;display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:1rem;margin:0 0 1rem;padding:.75rem 1rem;border-radius:.5rem;background:#fff4d6;color:#5a4300;box-shadow:0 2px 8px rgb(0 0 0/.08);font-family:system-ui,sans-serif";
    pub(crate) const BUTTON_STYLE: &str = "font:inherit;padding:.4rem 1rem;border:0;border-radius:.35rem;background:#1f5eff;color:#fff;cursor:pointer";
    pub(crate) const SECONDARY_STYLE: &str = "font:inherit;padding:.4rem 1rem;border:1px solid currentColor;border-radius:.35rem;background:transparent;color:inherit;cursor:pointer";

    /// What [`AutomaticReload`](crate::AutomaticReload) adds to every banner: its
    /// hints, countdown and Cancel, before the Reload button, and the
    /// `data-state`. Registered only by that component, so a page without it
    /// carries none of its code.
    pub(crate) type Decorate = fn(&Parts<'_>);

    thread_local! {
        pub(crate) static DECORATE: std::cell::Cell<Option<Decorate>> = const { std::cell::Cell::new(None) };
    }

    /// A shown banner, as a decoration sees it.
    pub(crate) struct Parts<'a> {
        pub root: &'a Element,
        pub reload: &'a Element,
        pub texts: &'a BannerTexts,
        pub styled: bool,
    }

    /// One `<VersionBanner/>`: where it stands, its settings, and its DOM
    /// while it is shown.
    pub(crate) struct Banner {
        anchor: RefCell<Option<Element>>,
        class: Option<String>,
        texts: BannerTexts,
        shown: RefCell<Option<Shown>>,
    }

    struct Shown {
        root: Element,
        version: Element,
        after: Element,
        notes: Option<Element>,
        reload: Element,
        _on_reload: Closure<dyn FnMut()>,
    }

    /// Handed to the `<template>`'s directive.
    pub(crate) type Anchor = Option<Rc<Banner>>;

    /// The directive: the banner goes right after this element.
    pub(crate) fn anchor(el: Element, banner: Anchor) {
        if let Some(banner) = banner {
            banner.anchor.replace(Some(el));
            // Once the element is in the document (a banner built in the
            // browser is mounted after its directive runs).
            queue_microtask(move || banner.render());
        }
    }

    impl Banner {
        /// Joins the page's state (opening its stream), for as long as the
        /// calling component lives; `None` without a page version.
        pub(crate) fn start(
            page: crate::ui::Page,
            class: Option<String>,
            texts: BannerTexts,
        ) -> Anchor {
            let (info, options) = (page.info?, page.options);
            let banner = Rc::new(Banner {
                anchor: RefCell::new(None),
                class,
                texts,
                shown: RefCell::new(None),
            });
            let b = banner.clone();
            let joined = page::join(&options, &info.version, Rc::new(move || b.render()));
            let b = send_wrapper::SendWrapper::new((banner.clone(), joined));
            on_cleanup(move || {
                let (banner, joined) = b.take();
                drop(joined);
                if let Some(shown) = banner.shown.take() {
                    shown.root.remove();
                }
            });
            Some(banner)
        }

        /// Shows, updates or removes the banner as the page's state says.
        fn render(&self) {
            page::with(|s| self.show(s.knowledge.staleness()));
        }

        fn show(&self, stale: Option<&Staleness>) {
            let Some(stale) = stale else {
                if let Some(shown) = self.shown.take() {
                    shown.root.remove();
                }
                return;
            };
            let mut shown = self.shown.borrow_mut();
            if shown.is_none() {
                let Some(anchor) = self.anchor.borrow().clone() else {
                    return;
                };
                *shown = self.build(&anchor);
            }
            let Some(shown) = shown.as_mut() else {
                return;
            };
            let t = &self.texts;
            let required = stale.required();
            shown
                .version
                .set_text_content(Some(&stale.target.to_string()));
            shown
                .after
                .set_text_content(Some(if required { &t.required } else { &t.available }));
            set(&shown.root, "data-required", required.then_some(""));
            // The release notes' link, while the deploy names some.
            let href = stale.notes_url();
            if shown.notes.is_none() && href.is_some() {
                let link = element("a");
                for (k, v) in [
                    ("target", "_blank"),
                    ("rel", "noopener noreferrer"),
                    ("data-testid", "version-notes"),
                ] {
                    set(&link, k, Some(v));
                }
                link.set_text_content(Some(&t.release_notes));
                let _ = shown.root.insert_before(&link, Some(&shown.reload));
                shown.notes = Some(link);
            }
            if let Some(link) = &shown.notes {
                set(link, "href", href);
                if href.is_none() {
                    link.remove();
                    shown.notes = None;
                }
            }
            match DECORATE.with(std::cell::Cell::get) {
                Some(decorate) => decorate(&Parts {
                    root: &shown.root,
                    reload: &shown.reload,
                    texts: t,
                    styled: self.class.is_none(),
                }),
                None => set(&shown.root, "data-state", Some("prompt")),
            }
        }

        /// The banner's elements, inserted after `anchor`.
        fn build(&self, anchor: &Element) -> Option<Shown> {
            let styled = self.class.is_none();
            let root = element("div");
            let class = match &self.class {
                Some(own) => ["version-observer-banner ", own].concat(),
                None => "version-observer-banner".to_owned(),
            };
            for (k, v) in [
                ("class", class.as_str()),
                ("role", "status"),
                ("aria-live", "polite"),
                ("data-testid", "version-banner"),
            ] {
                set(&root, k, Some(v));
            }
            set(&root, "style", styled.then_some(BANNER_STYLE));
            // <span><span>message</span><strong>version</strong><span>after</span></span>
            let message = child(&root, "span");
            child(&message, "span").set_text_content(Some(&self.texts.message));
            let version = child(&message, "strong");
            let after = child(&message, "span");
            let reload = button(&self.texts.reload, styled.then_some(BUTTON_STYLE));
            let _ = root.append_child(&reload);
            let on_reload = Closure::<dyn FnMut()>::new(crate::reload_page);
            let _ = reload
                .add_event_listener_with_callback("click", on_reload.as_ref().unchecked_ref());
            let _ = anchor.after_with_node_1(&root);
            Some(Shown {
                root,
                version,
                after,
                notes: None,
                reload,
                _on_reload: on_reload,
            })
        }
    }

    /// A new element of the document.
    pub(crate) fn element(tag: &str) -> Element {
        document()
            .create_element(tag)
            .expect("an element of a known tag")
    }

    /// A new element, appended to `parent`.
    fn child(parent: &Element, tag: &str) -> Element {
        let el = element(tag);
        let _ = parent.append_child(&el);
        el
    }

    /// A `<button type="button">` with this label and style.
    pub(crate) fn button(label: &str, style: Option<&str>) -> Element {
        let b = element("button");
        set(&b, "type", Some("button"));
        set(&b, "style", style);
        b.set_text_content(Some(label));
        b
    }

    /// Sets (`Some`) or removes (`None`) an attribute.
    pub(crate) fn set(el: &Element, name: &str, value: Option<&str>) {
        let _ = match value {
            Some(value) => el.set_attribute(name, value),
            None => el.remove_attribute(name),
        };
    }
}
