//! Clientele: a customer-records REST API server.
//!
//! Requests flow one way through the layers:
//!
//! ```text
//! HTTP (http::router, http::edge, http::auth, extractors)
//!   -> version edge (http::v1, http::v2: wire types and handlers)
//!     -> domain (plain types that can only hold valid values)
//!       -> storage::Store (trait) -> storage::sqlite | storage::postgres
//! ```
//!
//! * [`http::edge`] gives every response its `X-Request-Id`, turns panics into
//!   a JSON 500, renders every error in the one envelope of API.md §4, counts
//!   the request in [`metrics`] (served at `/metrics`) and logs it once.
//! * [`http::auth`] authenticates the bearer token (cached for a few seconds),
//!   applies the per-token rate limit ([`ratelimit`]) and the scope.
//! * v1 and v2 share the domain and the store; they differ only in their wire
//!   types, converting at the edge.
//! * [`storage::sqlite`] keeps reads on dedicated threads and funnels writes to
//!   one writer thread that commits concurrent requests together.
//! * [`storage::postgres`] serves the same trait from PostgreSQL (sqlx), for
//!   many instances sharing one database.
//! * [`server`] accepts connections and runs hyper on them, with the head,
//!   body and idle timeouts, the connection cap and the shutdown deadline.
//! * [`cli`] is the operator's interface: `serve`, `accounts`, `tokens`.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod server;
pub mod storage;
