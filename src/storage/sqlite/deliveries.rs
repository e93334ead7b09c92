//! The SQL of the webhook delivery worker (API.md §8): leasing due deliveries
//! and recording what became of them, on the writer thread (one instance
//! serves a SQLite file, so the writer alone decides who holds a lease, by
//! the instance's clock). As on PostgreSQL, each lease has an identity
//! (`lease_id`, migration 0007) and an outcome is recorded only under the
//! lease that took the delivery.

use rusqlite::{Connection, params};

use crate::domain::{WebhookEndpointId, WebhookSecret};
use crate::storage::deliveries::latest_attempts;
use crate::storage::snapshot::event_from_row;
use crate::storage::{AttemptRecord, LeasedDelivery, StoreError};

/// Which deliveries are due at `?1`, leaving out the endpoints of the JSON array `?2`.
const DUE: &str = "d.state = 'pending' AND d.next_attempt_at <= ?1 \
     AND (d.leased_until IS NULL OR d.leased_until < ?1) \
     AND d.endpoint_id NOT IN (SELECT value FROM json_each(?2))";

/// Whether any delivery is due: read first (on a reader), so an idle poll
/// never queues a write.
pub fn any_due(connection: &Connection, now_ms: i64, skip_endpoints: &str) -> rusqlite::Result<bool> {
    connection
        .prepare_cached(&format!("SELECT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE {DUE})"))?
        .query_row(params![now_ms, skip_endpoints], |row| row.get(0))
}

/// Leases at most `limit` due deliveries until `now_ms + lease_ms`, under one
/// new lease id, with their endpoint and event.
pub fn lease(
    connection: &Connection,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
    skip_endpoints: &str,
) -> Result<Vec<LeasedDelivery>, StoreError> {
    // The event's columns first, in the order of `snapshot::event_columns!`, for `event_from_row`.
    let select = format!(
        "SELECT e.id, e.account_id, e.type, e.created_at, e.data, d.id, d.endpoint_id, d.attempts, w.url, w.secret \
         FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
         JOIN events e ON e.account_id = d.account_id AND e.id = d.event_id WHERE {DUE} ORDER BY d.id LIMIT ?3"
    );
    let mut statement = connection.prepare_cached(&select)?;
    let mut rows = statement.query(params![now_ms, skip_endpoints, limit])?;
    let mut leased = Vec::new();
    while let Some(row) = rows.next()? {
        leased.push(leased_from_row(row)?);
    }
    let mut mark =
        connection.prepare_cached("UPDATE webhook_deliveries SET leased_until = ?2, lease_id = ?3 WHERE id = ?1")?;
    let until = now_ms.saturating_add(lease_ms);
    let lease_id = rand::random::<i64>();
    for delivery in &mut leased {
        mark.execute(params![delivery.id, until, lease_id])?;
        delivery.lease_id = lease_id;
    }
    Ok(leased)
}

fn leased_from_row(row: &rusqlite::Row<'_>) -> Result<LeasedDelivery, StoreError> {
    let event = event_from_row(row)?;
    let endpoint_id: String = row.get(6)?;
    let endpoint_id = WebhookEndpointId::parse(&endpoint_id)
        .ok_or_else(|| StoreError::Internal(format!("not an endpoint id in webhook_deliveries: {endpoint_id:?}")))?;
    let secret = WebhookSecret::from_stored(row.get(9)?)
        .ok_or_else(|| StoreError::Internal(format!("an unreadable secret for endpoint {}", endpoint_id.as_str())))?;
    Ok(LeasedDelivery {
        id: row.get(5)?,
        lease_id: 0,
        endpoint_id,
        attempts: u32::try_from(row.get::<_, i64>(7)?).unwrap_or(0),
        url: row.get(8)?,
        secret,
        event,
    })
}

/// Records the outcomes of the deliveries still under the lease that took
/// them and ends those leases; moves each endpoint's last attempt forward to
/// its latest recorded one.
pub fn record(connection: &Connection, records: &[AttemptRecord]) -> Result<(), StoreError> {
    let mut delivery = connection.prepare_cached(
        "UPDATE webhook_deliveries SET state = ?2, attempts = attempts + ?3, \
         next_attempt_at = coalesce(?4, next_attempt_at), leased_until = NULL, lease_id = NULL \
         WHERE id = ?1 AND lease_id = ?5",
    )?;
    let mut applied = Vec::with_capacity(records.len());
    for record in records {
        let attempted = i64::from(record.outcome.attempted().is_some());
        let outcome = &record.outcome;
        let changed = delivery.execute(params![
            record.delivery_id,
            outcome.state(),
            attempted,
            outcome.next_attempt_at_ms(),
            record.lease_id
        ])?;
        if changed == 1 {
            applied.push(record.clone());
        }
    }
    let mut endpoint = connection.prepare_cached(
        "UPDATE webhook_endpoints SET last_delivery_at = ?2, last_delivery_status = ?3 \
         WHERE id = ?1 AND (last_delivery_at IS NULL OR last_delivery_at <= ?2)",
    )?;
    for (endpoint_id, attempted) in latest_attempts(&applied) {
        endpoint.execute(params![endpoint_id.as_str(), attempted.at_ms, attempted.status])?;
    }
    Ok(())
}

/// The endpoints to leave out, as the JSON array `json_each` reads.
pub fn skip_list(skip_endpoints: &[WebhookEndpointId]) -> String {
    serde_json::to_string(&skip_endpoints.iter().map(WebhookEndpointId::as_str).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".to_owned())
}
