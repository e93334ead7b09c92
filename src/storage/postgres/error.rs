//! How sqlx's errors map onto [`StoreError`].
//!
//! Anything that says "the database cannot be reached, is busy or refuses
//! writes right now" becomes `Unavailable` (the HTTP layer answers 503 with
//! `Retry-After`); a unique violation becomes `AlreadyExists`; the rest is
//! `Internal`. sqlx's messages never contain the connection URL, so no
//! password can leak.

use sqlx::error::DatabaseError;

use crate::storage::StoreError;

pub fn from_sqlx(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) => from_database(database.as_ref(), &error),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Internal(error.to_string()),
    }
}

fn from_database(database: &dyn DatabaseError, error: &sqlx::Error) -> StoreError {
    let code = database.code().unwrap_or_default();
    match code.as_ref() {
        // unique_violation
        "23505" => StoreError::AlreadyExists,
        // serialization_failure, deadlock_detected: worth retrying.
        "40001" | "40P01" => StoreError::Unavailable(error.to_string()),
        // lock_not_available: lock_timeout ran out (another session holds the row);
        // like statement_timeout's query_canceled (57014, class 57 below), the
        // statement was stopped and changed nothing.
        "55P03" => StoreError::Unavailable(error.to_string()),
        // read_only_sql_transaction: the server is (for now) a read-only standby,
        // as after a failover; the SQLite store likewise answers a read-only file so.
        "25006" => StoreError::Unavailable(error.to_string()),
        // Class 08 connection exceptions, class 53 insufficient resources
        // (too many connections, out of memory or disk), class 57 operator
        // intervention (admin_shutdown, crash_shutdown, cannot_connect_now, ...),
        // class 58 system errors (I/O).
        code if code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57")
            || code.starts_with("58") =>
        {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Internal(error.to_string()),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        from_sqlx(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable() {
        assert!(matches!(from_sqlx(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        assert!(matches!(from_sqlx(sqlx::Error::PoolClosed), StoreError::Unavailable(_)));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(from_sqlx(sqlx::Error::Io(refused)), StoreError::Unavailable(_)));
        assert!(matches!(from_sqlx(sqlx::Error::RowNotFound), StoreError::Internal(_)));
    }
}
