//! The request deadline (`serve --request-timeout`): a request still running
//! then is answered `503 service_unavailable` with `Retry-After`, and its
//! database work has been stopped before (see [`crate::deadline`]).
//!
//! Two layers share one pair of [`Deadlines`]: [`limit`], around every route,
//! sets them for the request's task and answers for a request stuck before
//! authentication; [`answer_in_time`], inside the authentication layer of
//! `/v1` and `/v2`, answers for a request stuck in its handler, so that 503
//! still gets its rate-limit headers. The inner one wins when both expire.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::error::ApiError;
use crate::app::AppState;
use crate::deadline::{self, Deadlines};

/// The outer layer answers this much after the inner one, so the inner one,
/// which knows the caller's rate limit, answers when both could.
const OUTER_GRACE: Duration = Duration::from_millis(5);

/// Sets the request's deadlines and answers 503 when the request outlives them.
pub async fn limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let budget = state.config.budget();
    let deadlines = Deadlines::starting_now(budget);
    request.extensions_mut().insert(deadlines);
    request.extensions_mut().insert(RequestTimeout(budget.request()));
    let answer_by = Instant::from_std(deadlines.answer) + OUTER_GRACE;
    match tokio::time::timeout_at(answer_by, deadline::scope(deadlines, next.run(request))).await {
        Ok(response) => response,
        Err(_) => too_late(budget.request()),
    }
}

/// Answers 503 at the request's answer deadline, inside authentication.
pub async fn answer_in_time(request: Request, next: Next) -> Response {
    let Some(deadlines) = request.extensions().get::<Deadlines>().copied() else {
        return next.run(request).await;
    };
    let timeout = request.extensions().get::<RequestTimeout>().map_or(Duration::ZERO, |timeout| timeout.0);
    match tokio::time::timeout_at(Instant::from_std(deadlines.answer), next.run(request)).await {
        Ok(response) => response,
        Err(_) => too_late(timeout),
    }
}

/// The request timeout, for the inner layer's message.
#[derive(Debug, Clone, Copy)]
struct RequestTimeout(Duration);

fn too_late(timeout: Duration) -> Response {
    tracing::warn!(timeout_ms = timeout.as_millis() as u64, "a request reached its deadline: answered 503");
    let mut error = ApiError::unavailable();
    error.message =
        format!("the request did not complete within {} s; nothing was changed, retry shortly", timeout.as_secs_f64())
            .into();
    error.into_response()
}
