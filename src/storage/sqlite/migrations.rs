//! Schema migrations for SQLite, tracked in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior, params};

use crate::domain::customer::normalize_email;

/// One step of the schema: SQL, or work SQL cannot do, in Rust.
enum Migration {
    Sql(&'static str),
    Rust(fn(&Connection) -> rusqlite::Result<()>),
}

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(include_str!("../../../migrations/sqlite/0001_init.sql")),
    // Emails are matched by Unicode full case folding (API.md §3), not lower case.
    Migration::Rust(recompute_email_keys),
    // Token names, expiry and rotation; the audit log (API.md §7, "Token lifecycle").
    Migration::Sql(include_str!("../../../migrations/sqlite/0003_token_lifecycle.sql")),
    // Requests per token and day (API.md §7, `tokens usage`).
    Migration::Sql(include_str!("../../../migrations/sqlite/0004_token_usage.sql")),
    // PostgreSQL's account_counts; nothing on SQLite (the file says why).
    Migration::Sql(include_str!("../../../migrations/sqlite/0005_account_counts.sql")),
    // Events, webhook endpoints and their deliveries (API.md §8).
    Migration::Sql(include_str!("../../../migrations/sqlite/0006_events.sql")),
    // Lease identities for webhook deliveries (API.md §8).
    Migration::Sql(include_str!("../../../migrations/sqlite/0007_delivery_leases.sql")),
    // `customers import`'s line marks out of idempotency_keys, into a narrow table (API.md §7).
    Migration::Sql(include_str!("../../../migrations/sqlite/0008_import_records.sql")),
    // Events in one tree keyed by (account_id, id): cheaper at every customer write (API.md §8).
    Migration::Sql(include_str!("../../../migrations/sqlite/0009_events_by_account.sql")),
];

/// Applies the missing migrations in one exclusive transaction, so two
/// processes starting at once cannot both apply one. A database migrated by a
/// later release (a schema version this binary does not know) is refused, not
/// served: its tables may no longer be the ones this binary writes.
pub fn run(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let current: usize = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > MIGRATIONS.len() {
        let message = format!(
            "the database is at schema version {current}, written by a later release of clientele; \
             this one knows versions up to {}: run the later release",
            MIGRATIONS.len()
        );
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(message),
        ));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        match migration {
            Migration::Sql(sql) => transaction.execute_batch(sql)?,
            Migration::Rust(step) => step(&transaction)?,
        }
        transaction.pragma_update(None, "user_version", index + 1)?;
    }
    transaction.commit()
}

/// Rewrites each customer's email match key with [`normalize_email`]: the
/// changed keys are gathered first, then written.
fn recompute_email_keys(connection: &Connection) -> rusqlite::Result<()> {
    let mut changed = Vec::new();
    let mut select = connection.prepare("SELECT account_id, id, email, email_normalized FROM customers")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let (account_id, id, email, stored): (String, String, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let key = normalize_email(&email);
        if key != stored {
            changed.push((account_id, id, key));
        }
    }
    let mut update =
        connection.prepare("UPDATE customers SET email_normalized = ?3 WHERE account_id = ?1 AND id = ?2")?;
    for (account_id, id, key) in changed {
        update.execute(params![account_id, id, key])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_of_a_later_release_is_refused_and_left_as_it_is() {
        let mut connection = Connection::open_in_memory().unwrap();
        let later = MIGRATIONS.len() + 1;
        connection.pragma_update(None, "user_version", later).unwrap();
        let refused = run(&mut connection).unwrap_err().to_string();
        assert!(refused.contains("written by a later release"), "{refused}");
        let version: usize = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        assert_eq!(version, later);
    }
}
