//! `POST`, `GET` and `DELETE /v2/webhook_endpoints...` (API.md §8): where an
//! account's events are POSTed, and the secret they are signed with, shown
//! once when the endpoint is created.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use deserr::{DeserializeError, Deserr, IntoValue, MergeWithError, Value, ValuePointerRef};
use serde::Serialize;
use url::Url;
use utoipa::ToSchema;

use super::events::IdPath;
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::time::{now_unix_ms, rfc3339_ms};
use crate::domain::webhook::MAX_ENDPOINTS_PER_ACCOUNT;
use crate::domain::{EventType, FieldError, WebhookEndpoint, WebhookEndpointId, WebhookSecret, ids};
use crate::http::body::JsonObject;
use crate::http::error::ApiError;
use crate::http::openapi::event_schemas::{self as rules, DESCRIPTION_MAX_CHARS, URL_MAX_CHARS};
use crate::http::openapi::responses::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, RequestTimeout, UnsupportedMediaType,
};
use crate::http::response::{json_response, to_json};
use crate::http::wire::{WireError, from_object, text};
use crate::storage::StoreError;

/// A webhook endpoint as v2 shows it (never with its secret).
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpoint, examples(json!({"id": "we_01JDQ8ZK3V5W6X7Y8Z9A0B1C2F",
    "url": "https://crm.example.com/hooks/clientele", "event_types": ["customer.created", "customer.updated"],
    "description": "CRM sync", "created_at": "2025-11-28T10:33:20Z",
    "last_delivery_at": "2025-11-28T10:35:02Z", "last_delivery_status": 200})))]
pub struct WebhookEndpointV2<'a> {
    #[schema(schema_with = rules::endpoint_id)]
    pub id: &'a str,
    #[schema(schema_with = rules::url_stored)]
    pub url: &'a str,
    #[schema(schema_with = rules::event_types_answered)]
    pub event_types: Vec<&'static str>,
    #[schema(schema_with = rules::description_stored, required = true)]
    pub description: Option<&'a str>,
    /// When the endpoint was created.
    #[schema(schema_with = crate::http::openapi::schemas::timestamp)]
    pub created_at: String,
    #[schema(schema_with = rules::last_delivery_at, required = true)]
    pub last_delivery_at: Option<String>,
    #[schema(schema_with = rules::last_delivery_status, required = true)]
    pub last_delivery_status: Option<u16>,
}

impl<'a> From<&'a WebhookEndpoint> for WebhookEndpointV2<'a> {
    fn from(endpoint: &'a WebhookEndpoint) -> Self {
        Self {
            id: endpoint.id.as_str(),
            url: &endpoint.url,
            event_types: endpoint.event_types.iter().map(|kind| kind.as_str()).collect(),
            description: endpoint.description.as_deref(),
            created_at: rfc3339_ms(endpoint.created_at_ms),
            last_delivery_at: endpoint.last_delivery_at_ms.map(rfc3339_ms),
            last_delivery_status: endpoint.last_delivery_status,
        }
    }
}

/// A new webhook endpoint, with its signing secret: the only response that shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointWithSecret)]
pub struct CreatedEndpointV2<'a> {
    #[serde(flatten)]
    pub endpoint: WebhookEndpointV2<'a>,
    #[schema(schema_with = rules::secret)]
    pub secret: &'a str,
}

/// An account's webhook endpoints, oldest first: all of them (at most 16), so `has_more` is always `false`.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointList)]
pub struct EndpointListV2<'a> {
    pub data: Vec<WebhookEndpointV2<'a>>,
    /// Always `false`: an account has at most 16 endpoints, all on one page.
    pub has_more: bool,
}

/// The body of `POST /v2/webhook_endpoints`. Any other field is refused as unknown.
#[derive(Deserr, ToSchema)]
#[deserr(error = WireError, deny_unknown_fields)]
// Read by `ToSchema` (no serde here): documents `additionalProperties: false`, as deserr enforces.
#[serde(deny_unknown_fields)]
#[schema(as = WebhookEndpointInput, examples(json!({"url": "https://crm.example.com/hooks/clientele",
    "event_types": ["customer.created", "customer.updated"], "description": "CRM sync"})))]
