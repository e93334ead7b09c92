//! `GET /v2/events` and `GET /v2/events/{id}` (API.md §8): an account's
//! events, oldest first, cursor-paged like customers; and [`render_event`],
//! the one JSON of an event, which webhook deliveries POST too.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use deserr::{DeserializeError, Deserr, IntoValue, MergeWithError, Value, ValuePointerRef};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::wire::CustomerV2;
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::time::rfc3339_ms;
use crate::domain::{Event, EventId, EventType, FieldError};
use crate::http::error::ApiError;
use crate::http::openapi::event_schemas as rules;
use crate::http::openapi::responses::{BadRequest, NotFound};
use crate::http::query::{DEFAULT_PAGE_LIMIT, PageLimit, Query};
use crate::http::response::{json_response, next_page_link, to_json};
use crate::http::wire::{WireError, text};
use crate::storage::EventQuery;

/// An event as v2 shows it, and as a webhook delivery POSTs it.
#[derive(Serialize, ToSchema)]
#[schema(as = Event, examples(json!({"id": "evt_01JDQ8ZK3V5W6X7Y8Z9A0B1C2E", "type": "customer.created",
    "created_at": "2025-11-28T10:33:20Z",
    "data": {"object": {"id": "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D", "name": "Ada Lovelace",
        "email": "ada@example.com", "phone": null, "address": null, "metadata": {},
        "created_at": "2025-11-28T10:33:20Z", "updated_at": "2025-11-28T10:33:20Z", "version": 1}}})))]
pub struct EventV2<'a> {
    #[schema(schema_with = rules::event_id)]
    pub id: &'a str,
    #[serde(rename = "type")]
    #[schema(schema_with = rules::event_type_answered)]
    pub event_type: &'static str,
    /// When the write happened.
    #[schema(schema_with = crate::http::openapi::schemas::timestamp)]
    pub created_at: String,
    pub data: EventDataV2<'a>,
}

/// What an event is about.
#[derive(Serialize, ToSchema)]
#[schema(as = EventData)]
pub struct EventDataV2<'a> {
    /// The customer after the write, as `GET /v2/customers/{id}` showed it then; for
    /// `customer.deleted`, its last stored state (version unchanged).
    pub object: CustomerV2<'a>,
}

impl<'a> From<&'a Event> for EventV2<'a> {
    fn from(event: &'a Event) -> Self {
        Self {
            id: event.id.as_str(),
            event_type: event.event_type.as_str(),
            created_at: rfc3339_ms(event.created_at_ms),
            data: EventDataV2 { object: CustomerV2::from(&event.customer) },
        }
    }
}

/// The JSON of one event, exactly as `GET /v2/events/{id}` answers it and a
/// webhook delivery POSTs it (API.md §8).
pub fn render_event(event: &Event) -> Vec<u8> {
    to_json(&EventV2::from(event))
}

/// One page of events, oldest first.
#[derive(Serialize, ToSchema)]
#[schema(as = EventList)]
pub struct EventListV2<'a> {
    pub data: Vec<EventV2<'a>>,
    /// Whether more events follow; the `Link` header then names the next page.
    pub has_more: bool,
}

/// The query of `GET /v2/events`. Any other parameter is refused as unknown, a repeated one as invalid.
#[derive(Debug, Deserr, IntoParams)]
#[deserr(error = WireError, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventPage {
    /// How many events per page, 1–100; 20 when absent.
    #[param(required = false, value_type = i64, minimum = 1, maximum = 100)]
    #[deserr(default = DEFAULT_PAGE_LIMIT)]
    pub limit: PageLimit,
    /// The id of the last event of the previous page (as in the `Link` header); the page starts
    /// after it. An unknown id is fine: the page starts after where it would sort.
    #[param(required = false, value_type = String)]
    #[deserr(default)]
    pub starting_after: Option<String>,
    /// Only events of this type.
    #[param(rename = "type", required = false, schema_with = rules::event_type_input)]
    #[deserr(rename = "type", default)]
    pub event_type: Option<EventTypeParam>,
}

/// An event type as sent, one this release knows; anything else is invalid, named by its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTypeParam(pub EventType);

impl<E: DeserializeError + MergeWithError<FieldError>> Deserr<E> for EventTypeParam {
    fn deserialize_from_value<V: IntoValue>(value: Value<V>, location: ValuePointerRef<'_>) -> Result<Self, E> {
        text(value, location, |raw, path| {
            raw.parse().map(EventTypeParam).map_err(|message: String| FieldError::invalid(path, message))
        })
    }
}

/// The `{id}` of an event or endpoint route, as sent.
pub struct IdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(raw)) => Ok(Self(raw)),
            Err(_) => Err(ApiError::not_found("resource", "")),
        }
    }
}

/// List events
///
/// The account's events, oldest first (ascending id) after `starting_after`, optionally of one type.
/// Every successful customer write, from either API version, records one; events are kept at least
/// as long as the server's event retention (30 days by default).
#[utoipa::path(
    get,
    path = "/v2/events",
    operation_id = "listEvents",
    tag = "events",
    params(EventPage),
    responses(
        (status = 200, description = "One page of events.", body = EventListV2,
            headers(("Link" = String, description = "When `has_more`: `</v2/events?limit=...&starting_after=...>; rel=\"next\"`, the next page."))),
        BadRequest,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(EventPage { limit, starting_after, event_type }): Query<EventPage>,
) -> Result<Response, ApiError> {
    let limit = limit.0 as u32;
    let event_type = event_type.map(|param| param.0);
    let query = EventQuery { limit, starting_after, event_type };
    let page = state.store.list_events(&principal.account_id, query).await?;
    let last = page.items.last().map(|event| event.id.as_str());
    let filter = event_type.map(|event_type| ("type", event_type.as_str()));
    let headers = next_page_link("/v2/events", limit, page.has_more, last, filter);
    let body = EventListV2 { data: page.items.iter().map(EventV2::from).collect(), has_more: page.has_more };
    Ok(json_response(StatusCode::OK, to_json(&body), headers))
}

/// Read an event
///
/// One of the account's events; another account's answers `404`, like an id that never existed.
#[utoipa::path(
    get,
    path = "/v2/events/{id}",
    operation_id = "getEvent",
    tag = "events",
    params(("id" = String, Path, description = "The event's id (`evt_` and 26 letters and digits).")),
    responses((status = 200, description = "The event.", body = EventV2), NotFound),
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    IdPath(raw): IdPath,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("event", &raw);
    let id = EventId::parse(&raw).ok_or_else(not_found)?;
    let event = state.store.get_event(&principal.account_id, &id).await?.ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, render_event(&event), []))
}
