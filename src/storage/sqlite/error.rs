//! How SQLite's errors map onto [`StoreError`].

use rusqlite::ErrorCode;

use crate::storage::StoreError;

pub fn from_sqlite(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::ConstraintViolation => StoreError::AlreadyExists,
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly => StoreError::Unavailable(error.to_string()),
            _ => StoreError::Internal(error.to_string()),
        },
        _ => StoreError::Internal(error.to_string()),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        from_sqlite(error)
    }
}
