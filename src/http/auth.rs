//! The layer in front of `/v1` and `/v2`: bearer-token authentication, the
//! failed-auth limit, the per-token rate limit and the scope check (API.md §2,
//! §5). What a token means is [`crate::auth`]'s business; this is the HTTP.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::Route;
use futures_util::future::BoxFuture;
use tower::{Layer, Service};

use super::client_ip::client_ip;
use super::deadline::in_time;
use super::error::{ApiError, ErrorCode};
use super::panic::catching_panics;
use crate::app::AppState;
use crate::auth::{Cached, Principal, Refusal};
use crate::domain::Scope;
use crate::domain::token::PresentedToken;
use crate::ratelimit::{Decision, RateLimit};

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

/// Who made an authenticated request, put on its response for the request log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: Arc<str>,
}

enum Presented<'a> {
    Missing,
    Malformed,
    Token(PresentedToken<'a>),
}

/// `Bearer`, any case, one space, then a token, spaces and tabs around it allowed.
fn presented_token(headers: &HeaderMap) -> Presented<'_> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Presented::Missing };
    // Two Authorization lines are refused, not resolved: which scope applies must not depend on their order.
    if values.next().is_some() {
        return Presented::Malformed;
    }
    // In bytes: a header value holds no control character but tabs, so trimming
    // ASCII whitespace trims what `str::trim` would, and a byte past ASCII fails the scheme or the token.
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|&byte| byte == b' ') else { return Presented::Malformed };
    if !value[..space].eq_ignore_ascii_case(b"bearer") {
        return Presented::Malformed;
    }
    PresentedToken::parse(value[space + 1..].trim_ascii()).map_or(Presented::Malformed, Presented::Token)
}

/// The authentication layer of `/v1` and `/v2` (`Router::layer`): [`authenticate`]
/// around every route of a version. A tower layer of its own rather than axum's
/// `from_fn`, which per request splits and rebuilds the request to extract its
/// state and boxes a `Next`.
#[derive(Clone)]
pub struct AuthLayer {
    state: AppState,
}

impl AuthLayer {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// For axum's routes (`Router::layer`).
impl Layer<Route> for AuthLayer {
    type Service = Authenticate<Route>;

    fn layer(&self, inner: Route) -> Authenticate<Route> {
        Authenticate { inner, state: self.state.clone() }
    }
}

/// The service [`AuthLayer`] puts around a route.
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    state: AppState,
}

impl Service<Request> for Authenticate<Route> {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.inner, context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        authenticate_then(&self.state, request, &mut self.inner)
    }
}

/// [`authenticate`], then `route`, as a future of its own: `route` is taken
/// (a clone left in its place, as tower's contract has it: the route taken is
/// the one made ready) and called once the request is let through, with the
/// principal in its extensions.
pub fn authenticate_then(
    state: &AppState,
    request: Request,
    route: &mut Route,
) -> BoxFuture<'static, Result<Response, Infallible>> {
    let ready = route.clone();
    let mut route = std::mem::replace(route, ready);
    let state = state.clone();
    Box::pin(async move { Ok(authenticate(&state, request, |request| route.call(request)).await) })
}

/// Authenticates `request` and counts it toward its token's limit, then hands
/// it to `route` (the rest of the stack) or refuses it: `401`, `403` (scope),
/// `429` (either limit) or `503` (the store). Every answer to a token carries
/// its rate-limit headers, a panic's 500 and the deadline's 503 included.
pub async fn authenticate<R, F>(state: &AppState, mut request: Request, route: R) -> Response
where
    R: FnOnce(Request) -> F,
    F: Future<Output = Result<Response, Infallible>>,
{
    // API.md §1: OPTIONS needs no token and counts toward no limit (see super::options).
    if request.method() == Method::OPTIONS {
        let Ok(response) = route(request).await;
        return response;
    }
    let principal = match identify(state, &mut request).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };

    let limit = principal.rate_limit.unwrap_or(state.config.default_rate_limit);
    let uncounted = is_uncounted(&request);
    let decision = if uncounted {
        state.limiter.peek(principal.token_id.as_str(), limit).await
    } else {
        let (decision, counted_by) = state.limiter.check_counted(principal.token_id.as_str(), limit).await;
        state.metrics.record_rate_limit(counted_by, decision.allowed);
        decision
    };
    // A route that counts toward no limit is not refused by it either (API.md §2: `GET /v2/token`
    // answers while the token is over its limit, and says so).
    let mut response = if !decision.allowed && !uncounted {
        ApiError::over_rate_limit(decision.reset_secs).into_response()
    } else if principal.scope == Scope::Read && !matches!(*request.method(), Method::GET | Method::HEAD) {
        ApiError::from(ErrorCode::ScopeInsufficient).into_response()
    } else {
        request.extensions_mut().insert(principal.clone());
        if uncounted {
            // What `GET /v2/token` reports as the token's standing.
            request.extensions_mut().insert(decision);
        }
        let uri = request.uri().clone();
        // Answers 503 at the request's deadline too (`deadline::in_time`).
        // Boxed, so the scopes around it each move a pointer, not the route's future.
        in_time(catching_panics(&uri, Box::pin(route(request)))).await
    };
    add_rate_limit_headers(response.headers_mut(), decision, limit);
    state.usage.record(&principal.token_id, response.status().as_u16());
    response.extensions_mut().insert(Caller { account_id: principal.account_id.clone().into() });
    response
}

