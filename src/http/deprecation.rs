//! The headers of a deprecated version (API.md §6): `Deprecation: @<unix
//! seconds>` (RFC 9745), `Sunset: <HTTP-date>` (RFC 8594) when announced, and
//! `Link: </docs>; rel="deprecation"`, on every response of that version,
//! errors included.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::lifecycle::Deprecation;

/// Where a deprecated version's `Link` header points: the docs page.
pub const DEPRECATION_LINK: &str = "</docs>; rel=\"deprecation\"";

/// The headers one deprecated version adds, made once when the router is built.
#[derive(Clone)]
pub struct DeprecationHeaders(Arc<Vec<(HeaderName, HeaderValue)>>);

impl DeprecationHeaders {
    /// `Deprecation`, `Sunset` (when announced) and the `Link` to the docs, for one version.
    pub fn new(deprecation: &Deprecation) -> Self {
        let mut headers = vec![(HeaderName::from_static("deprecation"), value(&deprecation.deprecation_header()))];
        if let Some(sunset) = deprecation.sunset_header() {
            headers.push((HeaderName::from_static("sunset"), value(&sunset)));
        }
        headers.push((header::LINK, HeaderValue::from_static(DEPRECATION_LINK)));
        Self(Arc::new(headers))
    }
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The layer in front of a deprecated version. A `Link` the handler set (a
/// page's `rel="next"`) is kept: the deprecation link is appended beside it.
pub async fn add_headers(State(headers): State<DeprecationHeaders>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let map = response.headers_mut();
    for (name, value) in headers.0.iter() {
        map.append(name.clone(), value.clone());
    }
    response
}
