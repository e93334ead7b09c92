//! CORS (API.md §1) from `--cors-origin`: tower-http's CORS layer, in front of
//! authentication so that browsers can also read a `401` or a `429`. Without
//! `--cors-origin` the layer is not installed and no CORS header is sent.
//!
//! tower-http answers every `OPTIONS` request itself, with `200` and no
//! `Allow`; the contract wants the route's `204` with `Allow` (and `404` for an
//! unknown route). So an `OPTIONS` request goes on to the router (see
//! [`super::options`]) and gets the preflight headers tower-http computes for it.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower::{Layer, ServiceExt, service_fn};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsOrigin;

/// Request headers a browser may send cross-origin (`Access-Control-Allow-Headers`).
pub const ALLOWED_HEADERS: [HeaderName; 6] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("idempotency-key"),
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    HeaderName::from_static("x-request-id"),
];

/// Response headers a browser script may read (`Access-Control-Expose-Headers`).
pub const EXPOSED_HEADERS: [HeaderName; 10] = [
    header::ETAG,
    header::LOCATION,
    header::RETRY_AFTER,
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("idempotent-replayed"),
    HeaderName::from_static("x-ratelimit-limit"),
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("x-ratelimit-reset"),
    HeaderName::from_static("ratelimit"),
    HeaderName::from_static("ratelimit-policy"),
];

pub const ALLOWED_METHODS: [Method; 6] =
    [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS];

/// How long a browser may cache a preflight's answer (`Access-Control-Max-Age`).
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// The CORS layer for these origins; `None` without any (no CORS at all).
pub fn layer(origins: &[CorsOrigin]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.contains(&CorsOrigin::Any) {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|origin| match origin {
            CorsOrigin::Origin(value) => Some(value.clone()),
            CorsOrigin::Any => None,
        }))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods(ALLOWED_METHODS)
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers(EXPOSED_HEADERS)
            .max_age(MAX_AGE),
    )
}

/// The middleware: tower-http's CORS for every request; for `OPTIONS`, its
/// preflight headers on the router's own answer.
pub async fn apply(State(cors): State<CorsLayer>, request: Request, next: Next) -> Response {
    if request.method() != Method::OPTIONS {
        let Ok(response) = cors.layer(next).oneshot(request).await;
        return response;
    }
    let mut probe = Request::new(Body::empty());
    *probe.method_mut() = Method::OPTIONS;
    *probe.uri_mut() = request.uri().clone();
    *probe.headers_mut() = request.headers().clone();
    // tower-http answers an OPTIONS request without calling the service it wraps.
    let unused = service_fn(|_: Request| async { Ok::<_, Infallible>(Response::new(Body::empty())) });
    let Ok(preflight) = cors.layer(unused).oneshot(probe).await;
    let mut response = next.run(request).await;
    response.headers_mut().extend(preflight.into_parts().0.headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origins() {
        assert_eq!("*".parse::<CorsOrigin>(), Ok(CorsOrigin::Any));
        let exact = |value: &str| Ok(CorsOrigin::Origin(HeaderValue::from_str(value).unwrap()));
        assert_eq!("https://app.example.com".parse::<CorsOrigin>(), exact("https://app.example.com"));
        assert_eq!("HTTP://LocalHost:3000".parse::<CorsOrigin>(), exact("http://localhost:3000"));
        for invalid in
            ["", "app.example.com", "https://app.example.com/", "https://a.example/x", "https://u@a.example", "**"]
        {
            assert!(invalid.parse::<CorsOrigin>().is_err(), "{invalid:?} is refused");
        }
    }
}
