//! Health and readiness for load balancers and orchestrators; metrics for Prometheus.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use super::response::{json_response, to_json};
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
        let cause = match database {
            Ok(Err(error)) => error.to_string(),
            _ => format!("no answer within {READY_TIMEOUT:?}"),
        };
        return ApiError::from(ErrorCode::ServiceUnavailable).with_cause(cause).into_response();
    }
    state.limiter.check_health().await;
    if state.limiter.state() == LimiterState::RedisDegraded {
        return ApiError::from(ErrorCode::ServiceUnavailable).with_message(REDIS_DOWN).into_response();
    }
    let body = json!({"status": "ready", "database": "ok", "rate_limiter": state.limiter.state().as_str()});
    json_response(StatusCode::OK, to_json(&body), [])
}

/// The Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics of this instance (see [`crate::metrics`]).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(state.limiter.state(), state.store.pool_status());
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    response
}
