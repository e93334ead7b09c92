//! The JSON Schemas of events and webhook endpoints (API.md §8), from the
//! domain's own names and limits.

use serde_json::json;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};

use super::schemas::open_set;
use crate::domain::EventType;
use crate::domain::webhook::MAX_ENDPOINTS_PER_ACCOUNT;

/// The most characters of an endpoint's `url`.
pub const URL_MAX_CHARS: usize = 2048;
/// The most characters of an endpoint's `description`.
pub const DESCRIPTION_MAX_CHARS: usize = 500;

const EVENT_ID_PATTERN: &str = "^evt_[0-9A-Z]{26}$";
const ENDPOINT_ID_PATTERN: &str = "^we_[0-9A-Z]{26}$";

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn type_names() -> impl Iterator<Item = &'static str> {
    EventType::ALL.into_iter().map(EventType::as_str)
}

pub fn event_id() -> Schema {
    string()
        .pattern(Some(EVENT_ID_PATTERN))
        .description(Some("Opaque, unique, sorts by creation time."))
        .examples([json!("evt_01JDQ8ZK3V5W6X7Y8Z9A0B1C2E")])
        .into()
}

pub fn endpoint_id() -> Schema {
    string().pattern(Some(ENDPOINT_ID_PATTERN)).examples([json!("we_01JDQ8ZK3V5W6X7Y8Z9A0B1C2F")]).into()
}

/// The `KnownEventType` component: every event type this release records.
pub fn known_event_types() -> Schema {
    string()
        .description(Some("The event types this release records (API.md §8). Later releases may add types."))
        .enum_values(Some(type_names()))
        .into()
}

/// An event's `type` as answered: an open set, like error codes.
pub fn event_type_answered() -> RefOr<Schema> {
    open_set(
        "KnownEventType",
        "What happened. An open set: the types known to this release are `KnownEventType`; a later release may \
         add types, so ignore an event whose type you do not know.",
    )
}

/// An event type as sent (an endpoint's `event_types`, the `type` filter): one this release knows.
pub fn event_type_input() -> Schema {
    string().enum_values(Some(type_names())).examples([json!("customer.created")]).into()
}

pub fn event_types_input() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::T(event_type_input()))
        .min_items(Some(1))
        .description(Some("The event types to send to this endpoint: at least one; a repeated type counts once."))
        .examples([json!(["customer.created", "customer.updated", "customer.deleted"])])
        .into()
}

pub fn event_types_answered() -> Schema {
    ArrayBuilder::new()
        .items(event_type_answered())
        .min_items(Some(1))
        .description(Some("The event types sent to this endpoint."))
        .into()
}

pub fn url_input() -> Schema {
    string()
        .format(Some(SchemaFormat::Custom("uri".into())))
        .max_length(Some(URL_MAX_CHARS))
        .pattern(Some("^https://[^\\u0000-\\u0020]+$"))
        .description(Some(
            "An absolute `https` URL, at most 2048 characters. It must not resolve to a loopback, private, \
             link-local or multicast address (unless the operator allows it with `--webhook-allow-insecure`).",
        ))
        .examples([json!("https://crm.example.com/hooks/clientele")])
        .into()
}

pub fn url_stored() -> Schema {
    string()
        .format(Some(SchemaFormat::Custom("uri".into())))
        .examples([json!("https://crm.example.com/hooks/clientele")])
        .into()
}

pub fn description_input() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(DESCRIPTION_MAX_CHARS))
        .pattern(Some(super::schemas::NO_NUL))
        .description(Some("Optional: your note about the endpoint, at most 500 characters, or null."))
        .examples([json!("CRM sync")])
        .into()
}

pub fn description_stored() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(DESCRIPTION_MAX_CHARS))
        .examples([json!("CRM sync")])
        .into()
}

pub fn secret() -> Schema {
    string()
        .pattern(Some("^whsec_[A-Za-z0-9+/]{43}=$"))
        .description(Some(
            "The signing secret: `whsec_` + the base64 of 32 random bytes. Shown only in this response: keep it. \
             The key of the HMAC in `webhook-signature` is the base64 after `whsec_`, decoded (Standard Webhooks).",
        ))
        .examples([json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw6Pn7VtHKkE8=")])
        .into()
}

pub fn last_delivery_at() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some("When the last delivery attempt ended (RFC 3339, UTC); null before the first."))
        .examples([json!(null)])
        .into()
}

pub fn last_delivery_status() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(599))
        .description(Some(
            "The HTTP status the last attempt got; 0 when no response came (a timeout, a refused connection); \
             null before the first attempt.",
        ))
        .examples([json!(null)])
        .into()
}

/// The sentence the documents and errors use for the endpoint limit.
pub fn endpoint_limit_message() -> String {
    format!("an account has at most {MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints; delete one first")
}
