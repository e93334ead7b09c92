//! Headers that may appear once (API.md §1): `Authorization`, `Content-Type`,
//! `Idempotency-Key` and `X-Request-Id`. Sent twice, they are an error rather
//! than a guess at which line the client meant (RFC 9110 §5.3: a field that is
//! not a list cannot be combined).

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::error::ApiError;

/// The one value of a single-valued header, `None` when absent; two or more
/// lines are `400` with `param` naming the header as `display_name` spells it.
pub fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    display_name: &'static str,
) -> Result<Option<&'a HeaderValue>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid(display_name, format!("{display_name} must be sent at most once")));
    }
    Ok(first)
}

/// Whether a header was sent on more than one line.
pub fn is_repeated(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers.get_all(name).iter().nth(1).is_some()
}
