//! The browser side (feature `hydrate`): the event stream behind the hook.

pub(crate) mod stream;
