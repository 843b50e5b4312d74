//! The browser side (feature `hydrate`): the event stream behind the hook,
//! shared by the tabs of one browser, and the request guard's header.

pub(crate) mod guard;
pub(crate) mod json;
pub(crate) mod page;
pub(crate) mod shared;
pub(crate) mod stream;
