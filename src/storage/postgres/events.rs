//! The SQL for events, webhook endpoints and the deliveries written with each
//! event (API.md §8). A customer write records its event in its own statement
//! ([`created_event_ctes!`], [`written_event_ctes!`]), so the event commits (or
//! rolls back) with the write: a transactional outbox.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::queries::Statement;
use crate::domain::time::now_unix_ms;
use crate::domain::{
    AccountId, Customer, Event, EventId, EventType, WebhookEndpoint, WebhookEndpointId, WebhookSecret,
};
use crate::storage::snapshot::{
    decode_event_type, encode_customer, endpoint_columns, endpoint_from_row, event_columns, event_from_row,
    event_id_bound,
};
use crate::storage::{EventQuery, Page, StoreError, overfetch};

/// A creation's event, written by the customer's own insert statement, which
/// starts with [`created_event_ctes!`]: one round trip, no transaction.
pub(super) struct NewEvent {
    id: String,
    data: String,
    created_at_ms: i64,
}

impl NewEvent {
    pub fn of(customer: &Customer) -> Self {
        Self {
            id: crate::domain::ids::event_id().to_string(),
            data: encode_customer(customer),
            created_at_ms: now_unix_ms(),
        }
    }

    /// Binds `$18` (the event id), `$19` (its data) and `$20` (now, in milliseconds),
    /// after the customer's `$1` (account id) .. `$17`.
    pub fn bind<'q>(&'q self, statement: Statement<'q>) -> Statement<'q> {
        statement.bind(&self.id).bind(&self.data).bind(self.created_at_ms)
    }
}

/// The start of a `WITH` that records a creation's `customer.created` event
/// and its deliveries (due at once, by the database's clock), from the
/// customer's own arguments (`$1` the account id, `$2` the customer id) and
/// [`NewEvent::bind`]'s; the statement goes on with `, name AS (...)` and its
/// main query. A literal for `concat!`.
macro_rules! created_event_ctes {
    () => {
        concat!(
            "WITH event AS (INSERT INTO events (id, account_id, type, created_at, customer_id, data) \
             VALUES ($18, $1, 'customer.created', $20, $2, $19)), \
             deliveries AS (INSERT INTO webhook_deliveries (account_id, endpoint_id, event_id, next_attempt_at) \
             SELECT account_id, id, $18, ",
            $crate::storage::postgres::deliveries::database_now_ms!(),
            " FROM webhook_endpoints \
             WHERE account_id = $1 AND 'customer.created' = ANY (event_types) ORDER BY id)"
        )
    };
}
pub(super) use created_event_ctes;

/// The customer of a `customers` row (its columns unqualified, as in a
/// `RETURNING` list) as [`encode_customer`] writes it, byte for byte: the same
/// fields in the same order, no spaces, strings escaped by `to_json` as
/// serde_json escapes them (`"`, `\`, `\b\f\n\r\t`, other control characters
/// as `\u00xx`, nothing else), and the metadata column, which already holds
/// serde_json's encoding of the map (`row::encode_metadata`). A literal for `concat!`.
macro_rules! customer_snapshot {
    () => {
        "'{\"id\":' || to_json(id)::TEXT || ',\"name\":' || to_json(name)::TEXT \
         || ',\"email\":' || to_json(email)::TEXT || ',\"phone\":' || coalesce(to_json(phone)::TEXT, 'null') \
         || ',\"address\":' || CASE WHEN has_address THEN \
         '{\"line1\":' || coalesce(to_json(address_line1)::TEXT, 'null') \
         || ',\"line2\":' || coalesce(to_json(address_line2)::TEXT, 'null') \
         || ',\"city\":' || coalesce(to_json(address_city)::TEXT, 'null') \
         || ',\"region\":' || coalesce(to_json(address_region)::TEXT, 'null') \
         || ',\"postal_code\":' || coalesce(to_json(address_postal_code)::TEXT, 'null') \
         || ',\"country\":' || coalesce(to_json(address_country)::TEXT, 'null') || '}' ELSE 'null' END \
         || ',\"metadata\":' || metadata || ',\"created\":' || created_at::TEXT \
         || ',\"updated\":' || updated_at::TEXT || ',\"version\":' || version::TEXT || '}'"
    };
}
pub(super) use customer_snapshot;

/// Two common table expressions, `event` and `deliveries`, that record the
/// event of a replace or delete and its deliveries (due at once, by the
/// database's clock) in the write's own statement, from the rows of the
/// expression `$written` (the written customer's columns, with its
/// [`customer_snapshot!`] as `event_data`): nothing when it wrote nothing (a
/// refused write records no event). `$event_type` is the type's name;
/// `$account`, `$event_id` and `$created_at` are the parameters of the account
/// id, the event id and now (Unix milliseconds). A literal for `concat!`, to
/// follow the `WITH` of `$written`.
macro_rules! written_event_ctes {
    ($written:literal, $event_type:literal, $account:literal, $event_id:literal, $created_at:literal) => {
        concat!(
            "event AS (INSERT INTO events (id, account_id, type, created_at, customer_id, data) SELECT ",
            $event_id,
            ", ",
            $account,
            ", '",
            $event_type,
            "', ",
            $created_at,
            ", id, event_data FROM ",
            $written,
            " RETURNING id), \
             deliveries AS (INSERT INTO webhook_deliveries (account_id, endpoint_id, event_id, next_attempt_at) \
             SELECT w.account_id, w.id, event.id, ",
            $crate::storage::postgres::deliveries::database_now_ms!(),
            " FROM event CROSS JOIN webhook_endpoints w WHERE w.account_id = ",
            $account,
            " AND '",
            $event_type,
            "' = ANY (w.event_types) ORDER BY w.id)"
        )
    };
}
pub(super) use written_event_ctes;

