//! Health and readiness for load balancers and orchestrators.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::customers::{json_response, to_json};
use super::error::ApiError;
use crate::app::AppState;

const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up.
pub async fn healthz() -> Response {
    json_response(StatusCode::OK, to_json(&json!({"status": "ok"})), [])
}

/// The database answers; the body also says how rate limits are counted right now.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await;
    if !matches!(database, Ok(Ok(()))) {
        return ApiError::unavailable().into_response();
    }
    state.limiter.check_health().await;
    let body = json!({"status": "ready", "database": "ok", "rate_limiter": state.limiter.state().as_str()});
    json_response(StatusCode::OK, to_json(&body), [])
}
