//! Data migrations: work a SQL migration cannot do, run in Rust right after
//! the schema migrations. A SQL migration files the work as a row of
//! `pending_data_migrations`; the row is locked while the work runs (another
//! instance starting at once waits for it) and deleted in the same transaction.

use sqlx::{Connection, PgConnection, Row};

use crate::domain::customer::normalize_email;

/// Customers read and rewritten per round trip.
const BATCH: i64 = 5_000;

/// Runs every pending data migration.
pub async fn run(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    let mut transaction = connection.begin().await?;
    let pending = sqlx::query("SELECT name FROM pending_data_migrations WHERE name = $1 FOR UPDATE")
        .bind(EMAIL_CASE_FOLDING)
        .fetch_optional(&mut *transaction)
        .await?;
    if pending.is_some() {
        recompute_email_keys(&mut transaction).await?;
        sqlx::query("DELETE FROM pending_data_migrations WHERE name = $1")
            .bind(EMAIL_CASE_FOLDING)
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await
}

const EMAIL_CASE_FOLDING: &str = "email_case_folding";

/// Rewrites each customer's email match key with [`normalize_email`] (full
/// case folding), in batches by primary key; returns how many changed.
async fn recompute_email_keys(connection: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let (mut after_account, mut after_id) = (String::new(), String::new());
    let mut changed = 0;
    loop {
        let rows = sqlx::query(
            "SELECT account_id, id, email, email_normalized FROM customers \
             WHERE (account_id, id) > ($1, $2) ORDER BY account_id, id LIMIT $3",
        )
        .bind(&after_account)
        .bind(&after_id)
        .bind(BATCH)
        .fetch_all(&mut *connection)
        .await?;
        let Some(last) = rows.last() else { return Ok(changed) };
        (after_account, after_id) = (last.try_get(0)?, last.try_get(1)?);
        let (mut accounts, mut ids, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let key = normalize_email(row.try_get(2)?);
            if key != row.try_get::<&str, _>(3)? {
                accounts.push(row.try_get::<String, _>(0)?);
                ids.push(row.try_get::<String, _>(1)?);
                keys.push(key);
            }
        }
        if !keys.is_empty() {
            changed += sqlx::query(
                "UPDATE customers SET email_normalized = changed.key \
                 FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS changed(account_id, id, key) \
                 WHERE customers.account_id = changed.account_id AND customers.id = changed.id",
            )
            .bind(&accounts)
            .bind(&ids)
            .bind(&keys)
            .execute(&mut *connection)
            .await?
            .rows_affected();
        }
    }
}
