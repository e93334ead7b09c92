//! The outermost layer: request ids, the request's tracing span, panics, the
//! error envelope, metrics and the request log.
//!
//! Written as one middleware because each part needs the others: a panic must
//! become an error, every error body must carry the request id, and the
//! metrics and the log need the final status. Every line logged while a
//! request is served (a storage error's cause, a panic) is inside the
//! request's span, so it carries the request id: a `tracing` span, or, under
//! the server's own subscriber, the cheaper equivalent of
//! [`crate::logging::RequestLog`], which also writes the request line itself.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::Route;
use futures_util::future::BoxFuture;
use rand::RngCore;
use tower::{Layer, Service};
use tracing::Instrument;

use super::auth::{self, Caller};
use super::deadline::within_limit;
use super::error::{ApiError, ErrorCode};
use super::headers::single;
use super::panic::catching_panics;
use super::{limits, options};
use crate::app::AppState;
use crate::logging::{REQUEST_SPAN_TARGET, RequestLine, RequestLog};
use crate::metrics::UNMATCHED;

/// `X-Request-Id`, made at compile time (a name given as a string is parsed at every use).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The `tracing` target of the one line logged per request, to filter it on
/// its own: `CLIENTELE_LOG=info,clientele::request=off` silences it.
pub const REQUEST_LOG: &str = crate::logging::REQUEST_TARGET;

/// 1–64 characters of `[A-Za-z0-9._-]`.
fn is_valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A new request id: `req_` and 20 random letters and digits, each of the 62
/// equally likely (6 random bits a character, 62 and 63 drawn again).
pub(crate) fn new_request_id() -> HeaderValue {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = *b"req_00000000000000000000";
    let mut filled = 4;
    let mut rng = rand::rng();
    while filled < id.len() {
        let mut bits = rng.next_u64();
        for _ in 0..10 {
            let index = (bits & 63) as usize;
            bits >>= 6;
            if index < ALPHABET.len() && filled < id.len() {
                id[filled] = ALPHABET[index];
                filled += 1;
            }
        }
    }
    HeaderValue::from_bytes(&id).expect("letters and digits are a valid header value")
}

/// The router's outermost layer (`Router::layer`): request ids, panics, the
/// error envelope, metrics and the request log around every route.
///
/// A tower layer of its own rather than axum's `from_fn`, which per request
/// splits and rebuilds the request to extract its state, boxes a `Next` and
/// clones the service behind it: the edge calls the route it wraps directly.
#[derive(Clone)]
pub struct EdgeLayer {
    /// Whose metrics count the request, and whose budget starts its deadline.
    state: Option<AppState>,
    /// Whether this layer starts the request's deadline
    /// ([`super::deadline::within_limit`]) around the rest of the stack: one
    /// layer fewer on every request, for a router with no layer between the
    /// two (no CORS, whose headers the deadline's 503 must get).
    starts_deadline: bool,
    /// Whether this layer also authenticates the request ([`auth::authenticate`])
    /// before the route: the authentication layer's work without a layer (and a
    /// route boxed by axum) of its own, for `/v1` and `/v2` when nothing stands
    /// between the two.
    authenticates: bool,
}

impl EdgeLayer {
    /// Also counting each request in `state`'s metrics.
    pub fn with_metrics(state: AppState) -> Self {
        Self { state: Some(state), starts_deadline: false, authenticates: false }
    }

    /// [`EdgeLayer::with_metrics`], also starting each request's deadline with `state`'s budget.
    pub fn with_metrics_and_deadline(state: AppState) -> Self {
        Self { state: Some(state), starts_deadline: true, authenticates: false }
    }

    /// [`EdgeLayer::with_metrics_and_deadline`], also authenticating each request
    /// as [`auth::AuthLayer`] does, inside the deadline.
    pub fn with_metrics_deadline_and_authentication(state: AppState) -> Self {
        Self { state: Some(state), starts_deadline: true, authenticates: true }
    }

    /// Request ids, panics, the error envelope and the request log, for a router without [`AppState`].
    pub fn bare() -> Self {
        Self { state: None, starts_deadline: false, authenticates: false }
    }
}

/// For axum's routes only (`Router::layer`): the edge calls the route as soon as
/// it has the request, and a route's `call` does nothing until its future is
/// polled, inside the edge's scopes (the request's log scope, its deadline,
/// the panic guard). A service that did work in `call` would do it outside them.
impl Layer<Route> for EdgeLayer {
    type Service = Edge<Route>;

    fn layer(&self, inner: Route) -> Edge<Route> {
        Edge { inner, layer: self.clone() }
    }
}

/// The service [`EdgeLayer`] puts around a route.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

