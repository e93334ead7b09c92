//! The SQL for token usage counts (API.md §7, `tokens usage`).

use std::collections::BTreeMap;

use sqlx::{PgPool, Row};

use crate::domain::{AccountId, TokenId};
use crate::storage::StoreError;
use crate::usage::UsageRow;

/// Adds the counts to each row's (token, day), creating it if needed: one
/// statement for all rows (rows for the same token and day are added up
/// first: one statement may not update a row twice).
pub async fn add_usage(pool: &PgPool, rows: &[UsageRow]) -> Result<(), StoreError> {
    let mut merged: BTreeMap<(&TokenId, i64), [u64; 5]> = BTreeMap::new();
    for row in rows {
        let counts = merged.entry((&row.token_id, row.day)).or_default();
        for (count, add) in counts.iter_mut().zip(row.counts) {
            *count = count.saturating_add(add);
        }
    }
    let rows: Vec<UsageRow> = merged
        .into_iter()
        .map(|((token_id, day), counts)| UsageRow { token_id: token_id.clone(), day, counts })
        .collect();
    let ids: Vec<&str> = rows.iter().map(|row| row.token_id.as_str()).collect();
    let days: Vec<i64> = rows.iter().map(|row| row.day).collect();
    let column = |class: usize| -> Vec<i64> {
        rows.iter().map(|row| i64::try_from(row.counts[class]).unwrap_or(i64::MAX)).collect()
    };
    sqlx::query(
        "INSERT INTO token_usage (token_id, day, count_2xx, count_3xx, count_4xx, count_429, count_5xx) \
         SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], \
         $7::BIGINT[]) ON CONFLICT (token_id, day) DO UPDATE SET \
         count_2xx = token_usage.count_2xx + EXCLUDED.count_2xx, count_3xx = token_usage.count_3xx + EXCLUDED.count_3xx, \
         count_4xx = token_usage.count_4xx + EXCLUDED.count_4xx, count_429 = token_usage.count_429 + EXCLUDED.count_429, \
         count_5xx = token_usage.count_5xx + EXCLUDED.count_5xx",
    )
    .bind(&ids)
    .bind(&days)
    .bind(column(0))
    .bind(column(1))
    .bind(column(2))
    .bind(column(3))
    .bind(column(4))
    .execute(pool)
    .await?;
    Ok(())
}

/// The rows from `since_day` on, of one account's tokens or one token, by token and day.
pub async fn list_usage(
    pool: &PgPool,
    account_id: Option<&AccountId>,
    token_id: Option<&TokenId>,
    since_day: i64,
) -> Result<Vec<UsageRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT u.token_id, u.day, u.count_2xx, u.count_3xx, u.count_4xx, u.count_429, u.count_5xx \
         FROM token_usage u JOIN tokens t ON t.id = u.token_id \
         WHERE u.day >= $1 AND ($2::TEXT IS NULL OR t.account_id = $2) AND ($3::TEXT IS NULL OR u.token_id = $3) \
         ORDER BY u.token_id, u.day",
    )
    .bind(since_day)
    .bind(account_id.map(AccountId::as_str))
    .bind(token_id.map(TokenId::as_str))
    .fetch_all(pool)
    .await?;
    let mut usage = Vec::with_capacity(rows.len());
    for row in rows {
        let raw: String = row.try_get(0)?;
        let Some(token_id) = TokenId::parse(&raw) else {
            return Err(StoreError::Internal(format!("not a token id in token_usage: {raw:?}")));
        };
        let mut counts = [0u64; 5];
        for (index, count) in counts.iter_mut().enumerate() {
            *count = u64::try_from(row.try_get::<i64, _>(index + 2)?).unwrap_or(0);
        }
        usage.push(UsageRow { token_id, day: row.try_get(1)?, counts });
    }
    Ok(usage)
}
