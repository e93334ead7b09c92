//! The storage's own JSON encoding of a customer, as an event's `data` column
//! holds it: every field of [`Customer`], times in Unix seconds. It is no wire
//! format (the HTTP layer renders an event's customer as v2 shows customers),
//! so it can stay the same when a version's representation changes.
//!
//! `{"id", "name", "email", "phone", "address": null | {"line1", "line2",
//! "city", "region", "postal_code", "country"}, "metadata": {..},
//! "created": s, "updated": s, "version": n}`

use serde::{Deserialize, Serialize};

use crate::domain::customer::{Address, Customer, Metadata};
use crate::domain::{AccountId, CustomerId, Event, EventId, EventType, WebhookEndpoint, WebhookEndpointId};
use crate::storage::row::{ColumnReader, DecodeError, id};

/// The columns [`event_from_row`] reads; a literal for `concat!`.
macro_rules! event_columns {
    () => {
        "id, account_id, type, created_at, data"
    };
}
pub(crate) use event_columns;

/// An event from the columns of [`event_columns!`].
pub(crate) fn event_from_row<R: ColumnReader>(row: &R) -> Result<Event, R::Error> {
    Ok(Event {
        id: id(row, 0, EventId::parse)?,
        account_id: id(row, 1, AccountId::parse)?,
        event_type: decode_event_type(&row.text(2)?).map_err(|error| R::invalid(2, error))?,
        created_at_ms: row.integer(3)?,
        customer: decode_customer(&row.text(4)?).map_err(|error| R::invalid(4, error))?,
    })
}

/// The lowest event id made at or after `before_ms` (Unix milliseconds): ids are
/// `evt_` + a ULID, whose first characters are its time, so the events created
/// before `before_ms` are those with a lower id. Retention prunes by the
/// primary key this way, and `created_at` needs no index of its own.
pub(crate) fn event_id_bound(before_ms: i64) -> String {
    let millis = u64::try_from(before_ms).unwrap_or(0).min((1 << 48) - 1);
    format!("evt_{}", ulid::Ulid::from_parts(millis, 0))
}

/// The columns [`endpoint_from_row`] reads, then `event_types` (index 7), which
/// each backend reads itself; a literal for `concat!`. The status is an
/// `INTEGER` (4 bytes in PostgreSQL), read as the 64-bit integer both backends give.
macro_rules! endpoint_columns {
    () => {
        "id, account_id, url, description, created_at, last_delivery_at, CAST(last_delivery_status AS BIGINT), event_types"
    };
}
pub(crate) use endpoint_columns;

/// An endpoint from the columns of [`endpoint_columns!`], with the event types its backend read.
pub(crate) fn endpoint_from_row<R: ColumnReader>(
    row: &R,
    event_types: Vec<EventType>,
) -> Result<WebhookEndpoint, R::Error> {
    let status = row.optional_integer(6)?;
    Ok(WebhookEndpoint {
        id: id(row, 0, WebhookEndpointId::parse)?,
        account_id: id(row, 1, AccountId::parse)?,
        url: row.text(2)?,
        event_types,
        description: row.optional_text(3)?,
        created_at_ms: row.integer(4)?,
        last_delivery_at_ms: row.optional_integer(5)?,
        last_delivery_status: status.map(u16::try_from).transpose().map_err(|error| R::invalid(6, error.into()))?,
    })
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    id: String,
    name: String,
    email: String,
    phone: Option<String>,
    address: Option<AddressSnapshot>,
    metadata: Metadata,
    created: i64,
    updated: i64,
    version: i64,
}

#[derive(Serialize, Deserialize)]
struct AddressSnapshot {
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    region: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
}

/// [`Snapshot`] borrowed from a [`Customer`], for encoding without copying
/// its strings; the same fields in the same order, so the same JSON.
#[derive(Serialize)]
struct SnapshotOf<'a> {
    id: &'a str,
    name: &'a str,
    email: &'a str,
    phone: Option<&'a str>,
    address: Option<AddressSnapshotOf<'a>>,
    metadata: &'a Metadata,
    created: i64,
    updated: i64,
    version: i64,
}

#[derive(Serialize)]
struct AddressSnapshotOf<'a> {
    line1: Option<&'a str>,
    line2: Option<&'a str>,
    city: Option<&'a str>,
    region: Option<&'a str>,
    postal_code: Option<&'a str>,
    country: Option<&'a str>,
}

