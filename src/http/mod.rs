//! The HTTP layer: router, layers, extractors, the OpenAPI documents, and the
//! two API versions. It depends on the application ([`crate::app`],
//! [`crate::auth`], [`crate::idempotency`]), the domain and the store; nothing
//! below it depends on it.

pub mod auth;
pub mod body;
pub mod client_ip;
pub mod compress;
pub mod conditional;
pub mod cors;
pub mod customers;
pub mod deadline;
pub mod deprecation;
pub mod docs;
pub mod documents;
pub mod edge;
pub mod encoding;
pub mod error;
pub mod headers;
pub mod idempotency;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod options;
pub mod panic;
pub mod query;
pub mod response;
pub mod v1;
pub mod v2;
pub mod wire;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::Redirect;
use axum::routing::{any, get};

use self::error::{ApiError, ErrorCode};
use crate::api_version::ApiVersion;
use crate::app::AppState;

/// Every route, behind the edge layer, then CORS (with `--cors-origin`), then
/// the request's deadline ([`deadline::limit`]), `/v1` and `/v2` also behind
/// authentication ([`auth::AuthLayer`], which also answers at the deadline:
/// [`deadline::in_time`]). Without CORS, nothing stands between the three, so
/// the edge layer starts the deadline itself ([`deadline::within_limit`]) and,
/// for `/v1` and `/v2`, authenticates too
/// ([`edge::EdgeLayer::with_metrics_deadline_and_authentication`]): one layer,
/// not three, around every route, and a deprecated version's headers go on
/// from outside it. The operator's routes (`/healthz`, `/readyz`, `/metrics`)
/// need no token. Response compression wraps this router in
/// [`crate::app::serve`] ([`compress::Compress`]).
pub fn router(state: AppState) -> Router {
    let cors = cors::layer(&state.config.cors_origins);
    // A version's routes by their full paths, not nested: a nested router would
    // match every request twice and rebuild its URI without the prefix. Its
    // unknown paths are answered behind authentication too (401 before 404).
    let versioned = |prefix: &'static [&'static str], routes: Router<AppState>| {
        let routes = prefix.iter().fold(routes, |routes, path| routes.route(path, any(no_route)));
        match cors {
            Some(_) => routes.layer(auth::AuthLayer::new(state.clone())),
            None => routes.layer(edge::EdgeLayer::with_metrics_deadline_and_authentication(state.clone())),
        }
    };
    // What needs no token: the documents, the docs page and the operator's routes.
    let open = |routes: Router<AppState>| match cors {
        Some(_) => routes,
        None => routes.layer(edge::EdgeLayer::with_metrics_and_deadline(state.clone())),
    };
    let (v1_routes, v2_routes) = (
        open(Router::new().route("/v1/openapi.json", get(documents::v1_document)))
            .merge(versioned(&V1_UNKNOWN, v1::routes())),
        open(Router::new().route("/v2/openapi.json", get(documents::v2_document)))
            .merge(versioned(&V2_UNKNOWN, v2::routes())),
    );
    let router = open(
        Router::new()
            .route("/", get(|| async { Redirect::temporary("/docs") }))
            .route("/healthz", get(ops::healthz))
            .route("/readyz", get(ops::readyz))
            .route("/metrics", get(ops::metrics))
            .merge(docs::routes())
            .fallback(no_route),
    )
    .merge(deprecated(&state, ApiVersion::V1, v1_routes))
    .merge(deprecated(&state, ApiVersion::V2, v2_routes));
    let router = match cors {
        // The deadline's 503 must pass through CORS, so a browser can read it:
        // with CORS the deadline is a layer of its own, inside it.
        Some(cors) => router
            .layer(from_fn_with_state(state.clone(), deadline::limit))
            .layer(from_fn_with_state(cors, cors::apply))
            .layer(edge::EdgeLayer::with_metrics(state.clone())),
        None => router,
    };
    router.with_state(state)
}

/// A version's routes (its document included), behind the deprecation headers if the operator deprecated it.
fn deprecated(state: &AppState, version: ApiVersion, routes: Router<AppState>) -> Router<AppState> {
    match state.config.deprecations.iter().find(|known| known.version == version) {
        Some(deprecation) => routes
            .layer(from_fn_with_state(deprecation::DeprecationHeaders::new(deprecation), deprecation::add_headers)),
        None => routes,
    }
}

/// The routes that catch the paths under `/v1` no route of v1 matches.
const V1_UNKNOWN: [&str; 2] = ["/v1", "/v1/{*unknown}"];
/// The routes that catch the paths under `/v2` no route of v2 matches.
const V2_UNKNOWN: [&str; 2] = ["/v2", "/v2/{*unknown}"];

/// Whether `route` (a matched route template) is one that catches unknown
/// paths, so metrics and the request log name it as no route.
pub(crate) fn is_unknown_path_route(route: &str) -> bool {
    V1_UNKNOWN.contains(&route) || V2_UNKNOWN.contains(&route)
}

async fn no_route() -> ApiError {
    ErrorCode::RouteNotFound.into()
}
