//! Clientele's integration tests, in one binary: one module per area, and one
//! helper module, [`support`], shared by all of them.
//!
//! Most areas drive a real server in-process over HTTP on a random port
//! ([`support::TestApp`]); `cli`, `cli_pipes`, `cluster`, `data_tools`, `deadline`, `logging`,
//! `pg_outage`, `readme`, `secrets`, `version` and part of `token_lifecycle` start the
//! built `clientele` binary ([`support::process`]); `docs` reads the documentation.
//!
//! A test that needs a running PostgreSQL or Redis (or `redis-server` on PATH)
//! has a path segment starting with `needs_postgres` or `needs_redis`: plain
//! `cargo nextest run` reports those as skipped, `cargo nextest run --profile
//! ci` runs them (`.config/nextest.toml`), and they fail when what they need
//! is missing ([`support::service_url`]).

mod support;

mod auth;
mod cli;
mod cli_pipes;
mod cluster;
mod compat;
mod conditional;
mod customer_ids;
mod customers_v1;
mod customers_v2;
mod data_tools;
mod deadline;
mod delivery_leases;
mod docs;
mod edge;
mod errors;
mod event_writes;
mod events;
mod http_semantics;
mod logging;
mod metrics;
mod migrations;
mod openapi;
mod pg_outage;
mod pg_reads;
mod rate_limit;
mod readme;
mod redis_reservations;
mod request_span;
mod safe_writes;
mod secrets;
mod smoke;
mod source_rules;
mod store_conformance;
mod token_lifecycle;
mod token_usage;
mod validation;
mod version;
mod webhooks;
