//! When a stale page reloads by itself: the reload strategies, the
//! unsaved-input guard and the loop guard, as plain data and functions (the
//! browser glue passes in what it sees and the time, and does what
//! [`AutoReload::poll`] says).
//!
//! - A [`ReloadStrategy`] says what may happen without the user: nothing
//!   (`prompt`, the default: the banner asks), a reload while the tab is
//!   hidden (`when_hidden`), or a reload after a visible, cancellable
//!   countdown (`immediate`, for every update or only for required ones).
//! - Nothing automatic happens while the page has unsaved input.
//! - The [`LoopGuard`] allows at most a few automatic reloads per target
//!   version within a window (it is kept across reloads, in the tab's
//!   `sessionStorage`): a reload that lands on an old node again (a load
//!   balancer still sending some requests there) does not retry in a loop;
//!   the banner shows instead.
//!
//! ```
//! use version_observer_core::reload::{Action, AutoReload, LoopGuard, PageState, ReloadStrategy};
//! use std::time::Duration;
//! let target = semver::Version::new(2, 0, 0);
//! let mut auto = AutoReload::new(ReloadStrategy::default().when_hidden());
//! let guard = LoopGuard::default();
//! let visible = PageState { target: Some(&target), required: false, hidden: false, dirty: false };
//! assert_eq!(auto.poll(&visible, &guard, 0.0), Action::Prompt);
//! let hidden = PageState { hidden: true, ..visible };
//! assert_eq!(auto.poll(&hidden, &guard, 10.0), Action::Reload);
//! // With unsaved input, the banner asks instead.
//! let dirty = PageState { dirty: true, ..hidden };
//! assert_eq!(auto.poll(&dirty, &guard, 20.0), Action::Prompt);
//! ```

use semver::Version;
use std::time::Duration;

/// Which updates reload after a countdown, without a click.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Immediate {
    /// None: the banner asks (the default).
    #[default]
    Never,
    /// Required updates only (see the release's severity and minimum
    /// supported version); optional ones ask.
    WhenRequired,
    /// Every update.
    Always,
}

/// What a stale page may do without the user. The banner is always shown;
/// these add automatic reloads to it.
///
/// ```
/// use std::time::Duration;
/// use version_observer_core::reload::ReloadStrategy;
/// // Reload in the background when the user is away; count down 30 s when
/// // the update is required.
/// let strategy = ReloadStrategy::default()
///     .when_hidden()
///     .immediate_when_required(Duration::from_secs(30));
/// assert!(strategy.reloads_when_hidden());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadStrategy {
    when_hidden: bool,
    immediate: Immediate,
    countdown: Duration,
    max_automatic: u32,
    window: Duration,
}

impl Default for ReloadStrategy {
    fn default() -> Self {
        Self {
            when_hidden: false,
            immediate: Immediate::Never,
            countdown: Self::DEFAULT_COUNTDOWN,
            max_automatic: LoopGuard::DEFAULT_MAX,
            window: LoopGuard::DEFAULT_WINDOW,
        }
    }
}

impl ReloadStrategy {
    /// The countdown of `immediate` unless given.
    pub const DEFAULT_COUNTDOWN: Duration = crate::timing::reload::COUNTDOWN;

    /// `prompt`: the banner with its Reload button, nothing automatic (the
    /// default).
    ///
    /// ```
    /// use version_observer_core::reload::ReloadStrategy;
    /// assert_eq!(ReloadStrategy::prompt(), ReloadStrategy::default());
    /// ```
    pub fn prompt() -> Self {
        Self::default()
    }

    /// `when-hidden`: reload while the tab is hidden (and has no unsaved
    /// input), so the user comes back to the new version.
    ///
    /// ```
    /// use version_observer_core::reload::ReloadStrategy;
    /// assert!(ReloadStrategy::default().when_hidden().reloads_when_hidden());
    /// ```
    pub fn when_hidden(mut self) -> Self {
        self.when_hidden = true;
        self
    }

    /// `immediate`: every update reloads after a visible countdown the user
    /// can cancel.
    ///
    /// ```
    /// use std::time::Duration;
    /// use version_observer_core::reload::{Immediate, ReloadStrategy};
    /// let s = ReloadStrategy::default().immediate(Duration::from_secs(5));
    /// assert_eq!(s.immediate_mode(), Immediate::Always);
    /// ```
    pub fn immediate(mut self, countdown: Duration) -> Self {
        self.immediate = Immediate::Always;
        self.countdown = countdown;
        self
    }