/// Routes that need a valid token but count toward no rate limit (API.md §2: `GET /v2/token`).
const UNCOUNTED_ROUTES: [&str; 1] = ["/v2/token"];

fn is_uncounted(request: &Request) -> bool {
    request.extensions().get::<MatchedPath>().is_some_and(|matched| UNCOUNTED_ROUTES.contains(&matched.as_str()))
}

/// The token's principal, or the response that refuses the request: `401` for a
/// missing, malformed, unknown or revoked token (counted toward the failed-auth
/// limit of the client's address), `429` for an address over that limit, `503`
/// when the store cannot be asked. Counts nothing toward the token's own limit.
pub async fn identify(state: &AppState, request: &mut Request) -> Result<Principal, Response> {
    // `&mut`: a `Request` is `Send` but not `Sync`, and this future must be `Send`.
    let presented = presented_token(request.headers());
    let token = match presented {
        Presented::Token(token) => Some(token),
        _ => None,
    };
    let cached = token.map_or(Cached::Unknown, |token| state.authenticator.cached(token));
    // An address that has failed too often is refused before any lookup, unless
    // it presents a token that is known to exist: that is not guessing.
    if matches!(cached, Cached::Unknown)
        && let Some(retry_after) = {
            let address = address_of(request, state);
            state.failed_auth.blocked_for(&address).await
        }
    {
        return Err(ApiError::over_rate_limit(retry_after).into_response());
    }
    let verdict = match (cached, token) {
        (Cached::Fresh(verdict), _) => verdict,
        (_, Some(token)) => match state.authenticator.refresh(token).await {
            Ok(verdict) => verdict,
            Err(error) => return Err(ApiError::from(error).into_response()),
        },
        (_, None) => Err(Refusal::Invalid),
    };
    match verdict {
        Ok(principal) => Ok(principal),
        Err(refusal) => {
            let address = address_of(request, state);
            state.failed_auth.record_failure(&address).await;
            let code = match (presented, refusal) {
                (Presented::Missing, _) => ErrorCode::TokenMissing,
                (_, Refusal::Expired) => ErrorCode::TokenExpired,
                (_, Refusal::Invalid) => ErrorCode::TokenInvalid,
            };
            Err(ApiError::from(code).into_response())
        }
    }
}

/// Whether the request presents a token at all (an `Authorization` header, whatever its value).
pub fn presents_token(request: &Request) -> bool {
    request.headers().contains_key(header::AUTHORIZATION)
}

/// The key failed authentications are counted under; only computed when needed.
fn address_of(request: &Request, state: &AppState) -> String {
    client_ip(request, &state.config.trusted_proxies).map_or_else(|| "unknown".to_owned(), |ip: IpAddr| ip.to_string())
}

/// The `X-RateLimit-*` headers and their IETF counterparts (draft-ietf-httpapi-ratelimit-headers,
/// structured fields): `RateLimit-Policy: "default";q=N;w=W` and `RateLimit: "default";r=R;t=T`,
/// with the same numbers (API.md §5).
pub fn add_rate_limit_headers(headers: &mut HeaderMap, decision: Decision, limit: RateLimit) {
    let policy = PolicyHeaders::of(RateLimit { limit: decision.limit, window_secs: limit.window_secs });
    let [state, remaining, reset] = structured_item(b"r=", u64::from(decision.remaining), b";t=", decision.reset_secs);
    headers.insert(X_RATELIMIT_LIMIT, policy.limit);
    headers.insert(X_RATELIMIT_REMAINING, remaining);
    headers.insert(X_RATELIMIT_RESET, reset);
    headers.insert(RATELIMIT_POLICY, policy.policy);
    headers.insert(RATELIMIT, state);
}

/// The values of `X-RateLimit-Limit` and `RateLimit-Policy`, which depend on
/// the limit alone.
#[derive(Clone)]
struct PolicyHeaders {
    limit: HeaderValue,
    policy: HeaderValue,
}

thread_local! {
    /// The policy headers of the limit last answered on this thread, with that
    /// limit: most requests share one (the server's default), so they are built
    /// once and then cloned, which only counts a reference.
    static LAST_POLICY: RefCell<Option<(RateLimit, PolicyHeaders)>> = const { RefCell::new(None) };
}

