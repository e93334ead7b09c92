//! `customers import` on PostgreSQL: a batch of lines in one transaction, one
//! statement a line (its import record claimed, and the customer inserted
//! only if the claim succeeded), the account's count (one of its `account_counts` rows) moved once at the end.

use sqlx::PgPool;

use super::counts::{ADD_TO_COUNT, random_shard};
use super::queries::bind_customer;
use crate::domain::AccountId;
use crate::storage::row::{CustomerColumns, customer_insert_columns};
use crate::storage::{ImportLine, StoreError, import_key};

/// Claims the line's key; inserts the customer only when the claim inserted
/// a row. A concurrent import of the same line waits for the other
/// transaction, then finds the key taken.
const IMPORT_LINE: &str = concat!(
    "WITH claimed AS (INSERT INTO idempotency_keys (account_id, key, fingerprint, status, body, location, etag, \
     created_at) VALUES ($1, $18, $19, $20, $21, $22, NULL, $23) ON CONFLICT (account_id, key) DO NOTHING \
     RETURNING account_id) \
     INSERT INTO customers (",
    customer_insert_columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 FROM claimed"
);

/// See [`crate::storage::Store::import_customers`].
pub async fn import_customers(
    pool: &PgPool,
    account_id: &AccountId,
    lines: &[ImportLine],
) -> Result<Vec<bool>, StoreError> {
    let mut transaction = pool.begin().await?;
    let mut created = Vec::with_capacity(lines.len());
    for line in lines {
        let (customer, record) = (&line.customer, line.record());
        let columns = CustomerColumns::of(customer);
        let inserted = bind_customer(sqlx::query(IMPORT_LINE), account_id, customer, &columns)
            .bind(&record.key)
            .bind(record.fingerprint.as_slice())
            .bind(i32::from(record.status))
            .bind(&record.body)
            .bind(&record.location)
            .bind(record.created_at)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        created.push(inserted == 1);
    }
    let count = created.iter().filter(|created| **created).count();
    sqlx::query(ADD_TO_COUNT)
        .bind(account_id.as_str())
        .bind(random_shard())
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok(created)
}

/// Per hash, whether the account has its import record.
pub async fn imported_lines(
    pool: &PgPool,
    account_id: &AccountId,
    line_hashes: &[[u8; 32]],
) -> Result<Vec<bool>, StoreError> {
    let keys: Vec<String> = line_hashes.iter().map(import_key).collect();
    let found: Vec<String> =
        sqlx::query_scalar("SELECT key FROM idempotency_keys WHERE account_id = $1 AND key = ANY($2)")
            .bind(account_id.as_str())
            .bind(&keys)
            .fetch_all(pool)
            .await?;
    let found: std::collections::HashSet<String> = found.into_iter().collect();
    Ok(keys.iter().map(|key| found.contains(key)).collect())
}
