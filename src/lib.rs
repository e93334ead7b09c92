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
//! Nothing below `http` uses axum's routing, extractors or middleware (`config`
//! and `metrics` borrow the `http` crate's header and status types); no module
//! imports one that imports it (`scripts/module-cycles.py` checks).
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
//! * [`domain`] has no HTTP and no SQL: customers, accounts, tokens, events,
//!   webhook endpoints, and their typed ids ([`domain::ids`]), parsed once where
//!   they enter, so an account id cannot be passed as a customer id.
//! * Events (API.md §8) are a transactional outbox: each store writes a
//!   customer write's event, and a delivery row per subscribed webhook endpoint,
//!   in the write's transaction (`storage/*/events.rs`, the customer snapshot's
//!   encoding in `storage/snapshot.rs`); [`http::v2::events::render_event`] is
//!   the one JSON of an event; [`app`] prunes events past `--event-retention`;
//!   [`webhooks`] delivers them.
//! * [`storage::sqlite`] keeps reads on dedicated threads and funnels writes to
//!   one writer thread that commits concurrent requests together;
//!   [`storage::postgres`] serves the same trait from PostgreSQL (sqlx), for
//!   many instances sharing one database; its [`storage::postgres::writer`]
//!   commits concurrent creates in one statement. What the two share (row mapping,
//!   metadata encoding, the values a customer is written with) is written once,
//!   in `storage/row.rs`; lists answer a [`storage::Page`].
//! * [`lifecycle`] holds when a version is deprecated and ends (`--deprecate`,
//!   `--sunset`); [`http::deprecation`] puts it on that version's responses.
//! * [`cli`] is the operator's interface: `serve`, `accounts`, `tokens`, `audit`, `backup`, `customers`;
//!   [`admin`] holds the operator actions it shares with the tests.
//! * [`deadline`] bounds every request (`--request-timeout`): the HTTP layer
//!   answers 503 by then ([`http::deadline`]), and the stores stop its
//!   database work before, so a write answered 503 is never applied.
//! * [`usage`] counts requests per token and day in memory; [`app`] adds
//!   them to the store at least once a minute and at shutdown.
//! * [`logging`] installs the log subscriber, whose lines are written by a
//!   thread of their own through a bounded, lossy queue (dropped lines are
//!   counted in [`metrics`]), so no request waits on stderr.
//! * [`secrets`] masks passwords wherever a connection URL is printed.
//!
//! `API.md §N` in comments and docs means section N of `docs/API.md`, the API
//! reference for integrators (a test fails when a cited section does not exist).
//! * [`webhooks`] delivers events to webhook endpoints: the URL and address
//!   policy, Standard Webhooks signatures, the HTTP client, and the worker
//!   that leases due deliveries from the store and records their outcomes.
//! * [`server`] accepts connections and runs hyper on them, with the head,
//!   body and idle timeouts, the connection cap and the shutdown deadline.

pub mod admin;
pub mod api_version;
pub mod app;
pub mod auth;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod http;
pub mod idempotency;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
pub mod secrets;
pub mod server;
pub mod storage;
pub mod usage;
pub mod webhooks;
