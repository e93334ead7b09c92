//! The HTTP layer: router, layers, extractors, and the two API versions.

pub mod auth;
pub mod body;
pub mod client_ip;
pub mod compress;
pub mod conditional;
pub mod cors;
pub mod customers;
pub mod docs;
pub mod edge;
pub mod encoding;
pub mod error;
pub mod fields;
pub mod idempotency;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod options;
pub mod query;
pub mod v1;
pub mod v2;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::Redirect;
use axum::routing::get;

use self::error::ApiError;
use crate::app::AppState;

/// Every route, behind the edge layer (then CORS, with `--cors-origin`); `/v1`
/// and `/v2` also behind authentication. The operator's routes (`/healthz`,
/// `/readyz`, `/metrics`) need no token. Response compression wraps this
/// router in [`crate::app::serve`] ([`compress::Compress`]).
pub fn router(state: AppState) -> Router {
    let versioned = |routes: Router<AppState>| {
        routes.fallback(route_not_found).layer(from_fn_with_state(state.clone(), auth::authenticate))
    };
    let router = Router::new()
        .route("/", get(|| async { Redirect::temporary("/docs") }))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        // The documents and the docs page need no token: routed here, outside the auth layer.
        .route("/v1/openapi.json", get(openapi::v1_document))
        .route("/v2/openapi.json", get(openapi::v2_document))
        .merge(docs::routes())
        .nest("/v1", versioned(v1::routes()))
        .nest("/v2", versioned(v2::routes()))
        .fallback(route_not_found);
    let router = match cors::layer(&state.config.cors_origins) {
        Some(cors) => router.layer(from_fn_with_state(cors, cors::apply)),
        None => router,
    };
    router.layer(from_fn_with_state(state.clone(), edge::edge_with_metrics)).with_state(state)
}

async fn route_not_found() -> ApiError {
    ApiError::route_not_found()
}
