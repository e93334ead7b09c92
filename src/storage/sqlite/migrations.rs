//! Schema migrations for SQLite, tracked in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/sqlite/0001_init.sql")];

/// Applies the missing migrations in one exclusive transaction, so two
/// processes starting at once cannot both apply one.
pub fn run(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let current: usize = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", index + 1)?;
    }
    transaction.commit()
}
