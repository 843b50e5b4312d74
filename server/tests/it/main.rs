//! The reference node's integration tests, in one binary (one link, one
//! build): the real `version-observer` binary's start-up errors, the node's
//! HTTP interface in-process on a free port, and cluster coordination with a
//! real nats-server and real node processes (through the lab), including
//! nats-servers that demand credentials.

mod admin;
mod assets;
mod cluster;
mod http;
mod limits;
mod nats_auth;
mod readme;
mod startup;
mod support;
mod tools;