impl PolicyHeaders {
    fn of(limit: RateLimit) -> Self {
        LAST_POLICY.with_borrow_mut(|last| match last {
            Some((last_limit, headers)) if *last_limit == limit => headers.clone(),
            _ => last.insert((limit, Self::build(limit))).1.clone(),
        })
    }

    fn build(limit: RateLimit) -> Self {
        let [policy, limit, _] = structured_item(b"q=", u64::from(limit.limit), b";w=", u64::from(limit.window_secs));
        Self { limit, policy }
    }
}

/// `"default";` then `first` and `second` after their keys (`RateLimit`'s
/// `"default";r=R;t=T`, say), and the two numbers alone as slices of it: three
/// header values in one buffer, written without `core::fmt`, every byte ASCII.
fn structured_item(first_key: &[u8], first: u64, second_key: &[u8], second: u64) -> [HeaderValue; 3] {
    let (mut first_text, mut second_text) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (first_text, second_text) = (first_text.format(first).as_bytes(), second_text.format(second).as_bytes());
    let mut value = Vec::with_capacity(48);
    value.extend_from_slice(b"\"default\";");
    value.extend_from_slice(first_key);
    let first_at = value.len()..value.len() + first_text.len();
    value.extend_from_slice(first_text);
    value.extend_from_slice(second_key);
    let second_at = value.len()..value.len() + second_text.len();
    value.extend_from_slice(second_text);
    let item = bytes::Bytes::from(value);
    let header = |bytes| HeaderValue::from_maybe_shared(bytes).expect("quotes, letters, digits and punctuation");
    let (first, second) = (header(item.slice(first_at)), header(item.slice(second_at)));
    [header(item), first, second]
}

// Header names made at compile time: a name given as a string is parsed again at every insert.
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

#[cfg(test)]
mod tests {
    use super::*;

    /// What the header meant before it was read in bytes: text, split at the
    /// first space, the token trimmed (the reference the byte reading must match).
    fn read_as_text(headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && crate::domain::token::looks_like_token(token))
            .then(|| token.to_owned())
    }

    #[test]
    fn rate_limit_headers_for_one_limit_then_another() {
        for (limit, window_secs, remaining, reset_secs) in [(100, 60, 98, 7), (5, 1, 0, 1), (100, 60, 0, 60)] {
            let limit = RateLimit { limit, window_secs };
            let mut headers = HeaderMap::new();
            let decision = Decision { allowed: true, limit: limit.limit, remaining, reset_secs };
            add_rate_limit_headers(&mut headers, decision, limit);
            let text = |name| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
            assert_eq!(text(X_RATELIMIT_LIMIT), limit.limit.to_string());
            assert_eq!(text(X_RATELIMIT_REMAINING), remaining.to_string());
            assert_eq!(text(X_RATELIMIT_RESET), reset_secs.to_string());
            assert_eq!(text(RATELIMIT_POLICY), format!("\"default\";q={};w={window_secs}", limit.limit));
            assert_eq!(text(RATELIMIT), format!("\"default\";r={remaining};t={reset_secs}"));
            assert_eq!(headers.len(), 5);
        }
    }

    #[test]
    fn the_authorization_header_reads_as_it_did_as_text() {
        let token = crate::domain::TokenSecret::generate().expose().to_owned();
        let values: Vec<Vec<u8>> = [
            format!("Bearer {token}"),
            format!("bearer {token}"),
            format!("BEARER {token}"),
            format!("Bearer  \t{token} \t "),
            format!("Bearer\t{token}"),
            format!(" Bearer {token}"),
            format!("Bearer {token} x"),
            format!("Bearer {token}x"),
            format!("Basic {token}"),
            format!("Bearerx {token}"),
            "Bearer ".to_owned(),
            "Bearer".to_owned(),
            String::new(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .chain([
            [b"Bearer ".as_slice(), token.as_bytes(), b"\xff"].concat(),
            [b"Bearer\xff ", token.as_bytes()].concat(),
        ])
        .collect();
        let mut accepted = 0;
        for value in values {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_bytes(&value).expect("a header value"));
            let read = match presented_token(&headers) {
                Presented::Token(presented) => Some(presented.random_part().to_vec()),
                Presented::Malformed => None,
                Presented::Missing => panic!("a header was sent"),
            };
            let expected = read_as_text(&headers).map(|token| token.as_bytes()[4..].to_vec());
            assert_eq!(read, expected, "{:?}", String::from_utf8_lossy(&value));
            accepted += usize::from(read.is_some());
        }
        assert_eq!(accepted, 4, "Bearer in any case, with spaces and tabs around the token");
        assert!(matches!(presented_token(&HeaderMap::new()), Presented::Missing));
        let mut twice = HeaderMap::new();
        for _ in 0..2 {
            twice.append(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).expect("ASCII"));
        }
        assert!(matches!(presented_token(&twice), Presented::Malformed), "two lines are refused");
    }
}