    /// `immediate` for required updates only; optional ones ask.
    ///
    /// ```
    /// use std::time::Duration;
    /// use version_observer_core::reload::{Immediate, ReloadStrategy};
    /// let s = ReloadStrategy::default().immediate_when_required(Duration::from_secs(30));
    /// assert_eq!(s.immediate_mode(), Immediate::WhenRequired);
    /// ```
    pub fn immediate_when_required(mut self, countdown: Duration) -> Self {
        self.immediate = Immediate::WhenRequired;
        self.countdown = countdown;
        self
    }

    /// The loop guard: at most `max` automatic reloads per target version
    /// within `window` [default: 2 within 5 minutes]. `max = 0` turns
    /// automatic reloads off.
    ///
    /// ```
    /// use std::time::Duration;
    /// use version_observer_core::reload::ReloadStrategy;
    /// let s = ReloadStrategy::default().when_hidden().loop_guard(1, Duration::from_secs(600));
    /// assert_eq!(s.max_automatic_reloads(), 1);
    /// ```
    pub fn loop_guard(mut self, max: u32, window: Duration) -> Self {
        self.max_automatic = max;
        self.window = window;
        self
    }

    /// Whether a hidden tab reloads.
    pub fn reloads_when_hidden(&self) -> bool {
        self.when_hidden
    }

    /// Which updates count down.
    pub fn immediate_mode(&self) -> Immediate {
        self.immediate
    }

    /// The countdown before an `immediate` reload.
    pub fn countdown(&self) -> Duration {
        self.countdown
    }

    /// The loop guard's limit.
    pub fn max_automatic_reloads(&self) -> u32 {
        self.max_automatic
    }

    /// The loop guard's window.
    pub fn loop_window(&self) -> Duration {
        self.window
    }
}

/// What the page is like now, as the browser glue sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageState<'a> {
    /// The version to reload for, once the page is stale.
    pub target: Option<&'a Version>,
    /// Whether the update is required for this page.
    pub required: bool,
    /// Whether the tab is hidden (`document.hidden`).
    pub hidden: bool,
    /// Whether the page has unsaved input.
    pub dirty: bool,
}

/// What the page should do now.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The page is current: no banner.
    Current,
    /// Show the banner and wait for the user.
    Prompt,
    /// Show the banner with a countdown: reload when it runs out (poll again
    /// at the latest then).
    Countdown {
        /// Milliseconds left.
        remaining_ms: f64,
    },
    /// Reload now (the glue records it in the [`LoopGuard`] first).
    Reload,
}

/// Why an automatic reload is not happening, for the banner's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Nothing is holding it (or nothing automatic applies).
    No,
    /// The page has unsaved input.
    UnsavedInput,
    /// The loop guard has used up its reloads for this version.
    LoopGuard,
    /// The user cancelled the countdown.
    Cancelled,
}

/// The automatic-reload state of one page: its strategy, a running
/// countdown, and whether the user cancelled it. Time is passed in
/// (milliseconds, any monotonic origin).
#[derive(Clone, Debug)]
pub struct AutoReload {
    strategy: ReloadStrategy,
    /// The countdown's target and deadline.
    countdown: Option<(Version, f64)>,
    /// The target whose countdown the user cancelled.
    cancelled: Option<Version>,
    held: Held,
}