pub struct EndpointInput {
    #[schema(schema_with = rules::url_input)]
    pub url: EndpointUrl,
    #[schema(schema_with = rules::event_types_input)]
    pub event_types: EventTypes,
    #[schema(schema_with = rules::description_input)]
    #[deserr(default)]
    pub description: Option<Description>,
}

/// An absolute URL of at most 2048 characters; the scheme and host are checked by [`crate::webhooks`].
pub struct EndpointUrl(pub Url);

/// At most 500 characters, no NUL.
pub struct Description(pub String);

/// At least one known event type; repeats count once; kept in the order given.
pub struct EventTypes(pub Vec<EventType>);

impl<E: DeserializeError + MergeWithError<FieldError>> Deserr<E> for EndpointUrl {
    fn deserialize_from_value<V: IntoValue>(value: Value<V>, location: ValuePointerRef<'_>) -> Result<Self, E> {
        text(value, location, |raw, path| {
            let invalid = |message: &str| FieldError::invalid(path, format!("{path} {message}"));
            if raw.chars().count() > URL_MAX_CHARS {
                return Err(invalid("must be at most 2048 characters"));
            }
            if raw.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err(invalid("must not contain whitespace or control characters"));
            }
            // A URI is ASCII (RFC 3986): an internationalized name is sent in its `xn--` form.
            if !raw.is_ascii() {
                return Err(invalid(
                    "must be ASCII: write an internationalized host name in its xn-- form and percent-encode the rest",
                ));
            }
            Url::parse(raw)
                .map(EndpointUrl)
                .map_err(|_| invalid("must be an absolute URL, such as https://example.com/hooks"))
        })
    }
}

impl<E: DeserializeError + MergeWithError<FieldError>> Deserr<E> for Description {
    fn deserialize_from_value<V: IntoValue>(value: Value<V>, location: ValuePointerRef<'_>) -> Result<Self, E> {
        text(value, location, |raw, path| {
            if raw.contains('\0') {
                return Err(FieldError::invalid(path, format!("{path} must not contain NUL characters")));
            }
            if raw.chars().count() > DESCRIPTION_MAX_CHARS {
                return Err(FieldError::invalid(path, format!("{path} must be at most 500 characters")));
            }
            Ok(Description(raw.to_owned()))
        })
    }
}

impl<E: DeserializeError + MergeWithError<FieldError>> Deserr<E> for EventTypes {
    fn deserialize_from_value<V: IntoValue>(value: Value<V>, location: ValuePointerRef<'_>) -> Result<Self, E> {
        let path = crate::http::wire::dotted(location);
        let fail = |error: FieldError| deserr::take_cf_content(E::merge(None, error, location));
        let items = match value {
            Value::Sequence(items) => items,
            Value::Null => return Err(fail(FieldError::missing(path))),
            _ => return Err(fail(FieldError::invalid(&path, format!("{path} must be an array of event types")))),
        };
        let mut types = Vec::new();
        for item in deserr::Sequence::into_iter(items) {
            let kind = match item.into_value() {
                Value::String(raw) => {
                    raw.parse::<EventType>().map_err(|message| fail(FieldError::invalid(&path, message)))?
                }
                _ => return Err(fail(FieldError::invalid(&path, format!("{path} must be an array of event types")))),
            };
            if !types.contains(&kind) {
                types.push(kind);
            }
        }
        if types.is_empty() {
            return Err(fail(FieldError::invalid(&path, format!("{path} must name at least one event type"))));
        }
        Ok(Self(types))
    }
}