impl Service<Request> for Edge<Route> {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.inner, context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let sent = single(request.headers(), &REQUEST_ID, "X-Request-Id");
        let request_id = match sent {
            Ok(Some(value)) if is_valid_request_id(value) => value.clone(),
            _ => new_request_id(),
        };
        let refused = sent.err().or_else(|| limits::check(&request));
        let matched = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        // The route's future does its work when polled, inside the scopes below
        // (the request's log scope, its deadline, the panic guard).
        let routed = match (refused, self.layer.state.as_ref().filter(|_| self.layer.authenticates)) {
            (Some(error), _) => Err(error),
            (None, Some(state)) => {
                let uri = request.uri().clone();
                // The route is called once authentication lets the request through.
                Ok((uri, auth::authenticate_then(state, request, &mut self.inner)))
            }
            (None, None) => {
                let uri = request.uri().clone();
                // Boxed once here, so the scopes below each move a pointer, not the route's future.
                let routed: RouteFuture = Box::pin(self.inner.call(request));
                Ok((uri, routed))
            }
        };
        let layer = self.layer.clone();
        Box::pin(async move {
            let head = Head { started, request_id, matched, method };
            Ok(head.serve(routed, &layer).await)
        })
    }
}

/// The rest of the stack's answer to a request, as the edge awaits it.
type RouteFuture = BoxFuture<'static, Result<Response, Infallible>>;

/// What the edge keeps of a request while it is served.
struct Head {
    started: Instant,
    request_id: HeaderValue,
    matched: Option<MatchedPath>,
    method: Method,
}

impl Head {
    /// Serves the request (`routed`: its URI and the route's future, or the
    /// error that refuses it before routing) and logs and counts its answer.
    async fn serve(self, routed: Result<(Uri, RouteFuture), ApiError>, layer: &EdgeLayer) -> Response {
        let Head { started, request_id, matched, method } = self;
        let route = route_label(matched.as_ref());
        let id = request_id.to_str().unwrap_or("");
        let served = async {
            let mut response = match (routed, layer.state.as_ref().filter(|_| layer.starts_deadline)) {
                (Err(error), _) => error.into_response(),
                (Ok((uri, future)), Some(state)) => within_limit(state, catching_panics(&uri, future)).await,
                (Ok((uri, future)), None) => catching_panics(&uri, future).await,
            };
            if method == Method::OPTIONS {
                response = options::answer(response);
            }
            render_error(&mut response, id);
            response
        };
        let log = RequestLog::current(id);
        let mut response = if log.is_light() {
            log.scope(served).await
        } else {
            // Only the id: the request line has the route, method and account, and
            // every field here is formatted when the span opens.
            served.instrument(tracing::info_span!(target: REQUEST_SPAN_TARGET, "request", request_id = id)).await
        };
        let elapsed = started.elapsed();
        if let Some(state) = &layer.state {
            state.metrics.record_request(route, &method, response.status(), elapsed);
        }
        let line = RequestLine {
            request_id: id,
            route,
            method: method.as_str(),
            status: response.status().as_u16(),
            latency: elapsed,
            account_id: response.extensions().get::<Caller>().map(|caller| &*caller.account_id),
        };
        if !log.write(&line) {
            line.log_event();
        }
        response.headers_mut().insert(REQUEST_ID, request_id);
        crate::storage::sqlite::end_old_read_snapshots();
        response
    }
}

/// The template of the route that matched (`/v2/customers/{id}`), never the
/// raw path; [`UNMATCHED`] for a fallback or a route that catches unknown paths.
fn route_label(matched: Option<&MatchedPath>) -> &str {
    match matched {
        Some(path) if !super::is_unknown_path_route(path.as_str()) => path.as_str(),
        _ => UNMATCHED,
    }
}

/// Gives an error response its JSON body: from the [`ApiError`] it carries, or,
/// for a bare error made by the framework (a 405, say), from its status.
fn render_error(response: &mut Response, request_id: &str) {
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(error) => error,
        None if response.status().is_client_error() || response.status().is_server_error() => {
            if is_json(response) {
                return;
            }
            ApiError::from_status(response.status())
        }
        None => return,
    };
    log_server_error(&error);
    let body = serde_json::to_vec(&error.envelope(request_id)).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.remove(header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(body);
}

/// Logs a 5xx once, with its internal cause, inside the request's span (so with its request id).
fn log_server_error(error: &ApiError) {
    let cause = error.cause().unwrap_or("(none)");
    match error.code {
        ErrorCode::InternalError => tracing::error!(code = %error.code, cause, "answered with a server error"),
        code if code.status().is_server_error() => tracing::warn!(code = %code, cause, "answered with a server error"),
        _ => {}
    }
}

fn is_json(response: &Response) -> bool {
    response.headers().get(header::CONTENT_TYPE).is_some_and(|value| value.as_bytes().starts_with(b"application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(is_valid_request_id(&HeaderValue::from_static("abc-DEF_1.2")));
        assert!(is_valid_request_id(&HeaderValue::from_str(&"a".repeat(64)).unwrap()));
        assert!(!is_valid_request_id(&HeaderValue::from_str(&"a".repeat(65)).unwrap()));
        assert!(!is_valid_request_id(&HeaderValue::from_static("has space")));
        assert!(!is_valid_request_id(&HeaderValue::from_static("")));
        let generated = new_request_id();
        assert!(generated.to_str().unwrap().starts_with("req_") && is_valid_request_id(&generated));
    }
}
