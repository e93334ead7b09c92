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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/customers", get(handlers::list).post(handlers::create))
        .route("/customers/{id}", get(handlers::get).put(handlers::replace).delete(handlers::delete))
        .route("/token", get(token::show))
        .route("/events", get(events::list))
        .route("/events/{id}", get(events::get))
        .route("/webhook_endpoints", get(webhook_endpoints::list).post(webhook_endpoints::create))
        .route("/webhook_endpoints/{id}", get(webhook_endpoints::get).delete(webhook_endpoints::delete))
}