impl AutoReload {
    /// A page with this strategy.
    pub fn new(strategy: ReloadStrategy) -> Self {
        Self {
            strategy,
            countdown: None,
            cancelled: None,
            held: Held::No,
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> &ReloadStrategy {
        &self.strategy
    }

    /// The user cancelled the countdown: the banner asks from now on, for
    /// this target (a newer target counts down again).
    pub fn cancel(&mut self) {
        if let Some((target, _)) = self.countdown.take() {
            self.cancelled = Some(target);
        }
    }

    /// Why the last [`poll`](Self::poll) did not reload automatically, when
    /// the strategy would have.
    pub fn held(&self) -> Held {
        self.held
    }

    /// What to do now.
    pub fn poll(&mut self, page: &PageState<'_>, guard: &LoopGuard, now_ms: f64) -> Action {
        self.held = Held::No;
        let Some(target) = page.target else {
            self.countdown = None;
            return Action::Current;
        };
        let counts_down = match self.strategy.immediate {
            Immediate::Never => false,
            Immediate::WhenRequired => page.required,
            Immediate::Always => true,
        };
        let hidden_reload = self.strategy.when_hidden && page.hidden;
        let cancelled = self.cancelled.as_ref() == Some(target);
        let count_down = counts_down && !cancelled;
        if !hidden_reload && !count_down {
            self.countdown = None;
            if counts_down {
                self.held = Held::Cancelled;
            }
            return Action::Prompt;
        }
        let blocked = if page.dirty {
            Some(Held::UnsavedInput)
        } else if !guard.allows(target, &self.strategy, now_ms) {
            Some(Held::LoopGuard)
        } else {
            None
        };
        if let Some(reason) = blocked {
            // A blocked countdown starts afresh once the block lifts.
            self.countdown = None;
            self.held = reason;
            return Action::Prompt;
        }
        if hidden_reload {
            return Action::Reload;
        }
        // Counting down (visible, or hidden without `when_hidden`).
        let deadline = match &self.countdown {
            Some((counting, deadline)) if counting == target => *deadline,
            _ => {
                let deadline = now_ms + self.strategy.countdown.as_secs_f64() * 1000.0;
                self.countdown = Some((target.clone(), deadline));
                deadline
            }
        };
        if now_ms >= deadline {
            self.countdown = None;
            Action::Reload
        } else {
            Action::Countdown {
                remaining_ms: deadline - now_ms,
            }
        }
    }
}

/// The automatic reloads this tab made recently, per target version: kept
/// across reloads (the glue stores [`LoopGuard::to_text`] in the tab's
/// `sessionStorage` and reads it back with [`LoopGuard::from_text`]). Times
/// are wall-clock milliseconds (`Date.now()`), which survive a reload.
///
/// ```
/// use version_observer_core::reload::{LoopGuard, ReloadStrategy};
/// let strategy = ReloadStrategy::default().when_hidden();
/// let v2 = semver::Version::new(2, 0, 0);
/// let mut guard = LoopGuard::default();
/// guard.record(&v2, 1_000.0);
/// guard.record(&v2, 2_000.0);
/// assert!(!guard.allows(&v2, &strategy, 3_000.0));
/// // Read back after the reload:
/// let again = LoopGuard::from_text(&guard.to_text());
/// assert!(!again.allows(&v2, &strategy, 3_000.0));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoopGuard {
    reloads: Vec<Reload>,
}

/// One automatic reload: its target, and when (whole milliseconds).
#[derive(Clone, Debug, PartialEq)]
struct Reload {
    target: String,
    at_ms: u64,
}

impl LoopGuard {
    /// Automatic reloads allowed per target version within the window.
    pub const DEFAULT_MAX: u32 = 2;
    /// The loop guard's window.
    pub const DEFAULT_WINDOW: Duration = crate::timing::reload::LOOP_WINDOW;
    /// Entries kept at most (older ones are dropped first).
    const KEEP: usize = 16;

    /// Whether one more automatic reload for `target` is allowed at `now_ms`.
    pub fn allows(&self, target: &Version, strategy: &ReloadStrategy, now_ms: f64) -> bool {
        let since = now_ms - strategy.window.as_secs_f64() * 1000.0;
        let target = target.to_string();
        let recent = self
            .reloads
            .iter()
            .filter(|r| {
                let at = r.at_ms as f64;
                r.target == target && at > since && at <= now_ms
            })
            .count();
        recent < strategy.max_automatic as usize
    }

    /// Records an automatic reload for `target` at `now_ms`.
    pub fn record(&mut self, target: &Version, now_ms: f64) {
        self.reloads.push(Reload {
            target: target.to_string(),
            at_ms: now_ms.max(0.0) as u64,
        });
        let excess = self.reloads.len().saturating_sub(Self::KEEP);
        self.reloads.drain(..excess);
    }

    /// The stored form: one `<target> <milliseconds>` line per reload
    /// (plain text, so the page needs no JSON code for it).
    pub fn to_text(&self) -> String {
        self.reloads
            .iter()
            .map(|r| format!("{} {}\n", r.target, r.at_ms))
            .collect()
    }

    /// Reads the stored form; lines it cannot read (another version's
    /// format, a hand-edited value) are skipped.
    pub fn from_text(text: &str) -> Self {
        let reloads = text
            .lines()
            .filter_map(|line| {
                let (target, at) = line.split_once(' ')?;
                Some(Reload {
                    target: Version::parse(target).ok()?.to_string(),
                    at_ms: at.parse().ok()?,
                })
            })
            .collect();
        let mut guard = Self { reloads };
        let excess = guard.reloads.len().saturating_sub(Self::KEEP);
        guard.reloads.drain(..excess);
        guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn state(target: Option<&Version>) -> PageState<'_> {
        PageState {
            target,
            required: false,
            hidden: false,
            dirty: false,
        }
    }

