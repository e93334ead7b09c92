//! The SQL for token usage counts (API.md §7, `tokens usage`).

use rusqlite::{Connection, params};

use crate::domain::{AccountId, TokenId};
use crate::storage::StoreError;
use crate::usage::UsageRow;

/// Adds the counts to each row's (token, day), creating it if needed.
pub fn add_usage(connection: &Connection, rows: &[UsageRow]) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO token_usage (token_id, day, count_2xx, count_3xx, count_4xx, count_429, count_5xx) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (token_id, day) DO UPDATE SET \
         count_2xx = count_2xx + excluded.count_2xx, count_3xx = count_3xx + excluded.count_3xx, \
         count_4xx = count_4xx + excluded.count_4xx, count_429 = count_429 + excluded.count_429, \
         count_5xx = count_5xx + excluded.count_5xx",
    )?;
    for row in rows {
        let [c2, c3, c4, c429, c5] = row.counts.map(|count| i64::try_from(count).unwrap_or(i64::MAX));
        statement.execute(params![row.token_id.as_str(), row.day, c2, c3, c4, c429, c5])?;
    }
    Ok(())
}

/// The rows from `since_day` on, of one account's tokens or one token, by token and day.
pub fn list_usage(
    connection: &Connection,
    account_id: Option<&AccountId>,
    token_id: Option<&TokenId>,
    since_day: i64,
) -> rusqlite::Result<Vec<UsageRow>> {
    connection
        .prepare_cached(
            "SELECT u.token_id, u.day, u.count_2xx, u.count_3xx, u.count_4xx, u.count_429, u.count_5xx \
             FROM token_usage u JOIN tokens t ON t.id = u.token_id \
             WHERE u.day >= ?1 AND (?2 IS NULL OR t.account_id = ?2) AND (?3 IS NULL OR u.token_id = ?3) \
             ORDER BY u.token_id, u.day",
        )?
        .query_map(params![since_day, account_id.map(AccountId::as_str), token_id.map(TokenId::as_str)], |row| {
            let raw: String = row.get(0)?;
            let token_id = TokenId::parse(&raw).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, "not a token id".into())
            })?;
            let mut counts = [0u64; 5];
            for (index, count) in counts.iter_mut().enumerate() {
                *count = u64::try_from(row.get::<_, i64>(index + 2)?).unwrap_or(0);
            }
            Ok(UsageRow { token_id, day: row.get(1)?, counts })
        })?
        .collect()
}
