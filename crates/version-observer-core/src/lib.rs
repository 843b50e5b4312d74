//! The I/O-free core of version-observer: plain data and functions, shared by
//! the server, the browser and the tools, with no async runtime, no network
//! and no UI framework.
//!
//! - [`affinity`]: version affinity: which member serves a request from a page of another version, and the frames a forwarded request travels in;
//! - [`assets`]: the bundle's content-hashed file names and the cluster's asset store rules (which names are looked up, which versions are pruned);
//! - [`auth`]: authenticating cluster messages with a shared key;
//! - [`compat`]: the compatibility policy (when does a version change break an open page);
//! - [`release`]: release metadata (severity, notes URL, minimum supported version) and its validation;
//! - [`report`]: what a node tells its browsers (`GET /api/version`, the event stream);
//! - [`json`]: reading a report and the request guard's answer in the browser, without serde;
//! - [`banner`]: when an open page is stale, from its own version and the node's view;
//! - [`history`]: open pages by version over time (a rollout's drain curve);
//! - [`paths`]: the HTTP paths a node serves;
//! - [`protocol`]: what nodes say to each other over NATS (subjects, payloads, buckets);
//! - [`cluster`]: the membership view, the lease election, the monitor's
//!   rounds and decisions, and the [`Coordinator`](cluster::Coordinator)
//!   that ties them into one state machine (events and time in, actions out);
//! - [`stream_request`]: recognising a version-stream request from its first bytes;
//! - [`query`]: one query parameter, percent-decoded;
//! - [`skew`]: the request guard's rule and its `409` answer ([`skew::StaleClient`]);
//! - [`reload`]: when a stale page reloads by itself (strategies, unsaved input, the loop guard);
//! - [`status`]: a node's view of its cluster, for operators (`GET /api/cluster`);
//! - [`timing`]: every timing default, in one place.
//!
//! ```
//! use version_observer_core::{banner::stale_page_target, compat::Compat, report::ClusterView};
//! let page = semver::Version::new(1, 4, 0);
//! let view = ClusterView::single_node(&semver::Version::new(2, 0, 0), Compat::Major);
//! assert_eq!(stale_page_target(&page, &view), Some(&semver::Version::new(2, 0, 0)));
//! ```

#![warn(missing_docs, missing_debug_implementations)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod affinity;
pub mod assets;
pub mod auth;
pub mod banner;
pub mod cluster;
pub mod compat;
pub mod history;
pub mod json;
pub mod paths;
pub mod protocol;
pub mod query;
pub mod release;
pub mod reload;
pub mod report;
pub mod skew;
pub mod status;
pub mod stream_request;
pub mod timing;

pub use compat::Compat;
pub use release::{Release, Severity};
pub use report::{ClusterState, ClusterView, Mode, NodeInfo, VersionReport};
pub use semver::Version;
pub use timing::Timings;
