//! API version 1: the narrow view (`name`, `email`, `phone`, Unix-second times) and offset paging.

pub(crate) mod handlers;
pub(crate) mod wire;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

/// The routes of `/v1`, by their full paths (the router adds authentication and the
/// catch-all for unknown paths under `/v1`: [`super::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/customers", get(handlers::list).post(handlers::create))
        .route("/v1/customers/{id}", get(handlers::get).put(handlers::replace).delete(handlers::delete))
}
