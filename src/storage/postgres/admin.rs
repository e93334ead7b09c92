//! The SQL for accounts and tokens.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::queries::unstorable;
use crate::domain::token::TokenHash;
use crate::domain::{Account, Scope, TokenRecord};
use crate::ratelimit::RateLimit;
use crate::storage::StoreError;

pub async fn create_account(pool: &PgPool, account: &Account) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&account.id)
        .bind(&account.name)
        .bind(account.created_at)
        .execute(pool)
        .await?;
    Ok(())
}

fn account_from_row(row: &PgRow) -> Result<Account, sqlx::Error> {
    Ok(Account { id: row.try_get(0)?, name: row.try_get(1)?, created_at: row.try_get(2)? })
}

pub async fn list_accounts(pool: &PgPool) -> Result<Vec<Account>, StoreError> {
    let rows = sqlx::query("SELECT id, name, created_at FROM accounts ORDER BY id").fetch_all(pool).await?;
    Ok(rows.iter().map(account_from_row).collect::<Result<_, _>>()?)
}

pub async fn find_account(pool: &PgPool, name: &str) -> Result<Option<Account>, StoreError> {
    if unstorable(&[name]) {
        return Ok(None);
    }
    let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(account_from_row).transpose()?)
}

pub async fn create_token(pool: &PgPool, token: &TokenRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tokens (id, account_id, secret_hash, prefix, scope, rate_limit, rate_window_secs, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&token.id)
    .bind(&token.account_id)
    .bind(token.hash.0.as_slice())
    .bind(&token.prefix)
    .bind(token.scope.as_str())
    .bind(token.rate_limit.map(|limit| i64::from(limit.limit)))
    .bind(token.rate_limit.map(|limit| i64::from(limit.window_secs)))
    .bind(token.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

macro_rules! token_select {
    () => {
        "SELECT t.id, t.account_id, a.name, t.prefix, t.secret_hash, t.scope, t.rate_limit, \
         t.rate_window_secs, t.created_at, t.last_used_at, t.revoked_at \
         FROM tokens t JOIN accounts a ON a.id = t.account_id"
    };
}

fn token_from_row(row: &PgRow) -> Result<TokenRecord, sqlx::Error> {
    let hash: Vec<u8> = row.try_get(4)?;
    let scope: String = row.try_get(5)?;
    let limit: Option<i64> = row.try_get(6)?;
    let window_secs: Option<i64> = row.try_get(7)?;
    let rate_limit = match (limit, window_secs) {
        (Some(limit), Some(window_secs)) => Some(RateLimit {
            limit: u32::try_from(limit).map_err(|error| sqlx::Error::Decode(error.into()))?,
            window_secs: u32::try_from(window_secs).map_err(|error| sqlx::Error::Decode(error.into()))?,
        }),
        _ => None,
    };
    Ok(TokenRecord {
        id: row.try_get(0)?,
        account_id: row.try_get(1)?,
        account_name: row.try_get(2)?,
        prefix: row.try_get(3)?,
        hash: TokenHash(hash.try_into().unwrap_or([0; 32])),
        scope: scope.parse().unwrap_or(Scope::Read),
        rate_limit,
        created_at: row.try_get(8)?,
        last_used_at: row.try_get(9)?,
        revoked_at: row.try_get(10)?,
    })
}

pub async fn list_tokens(pool: &PgPool, account_id: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
    let rows = match account_id {
        Some(account_id) if unstorable(&[account_id]) => Vec::new(),
        Some(account_id) => {
            sqlx::query(concat!(token_select!(), " WHERE t.account_id = $1 ORDER BY t.id"))
                .bind(account_id)
                .fetch_all(pool)
                .await?
        }
        None => sqlx::query(concat!(token_select!(), " ORDER BY t.id")).fetch_all(pool).await?,
    };
    Ok(rows.iter().map(token_from_row).collect::<Result<_, _>>()?)
}

pub async fn find_token(pool: &PgPool, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
    let row = sqlx::query(concat!(token_select!(), " WHERE t.secret_hash = $1"))
        .bind(hash.0.as_slice())
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(token_from_row).transpose()?)
}

/// Revoking twice is fine; revoking a token that never existed is `NotFound`.
pub async fn revoke_token(pool: &PgPool, token_id: &str, at: i64) -> Result<(), StoreError> {
    if unstorable(&[token_id]) {
        return Err(StoreError::NotFound);
    }
    let changed = sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
        .bind(token_id)
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn touch_token(pool: &PgPool, token_id: &str, at: i64) -> Result<(), StoreError> {
    if unstorable(&[token_id]) {
        return Ok(());
    }
    sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE id = $1").bind(token_id).bind(at).execute(pool).await?;
    Ok(())
}