    #[test]
    fn a_current_page_does_nothing_whatever_the_strategy() {
        let guard = LoopGuard::default();
        for strategy in [
            ReloadStrategy::prompt(),
            ReloadStrategy::prompt().when_hidden(),
            ReloadStrategy::prompt().immediate(Duration::ZERO),
        ] {
            let mut auto = AutoReload::new(strategy);
            for hidden in [false, true] {
                let page = PageState {
                    hidden,
                    ..state(None)
                };
                assert_eq!(auto.poll(&page, &guard, 0.0), Action::Current);
            }
        }
    }

    #[test]
    fn prompt_never_reloads_by_itself() {
        let t = v("2.0.0");
        let guard = LoopGuard::default();
        let mut auto = AutoReload::new(ReloadStrategy::prompt());
        for (hidden, required, dirty) in [
            (false, false, false),
            (true, false, false),
            (true, true, false),
            (false, true, true),
        ] {
            let page = PageState {
                target: Some(&t),
                required,
                hidden,
                dirty,
            };
            assert_eq!(auto.poll(&page, &guard, 1e9), Action::Prompt);
            assert_eq!(auto.held(), Held::No);
        }
    }

    #[test]
    fn when_hidden_reloads_only_while_hidden_and_clean() {
        let t = v("2.0.0");
        let guard = LoopGuard::default();
        let mut auto = AutoReload::new(ReloadStrategy::prompt().when_hidden());
        let visible = state(Some(&t));
        assert_eq!(auto.poll(&visible, &guard, 0.0), Action::Prompt);
        let hidden = PageState {
            hidden: true,
            ..visible
        };
        assert_eq!(auto.poll(&hidden, &guard, 1.0), Action::Reload);
        let dirty = PageState {
            dirty: true,
            ..hidden
        };
        assert_eq!(auto.poll(&dirty, &guard, 2.0), Action::Prompt);
        assert_eq!(auto.held(), Held::UnsavedInput);
    }

    #[test]
    fn immediate_counts_down_then_reloads() {
        let t = v("2.0.0");
        let guard = LoopGuard::default();
        let mut auto = AutoReload::new(ReloadStrategy::prompt().immediate(Duration::from_secs(10)));
        let page = state(Some(&t));
        assert_eq!(
            auto.poll(&page, &guard, 1_000.0),
            Action::Countdown {
                remaining_ms: 10_000.0
            }
        );
        // The deadline is fixed when the countdown starts.
        assert_eq!(
            auto.poll(&page, &guard, 4_000.0),
            Action::Countdown {
                remaining_ms: 7_000.0
            }
        );
        assert_eq!(auto.poll(&page, &guard, 11_000.0), Action::Reload);
    }

    #[test]
    fn a_cancelled_countdown_asks_until_a_newer_target() {
        let (t2, t3) = (v("2.0.0"), v("3.0.0"));
        let guard = LoopGuard::default();
        let mut auto = AutoReload::new(ReloadStrategy::prompt().immediate(Duration::from_secs(10)));
        assert!(matches!(
            auto.poll(&state(Some(&t2)), &guard, 0.0),
            Action::Countdown { .. }
        ));
        auto.cancel();
        assert_eq!(
            auto.poll(&state(Some(&t2)), &guard, 20_000.0),
            Action::Prompt
        );
        assert_eq!(auto.held(), Held::Cancelled);
        assert!(matches!(
            auto.poll(&state(Some(&t3)), &guard, 21_000.0),
            Action::Countdown { .. }
        ));
    }

    #[test]
    fn cancelling_the_countdown_keeps_when_hidden() {
        let t = v("2.0.0");
        let guard = LoopGuard::default();
        let strategy = ReloadStrategy::prompt()
            .when_hidden()
            .immediate(Duration::from_secs(10));
        let mut auto = AutoReload::new(strategy);
        auto.poll(&state(Some(&t)), &guard, 0.0);
        auto.cancel();
        let hidden = PageState {
            hidden: true,
            ..state(Some(&t))
        };
        assert_eq!(auto.poll(&hidden, &guard, 1.0), Action::Reload);
    }

