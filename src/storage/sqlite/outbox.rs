//! The events of one writer batch (API.md §8), held until just before its
//! commit and then written together: a transactional outbox with grouped inserts.
//!
//! A customer write's job records its event in the batch's [`Transaction`];
//! the event is not inserted by that job but kept in memory, and dropped if
//! the job's savepoint is rolled back. Before the batch commits, [`flush`]
//! inserts every kept event in multi-row statements and fans each out to the
//! account's subscribed webhook endpoints in one statement, inside the same
//! transaction: the events commit with their writes or not at all. Per event
//! this saves the statements, the savepoint journalling of the events' pages
//! and the endpoint lookup that a write of its own would cost (about two
//! thirds of an event's cost on the writer thread; BENCHMARKS.md).

use std::cell::RefCell;
use std::ops::Deref;

use rusqlite::{Connection, ToSql, params};

use crate::domain::time::now_unix_ms;
use crate::domain::{AccountId, EventId, EventType};
use crate::storage::StoreError;

/// An event recorded by a job of the batch, not inserted yet.
pub struct PendingEvent {
    pub id: EventId,
    pub account_id: AccountId,
    pub event_type: EventType,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// The customer's snapshot ([`crate::storage::snapshot`]).
    pub data: String,
}

/// A write job's view of the writer's open transaction: its connection (by
/// `Deref`), and the batch's outbox.
pub struct Transaction<'a> {
    connection: &'a Connection,
    outbox: &'a RefCell<Vec<PendingEvent>>,
}

impl<'a> Transaction<'a> {
    pub(super) fn new(connection: &'a Connection, outbox: &'a RefCell<Vec<PendingEvent>>) -> Self {
        Self { connection, outbox }
    }

    pub(super) fn outbox(&self) -> &RefCell<Vec<PendingEvent>> {
        self.outbox
    }

    /// Keeps `event` for the batch's commit.
    pub fn record(&self, event: PendingEvent) {
        self.outbox.borrow_mut().push(event);
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection
    }
}

/// Events a multi-row insert writes at once: 5 values each, 320 in all.
const EVENTS_PER_STATEMENT: usize = 64;

/// Inserts `events` (in their order, which is their ids' order) and one
/// pending delivery, due now, for each endpoint of the event's account
/// subscribed to its type; empties `events`. Runs inside the batch's
/// transaction; an error means the whole batch must be rolled back.
pub fn flush(connection: &Connection, events: &mut Vec<PendingEvent>) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        insert_events(connection, chunk)?;
    }
    fan_out(connection, events)?;
    events.clear();
    Ok(())
}

fn insert_events(connection: &Connection, events: &[PendingEvent]) -> rusqlite::Result<()> {
    let mut sql = String::from("INSERT INTO events (id, account_id, type, created_at, data) VALUES ");
    for index in 0..events.len() {
        sql.push_str(if index == 0 { "(?,?,?,?,?)" } else { ",(?,?,?,?,?)" });
    }
    let columns: Vec<[&str; 3]> =
        events.iter().map(|event| [event.id.as_str(), event.account_id.as_str(), event.event_type.as_str()]).collect();
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(events.len() * 5);
    for (event, [id, account_id, event_type]) in events.iter().zip(&columns) {
        values.extend([id as &dyn ToSql, account_id, event_type, &event.created_at_ms, &event.data]);
    }
    // Only the two usual sizes are cached: one statement per tail size would
    // push the writer's other statements out of its cache.
    if events.len() == EVENTS_PER_STATEMENT || events.len() == 1 {
        connection.prepare_cached(&sql)?.execute(values.as_slice())?;
    } else {
        connection.prepare(&sql)?.execute(values.as_slice())?;
    }
    Ok(())
}

/// One statement for the whole batch, and none at all while no account has
/// an endpoint (the common case, checked in the small endpoints table). A
/// failure here (an endpoint's stored `event_types` unreadable, say) fails the
/// whole batch, every account's writes in it: nothing is half recorded.
fn fan_out(connection: &Connection, events: &[PendingEvent]) -> Result<(), StoreError> {
    let any: bool = connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM webhook_endpoints)")?
        .query_row([], |row| row.get(0))?;
    if !any {
        return Ok(());
    }
    // [id, account, type, created_at (ms)]: an endpoint gets the events made
    // after its creation only, as if each event had been fanned out by its own write.
    let events: Vec<(&str, &str, &str, i64)> = events
        .iter()
        .map(|event| (event.id.as_str(), event.account_id.as_str(), event.event_type.as_str(), event.created_at_ms))
        .collect();
    connection
        .prepare_cached(
            "INSERT INTO webhook_deliveries (account_id, endpoint_id, event_id, next_attempt_at) \
             SELECT w.account_id, w.id, e.value ->> '$[0]', ?2 \
             FROM json_each(?1) e JOIN webhook_endpoints w ON w.account_id = e.value ->> '$[1]' \
             WHERE w.created_at <= e.value ->> '$[3]' \
             AND EXISTS (SELECT 1 FROM json_each(w.event_types) t WHERE t.value = e.value ->> '$[2]') \
             ORDER BY e.key, w.id",
        )?
        .execute(params![to_json(&events)?, now_unix_ms()])?;
    Ok(())
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Internal(format!("cannot encode a JSON list: {error}")))
}
