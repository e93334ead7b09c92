//! The SQL of the webhook delivery worker (API.md §8). Many instances share
//! the queue: a lease is one statement that locks the due rows it takes and
//! skips those another instance is leasing (`FOR UPDATE SKIP LOCKED`), so each
//! delivery is leased by one instance at a time.
//!
//! Leases and due times are judged by the database's clock
//! ([`database_now_ms!`]), not by the instances': their clocks need not agree.
//! Each lease has an identity (`lease_id`, migration 0007), and an outcome is
//! recorded only while its lease is still the row's: a worker whose lease ran
//! out (a slow send) cannot overwrite the outcome of a later lease's attempt.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::domain::{WebhookEndpointId, WebhookSecret};
use crate::storage::snapshot::event_from_row;
use crate::storage::{AttemptRecord, Attempted, LeasedDelivery, StoreError};

/// The database's clock as Unix milliseconds: the start of the current
/// statement, so every use in one statement reads the same instant. A literal
/// for `concat!`.
macro_rules! database_now_ms {
    () => {
        "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000)::BIGINT"
    };
}
pub(super) use database_now_ms;

/// Leases (`$1`: the lease's length in milliseconds, `$4`: its id), then reads
/// each leased delivery with its endpoint and event (the event's columns first,
/// in the order of `snapshot::event_columns!`).
///
/// A delivery of an endpoint deleted meanwhile is not leased (it goes with
/// its event at pruning).
const LEASE: &str = concat!(
    "WITH leased AS ( \
       UPDATE webhook_deliveries SET leased_until = ",
    database_now_ms!(),
    " + $1, lease_id = $4 WHERE id IN ( \
         SELECT d.id FROM webhook_deliveries d \
         WHERE d.state = 'pending' AND d.next_attempt_at <= ",
    database_now_ms!(),
    " AND (d.leased_until IS NULL OR d.leased_until < ",
    database_now_ms!(),
    ") AND d.endpoint_id <> ALL($3::TEXT[]) \
           AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id) \
         ORDER BY d.id LIMIT $2 FOR UPDATE SKIP LOCKED) \
       RETURNING id, endpoint_id, event_id, attempts, lease_id) \
     SELECT e.id, e.account_id, e.type, e.created_at, e.data, l.id, l.endpoint_id, l.attempts, w.url, w.secret, \
       l.lease_id \
     FROM leased l JOIN webhook_endpoints w ON w.id = l.endpoint_id JOIN events e ON e.id = l.event_id \
     ORDER BY l.id"
);

/// Leases at most `limit` due deliveries for `lease_ms`, with their endpoint and event.
pub async fn lease(
    pool: &PgPool,
    lease_ms: i64,
    limit: u32,
    skip_endpoints: &[WebhookEndpointId],
) -> Result<Vec<LeasedDelivery>, StoreError> {
    let skip: Vec<&str> = skip_endpoints.iter().map(WebhookEndpointId::as_str).collect();
    let rows = sqlx::query(LEASE)
        .bind(lease_ms)
        .bind(i64::from(limit))
        .bind(&skip)
        .bind(rand::random::<i64>())
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
        lease_id: row.try_get(10)?,
        endpoint_id,
        attempts: u32::try_from(row.try_get::<i32, _>(7)?).unwrap_or(0),
        url: row.try_get(8)?,
        secret,
        event,
    })
}

/// Records the outcomes of the deliveries still under the lease that took
/// them (`d.lease_id = o.lease_id`), ends those leases, and moves each
/// endpoint's last attempt forward to its latest recorded one (the later in
/// `records` of two at one time, as `deliveries::latest_attempts` picks), in
/// one statement. A retry is due the delay the worker chose (`retry_in`) after
/// the record, on the database's clock: the worker records a batch right
/// after its failed attempt, which is always its last.
const RECORD: &str = concat!(
    "WITH o AS (SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::INTEGER[], $5::BIGINT[], \
       $6::TEXT[], $7::BIGINT[], $8::INTEGER[]) WITH ORDINALITY \
       AS o(id, lease_id, state, attempted, retry_in, endpoint_id, at, status, n)), \
     outcomes AS ( \
       UPDATE webhook_deliveries d SET state = o.state, attempts = d.attempts + o.attempted, \
         next_attempt_at = coalesce(",
    database_now_ms!(),
    " + o.retry_in, d.next_attempt_at), leased_until = NULL, lease_id = NULL \
       FROM o WHERE d.id = o.id AND d.lease_id = o.lease_id \
       RETURNING d.id), \
     latest AS ( \
       SELECT DISTINCT ON (o.endpoint_id) o.endpoint_id, o.at, o.status FROM o \
       WHERE o.at IS NOT NULL AND o.id IN (SELECT id FROM outcomes) ORDER BY o.endpoint_id, o.at DESC, o.n DESC) \
     UPDATE webhook_endpoints w SET last_delivery_at = l.at, last_delivery_status = l.status \
     FROM latest l WHERE w.id = l.endpoint_id AND (w.last_delivery_at IS NULL OR w.last_delivery_at <= l.at)"
);

pub async fn record(pool: &PgPool, records: &[AttemptRecord]) -> Result<(), StoreError> {
    let ids: Vec<i64> = records.iter().map(|record| record.delivery_id).collect();
    let lease_ids: Vec<i64> = records.iter().map(|record| record.lease_id).collect();
    let states: Vec<&str> = records.iter().map(|record| record.outcome.state()).collect();
    let attempted: Vec<i32> = records.iter().map(|record| i32::from(record.outcome.attempted().is_some())).collect();
    let retry_in: Vec<Option<i64>> = records.iter().map(|record| record.outcome.retry_in_ms()).collect();
    let endpoint_ids: Vec<&str> = records.iter().map(|record| record.endpoint_id.as_str()).collect();
    let attempts: Vec<Option<Attempted>> = records.iter().map(|record| record.outcome.attempted()).collect();
    let ats: Vec<Option<i64>> = attempts.iter().map(|attempt| attempt.map(|attempt| attempt.at_ms)).collect();
    let statuses: Vec<Option<i32>> =
        attempts.iter().map(|attempt| attempt.map(|attempt| i32::from(attempt.status))).collect();
    sqlx::query(RECORD)
        .bind(&ids)
        .bind(&lease_ids)
        .bind(&states)
        .bind(&attempted)
        .bind(&retry_in)
        .bind(&endpoint_ids)
        .bind(&ats)
        .bind(&statuses)
        .execute(pool)
        .await?;
    Ok(())
}
