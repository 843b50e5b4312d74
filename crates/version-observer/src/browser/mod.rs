//! The browser side (feature `hydrate`): the event stream behind the hook,
//! shared by the tabs of one browser.

pub(crate) mod shared;
pub(crate) mod stream;
