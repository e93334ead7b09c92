//! `GET /v2/token` (API.md §2): what the calling token is and may do. It needs a
//! valid token but counts toward no rate limit ([`crate::http::auth`] only peeks
//! at the window), so an integrator can ask without spending a request.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::KnownFormat;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};

use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::time::rfc3339;
use crate::http::openapi::schemas as rules;
use crate::http::response::{json_response, to_json};
use crate::ratelimit::Decision;

/// The calling token, as `GET /v2/token` shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Token, examples(json!({"id": "tok_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D", "account": "acme", "name": null,
    "scope": "read", "created_at": "2025-11-28T10:33:20Z", "expires_at": null,
    "rate_limit": {"limit": 100, "window_seconds": 60, "remaining": 99, "reset": 42}})))]
pub struct TokenV2<'a> {
    /// The token's id (`tok_...`), as `clientele tokens list` shows it; never the secret.
    #[schema(examples("tok_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D"))]
    pub id: &'a str,
    /// The name of the account the token belongs to.
    #[schema(examples("acme"))]
    pub account: &'a str,
    #[schema(schema_with = nullable_string, required = true)]
    pub name: Option<&'a str>,
    #[schema(schema_with = scope)]
    pub scope: &'a str,
    /// When the token was issued.
    #[schema(schema_with = rules::timestamp)]
    pub created_at: String,
    #[schema(schema_with = nullable_timestamp, required = true)]
    pub expires_at: Option<String>,
    pub rate_limit: TokenRateLimit,
}

/// The token's rate limit and where it stands in the current window; the same
/// numbers as the `X-RateLimit-*` headers. This request is not counted.
#[derive(Serialize, ToSchema)]
pub struct TokenRateLimit {
    /// Requests allowed per window.
    #[schema(minimum = 1, examples(100))]
    pub limit: u32,
    /// The window's length, in seconds.
    #[schema(minimum = 1, examples(60))]
    pub window_seconds: u32,
    /// Requests left in the current window (never negative).
    #[schema(minimum = 0, examples(99))]
    pub remaining: u32,
    /// Whole seconds until the current window ends (at least 1).
    #[schema(minimum = 1, examples(42))]
    pub reset: u64,
}

fn nullable_string() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some("The token's label, when the operator gave it one; `null` otherwise."))
        .examples([json!(null)])
        .into()
}

fn nullable_timestamp() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some("When the token stops working (`401`), RFC 3339 UTC; `null` if it does not expire."))
        .examples([json!(null)])
        .into()
}

/// A string, not a closed enum, so that a scope added later does not break a generated client.
fn scope() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("`read` (GET only) or `write` (every method); later releases may add scopes."))
        .examples([json!("read"), json!("write")])
        .into()
}

/// Describe this token
///
/// The calling token: its id, account, scope, creation and expiry, and its rate limit with what is left of
/// the current window. Does not count toward the rate limit (failed authentication still counts toward the
/// failed-authentication limit of the client's address).
#[utoipa::path(
    get,
    path = "/v2/token",
    operation_id = "getToken",
    tag = "tokens",
    responses((status = 200, description = "The calling token.", body = TokenV2)),
)]
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    decision: Option<Extension<Decision>>,
) -> Response {
    let limit = principal.rate_limit.unwrap_or(state.config.default_rate_limit);
    let decision = match decision {
        Some(Extension(decision)) => decision,
        None => state.limiter.peek(principal.token_id.as_str(), limit).await,
    };
    let body = TokenV2 {
        id: principal.token_id.as_str(),
        account: &principal.account_name,
        // Token names and expiry are not stored yet: always null until they are.
        name: None,
        scope: principal.scope.as_str(),
        created_at: rfc3339(principal.created_at),
        expires_at: None,
        rate_limit: TokenRateLimit {
            limit: decision.limit,
            window_seconds: limit.window_secs,
            remaining: decision.remaining,
            reset: decision.reset_secs,
        },
    };
    json_response(StatusCode::OK, to_json(&body), [])
}
