//! Clientele: a customer-records REST API server.
//!
//! Dependencies point one way, from the outside in:
//!
//! ```text
//! main / cli ─> server ─> http ─> app (state, upkeep), auth, idempotency
//!                                   ─> domain (types that hold only valid values)
//!                                   ─> storage::Store (trait) ─> storage::sqlite | storage::postgres
//! ```
//!
//! Nothing below `http` knows axum; no module imports one that imports it
//! (`scripts/module-cycles.py` checks).
//!
//! * [`http`] is the HTTP layer. [`http::edge`] gives every request its
//!   `X-Request-Id` and a tracing span, turns panics into a JSON 500, renders
//!   every error in the envelope of API.md §4 (codes: [`http::error::ErrorCode`],
//!   the only place one exists), counts it in [`metrics`] and logs it once.
//!   [`http::auth`] authenticates, rate-limits ([`ratelimit`]) and checks scope.
//!   [`http::v1`] and [`http::v2`] hold each version's wire types, which both
//!   parse requests ([`http::wire`], with deserr) and are the OpenAPI schemas
//!   ([`http::documents`] assembles the documents from them).
//! * [`app`] is the application state and its background upkeep; [`auth`]
//!   turns a token into a [`auth::Principal`] and limits failed attempts;
//!   [`idempotency`] fingerprints requests and tracks keys in flight.
//! * [`domain`] has no HTTP and no SQL: customers, accounts, tokens, ids.
//! * [`storage::sqlite`] keeps reads on dedicated threads and funnels writes to
//!   one writer thread that commits concurrent requests together;
//!   [`storage::postgres`] serves the same trait from PostgreSQL (sqlx), for
//!   many instances sharing one database.
//! * [`lifecycle`] holds when a version is deprecated and ends (`--deprecate`,
//!   `--sunset`); [`http::deprecation`] puts it on that version's responses.
//! * [`cli`] is the operator's interface: `serve`, `accounts`, `tokens`;
//!   [`admin`] holds the operator actions it shares with the tests.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod idempotency;
pub mod lifecycle;
pub mod metrics;
pub mod ratelimit;
pub mod server;
pub mod storage;
