//! `OPTIONS` on a route (API.md §1): `204` with the route's `Allow`, without a
//! token and without counting toward any limit (the auth layer lets `OPTIONS`
//! through untouched). The route's methods come from the router itself: a
//! route without an `OPTIONS` handler answers `405` with `Allow`, which
//! [`answer`] turns into the `204`. An unknown route stays `404`.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::error::ApiError;

/// The answer to an `OPTIONS` request, from what the router answered.
pub fn answer(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let Some(allow) = response.headers().get(header::ALLOW).and_then(|value| value.to_str().ok()) else {
        return response;
    };
    let allow = match allow.trim() {
        "" => HeaderValue::from_static("OPTIONS"),
        methods => HeaderValue::from_str(&format!("{methods},OPTIONS")).unwrap_or(HeaderValue::from_static("OPTIONS")),
    };
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::NO_CONTENT;
    parts.headers.insert(header::ALLOW, allow);
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.remove::<ApiError>();
    Response::from_parts(parts, Body::empty())
}
