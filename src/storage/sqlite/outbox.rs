//! The events and customer-count changes of one writer batch (API.md §8),
//! held until just before its commit and then written together: a
//! transactional outbox with grouped inserts.
//!
//! A customer write's job records its event, and the change it makes to its
//! account's `customer_count`, in the batch's [`Transaction`]; neither is
//! written by that job but kept in memory, and dropped if the job fails (its
//! savepoint is rolled back). Before the batch commits, [`flush`] adds up the
//! count changes (one `UPDATE` per account and batch, not one per write),
//! inserts every kept event in multi-row statements and fans each out to the
//! account's subscribed webhook endpoints in one statement, inside the same
//! transaction: the events and counts commit with their writes or not at all.
//! Per event this saves the statements, the savepoint journalling of the
//! events' pages and the endpoint lookup that a write of its own would cost
//! (about two thirds of an event's cost on the writer thread; BENCHMARKS.md).

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

/// What the jobs of a batch recorded for its commit: events, and changes
/// to accounts' `customer_count`, in the order recorded.
#[derive(Default)]
pub struct Outbox {
    events: Vec<PendingEvent>,
    /// (account, customers added; negative for removed).
    counts: Vec<(AccountId, i64)>,
}

/// How much an [`Outbox`] held at some point: [`Outbox::truncate`] drops what came after.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    events: usize,
    counts: usize,
}

impl Outbox {
    /// A mark of what it holds now.
    pub fn mark(&self) -> Mark {
        Mark { events: self.events.len(), counts: self.counts.len() }
    }

    /// Drops what was recorded after `mark` (a failed job's records).
    pub fn truncate(&mut self, mark: Mark) {
        self.events.truncate(mark.events);
        self.counts.truncate(mark.counts);
    }

    /// Drops everything (the batch did not commit).
    pub fn clear(&mut self) {
        self.events.clear();
        self.counts.clear();
    }
}

/// A write job's view of the writer's open transaction: its connection (by
/// `Deref`), and the batch's outbox.
pub struct Transaction<'a> {
    connection: &'a Connection,
    outbox: &'a RefCell<Outbox>,
}

impl<'a> Transaction<'a> {
    pub(super) fn new(connection: &'a Connection, outbox: &'a RefCell<Outbox>) -> Self {
        Self { connection, outbox }
    }

    pub(super) fn outbox(&self) -> &RefCell<Outbox> {
        self.outbox
    }

    /// Keeps `event` for the batch's commit.
    pub fn record(&self, event: PendingEvent) {
        self.outbox.borrow_mut().events.push(event);
    }

    /// Keeps a change of `delta` customers to the account's `customer_count`
    /// for the batch's commit, where each account's changes are added up and
    /// written once. Nothing in a batch reads the count before its commit.
    pub fn adjust_customer_count(&self, account_id: &AccountId, delta: i64) {
        self.outbox.borrow_mut().counts.push((account_id.clone(), delta));
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection
    }
}

/// Events a multi-row insert writes at most: 5 values each, 320 in all.
const EVENTS_PER_STATEMENT: usize = 64;

/// Writes what the batch's jobs recorded and empties `outbox`: each
/// account's `customer_count` changed by the sum of its changes, then the
/// events (in their order, which is their ids' order) and one pending
/// delivery, due now, for each endpoint of the event's account subscribed to
/// its type. Runs inside the batch's transaction; an error means the whole
/// batch must be rolled back.
pub fn flush(connection: &Connection, outbox: &mut Outbox) -> Result<(), StoreError> {
    write_counts(connection, &outbox.counts)?;
    outbox.counts.clear();
    let events = &mut outbox.events;
    if events.is_empty() {
        return Ok(());
    }
    let mut rest = events.as_slice();
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(statement_size(rest.len()));
        insert_events(connection, chunk)?;
        rest = after;
    }
    fan_out(connection, events)?;
    events.clear();
    Ok(())
}

/// How many of `left` events the next insert writes: the largest power of
/// two up to [`EVENTS_PER_STATEMENT`], so a batch of any size uses at most
/// seven statement shapes, each prepared once and cached (preparing a
/// statement of its own size for each batch cost more than inserting its events).
fn statement_size(left: usize) -> usize {
    let below = 1 << left.ilog2();
    below.min(EVENTS_PER_STATEMENT)
}

/// One `UPDATE` per account, in the order the accounts were first changed.
fn write_counts(connection: &Connection, counts: &[(AccountId, i64)]) -> Result<(), StoreError> {
    let mut totals: Vec<(&AccountId, i64)> = Vec::new();
    for (account_id, delta) in counts {
        match totals.iter_mut().find(|(seen, _)| *seen == account_id) {
            Some((_, total)) => *total += delta,
            None => totals.push((account_id, *delta)),
        }
    }
    for (account_id, total) in totals.into_iter().filter(|(_, total)| *total != 0) {
        super::queries::adjust_customer_count(connection, account_id, total)?;
    }
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
    // One of seven sizes (`statement_size`): all cached.
    connection.prepare_cached(&sql)?.execute(values.as_slice())?;
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
