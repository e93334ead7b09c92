//! Bearer-token authentication, the failed-auth limit, the per-token rate
//! limit and the scope check: one middleware in front of `/v1` and `/v2`.
//!
//! Tokens are looked up by hash and cached for [`CACHE_TTL`], so a busy token
//! costs no query, and a revoked one stops working within that time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;

use super::client_ip::client_ip;
use super::edge::run_catching_panics;
use super::error::ApiError;
use crate::app::AppState;
use crate::domain::Scope;
use crate::domain::time::now_unix;
use crate::domain::token::{TokenHash, TokenRecord, looks_like_token};
use crate::ratelimit::{Decision, MemoryLimiter, RateLimit, now_ms};
use crate::storage::{SharedStore, StoreError};

/// How long a looked-up token is trusted without asking the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// How long a token unused is remembered at all (then forgotten, to bound memory).
const CACHE_IDLE_LIMIT: Duration = Duration::from_secs(600);
/// `last_used_at` is written at most this often per token.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// Who is calling: what the handlers learn from the token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: Arc<str>,
    pub account_id: Arc<str>,
    pub scope: Scope,
    /// `None`: the server's default applies.
    pub rate_limit: Option<RateLimit>,
}

impl From<&TokenRecord> for Principal {
    fn from(record: &TokenRecord) -> Self {
        Self {
            token_id: record.id.as_str().into(),
            account_id: record.account_id.as_str().into(),
            scope: record.scope,
            rate_limit: record.rate_limit,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            tracing::error!("a handler that needs a token is routed without the auth layer");
            ApiError::internal()
        })
    }
}

/// Who made an authenticated request, put on its response for the request log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: Arc<str>,
}

/// A token hash as the cache sees it.
enum Cached {
    /// Looked up less than [`CACHE_TTL`] ago: `None` for a revoked token.
    Fresh(Option<Principal>),
    /// Known to exist (or have existed), but due for another lookup.
    Stale,
    Unknown,
}

struct CacheEntry {
    /// `None` for a revoked token.
    principal: Option<Principal>,
    fetched: Instant,
}

pub struct Authenticator {
    store: SharedStore,
    cache: DashMap<TokenHash, CacheEntry, ahash::RandomState>,
}

impl Authenticator {
    pub fn new(store: SharedStore) -> Self {
        Self { store, cache: DashMap::default() }
    }

    /// What the cache knows of a token hash, from one lookup.
    fn cached(&self, hash: &TokenHash) -> Cached {
        match self.cache.get(hash) {
            Some(entry) if entry.fetched.elapsed() < CACHE_TTL => Cached::Fresh(entry.principal.clone()),
            Some(_) => Cached::Stale,
            None => Cached::Unknown,
        }
    }

    /// Looks the token up in the store and caches the answer; `None` for unknown and revoked tokens.
    async fn refresh(&self, hash: TokenHash) -> Result<Option<Principal>, StoreError> {
        let Some(record) = self.store.find_token(hash).await? else {
            self.cache.remove(&hash);
            return Ok(None);
        };
        let principal = record.revoked_at.is_none().then(|| Principal::from(&record));
        self.cache.insert(hash, CacheEntry { principal: principal.clone(), fetched: Instant::now() });
        if principal.is_some() {
            self.touch(&record);
        }
        Ok(principal)
    }

    /// Records `last_used_at` in the background, at most once a minute per token.
    fn touch(&self, record: &TokenRecord) {
        let now = now_unix();
        if record.last_used_at.is_some_and(|at| now - at < TOUCH_INTERVAL_SECS) {
            return;
        }
        let store = self.store.clone();
        let token_id = record.id.clone();
        tokio::spawn(async move {
            if let Err(error) = store.touch_token(&token_id, now).await {
                tracing::debug!(%error, "cannot record a token's last use");
            }
        });
    }

    pub fn prune(&self) {
        self.cache.retain(|_, entry| entry.fetched.elapsed() < CACHE_IDLE_LIMIT);
    }
}

/// Counts failed authentications per client address.
pub struct FailedAuthLimiter {
    limit: RateLimit,
    counters: MemoryLimiter,
}

impl FailedAuthLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self { limit, counters: MemoryLimiter::default() }
    }

    /// Seconds until the address may try again, if it has used up its failures.
    fn blocked_for(&self, address: &str) -> Option<u64> {
        let now = now_ms();
        (self.counters.used(address, self.limit, now) >= u64::from(self.limit.limit))
            .then(|| self.limit.position(now).reset_secs)
    }

    fn record_failure(&self, address: &str) {
        self.counters.check(address, self.limit, now_ms());
    }

    pub fn prune(&self) {
        self.counters.prune(now_ms());
    }
}

enum Presented<'a> {
    Missing,
    Malformed,
    Token(&'a str),
}

fn presented_token(headers: &HeaderMap) -> Presented<'_> {
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
    // API.md §1: OPTIONS needs no token and counts toward no limit (see super::options).
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let presented = presented_token(request.headers());
    let hash = match presented {
        Presented::Token(token) => Some(TokenHash::of(token)),
        _ => None,
    };
    let cached = hash.as_ref().map_or(Cached::Unknown, |hash| state.authenticator.cached(hash));
    // An address that has failed too often is refused before any lookup, unless
    // it presents a token that is known to exist: that is not guessing.
    if matches!(cached, Cached::Unknown) {
        if let Some(retry_after) = state.failed_auth.blocked_for(&address_of(&request, &state)) {
            return ApiError::rate_limited(retry_after).into_response();
        }
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
        state.failed_auth.record_failure(&address_of(&request, &state));
        let error = match presented {
            Presented::Missing => ApiError::token_missing(),
            _ => ApiError::token_invalid(),
        };
        return error.into_response();
    };

    let limit = principal.rate_limit.unwrap_or(state.config.default_rate_limit);
    let (decision, counted_by) = state.limiter.check_counted(&principal.token_id, limit).await;
    state.metrics.record_rate_limit(counted_by, decision.allowed);
    let caller = Caller { account_id: principal.account_id.clone() };
    let mut response = if !decision.allowed {
        ApiError::rate_limited(decision.reset_secs).into_response()
    } else if principal.scope == Scope::Read && !matches!(*request.method(), Method::GET | Method::HEAD) {
        ApiError::scope_insufficient().into_response()
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
