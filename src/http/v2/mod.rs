//! API version 2: the full model (address, metadata, RFC 3339 times, version),
//! ETags and conditional writes, cursor paging, `GET /v2/token`, events and
//! webhook endpoints (API.md §8).

pub mod events;
pub(crate) mod handlers;
pub(crate) mod token;
pub mod webhook_endpoints;
pub(crate) mod wire;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

/// The routes of `/v2`, by their full paths (the router adds authentication and the
/// catch-all for unknown paths under `/v2`: [`super::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/customers", get(handlers::list).post(handlers::create))
        .route("/v2/customers/{id}", get(handlers::get).put(handlers::replace).delete(handlers::delete))
        .route("/v2/token", get(token::show))
        .route("/v2/events", get(events::list))
        .route("/v2/events/{id}", get(events::get))
        .route("/v2/webhook_endpoints", get(webhook_endpoints::list).post(webhook_endpoints::create))
        .route("/v2/webhook_endpoints/{id}", get(webhook_endpoints::get).delete(webhook_endpoints::delete))
}
