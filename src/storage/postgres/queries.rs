//! The SQL for customers and idempotency records.
//!
//! Every write is atomic on its own: a conditional replace or delete checks
//! the version in the `WHERE` clause of the one statement that writes (a
//! concurrent writer blocks on the row lock, and PostgreSQL re-checks the
//! clause against the row it committed), and the account's count (a row of
//! `account_counts`, see [`super::writer`]) moves in the same statement or
//! transaction as the customer. Each write records its event in the same
//! statement ([`events::created_event_ctes!`], [`events::written_event_ctes!`]).
//! Creates are grouped by [`super::writer`]; [`insert_customer`] is its
//! fallback for a create on its own. Reads by id are grouped by [`super::reader`].

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::counts::{COUNT_CUSTOMERS, random_shard};
use super::events;
use crate::domain::customer::{Customer, Phone};
use crate::domain::time::now_unix_ms;
use crate::domain::{AccountId, CustomerFields, CustomerId};
use crate::storage::row::{
    CustomerColumns, column_reader, customer_columns, customer_from_row, customer_insert_columns, idempotency_columns,
    idempotency_from_row,
};
use crate::storage::{CursorQuery, IdempotencyRecord, Page, Precondition, StoreError, Versions, overfetch};

column_reader!(PgRow, sqlx::Error, try_get, |index: usize, source| sqlx::Error::ColumnDecode {
    index: index.to_string(),
    source
});

fn customers_from_rows(rows: &[PgRow]) -> Result<Vec<Customer>, StoreError> {
    Ok(rows.iter().map(customer_from_row).collect::<Result<_, _>>()?)
}

/// PostgreSQL text cannot hold NUL, so no stored key has one: a lookup by such
/// free text (an account name, an email filter, an idempotency key) finds
/// nothing without asking the database, which would refuse the argument with
/// an error. Typed ids need no such check: they cannot hold a NUL.
pub(super) fn unstorable(value: &str) -> bool {
    value.contains('\0')
}

/// A precondition as three SQL arguments, for `WHERE ... AND ($a IS NULL OR
/// version = ANY($a)) AND NOT version = ANY($b) AND NOT $c`: the versions
/// `If-Match` accepts (NULL: any), those `If-None-Match` refuses, and whether
/// `If-None-Match: *` refuses every existing version.
fn precondition_arguments(precondition: &Precondition) -> (Option<&[i64]>, &[i64], bool) {
    let accepted = match &precondition.if_match {
        None | Some(Versions::Any) => None,
        Some(Versions::Listed(versions)) => Some(versions.as_slice()),
    };
    let (refused, refuse_any): (&[i64], bool) = match &precondition.if_none_match {
        None => (&[], false),
        Some(Versions::Any) => (&[], true),
        Some(Versions::Listed(versions)) => (versions.as_slice(), false),
    };
    (accepted, refused, refuse_any)
}

/// Inserts the customer, counts it in one of the account's count rows (`$21`:
/// the shard) and records its event with its deliveries
/// ([`events::created_event_ctes!`]), in one statement.
const INSERT_CUSTOMER: &str = concat!(
    events::created_event_ctes!(),
    ", inserted AS (INSERT INTO customers (",
    customer_insert_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
     RETURNING account_id) \
     INSERT INTO account_counts (account_id, shard, n) SELECT account_id, $21, 1 FROM inserted \
     ON CONFLICT (account_id, shard) DO UPDATE SET n = account_counts.n + excluded.n"
);

