//! `customers import` on SQLite: a batch of lines in one job of the writer
//! thread (so one transaction, committed with whatever else the writer holds),
//! and the lookup `--dry-run` makes instead.

use rusqlite::{Connection, OptionalExtension, params};

use super::queries;
use crate::domain::AccountId;
use crate::storage::{ImportLine, StoreError, import_key};

/// Inserts each line's customer with its import record (see
/// [`crate::storage::Store::import_customers`]); a line whose record exists is a duplicate.
pub fn import_customers(
    connection: &Connection,
    account_id: &AccountId,
    lines: &[ImportLine],
) -> Result<Vec<bool>, StoreError> {
    lines
        .iter()
        .map(|line| match queries::insert_customer(connection, account_id, &line.customer, Some(&line.record())) {
            Ok(()) => Ok(true),
            Err(StoreError::IdempotencyKeyTaken(_)) => Ok(false),
            Err(error) => Err(error),
        })
        .collect()
}

/// Per hash, whether the account has its import record.
pub fn imported_lines(
    connection: &Connection,
    account_id: &AccountId,
    line_hashes: &[[u8; 32]],
) -> rusqlite::Result<Vec<bool>> {
    let mut select = connection.prepare_cached("SELECT 1 FROM idempotency_keys WHERE account_id = ?1 AND key = ?2")?;
    line_hashes
        .iter()
        .map(|hash| {
            let found: Option<i64> =
                select.query_row(params![account_id.as_str(), import_key(hash)], |row| row.get(0)).optional()?;
            Ok(found.is_some())
        })
        .collect()
}
