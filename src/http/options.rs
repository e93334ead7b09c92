//! `OPTIONS` on a route (API.md §1): `204` with the route's `Allow`, without a
//! token and without counting toward any limit (the auth layer lets `OPTIONS`
//! through untouched). The route's methods come from the router itself: a
//! route without an `OPTIONS` handler answers a bare `405`, which [`answer`]
//! turns into the `204`, and axum then adds the route's `Allow` to it (it does
//! so outside every layer, on whatever its method fallback answered). An
//! unknown route stays `404`.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;

use super::error::ApiError;

/// The answer to an `OPTIONS` request, from what the route answered.
pub fn answer(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED || response.extensions().get::<ApiError>().is_some() {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::NO_CONTENT;
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::empty())
}