/// One create in a transaction of its own: the grouped statement of
/// [`super::writer`] falls back to this when a batch fails for one of its creates.
pub(super) async fn insert_customer(
    pool: &PgPool,
    account_id: &AccountId,
    customer: &Customer,
    columns: &CustomerColumns,
    idempotency: Option<&IdempotencyRecord>,
) -> Result<(), StoreError> {
    let event = events::NewEvent::of(customer);
    let insert =
        event.bind(bind_customer(sqlx::query(INSERT_CUSTOMER), account_id, customer, columns)).bind(random_shard());
    let Some(record) = idempotency else {
        insert.execute(pool).await?;
        return Ok(());
    };
    let mut transaction = pool.begin().await?;
    // A concurrent transaction holding the same key makes this wait for its
    // outcome: if it commits, nothing is inserted here and its record is read below.
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, status, body, location, etag, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (account_id, key) DO NOTHING",
    )
    .bind(account_id.as_str())
    .bind(&record.key)
    .bind(record.fingerprint.as_slice())
    .bind(i32::from(record.status))
    .bind(&record.body)
    .bind(&record.location)
    .bind(&record.etag)
    .bind(record.created_at)
    .execute(&mut *transaction)
    .await?
    .rows_affected();
    if claimed != 1 {
        let existing = sqlx::query(FIND_IDEMPOTENCY)
            .bind(account_id.as_str())
            .bind(&record.key)
            .fetch_optional(&mut *transaction)
            .await?
            .as_ref()
            .map(idempotency_from_row)
            .transpose()?;
        transaction.rollback().await?;
        return match existing {
            Some(existing) => Err(StoreError::IdempotencyKeyTaken(Box::new(existing))),
            None => Err(StoreError::Internal("an idempotency key conflicted but cannot be read".into())),
        };
    }
    insert.execute(&mut *transaction).await?;
    transaction.commit().await?;
    Ok(())
}

/// A PostgreSQL statement with its arguments bound.
pub(super) type Statement<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds a customer's columns as `$1..$17`, in the order of the customer insert's column list.
pub(super) fn bind_customer<'q>(
    statement: Statement<'q>,
    account_id: &'q AccountId,
    customer: &'q Customer,
    columns: &'q CustomerColumns,
) -> Statement<'q> {
    let address = &columns.address;
    statement
        .bind(account_id.as_str())
        .bind(customer.id.as_str())
        .bind(&customer.name)
        .bind(&customer.email)
        .bind(&columns.email_normalized)
        .bind(&customer.phone)
        .bind(columns.has_address)
        .bind(&address.line1)
        .bind(&address.line2)
        .bind(&address.city)
        .bind(&address.region)
        .bind(&address.postal_code)
        .bind(&address.country)
        .bind(&columns.metadata)
        .bind(customer.created)
        .bind(customer.updated)
        .bind(customer.version)
}

/// Tells `NotFound` from `PreconditionFailed` after a conditional write changed
/// nothing, by evaluating the precondition against the version now stored. Should
/// it now hold (a concurrent write moved the version), the write still did not
/// happen: `PreconditionFailed`.
async fn missing_or_stale(
    pool: &PgPool,
    account_id: &AccountId,
    customer_id: &CustomerId,
    precondition: &Precondition,
) -> StoreError {
    let version = sqlx::query_scalar::<_, i64>("SELECT version FROM customers WHERE account_id = $1 AND id = $2")
        .bind(account_id.as_str())
        .bind(customer_id.as_str())
        .fetch_optional(pool)
        .await;
    match version {
        Ok(version) => precondition.check(version).err().unwrap_or(StoreError::PreconditionFailed),
        Err(error) => error.into(),
    }
}

