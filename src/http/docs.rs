//! `GET /docs`: Swagger UI over both documents, with a version picker and
//! "Authorize" for a bearer token. Its assets are compiled into the binary
//! (utoipa-swagger-ui's `vendored` feature): nothing is fetched from a CDN.

use axum::Router;
use utoipa_swagger_ui::{Config, SwaggerUi, Url};

/// The docs routes: `/docs` (redirects to `/docs/`) and its assets under `/docs/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let config = Config::new([Url::with_primary("v2", "/v2/openapi.json", true), Url::new("v1", "/v1/openapi.json")])
        .validator_url("none")
        .persist_authorization(true)
        .try_it_out_enabled(true)
        .display_request_duration(true)
        .filter(true);
    SwaggerUi::new("/docs").config(config).into()
}
