//! Health and readiness for load balancers and orchestrators.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::customers::{json_response, to_json};
use super::error::ApiError;
use crate::app::AppState;
use crate::ratelimit::LimiterState;

const READY_TIMEOUT: Duration = Duration::from_secs(2);
pub const REDIS_DOWN: &str = "Redis is not answering: rate limits are counted per instance until it does";

/// The process is up.
pub async fn healthz() -> Response {
    json_response(StatusCode::OK, to_json(&json!({"status": "ok"})), [])
}

/// The database (and Redis, when configured) answer; `503` otherwise. While Redis
/// is down the server still serves, counting limits locally, but reports itself
/// unready, as API.md §7 asks: the 503's message says why.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await;
    if !matches!(database, Ok(Ok(()))) {
        return ApiError::unavailable().into_response();
    }
    state.limiter.check_health().await;
    if state.limiter.state() == LimiterState::RedisDegraded {
        let mut error = ApiError::unavailable();
        error.message = REDIS_DOWN.into();
        return error.into_response();
    }
    let body = json!({"status": "ready", "database": "ok", "rate_limiter": state.limiter.state().as_str()});
    json_response(StatusCode::OK, to_json(&body), [])
}