/// Checks the version, writes, and records the `customer.updated` event (its
/// data the customer after the write, [`events::customer_snapshot!`]) with its
/// deliveries, in one statement: one round trip, in autocommit, so the one
/// statement the request's deadline budgets for (see [`crate::deadline`]) is
/// the whole write. A v1 write (no extended fields) keeps the stored address
/// and metadata. `$20`: the event id, `$21`: now (Unix milliseconds).
const REPLACE_CUSTOMER: &str = concat!(
    "WITH replaced AS (UPDATE customers SET name = $3, email = $4, email_normalized = $5, phone = $6, \
     has_address = CASE WHEN $7 THEN $8 ELSE has_address END, \
     address_line1 = CASE WHEN $7 THEN $9 ELSE address_line1 END, \
     address_line2 = CASE WHEN $7 THEN $10 ELSE address_line2 END, \
     address_city = CASE WHEN $7 THEN $11 ELSE address_city END, \
     address_region = CASE WHEN $7 THEN $12 ELSE address_region END, \
     address_postal_code = CASE WHEN $7 THEN $13 ELSE address_postal_code END, \
     address_country = CASE WHEN $7 THEN $14 ELSE address_country END, \
     metadata = CASE WHEN $7 THEN $15 ELSE metadata END, \
     updated_at = $16, version = version + 1 \
     WHERE account_id = $1 AND id = $2 AND ($17::BIGINT[] IS NULL OR version = ANY($17)) \
     AND NOT version = ANY($18::BIGINT[]) AND NOT $19 \
     RETURNING ",
    customer_columns!(),
    ", ",
    events::customer_snapshot!(),
    " AS event_data), ",
    events::written_event_ctes!("replaced", "customer.updated", "$1", "$20", "$21"),
    " SELECT ",
    customer_columns!(),
    " FROM replaced"
);

pub async fn replace_customer(
    pool: &PgPool,
    account_id: &AccountId,
    customer_id: &CustomerId,
    fields: CustomerFields,
    precondition: &Precondition,
    now: i64,
) -> Result<Customer, StoreError> {
    let replace_extended = fields.extended.is_some();
    let extended = fields.extended.unwrap_or_default();
    let columns = CustomerColumns::new(fields.email.as_str(), extended.address.as_ref(), &extended.metadata);
    let address = columns.address;
    let (accepted, refused, refuse_any) = precondition_arguments(precondition);
    let row = sqlx::query(REPLACE_CUSTOMER)
        .bind(account_id.as_str())
        .bind(customer_id.as_str())
        .bind(fields.name.into_inner())
        .bind(fields.email.into_inner())
        .bind(columns.email_normalized)
        .bind(fields.phone.map(Phone::into_inner))
        .bind(replace_extended)
        .bind(columns.has_address)
        .bind(address.line1)
        .bind(address.line2)
        .bind(address.city)
        .bind(address.region)
        .bind(address.postal_code)
        .bind(address.country)
        .bind(columns.metadata)
        .bind(now)
        .bind(accepted)
        .bind(refused)
        .bind(refuse_any)
        .bind(event_id())
        .bind(now_unix_ms())
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) => Ok(customer_from_row(&row)?),
        None => Err(missing_or_stale(pool, account_id, customer_id, precondition).await),
    }
}

/// Deletes if the version matches, uncounts the customer (`$6`: the count's
/// shard), and records the `customer.deleted` event (its data the customer's
/// last stored state) with its deliveries, in one statement, as
/// [`REPLACE_CUSTOMER`] does. `$7`: the event id, `$8`: now (Unix milliseconds).
const DELETE_CUSTOMER: &str = concat!(
    "WITH deleted AS ( \
     DELETE FROM customers WHERE account_id = $1 AND id = $2 AND ($3::BIGINT[] IS NULL OR version = ANY($3)) \
     AND NOT version = ANY($4::BIGINT[]) AND NOT $5 \
     RETURNING account_id AS owner, id, ",
    events::customer_snapshot!(),
    " AS event_data), counted AS ( \
     INSERT INTO account_counts (account_id, shard, n) SELECT owner, $6, -1 FROM deleted \
     ON CONFLICT (account_id, shard) DO UPDATE SET n = account_counts.n + excluded.n), ",
    events::written_event_ctes!("deleted", "customer.deleted", "$1", "$7", "$8"),
    " SELECT count(*) FROM deleted"
);

