//! The request deadline (`serve --request-timeout`): a request still running
//! then is answered `503` ([`ErrorCode::ServiceUnavailable`]) with `Retry-After`, and its
//! database work has been stopped before (see [`crate::deadline`]).
//!
//! Two layers share one [`RequestClock`]: [`limit`], around every route (run
//! by the edge layer itself when no CORS layer stands between them), starts it
//! for the request's task and answers for a request stuck before
//! authentication; [`answer_in_time`], inside the authentication layer of
//! `/v1` and `/v2` (run by it), answers for a request stuck in its handler, so
//! that 503 still gets its rate-limit headers. The inner one wins when both expire.
//! The clock stops while the request's body arrives (the body reader calls
//! [`crate::deadline::excluding`]): a slow body is `--body-timeout`'s to
//! refuse, with `408` (API.md §1).

use std::future::Future;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorCode};
use crate::app::AppState;
use crate::deadline::{self, RequestClock};

/// The outer layer answers this much after the inner one, so the inner one,
/// which knows the caller's rate limit, answers when both could.
const OUTER_GRACE: Duration = Duration::from_millis(5);

/// Starts the request's clock and answers 503 when the request outlives it
/// (as a layer, inside CORS; without CORS the edge layer runs [`within_limit`] itself).
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    within_limit(&state, next.run(request)).await
}

/// [`limit`] around `rest` (the rest of the stack, for a request not yet
/// polled), for a layer that runs it itself: one layer fewer on every request.
/// The clock is the request task's ([`deadline::scope`]), where the body
/// reader, the store and [`in_time`] find it.
pub async fn within_limit(state: &AppState, rest: impl Future<Output = Response>) -> Response {
    let budget = state.config.budget();
    let clock = RequestClock::start(budget);
    match clock.run(OUTER_GRACE, deadline::scope(clock.clone(), rest)).await {
        Some(response) => response,
        None => too_late(budget.request()),
    }
}

/// Answers 503 at the request's answer deadline, inside authentication (as a
/// layer; the authentication layer runs [`in_time`] itself).
pub async fn answer_in_time(request: Request, next: Next) -> Response {
    in_time(next.run(request)).await
}

/// [`answer_in_time`] around `rest` (the rest of the stack), for a layer that
/// runs it itself: by the clock [`within_limit`] started for the request's
/// task; without one, just runs `rest`.
pub async fn in_time(rest: impl Future<Output = Response>) -> Response {
    let Some(clock) = deadline::current_clock() else {
        return rest.await;
    };
    match clock.run(Duration::ZERO, rest).await {
        Some(response) => response,
        None => too_late(clock.budget().request()),
    }
}

fn too_late(timeout: Duration) -> Response {
    tracing::warn!(timeout_ms = timeout.as_millis() as u64, "a request reached its deadline: answered 503");
    ApiError::from(ErrorCode::ServiceUnavailable)
        .with_message(format!(
            "the request did not complete within {} s; nothing was changed, retry shortly",
            timeout.as_secs_f64()
        ))
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::middleware::{from_fn, from_fn_with_state};
    use axum::routing::get;

    use super::*;
    use crate::config::ServerConfig;
    use crate::ratelimit::RateLimiter;
    use crate::storage::sqlite::SqliteStore;

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "too late"
    }

    async fn sees_its_deadline() -> String {
        format!("{}", crate::deadline::store_deadline().is_some())
    }

    /// A server with the deadline layers inside the edge layer, as in [`super::super::router`].
    async fn serve(deadline: Duration) -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("d.db").to_str().unwrap()).await.unwrap();
        let config = ServerConfig { request_deadline: deadline, ..ServerConfig::default() };
        let state = AppState::new(config, Arc::new(store), RateLimiter::in_memory());
        let inner = Router::new().route("/slow", get(slow)).layer(from_fn(answer_in_time));
        let app = Router::new()
            .route("/outer-only", get(slow))
            .route("/deadline", get(sees_its_deadline))
            .merge(inner)
            .layer(from_fn_with_state(state.clone(), limit))
            .layer(super::super::edge::EdgeLayer::bare())
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, dir)
    }

    #[tokio::test]
    async fn a_request_outliving_its_deadline_is_answered_503_with_retry_after() {
        let (base, _dir) = serve(Duration::from_secs(1)).await;
        let client = reqwest::Client::new();
        for path in ["/slow", "/outer-only"] {
            let started = std::time::Instant::now();
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            let elapsed = started.elapsed();
            assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1_500), "{path}: {elapsed:?}");
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(response.headers()["retry-after"], "1", "{path}");
            let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], ErrorCode::ServiceUnavailable.as_str(), "{path}: {body}");
            assert_eq!(body["error"]["type"], ErrorCode::ServiceUnavailable.error_type().as_str());
            assert_eq!(body["error"]["request_id"], request_id.as_str());
        }
        let seen = client.get(format!("{base}/deadline")).send().await.unwrap().text().await.unwrap();
        assert_eq!(seen, "true", "the handler runs with its request's deadline");
    }
}
