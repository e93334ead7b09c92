//! The layer in front of `/v1` and `/v2`: bearer-token authentication, the
//! failed-auth limit, the per-token rate limit and the scope check (API.md §2,
//! §5). What a token means is [`crate::auth`]'s business; this is the HTTP.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_ip::client_ip;
use super::edge::{Caller, run_catching_panics};
use super::error::{ApiError, ErrorCode};
use super::headers::is_repeated;
use crate::app::AppState;
use crate::auth::{Cached, Principal};
use crate::domain::Scope;
use crate::domain::token::{TokenHash, looks_like_token};
use crate::ratelimit::Decision;

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a handler that needs a token is routed without the auth layer"))
    }
}

enum Presented<'a> {
    Missing,
    Malformed,
    Token(&'a str),
}

fn presented_token(headers: &HeaderMap) -> Presented<'_> {
    // Two Authorization lines are refused, not resolved: which scope applies must not depend on their order.
    if is_repeated(headers, &header::AUTHORIZATION) {
        return Presented::Malformed;
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Presented::Missing };
    let Ok(text) = value.to_str() else { return Presented::Malformed };
    let Some((scheme, token)) = text.split_once(' ') else { return Presented::Malformed };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Presented::Malformed;
    }
    let token = token.trim();
    if looks_like_token(token) { Presented::Token(token) } else { Presented::Malformed }
}

pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let presented = presented_token(request.headers());
    let hash = match presented {
        Presented::Token(token) => Some(TokenHash::of(token)),
        _ => None,
    };
    let cached = hash.as_ref().map_or(Cached::Unknown, |hash| state.authenticator.cached(hash));
    // An address that has failed too often is refused before any lookup, unless
    // it presents a token that is known to exist: that is not guessing.
    if matches!(cached, Cached::Unknown)
        && let Some(retry_after) = state.failed_auth.blocked_for(&address_of(&request, &state)).await
    {
        return ApiError::over_rate_limit(retry_after).into_response();
    }
    let principal = match (cached, hash) {
        (Cached::Fresh(principal), _) => principal,
        (_, Some(hash)) => match state.authenticator.refresh(hash).await {
            Ok(principal) => principal,
            Err(error) => return ApiError::from(error).into_response(),
        },
        (_, None) => None,
    };
    let Some(principal) = principal else {
        state.failed_auth.record_failure(&address_of(&request, &state)).await;
        let code = match presented {
            Presented::Missing => ErrorCode::TokenMissing,
            _ => ErrorCode::TokenInvalid,
        };
        return ApiError::from(code).into_response();
    };
    tracing::Span::current().record("account_id", principal.account_id.as_str());

    let limit = principal.rate_limit.unwrap_or(state.config.default_rate_limit);
    let (decision, counted_by) = state.limiter.check_counted(principal.token_id.as_str(), limit).await;
    state.metrics.record_rate_limit(counted_by, decision.allowed);
    let caller = Caller { account_id: principal.account_id.clone().into() };
    let mut response = if !decision.allowed {
        ApiError::over_rate_limit(decision.reset_secs).into_response()
    } else if principal.scope == Scope::Read && !matches!(*request.method(), Method::GET | Method::HEAD) {
        ApiError::from(ErrorCode::ScopeInsufficient).into_response()
    } else {
        request.extensions_mut().insert(principal);
        run_catching_panics(request, next).await
    };
    add_rate_limit_headers(response.headers_mut(), decision);
    response.extensions_mut().insert(caller);
    response
}

/// The key failed authentications are counted under; only computed when needed.
fn address_of(request: &Request, state: &AppState) -> String {
    client_ip(request, &state.config.trusted_proxies).map_or_else(|| "unknown".to_owned(), |ip: IpAddr| ip.to_string())
}

fn add_rate_limit_headers(headers: &mut HeaderMap, decision: Decision) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_secs));
}