pub async fn delete_customer(
    pool: &PgPool,
    account_id: &AccountId,
    customer_id: &CustomerId,
    precondition: &Precondition,
) -> Result<(), StoreError> {
    let (accepted, refused, refuse_any) = precondition_arguments(precondition);
    let deleted: i64 = sqlx::query_scalar(DELETE_CUSTOMER)
        .bind(account_id.as_str())
        .bind(customer_id.as_str())
        .bind(accepted)
        .bind(refused)
        .bind(refuse_any)
        .bind(random_shard())
        .bind(event_id())
        .bind(now_unix_ms())
        .fetch_one(pool)
        .await?;
    if deleted == 0 {
        return Err(missing_or_stale(pool, account_id, customer_id, precondition).await);
    }
    Ok(())
}

/// A new event's id, as text.
fn event_id() -> String {
    crate::domain::ids::event_id().to_string()
}

pub async fn list_by_offset(
    pool: &PgPool,
    account_id: &AccountId,
    limit: u32,
    offset: u64,
) -> Result<(Page<Customer>, u64), StoreError> {
    const PAGE: &str =
        concat!("SELECT ", customer_columns!(), " FROM customers WHERE account_id = $1 ORDER BY id LIMIT $2 OFFSET $3");
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let mut connection = pool.acquire().await?;
    let rows = sqlx::query(PAGE)
        .bind(account_id.as_str())
        .bind(overfetch(limit))
        .bind(offset)
        .fetch_all(&mut *connection)
        .await?;
    let total: i64 = sqlx::query_scalar(COUNT_CUSTOMERS).bind(account_id.as_str()).fetch_one(&mut *connection).await?;
    let page = Page::from_overfetched(customers_from_rows(&rows)?, limit);
    Ok((page, total.max(0) as u64))
}

/// Served by the primary key (account_id, id), or by customers_email
/// (account_id, email_normalized, id) when filtering by email.
pub async fn list_after(
    pool: &PgPool,
    account_id: &AccountId,
    query: &CursorQuery,
) -> Result<Page<Customer>, StoreError> {
    macro_rules! page {
        ($filter:literal) => {
            concat!(
                "SELECT ",
                customer_columns!(),
                " FROM customers WHERE account_id = $1",
                $filter,
                " ORDER BY id LIMIT $2"
            )
        };
    }
    if query.email_normalized.as_deref().is_some_and(unstorable) {
        return Ok(Page { items: Vec::new(), has_more: false });
    }
    // No stored id holds a NUL, so "after `p` NUL `rest`" is the same as "after `p`".
    let starting_after = query.starting_after.as_deref().map(|after| after.split('\0').next().unwrap_or_default());
    let (account_id, limit) = (account_id.as_str(), overfetch(query.limit));
    let statement = match (&query.email_normalized, starting_after) {
        (None, None) => sqlx::query(page!("")).bind(account_id).bind(limit),
        (Some(email), None) => {
            sqlx::query(page!(" AND email_normalized = $3")).bind(account_id).bind(limit).bind(email)
        }
        (None, Some(after)) => sqlx::query(page!(" AND id > $3")).bind(account_id).bind(limit).bind(after),
        (Some(email), Some(after)) => sqlx::query(page!(" AND email_normalized = $3 AND id > $4"))
            .bind(account_id)
            .bind(limit)
            .bind(email)
            .bind(after),
    };
    let rows = statement.fetch_all(pool).await?;
    Ok(Page::from_overfetched(customers_from_rows(&rows)?, query.limit))
}

pub(super) const FIND_IDEMPOTENCY: &str =
    concat!("SELECT ", idempotency_columns!(), " FROM idempotency_keys WHERE account_id = $1 AND key = $2");

pub async fn find_idempotency(
    pool: &PgPool,
    account_id: &AccountId,
    key: &str,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    if unstorable(key) {
        return Ok(None);
    }
    let row = sqlx::query(FIND_IDEMPOTENCY).bind(account_id.as_str()).bind(key).fetch_optional(pool).await?;
    Ok(row.as_ref().map(idempotency_from_row).transpose()?)
}

pub async fn purge_idempotency(pool: &PgPool, before: i64) -> Result<u64, StoreError> {
    let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(deleted)
}