/// Create a webhook endpoint
///
/// Events of the types named are POSTed to `url`, signed with the secret this response shows (and no
/// other will). An account has at most 16 endpoints: the 17th is refused with a `400` whose code
/// says a parameter is invalid, without `param` (no one field is at fault; delete an endpoint first).
#[utoipa::path(
    post,
    path = "/v2/webhook_endpoints",
    operation_id = "createWebhookEndpoint",
    tag = "webhooks",
    request_body(content = EndpointInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: the endpoint and its signing secret, shown only here.",
            body = CreatedEndpointV2,
            headers(("Location" = String, description = "The new endpoint's URL: `/v2/webhook_endpoints/{id}`."))),
        BadRequest, Forbidden, PayloadTooLarge, RequestTimeout, UnsupportedMediaType,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let input = from_object::<EndpointInput>(body)?;
    crate::webhooks::check_url(&input.url.0, state.config.webhooks.allow_insecure)
        .await
        .map_err(|refusal| ApiError::invalid("url", refusal.to_string()))?;
    let endpoint = WebhookEndpoint {
        id: ids::webhook_endpoint_id(),
        account_id: principal.account_id.clone(),
        url: input.url.0.to_string(),
        event_types: input.event_types.0,
        description: input.description.map(|description| description.0),
        created_at_ms: now_unix_ms(),
        last_delivery_at_ms: None,
        last_delivery_status: None,
    };
    let secret = WebhookSecret::generate();
    let body = to_json(&CreatedEndpointV2 { endpoint: WebhookEndpointV2::from(&endpoint), secret: secret.expose() });
    match state.store.create_webhook_endpoint(endpoint.clone(), secret, MAX_ENDPOINTS_PER_ACCOUNT).await {
        Ok(()) => {}
        Err(StoreError::TooManyEndpoints(_)) => {
            return Err(ApiError::new(
                crate::http::error::ErrorCode::ParameterInvalid,
                rules::endpoint_limit_message(),
            ));
        }
        Err(error) => return Err(error.into()),
    }
    let location = format!("/v2/webhook_endpoints/{}", endpoint.id);
    let location = header::HeaderValue::from_str(&location).expect("endpoint ids are valid in a header");
    Ok(json_response(StatusCode::CREATED, body, [(header::LOCATION, location)]))
}

/// List webhook endpoints
///
/// All the account's endpoints (at most 16), oldest first, without their secrets.
#[utoipa::path(
    get,
    path = "/v2/webhook_endpoints",
    operation_id = "listWebhookEndpoints",
    tag = "webhooks",
    responses((status = 200, description = "The account's endpoints.", body = EndpointListV2)),
)]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Response, ApiError> {
    let endpoints = state.store.list_webhook_endpoints(&principal.account_id).await?;
    let body = EndpointListV2 { data: endpoints.iter().map(WebhookEndpointV2::from).collect(), has_more: false };
    Ok(json_response(StatusCode::OK, to_json(&body), []))
}

fn endpoint_id(raw: &str) -> Result<WebhookEndpointId, ApiError> {
    WebhookEndpointId::parse(raw).ok_or_else(|| ApiError::not_found("webhook endpoint", raw))
}

/// Read a webhook endpoint
///
/// With the time and HTTP status of its last delivery attempt. Never its secret.
#[utoipa::path(
    get,
    path = "/v2/webhook_endpoints/{id}",
    operation_id = "getWebhookEndpoint",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`we_` and 26 letters and digits).")),
    responses((status = 200, description = "The endpoint.", body = WebhookEndpointV2), NotFound),
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    IdPath(raw): IdPath,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&raw)?;
    let endpoint = state.store.get_webhook_endpoint(&principal.account_id, &id).await?;
    let endpoint = endpoint.ok_or_else(|| ApiError::not_found("webhook endpoint", &raw))?;
    Ok(json_response(StatusCode::OK, to_json(&WebhookEndpointV2::from(&endpoint)), []))
}

/// Delete a webhook endpoint
///
/// Nothing more is sent to it; deliveries not yet made are dropped.
#[utoipa::path(
    delete,
    path = "/v2/webhook_endpoints/{id}",
    operation_id = "deleteWebhookEndpoint",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`we_` and 26 letters and digits).")),
    responses((status = 204, description = "Deleted."), Forbidden, NotFound),
)]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    IdPath(raw): IdPath,
) -> Result<StatusCode, ApiError> {
    let id = endpoint_id(&raw)?;
    match state.store.delete_webhook_endpoint(&principal.account_id, &id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => Err(ApiError::not_found("webhook endpoint", &raw)),
        Err(error) => Err(error.into()),
    }
}