fn events_from_rows(rows: &[PgRow]) -> Result<Vec<Event>, StoreError> {
    Ok(rows.iter().map(event_from_row).collect::<Result<_, _>>()?)
}

/// Served by events_account (account_id, id).
pub async fn list_events(pool: &PgPool, account_id: &AccountId, query: &EventQuery) -> Result<Page<Event>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE account_id = $1 AND ($3::TEXT IS NULL OR type = $3) \
         AND ($4::TEXT IS NULL OR id > $4) ORDER BY id LIMIT $2"
    );
    // No stored id holds a NUL, so "after `p` NUL `rest`" is the same as "after `p`".
    let after = query.starting_after.as_deref().map(|after| after.split('\0').next().unwrap_or_default());
    let rows = sqlx::query(SQL)
        .bind(account_id.as_str())
        .bind(overfetch(query.limit))
        .bind(query.event_type.map(EventType::as_str))
        .bind(after)
        .fetch_all(pool)
        .await?;
    Ok(Page::from_overfetched(events_from_rows(&rows)?, query.limit))
}

pub async fn get_event(pool: &PgPool, account_id: &AccountId, event_id: &EventId) -> Result<Option<Event>, StoreError> {
    const SQL: &str = concat!("SELECT ", event_columns!(), " FROM events WHERE id = $2 AND account_id = $1");
    let row = sqlx::query(SQL).bind(account_id.as_str()).bind(event_id.as_str()).fetch_optional(pool).await?;
    Ok(row.as_ref().map(event_from_row).transpose()?)
}

/// Deletes the oldest `max_rows` events created before `before_ms`, and their
/// deliveries, in one statement, by the primary key ([`event_id_bound`]). Rows
/// another instance is pruning are skipped.
pub async fn prune_events(pool: &PgPool, before_ms: i64, max_rows: u32) -> Result<u64, StoreError> {
    const SQL: &str = "WITH doomed AS ( \
         SELECT id FROM events WHERE id < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED), \
         deliveries AS (DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM doomed)), \
         deleted AS (DELETE FROM events WHERE id IN (SELECT id FROM doomed) RETURNING 1) \
         SELECT count(*) FROM deleted";
    let bound = event_id_bound(before_ms);
    let deleted: i64 = sqlx::query_scalar(SQL).bind(bound).bind(i64::from(max_rows)).fetch_one(pool).await?;
    Ok(deleted.max(0) as u64)
}

/// Counts and inserts under a transaction-scoped advisory lock on the account's
/// endpoints, so two concurrent creations cannot both take the last place.
pub async fn create_endpoint(
    pool: &PgPool,
    endpoint: &WebhookEndpoint,
    secret: &WebhookSecret,
    max_per_account: u32,
) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints ' || $1, 0))")
        .bind(endpoint.account_id.as_str())
        .execute(&mut *transaction)
        .await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE account_id = $1")
        .bind(endpoint.account_id.as_str())
        .fetch_one(&mut *transaction)
        .await?;
    if count >= i64::from(max_per_account) {
        transaction.rollback().await?;
        return Err(StoreError::TooManyEndpoints(max_per_account));
    }
    let event_types: Vec<&str> = endpoint.event_types.iter().map(|kind| kind.as_str()).collect();
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, account_id, url, event_types, description, secret, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(endpoint.id.as_str())
    .bind(endpoint.account_id.as_str())
    .bind(&endpoint.url)
    .bind(event_types)
    .bind(&endpoint.description)
    .bind(secret.expose())
    .bind(endpoint.created_at_ms)
    .execute(&mut *transaction)
    .await?;
    Ok(transaction.commit().await?)
}

fn endpoint(row: &PgRow) -> Result<WebhookEndpoint, StoreError> {
    let stored: Vec<String> = row.try_get(7)?;
    let event_types = stored
        .iter()
        .map(|name| decode_event_type(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| StoreError::Internal(format!("a stored event type: {error}")))?;
    Ok(endpoint_from_row(row, event_types)?)
}

pub async fn list_endpoints(pool: &PgPool, account_id: &AccountId) -> Result<Vec<WebhookEndpoint>, StoreError> {
    const SQL: &str =
        concat!("SELECT ", endpoint_columns!(), " FROM webhook_endpoints WHERE account_id = $1 ORDER BY id");
    let rows = sqlx::query(SQL).bind(account_id.as_str()).fetch_all(pool).await?;
    rows.iter().map(endpoint).collect()
}

pub async fn get_endpoint(
    pool: &PgPool,
    account_id: &AccountId,
    endpoint_id: &WebhookEndpointId,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    const SQL: &str =
        concat!("SELECT ", endpoint_columns!(), " FROM webhook_endpoints WHERE id = $2 AND account_id = $1");
    let row = sqlx::query(SQL).bind(account_id.as_str()).bind(endpoint_id.as_str()).fetch_optional(pool).await?;
    row.as_ref().map(endpoint).transpose()
}

/// Deletes the endpoint and its deliveries in one statement.
pub async fn delete_endpoint(
    pool: &PgPool,
    account_id: &AccountId,
    endpoint_id: &WebhookEndpointId,
) -> Result<(), StoreError> {
    const SQL: &str = "WITH deleted AS (DELETE FROM webhook_endpoints WHERE id = $2 AND account_id = $1 RETURNING id), \
         deliveries AS (DELETE FROM webhook_deliveries WHERE endpoint_id IN (SELECT id FROM deleted)) \
         SELECT count(*) FROM deleted";
    let deleted: i64 =
        sqlx::query_scalar(SQL).bind(account_id.as_str()).bind(endpoint_id.as_str()).fetch_one(pool).await?;
    if deleted == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