    #[test]
    fn immediate_when_required_asks_for_optional_updates() {
        let t = v("2.0.0");
        let guard = LoopGuard::default();
        let mut auto = AutoReload::new(
            ReloadStrategy::prompt().immediate_when_required(Duration::from_secs(3)),
        );
        assert_eq!(auto.poll(&state(Some(&t)), &guard, 0.0), Action::Prompt);
        let required = PageState {
            required: true,
            ..state(Some(&t))
        };
        assert_eq!(
            auto.poll(&required, &guard, 0.0),
            Action::Countdown {
                remaining_ms: 3_000.0
            }
        );
        assert_eq!(auto.poll(&required, &guard, 3_000.0), Action::Reload);
    }

    #[test]
    fn unsaved_input_stops_a_countdown_which_starts_afresh_once_saved() {
        let t = v("2.0.0");
        let guard = LoopGuard::default();
        let mut auto = AutoReload::new(ReloadStrategy::prompt().immediate(Duration::from_secs(10)));
        auto.poll(&state(Some(&t)), &guard, 0.0);
        let dirty = PageState {
            dirty: true,
            ..state(Some(&t))
        };
        assert_eq!(auto.poll(&dirty, &guard, 9_000.0), Action::Prompt);
        assert_eq!(auto.held(), Held::UnsavedInput);
        assert_eq!(
            auto.poll(&state(Some(&t)), &guard, 20_000.0),
            Action::Countdown {
                remaining_ms: 10_000.0
            }
        );
    }

    #[test]
    fn the_loop_guard_stops_automatic_reloads_for_a_target_within_its_window() {
        let (t2, t3) = (v("2.0.0"), v("3.0.0"));
        let strategy = ReloadStrategy::prompt().when_hidden();
        let mut guard = LoopGuard::default();
        let mut auto = AutoReload::new(strategy.clone());
        let hidden = PageState {
            hidden: true,
            ..state(Some(&t2))
        };
        for at in [0.0, 1_000.0] {
            assert_eq!(auto.poll(&hidden, &guard, at), Action::Reload);
            guard.record(&t2, at);
        }
        assert_eq!(auto.poll(&hidden, &guard, 2_000.0), Action::Prompt);
        assert_eq!(auto.held(), Held::LoopGuard);
        // Another target has its own budget.
        let newer = PageState {
            target: Some(&t3),
            ..hidden
        };
        assert_eq!(auto.poll(&newer, &guard, 2_000.0), Action::Reload);
        // The window passes.
        let later = 1_000.0 + LoopGuard::DEFAULT_WINDOW.as_secs_f64() * 1000.0 + 1.0;
        assert_eq!(auto.poll(&hidden, &guard, later), Action::Reload);
    }

    #[test]
    fn a_zero_loop_guard_turns_automatic_reloads_off() {
        let t = v("2.0.0");
        let strategy = ReloadStrategy::prompt()
            .immediate(Duration::ZERO)
            .loop_guard(0, Duration::from_secs(60));
        let mut auto = AutoReload::new(strategy);
        assert_eq!(
            auto.poll(&state(Some(&t)), &LoopGuard::default(), 0.0),
            Action::Prompt
        );
        assert_eq!(auto.held(), Held::LoopGuard);
    }

    #[test]
    fn the_guard_reads_back_what_it_wrote_and_survives_garbage() {
        let t = v("2.0.0");
        let strategy = ReloadStrategy::prompt();
        let mut guard = LoopGuard::default();
        guard.record(&t, 5.0);
        assert_eq!(LoopGuard::from_text(&guard.to_text()), guard);
        for junk in [
            "",
            "null",
            "{",
            "2.0.0",
            "2.0.0 x",
            "x 5",
            "2.0.0 -1",
            r#"{"reloads":"x"}"#,
        ] {
            assert_eq!(LoopGuard::from_text(junk), LoopGuard::default(), "{junk}");
        }
        // Bounded, whatever was stored.
        let mut big = LoopGuard::default();
        for i in 0..100 {
            big.record(&t, f64::from(i));
        }
        assert_eq!(big.reloads.len(), LoopGuard::KEEP);
        assert!(!big.allows(&t, &strategy, 100.0));
    }

    #[test]
    fn reloads_from_the_future_do_not_count() {
        // A clock set back (or a hand-edited entry) cannot lock the tab out.
        let t = v("2.0.0");
        let strategy = ReloadStrategy::prompt();
        let mut guard = LoopGuard::default();
        guard.record(&t, 1e12);
        guard.record(&t, 1e12);
        assert!(guard.allows(&t, &strategy, 1_000.0));
    }
}
