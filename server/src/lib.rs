//! version-observer: a cluster of identical web nodes that tell their open
//! browser tabs when the cluster has settled on an incompatible version.
//!
//! - [`config`]: flags and environment, validated at start-up.
//! - [`hub`]: the node's current version report, fanned out to every stream.
//! - [`http`]: the page (Leptos SSR), the JSON API and the SSE stream.
//! - [`application`]: wiring, start-up and graceful shutdown.

pub mod application;
pub mod cluster;
pub mod config;
pub mod http;
pub mod hub;
pub mod shutdown;
pub mod telemetry;

pub use application::{Application, StartupError};
pub use config::Config;
