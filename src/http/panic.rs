//! Panics in a handler (or in any layer inside the edge): a panic is a bug,
//! and still answers with a logged JSON `500`
//! ([`super::error::ErrorCode::InternalError`]), never a dropped connection.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;

use super::error::ApiError;

/// Runs `route` (the rest of the stack, for the request to `uri`); a panic
/// becomes a logged 500 ([`super::error::ErrorCode::InternalError`]). Also used inside the
/// auth layer, so a panic's 500 still gets its rate-limit headers.
pub async fn catching_panics<F>(uri: &Uri, route: F) -> Response
where
    F: Future<Output = Result<Response, Infallible>>,
{
    match AssertUnwindSafe(route).catch_unwind().await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(panic) => {
            ApiError::internal(format_args!("a handler panicked on {uri}: {}", panic_message(&panic))).into_response()
        }
    }
}

fn panic_message(panic: &Box<dyn Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
