//! The SQL for accounts and tokens.

use sqlx::PgPool;

use super::queries::unstorable;
use crate::domain::token::TokenHash;
use crate::domain::{Account, AccountId, TokenId, TokenRecord};
use crate::storage::StoreError;
use crate::storage::row::{account_columns, account_from_row, token_from_row, token_select};

pub async fn create_account(pool: &PgPool, account: &Account) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(account.id.as_str())
        .bind(&account.name)
        .bind(account.created_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn list_accounts(pool: &PgPool) -> Result<Vec<Account>, StoreError> {
    let rows =
        sqlx::query(concat!("SELECT ", account_columns!(), " FROM accounts ORDER BY id")).fetch_all(pool).await?;
    Ok(rows.iter().map(account_from_row).collect::<Result<_, _>>()?)
}

pub async fn find_account(pool: &PgPool, name: &str) -> Result<Option<Account>, StoreError> {
    if unstorable(name) {
        return Ok(None);
    }
    let row = sqlx::query(concat!("SELECT ", account_columns!(), " FROM accounts WHERE name = $1"))
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
    .bind(token.id.as_str())
    .bind(token.account_id.as_str())
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

pub async fn list_tokens(pool: &PgPool, account_id: Option<&AccountId>) -> Result<Vec<TokenRecord>, StoreError> {
    let rows = match account_id {
        Some(account_id) => {
            sqlx::query(concat!(token_select!(), " WHERE t.account_id = $1 ORDER BY t.id"))
                .bind(account_id.as_str())
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
pub async fn revoke_token(pool: &PgPool, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
    let changed = sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
        .bind(token_id.as_str())
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn touch_token(pool: &PgPool, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE id = $1")
        .bind(token_id.as_str())
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}
