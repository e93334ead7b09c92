//! The SQL of the webhook delivery worker (API.md §8). Many instances share
//! the queue: a lease is one statement that locks the due rows it takes and
//! skips those another instance is leasing (`FOR UPDATE SKIP LOCKED`), so each
//! delivery is leased by one instance at a time.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::domain::{WebhookEndpointId, WebhookSecret};
use crate::storage::deliveries::latest_attempts;
use crate::storage::snapshot::event_from_row;
use crate::storage::{AttemptRecord, LeasedDelivery, StoreError};

/// Leases, then reads each leased delivery with its endpoint and event (the
/// event's columns first, in the order of `snapshot::event_columns!`).
///
/// A delivery of an endpoint deleted meanwhile is not leased (it goes with
/// its event at pruning). Leases are judged by the instances' clocks, which
/// must agree (NTP) to well within the lease.
const LEASE: &str = "WITH leased AS ( \
       UPDATE webhook_deliveries SET leased_until = $2 WHERE id IN ( \
         SELECT d.id FROM webhook_deliveries d \
         WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
           AND (d.leased_until IS NULL OR d.leased_until < $1) \
           AND d.endpoint_id <> ALL($4::TEXT[]) \
           AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id) \
         ORDER BY d.id LIMIT $3 FOR UPDATE SKIP LOCKED) \
       RETURNING id, endpoint_id, event_id, attempts) \
     SELECT e.id, e.account_id, e.type, e.created_at, e.data, l.id, l.endpoint_id, l.attempts, w.url, w.secret \
     FROM leased l JOIN webhook_endpoints w ON w.id = l.endpoint_id JOIN events e ON e.id = l.event_id \
     ORDER BY l.id";

/// Leases at most `limit` due deliveries until `now_ms + lease_ms`, with their endpoint and event.
pub async fn lease(
    pool: &PgPool,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
    skip_endpoints: &[WebhookEndpointId],
) -> Result<Vec<LeasedDelivery>, StoreError> {
    let skip: Vec<&str> = skip_endpoints.iter().map(WebhookEndpointId::as_str).collect();
    let rows = sqlx::query(LEASE)
        .bind(now_ms)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(i64::from(limit))
        .bind(&skip)
        .fetch_all(pool)
        .await?;
    rows.iter().map(leased_from_row).collect()
}

fn leased_from_row(row: &PgRow) -> Result<LeasedDelivery, StoreError> {
    let event = event_from_row(row)?;
    let endpoint_id: String = row.try_get(6)?;
    let endpoint_id = WebhookEndpointId::parse(&endpoint_id)
        .ok_or_else(|| StoreError::Internal(format!("not an endpoint id in webhook_deliveries: {endpoint_id:?}")))?;
    let secret = WebhookSecret::from_stored(row.try_get(9)?)
        .ok_or_else(|| StoreError::Internal(format!("an unreadable secret for endpoint {}", endpoint_id.as_str())))?;
    Ok(LeasedDelivery {
        id: row.try_get(5)?,
        endpoint_id,
        attempts: u32::try_from(row.try_get::<i32, _>(7)?).unwrap_or(0),
        url: row.try_get(8)?,
        secret,
        event,
    })
}

/// Records the outcomes, ends the leases, and moves each endpoint's last
/// attempt forward, in one statement.
const RECORD: &str = "WITH outcomes AS ( \
       UPDATE webhook_deliveries d SET state = o.state, attempts = d.attempts + o.attempted, \
         next_attempt_at = coalesce(o.next_attempt_at, d.next_attempt_at), leased_until = NULL \
       FROM unnest($1::BIGINT[], $2::TEXT[], $3::INTEGER[], $4::BIGINT[]) \
         AS o(id, state, attempted, next_attempt_at) \
       WHERE d.id = o.id) \
     UPDATE webhook_endpoints w SET last_delivery_at = l.at, last_delivery_status = l.status \
     FROM unnest($5::TEXT[], $6::BIGINT[], $7::INTEGER[]) AS l(id, at, status) \
     WHERE w.id = l.id AND (w.last_delivery_at IS NULL OR w.last_delivery_at <= l.at)";

pub async fn record(pool: &PgPool, records: &[AttemptRecord]) -> Result<(), StoreError> {
    let ids: Vec<i64> = records.iter().map(|record| record.delivery_id).collect();
    let states: Vec<&str> = records.iter().map(|record| record.outcome.state()).collect();
    let attempted: Vec<i32> = records.iter().map(|record| i32::from(record.outcome.attempted().is_some())).collect();
    let next: Vec<Option<i64>> = records.iter().map(|record| record.outcome.next_attempt_at_ms()).collect();
    let latest = latest_attempts(records);
    let endpoint_ids: Vec<&str> = latest.iter().map(|(endpoint_id, _)| endpoint_id.as_str()).collect();
    let ats: Vec<i64> = latest.iter().map(|(_, attempted)| attempted.at_ms).collect();
    let statuses: Vec<i32> = latest.iter().map(|(_, attempted)| i32::from(attempted.status)).collect();
    sqlx::query(RECORD)
        .bind(&ids)
        .bind(&states)
        .bind(&attempted)
        .bind(&next)
        .bind(&endpoint_ids)
        .bind(&ats)
        .bind(&statuses)
        .execute(pool)
        .await?;
    Ok(())
}
