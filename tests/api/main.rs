//! Clientele's integration tests, in one binary: one module per area, and one
//! helper module, [`support`], shared by all of them.
//!
//! Most areas drive a real server in-process over HTTP on a random port
//! ([`support::TestApp`]); `cli`, `cluster`, `logging` and `pg_outage` start the
//! built `clientele` binary ([`support::process`]).

mod support;

mod auth;
mod cli;
mod cluster;
mod customers_v1;
mod customers_v2;
mod errors;
mod logging;
mod metrics;
mod openapi;
mod pg_outage;
mod rate_limit;
mod safe_writes;
mod smoke;
mod store_conformance;
mod validation;
