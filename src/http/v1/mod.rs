//! API version 1: the narrow view (`name`, `email`, `phone`, Unix-second times) and offset paging.

pub(crate) mod handlers;
pub(crate) mod wire;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/customers", get(handlers::list).post(handlers::create))
        .route("/customers/{id}", get(handlers::get).put(handlers::replace).delete(handlers::delete))
}
