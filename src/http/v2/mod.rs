//! API version 2: the full model (address, metadata, RFC 3339 times, version),
//! ETags and conditional writes, cursor paging, and `GET /v2/token`.

pub(crate) mod handlers;
pub(crate) mod token;
pub(crate) mod wire;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/customers", get(handlers::list).post(handlers::create))
        .route("/customers/{id}", get(handlers::get).put(handlers::replace).delete(handlers::delete))
        .route("/token", get(token::show))
}
