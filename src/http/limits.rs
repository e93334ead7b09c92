//! The request-head limits of API.md §1 (target over 8 KiB → `414`, head over
//! 32 KiB → `431`), checked by the application for a head that reached it
//! whole. Most heads are measured as they arrive (`crate::server::head`);
//! this catches the rest, such as one pipelined behind another request.

use axum::extract::Request;

use super::error::{ApiError, ErrorCode};

/// The longest request target accepted, in bytes.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// The largest request head accepted (request line and header lines, with their line ends), in bytes.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Header lines hyper parses at most (its default); more would get its bare `431`.
pub const MAX_HEADER_LINES: usize = 100;

/// The method, spaces, version and line ends around the target and the headers.
const REQUEST_LINE_OVERHEAD: usize = 16;

/// The error for a head over the limits, if it is.
pub fn check(request: &Request) -> Option<ApiError> {
    let uri = request.uri();
    let mut target = uri.path_and_query().map_or(1, |path| path.as_str().len());
    if let Some(authority) = uri.authority() {
        // An absolute-form target (`http://host/path`).
        target += authority.as_str().len() + uri.scheme_str().map_or(0, |scheme| scheme.len() + 3);
    }
    if target > MAX_TARGET_BYTES {
        return Some(ErrorCode::UriTooLong.into());
    }
    let headers: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    (target + REQUEST_LINE_OVERHEAD + headers > MAX_HEAD_BYTES).then(|| ErrorCode::HeadersTooLarge.into())
}
