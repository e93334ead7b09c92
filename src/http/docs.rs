//! `GET /docs`: Swagger UI over both documents, with a version picker and
//! "Authorize" for a bearer token. Its assets are compiled into the binary
//! (utoipa-swagger-ui's `vendored` feature): nothing is fetched from a CDN.
//! The page is titled for the product (API.md §6), not "Swagger UI".

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use utoipa_swagger_ui::{Config, SwaggerUi, Url};

/// The docs page's title.
pub const TITLE: &str = "Clientele API";

/// The docs routes: `/docs` (redirects to `/docs/`) and its assets under `/docs/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let config = Config::new([Url::with_primary("v2", "/v2/openapi.json", true), Url::new("v1", "/v1/openapi.json")])
        .validator_url("none")
        .persist_authorization(true)
        .try_it_out_enabled(true)
        .display_request_duration(true)
        .filter(true);
    Router::from(SwaggerUi::new("/docs").config(config)).layer(from_fn(retitle))
}

/// Swagger UI's `index.html` says `<title>Swagger UI</title>`: name the product instead.
async fn retitle(request: Request, next: Next) -> Response {
    let is_page = matches!(request.uri().path(), "/docs/" | "/docs/index.html");
    let response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if !is_page || !is_html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let page = String::from_utf8_lossy(&bytes).replace("<title>Swagger UI</title>", &format!("<title>{TITLE}</title>"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(page))
}
