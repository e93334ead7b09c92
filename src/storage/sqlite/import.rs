//! `customers import` on SQLite: a batch of lines in one job of the writer
//! thread (so one transaction, committed with whatever else the writer holds),
//! written in a few statements whatever its size: one lookup of the batch's
//! keys, multi-row inserts of the new lines' import records and customers
//! ([`ROWS_PER_STATEMENT`] rows each), and the account's count moved once.
//! Also the lookup `--dry-run` makes instead.

use std::collections::HashSet;

use rusqlite::{Connection, ToSql};

use super::queries::{CustomerRow, adjust_customer_count};
use crate::domain::AccountId;
use crate::storage::row::customer_insert_columns;
use crate::storage::{IdempotencyRecord, ImportLine, StoreError, import_key};

/// Rows a multi-row insert writes at once: 64 customers bind 1,088 values,
/// far below SQLite's limit (32,766), and already share most of the
/// per-statement cost.
const ROWS_PER_STATEMENT: usize = 64;

/// The writer's page cache while it imports, in KiB: a batch dirties pages
/// all over three indexes keyed by random values (the lines' hashes, emails),
/// and with SQLite's default (2 MiB) it spills them to the WAL again and again
/// before the commit. Bounded, so memory stays flat.
const IMPORT_CACHE_KIB: i64 = 64 * 1024;

/// WAL pages between the writer's automatic checkpoints while it imports
/// (SQLite's default: 1,000, about one batch): a page that successive batches
/// change is copied into the database file once per checkpoint, not once per batch.
const IMPORT_CHECKPOINT_PAGES: i64 = 16 * 1024;

/// Inserts each new line's customer with its import record (see
/// [`crate::storage::Store::import_customers`]); a line whose record exists,
/// or whose hash came earlier in `lines`, is a duplicate. The writer's
/// transaction began `IMMEDIATE`, so nothing can record a key between the
/// lookup and the inserts; should one still be taken, the insert fails and
/// the whole batch with it (nothing is created twice).
pub fn import_customers(
    connection: &Connection,
    account_id: &AccountId,
    lines: &[ImportLine],
) -> Result<Vec<bool>, StoreError> {
    // The writer's connection is the import command's own: these outlive the batch harmlessly.
    connection.pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)?;
    connection.pragma_update(None, "wal_autocheckpoint", IMPORT_CHECKPOINT_PAGES)?;
    let hashes: Vec<[u8; 32]> = lines.iter().map(|line| line.line_hash).collect();
    let known = imported_lines(connection, account_id, &hashes)?;
    let mut first = HashSet::with_capacity(lines.len());
    let created: Vec<bool> = hashes.iter().zip(known).map(|(hash, known)| !known && first.insert(*hash)).collect();
    let new: Vec<&ImportLine> =
        lines.iter().zip(&created).filter(|(_, created)| **created).map(|(line, _)| line).collect();
    if new.is_empty() {
        return Ok(created);
    }
    let records: Vec<IdempotencyRecord> = new.iter().map(|line| line.record()).collect();
    insert_rows(connection, &Records { account_id: account_id.as_str(), records: &records })?;
    let customers: Vec<CustomerRow<'_>> = new.iter().map(|line| CustomerRow::new(account_id, &line.customer)).collect();
    insert_rows(connection, &Customers(&customers))?;
    adjust_customer_count(connection, account_id, i64::try_from(new.len()).unwrap_or(i64::MAX))?;
    Ok(created)
}

/// Per hash, whether the account has its import record: one query for the
/// whole slice (its keys passed as one JSON array, probed in the primary key).
pub fn imported_lines(
    connection: &Connection,
    account_id: &AccountId,
    line_hashes: &[[u8; 32]],
) -> rusqlite::Result<Vec<bool>> {
    const SQL: &str = "SELECT key FROM idempotency_keys WHERE account_id = ?1 \
                       AND key IN (SELECT value FROM json_each(?2))";
    let keys: Vec<String> = line_hashes.iter().map(import_key).collect();
    let list = serde_json::to_string(&keys).map_err(|error| rusqlite::Error::ToSqlConversionFailure(error.into()))?;
    let mut select = connection.prepare_cached(SQL)?;
    let found = select
        .query_map((account_id.as_str(), list), |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<HashSet<String>>>()?;
    Ok(keys.iter().map(|key| found.contains(key)).collect())
}

/// Rows of one table, bound in the order of its column list.
trait Rows {
    /// `INSERT INTO table (columns) VALUES `.
    const HEAD: &'static str;
    /// Values a row binds.
    const WIDTH: usize;
    fn len(&self) -> usize;
    /// Appends row `index`'s values to `values`.
    fn bind<'a>(&'a self, index: usize, values: &mut Vec<&'a dyn ToSql>);
}

struct Customers<'a>(&'a [CustomerRow<'a>]);

impl Rows for Customers<'_> {
    const HEAD: &'static str = concat!("INSERT INTO customers (", customer_insert_columns!(), ") VALUES ");
    const WIDTH: usize = 17;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn bind<'a>(&'a self, index: usize, values: &mut Vec<&'a dyn ToSql>) {
        values.extend(self.0[index].params());
    }
}

struct Records<'a> {
    account_id: &'a str,
    records: &'a [IdempotencyRecord],
}

impl Rows for Records<'_> {
    const HEAD: &'static str = "INSERT INTO idempotency_keys \
                                (account_id, key, fingerprint, status, body, location, etag, created_at) VALUES ";
    const WIDTH: usize = 8;

    fn len(&self) -> usize {
        self.records.len()
    }

    fn bind<'a>(&'a self, index: usize, values: &mut Vec<&'a dyn ToSql>) {
        let record = &self.records[index];
        values.extend::<[&dyn ToSql; 8]>([
            &self.account_id,
            &record.key,
            &record.fingerprint,
            &record.status,
            &record.body,
            &record.location,
            &record.etag,
            &record.created_at,
        ]);
    }
}

/// `HEAD` followed by `rows` groups of `WIDTH` anonymous parameters.
fn insert_sql<R: Rows>(rows: usize) -> String {
    let group = format!("({})", vec!["?"; R::WIDTH].join(", "));
    format!("{}{}", R::HEAD, vec![group; rows].join(", "))
}

/// Inserts every row, [`ROWS_PER_STATEMENT`] at a time (the full-size
/// statement cached on the connection; the last, shorter one prepared once).
fn insert_rows<R: Rows>(connection: &Connection, rows: &R) -> Result<(), StoreError> {
    let full = insert_sql::<R>(ROWS_PER_STATEMENT);
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(ROWS_PER_STATEMENT * R::WIDTH);
    let mut start = 0;
    while start < rows.len() {
        let end = (start + ROWS_PER_STATEMENT).min(rows.len());
        values.clear();
        for index in start..end {
            rows.bind(index, &mut values);
        }
        let inserted = if end - start == ROWS_PER_STATEMENT {
            connection.prepare_cached(&full)?.execute(values.as_slice())?
        } else {
            connection.prepare(&insert_sql::<R>(end - start))?.execute(values.as_slice())?
        };
        if inserted != end - start {
            return Err(StoreError::Internal(format!("a multi-row insert wrote {inserted} of {} rows", end - start)));
        }
        start = end;
    }
    Ok(())
}