/// The customer as an event's `data` column holds it.
pub(crate) fn encode_customer(customer: &Customer) -> String {
    let address = customer.address.as_ref().map(|address| AddressSnapshotOf {
        line1: address.line1.as_deref(),
        line2: address.line2.as_deref(),
        city: address.city.as_deref(),
        region: address.region.as_deref(),
        postal_code: address.postal_code.as_deref(),
        country: address.country.as_deref(),
    });
    let snapshot = SnapshotOf {
        id: customer.id.as_str(),
        name: &customer.name,
        email: &customer.email,
        phone: customer.phone.as_deref(),
        address,
        metadata: &customer.metadata,
        created: customer.created,
        updated: customer.updated,
        version: customer.version,
    };
    // Most snapshots fit without growing the buffer.
    let mut json = Vec::with_capacity(320);
    // Strings, integers and a map of strings always serialise, and as UTF-8.
    match serde_json::to_writer(&mut json, &snapshot) {
        Ok(()) => String::from_utf8(json).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The customer an event's `data` column holds; an error if it is not [`encode_customer`]'s JSON.
pub(crate) fn decode_customer(json: &str) -> Result<Customer, DecodeError> {
    let snapshot: Snapshot = serde_json::from_str(json)?;
    let id = CustomerId::parse(&snapshot.id).ok_or("an event's customer id is not well formed")?;
    Ok(Customer {
        id,
        name: snapshot.name,
        email: snapshot.email,
        phone: snapshot.phone,
        address: snapshot.address.map(|address| Address {
            line1: address.line1,
            line2: address.line2,
            city: address.city,
            region: address.region,
            postal_code: address.postal_code,
            country: address.country,
        }),
        metadata: snapshot.metadata,
        created: snapshot.created,
        updated: snapshot.updated,
        version: snapshot.version,
    })
}

/// The event type stored in an event's `type` column.
pub(crate) fn decode_event_type(stored: &str) -> Result<EventType, DecodeError> {
    Ok(stored.parse::<EventType>()?)
}

/// An endpoint's `event_types` as SQLite stores them: a JSON array of names.
pub(crate) fn encode_event_types(event_types: &[EventType]) -> String {
    let names: Vec<&str> = event_types.iter().map(|kind| kind.as_str()).collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned())
}

/// [`encode_event_types`]'s JSON, read back.
pub(crate) fn decode_event_types(json: &str) -> Result<Vec<EventType>, DecodeError> {
    let names: Vec<String> = serde_json::from_str(json)?;
    names.iter().map(|name| decode_event_type(name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::customer_id;

    #[test]
    fn customers_round_trip_with_and_without_an_address() {
        let mut customer = Customer {
            id: customer_id(),
            name: "Ada".into(),
            email: "ada@example.com".into(),
            phone: Some("+44 1".into()),
            address: Some(Address { city: Some("London".into()), ..Address::default() }),
            metadata: [("crm".to_owned(), "8812".to_owned())].into(),
            created: 1_764_326_000,
            updated: 1_764_326_001,
            version: 3,
        };
        assert_eq!(decode_customer(&encode_customer(&customer)).unwrap(), customer);
        customer.address = None;
        customer.phone = None;
        assert_eq!(decode_customer(&encode_customer(&customer)).unwrap(), customer);
        assert!(decode_customer("{}").is_err());
    }

    #[test]
    fn event_ids_made_before_a_time_sort_below_its_bound() {
        let before = crate::domain::ids::event_id();
        let now = crate::domain::time::now_unix_ms();
        let bound = event_id_bound(now + 1);
        assert!(before.as_str() < bound.as_str(), "{before} < {bound}");
        assert!(event_id_bound(now + 2000).as_str() > bound.as_str());
        assert!(crate::domain::ids::event_id().as_str() > event_id_bound(now - 1000).as_str());
        assert_eq!(event_id_bound(0), "evt_00000000000000000000000000");
        assert!(event_id_bound(-5) < event_id_bound(i64::MAX));
    }

    #[test]
    fn event_types_round_trip() {
        let types = [EventType::CustomerDeleted, EventType::CustomerCreated];
        assert_eq!(encode_event_types(&types), r#"["customer.deleted","customer.created"]"#);
        assert_eq!(decode_event_types(&encode_event_types(&types)).unwrap(), types);
        assert!(decode_event_types(r#"["nope"]"#).is_err());
    }
}
