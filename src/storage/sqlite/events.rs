//! The SQL for events, webhook endpoints and the deliveries written with each
//! event (API.md §8), run on a connection thread. [`record`] runs inside a
//! customer write's job on the writer thread, so the event commits (or rolls
//! back) with the write: a transactional outbox.

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use super::outbox::{PendingEvent, Transaction};
use crate::domain::time::now_unix_ms;
use crate::domain::{
    AccountId, Customer, Event, EventId, EventType, WebhookEndpoint, WebhookEndpointId, WebhookSecret,
};
use crate::storage::snapshot::{
    decode_event_types, encode_customer, encode_event_types, endpoint_columns, endpoint_from_row, event_columns,
    event_from_row, event_id_bound,
};
use crate::storage::{EventQuery, Page, StoreError, overfetch};

/// Records the event of a customer write in the batch's outbox: inserted,
/// with a pending delivery due now for each of the account's endpoints
/// subscribed to its type, just before the batch commits ([`super::outbox::flush`]).
/// The event's id is made here, on the writer thread, so ids follow the order
/// of commits.
pub fn record(transaction: &Transaction<'_>, account_id: &AccountId, event_type: EventType, customer: &Customer) {
    record_encoded(transaction, account_id, event_type, encode_customer(customer));
}

/// [`record`] with the customer's snapshot already encoded
/// ([`encode_customer`]), by the caller, off the writer thread.
pub fn record_encoded(transaction: &Transaction<'_>, account_id: &AccountId, event_type: EventType, data: String) {
    transaction.record(PendingEvent {
        id: crate::domain::ids::event_id(),
        account_id: account_id.clone(),
        event_type,
        created_at_ms: now_unix_ms(),
        data,
    });
}

pub fn list_events(
    connection: &Connection,
    account_id: &AccountId,
    query: &EventQuery,
) -> rusqlite::Result<Page<Event>> {
    let mut sql = concat!("SELECT ", event_columns!(), " FROM events WHERE account_id = :account").to_owned();
    let (account_id, limit) = (account_id.as_str(), overfetch(query.limit));
    let event_type = query.event_type.map(EventType::as_str);
    let mut bindings: Vec<(&str, &dyn ToSql)> = vec![(":account", &account_id), (":limit", &limit)];
    if let Some(event_type) = &event_type {
        sql.push_str(" AND type = :type");
        bindings.push((":type", event_type));
    }
    if let Some(after) = &query.starting_after {
        sql.push_str(" AND id > :after");
        bindings.push((":after", after));
    }
    sql.push_str(" ORDER BY id LIMIT :limit");
    let events = connection
        .prepare_cached(&sql)?
        .query_map(bindings.as_slice(), |row| event_from_row(row))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Page::from_overfetched(events, query.limit))
}

pub fn get_event(
    connection: &Connection,
    account_id: &AccountId,
    event_id: &EventId,
) -> rusqlite::Result<Option<Event>> {
    const SQL: &str = concat!("SELECT ", event_columns!(), " FROM events WHERE id = ?2 AND account_id = ?1");
    connection
        .prepare_cached(SQL)?
        .query_row(params![account_id.as_str(), event_id.as_str()], |row| event_from_row(row))
        .optional()
}

/// Deletes at most `max_rows` events created before `before_ms` (by their
/// ids, [`event_id_bound`]), and their deliveries: account by account, each
/// account's oldest first, in its range of the (account_id, id) key
/// (migration 0009). Returns how many it deleted; fewer than `max_rows` means
/// nothing older is left.
pub fn prune_events(connection: &Connection, before_ms: i64, max_rows: u32) -> rusqlite::Result<u64> {
    const DOOMED: &str = "SELECT id FROM events WHERE account_id = ?1 AND id < ?2 ORDER BY id LIMIT ?3";
    let bound = event_id_bound(before_ms);
    let accounts: Vec<String> = connection
        .prepare_cached("SELECT id FROM accounts ORDER BY id")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut deleted = 0u64;
    for account in accounts {
        let left = u64::from(max_rows).saturating_sub(deleted);
        if left == 0 {
            break;
        }
        connection
            .prepare_cached(&format!("DELETE FROM webhook_deliveries WHERE event_id IN ({DOOMED})"))?
            .execute(params![account, bound, left])?;
        deleted += connection
            .prepare_cached(&format!("DELETE FROM events WHERE account_id = ?1 AND id IN ({DOOMED})"))?
            .execute(params![account, bound, left])? as u64;
    }
    Ok(deleted)
}

/// Counts and inserts on the writer thread: no other write comes between.
pub fn create_endpoint(
    connection: &Connection,
    endpoint: &WebhookEndpoint,
    secret: &WebhookSecret,
    max_per_account: u32,
) -> Result<(), StoreError> {
    let count: i64 = connection
        .prepare_cached("SELECT count(*) FROM webhook_endpoints WHERE account_id = ?1")?
        .query_row(params![endpoint.account_id.as_str()], |row| row.get(0))?;
    if count >= i64::from(max_per_account) {
        return Err(StoreError::TooManyEndpoints(max_per_account));
    }
    connection
        .prepare_cached(
            "INSERT INTO webhook_endpoints (id, account_id, url, event_types, description, secret, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            endpoint.id.as_str(),
            endpoint.account_id.as_str(),
            endpoint.url,
            encode_event_types(&endpoint.event_types),
            endpoint.description,
            secret.expose(),
            endpoint.created_at_ms,
        ])?;
    Ok(())
}

fn endpoint(row: &Row<'_>) -> rusqlite::Result<WebhookEndpoint> {
    let stored: String = row.get(7)?;
    let event_types =
        decode_event_types(&stored).map_err(|error| rusqlite::Error::FromSqlConversionFailure(7, Type::Text, error))?;
    endpoint_from_row(row, event_types)
}

pub fn list_endpoints(connection: &Connection, account_id: &AccountId) -> rusqlite::Result<Vec<WebhookEndpoint>> {
    const SQL: &str =
        concat!("SELECT ", endpoint_columns!(), " FROM webhook_endpoints WHERE account_id = ?1 ORDER BY id");
    connection.prepare_cached(SQL)?.query_map(params![account_id.as_str()], endpoint)?.collect()
}

pub fn get_endpoint(
    connection: &Connection,
    account_id: &AccountId,
    endpoint_id: &WebhookEndpointId,
) -> rusqlite::Result<Option<WebhookEndpoint>> {
    const SQL: &str =
        concat!("SELECT ", endpoint_columns!(), " FROM webhook_endpoints WHERE id = ?2 AND account_id = ?1");
    connection.prepare_cached(SQL)?.query_row(params![account_id.as_str(), endpoint_id.as_str()], endpoint).optional()
}

pub fn delete_endpoint(
    connection: &Connection,
    account_id: &AccountId,
    endpoint_id: &WebhookEndpointId,
) -> Result<(), StoreError> {
    let deleted = connection
        .prepare_cached("DELETE FROM webhook_endpoints WHERE id = ?2 AND account_id = ?1")?
        .execute(params![account_id.as_str(), endpoint_id.as_str()])?;
    if deleted == 0 {
        return Err(StoreError::NotFound);
    }
    connection
        .prepare_cached("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1")?
        .execute(params![endpoint_id.as_str()])?;
    Ok(())
}
