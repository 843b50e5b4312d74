//! The reference node: version-observer's own Leptos app served by one
//! process, built only on the `version-observer` crate's public API.
//!
//! - [`config`] — flags and environment, validated at start-up;
//! - [`http`] — the router (the observer's routes, the page, the site files);
//! - [`limits`] — the open-files limit, and the streams it allows;
//! - [`application`] — start-up, serving, graceful shutdown;
//! - [`telemetry`] — logs;
//! - [`tools`] — `wait` and `status`: the cluster watched from outside.

pub mod application;
pub mod config;
pub mod http;
pub mod limits;
pub mod telemetry;
pub mod tools;

pub use application::{Application, StartupError};
pub use config::Config;
