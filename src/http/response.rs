//! JSON responses, as every route writes them.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

/// The headers a JSON response is made with room for: its own, the rate-limit
/// headers (five), the request id and a few more.
const RESPONSE_HEADERS: usize = 12;

/// A JSON response with a status and optional extra headers.
pub fn json_response(
    status: StatusCode,
    body: Vec<u8>,
    headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let map = response.headers_mut();
    // Room for what the way out adds (five rate-limit headers, the request id, the
    // length): growing a header map on the way rehashes every header already in it.
    *map = HeaderMap::with_capacity(RESPONSE_HEADERS);
    map.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        map.insert(name, value);
    }
    response
}

/// A value as JSON bytes. The wire types are plain structs of strings and
/// numbers, whose serialisation cannot fail.
pub fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Room for one customer, so most bodies are written without growing.
    let mut body = Vec::with_capacity(512);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => body,
        Err(_) => Vec::new(),
    }
}

/// The `Link` header of a cursor-paged list (API.md §3, "v2 representation";
/// §8 for events): `<PATH?limit=N&starting_after=LAST[&NAME=VALUE]>; rel="next"`
/// (RFC 8288) when the page `has_more`, none otherwise. `filter` is the
/// list's one optional filter, carried to the next page.
pub fn next_page_link(
    path: &str,
    limit: u32,
    has_more: bool,
    last_id: Option<&str>,
    filter: Option<(&str, &str)>,
) -> Option<(HeaderName, HeaderValue)> {
    let last_id = last_id.filter(|_| has_more)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &limit.to_string()).append_pair("starting_after", last_id);
    if let Some((name, value)) = filter {
        query.append_pair(name, value);
    }
    let link = format!("<{path}?{}>; rel=\"next\"", query.finish());
    Some((header::LINK, HeaderValue::from_str(&link).unwrap_or_else(|_| HeaderValue::from_static(""))))
}
