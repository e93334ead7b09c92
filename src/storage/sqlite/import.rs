//! `customers import` on SQLite: a batch of lines in one job of the writer
//! thread (so one transaction, committed with whatever else the writer holds).
//! Each line claims its mark in `import_records` (account, line hash); the
//! customers of the claims that succeeded go in with multi-row inserts
//! ([`ROWS_PER_STATEMENT`] rows each), and the account's count moves once.
//! Also the lookup `--dry-run` makes instead.

use rusqlite::{Connection, ToSql};

use super::queries::{CustomerRow, adjust_customer_count};
use crate::domain::AccountId;
use crate::storage::row::customer_insert_columns;
use crate::storage::{ImportLine, StoreError};

/// Rows a multi-row insert writes at once: 64 customers bind 1,088 values,
/// far below SQLite's limit (32,766), and already share most of the
/// per-statement cost.
const ROWS_PER_STATEMENT: usize = 64;

/// Values a customer's row binds (the columns of [`customer_insert_columns!`]).
const CUSTOMER_WIDTH: usize = 17;

/// The writer's page cache while it imports, in KiB: a batch dirties pages
/// all over two indexes keyed by random values (the lines' hashes, emails),
/// and with SQLite's default (2 MiB) it spills them to the WAL again and again
/// before the commit. Bounded, so memory stays flat.
const IMPORT_CACHE_KIB: i64 = 64 * 1024;

/// WAL pages between the writer's automatic checkpoints while it imports
/// (SQLite's default: 1,000, about one batch): a page that successive batches
/// change is copied into the database file once per checkpoint, not once per batch.
const IMPORT_CHECKPOINT_PAGES: i64 = 16 * 1024;

/// Claims a line's mark: one row changed if the account had not imported the
/// line (nor an earlier line of the batch with the same bytes), none if it had.
const CLAIM: &str = "INSERT INTO import_records (account_id, line_hash) VALUES (?1, ?2) \
                     ON CONFLICT (account_id, line_hash) DO NOTHING";

/// Inserts each new line's customer with its mark (see
/// [`crate::storage::Store::import_customers`]); a line whose mark exists,
/// or whose hash came earlier in `lines`, is a duplicate. The claim and the
/// insert are one statement each in the writer's transaction, so a line is
/// created at most once whatever else runs.
pub fn import_customers(
    connection: &Connection,
    account_id: &AccountId,
    lines: &[ImportLine],
) -> Result<Vec<bool>, StoreError> {
    // The writer's connection is the import command's own: these outlive the batch harmlessly.
    connection.pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)?;
    connection.pragma_update(None, "wal_autocheckpoint", IMPORT_CHECKPOINT_PAGES)?;
    let mut claim = connection.prepare_cached(CLAIM)?;
    let mut created = Vec::with_capacity(lines.len());
    for line in lines {
        created.push(claim.execute((account_id.as_str(), line.line_hash.as_slice()))? == 1);
    }
    let customers: Vec<CustomerRow<'_>> = lines
        .iter()
        .zip(&created)
        .filter(|(_, created)| **created)
        .map(|(line, _)| CustomerRow::new(account_id, &line.customer))
        .collect();
    if customers.is_empty() {
        return Ok(created);
    }
    insert_customers(connection, &customers)?;
    adjust_customer_count(connection, account_id, i64::try_from(customers.len()).unwrap_or(i64::MAX))?;
    Ok(created)
}

/// Per hash, whether the account has its mark: one primary-key probe each,
/// all in one read transaction (outside one, each probe would take and drop
/// the WAL's read lock: a few system calls a line).
pub fn imported_lines(
    connection: &Connection,
    account_id: &AccountId,
    line_hashes: &[[u8; 32]],
) -> rusqlite::Result<Vec<bool>> {
    let transaction = connection.unchecked_transaction()?;
    let mut select =
        transaction.prepare_cached("SELECT 1 FROM import_records WHERE account_id = ?1 AND line_hash = ?2")?;
    let known = line_hashes.iter().map(|hash| select.exists((account_id.as_str(), hash.as_slice()))).collect();
    drop(select);
    transaction.finish()?;
    known
}

/// `INSERT INTO customers (columns) VALUES ` followed by `rows` groups of
/// anonymous parameters.
fn insert_sql(rows: usize) -> String {
    let group = format!("({})", vec!["?"; CUSTOMER_WIDTH].join(", "));
    format!(concat!("INSERT INTO customers (", customer_insert_columns!(), ") VALUES {}"), vec![group; rows].join(", "))
}

/// Inserts every row, [`ROWS_PER_STATEMENT`] at a time (the full-size
/// statement cached on the connection; the last, shorter one prepared once).
fn insert_customers(connection: &Connection, rows: &[CustomerRow<'_>]) -> Result<(), StoreError> {
    let full = insert_sql(ROWS_PER_STATEMENT);
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(ROWS_PER_STATEMENT * CUSTOMER_WIDTH);
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        values.clear();
        for row in chunk {
            values.extend(row.params());
        }
        let inserted = if chunk.len() == ROWS_PER_STATEMENT {
            connection.prepare_cached(&full)?.execute(values.as_slice())?
        } else {
            connection.prepare(&insert_sql(chunk.len()))?.execute(values.as_slice())?
        };
        if inserted != chunk.len() {
            return Err(StoreError::Internal(format!("a multi-row insert wrote {inserted} of {} rows", chunk.len())));
        }
    }
    Ok(())
}
