//! The SQL for accounts, tokens and the audit log. Each admin action and its
//! audit entry are written in one transaction.

use sqlx::{PgConnection, PgPool};

use super::queries::unstorable;
use crate::domain::token::TokenHash;
use crate::domain::{Account, AccountId, AuditEntry, TokenId, TokenRecord};
use crate::storage::row::{
    account_columns, account_from_row, audit_columns, audit_from_row, token_from_row, token_select,
};
use crate::storage::{Rotation, StoreError, TokenChange};

pub async fn create_account(pool: &PgPool, account: &Account, audit: &AuditEntry) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await?;
    sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(account.id.as_str())
        .bind(&account.name)
        .bind(account.created_at)
        .execute(&mut *transaction)
        .await?;
    insert_audit(&mut transaction, audit).await?;
    Ok(transaction.commit().await?)
}

async fn insert_audit(connection: &mut PgConnection, audit: &AuditEntry) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(audit.at)
        .bind(&audit.actor)
        .bind(audit.action.as_str())
        .bind(&audit.target)
        .bind(&audit.detail)
        .execute(connection)
        .await?;
    Ok(())
}

/// The entries from `since` (Unix seconds) on, oldest first.
pub async fn list_audit(pool: &PgPool, since: i64) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = sqlx::query(concat!("SELECT ", audit_columns!(), " FROM audit_log WHERE at >= $1 ORDER BY id"))
        .bind(since)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(audit_from_row).collect::<Result<_, _>>()?)
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

pub async fn create_token(pool: &PgPool, token: &TokenRecord, audit: &AuditEntry) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await?;
    sqlx::query(
        "INSERT INTO tokens (id, account_id, secret_hash, prefix, scope, rate_limit, rate_window_secs, created_at, \
         name, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(token.id.as_str())
    .bind(token.account_id.as_str())
    .bind(token.hash.0.as_slice())
    .bind(&token.prefix)
    .bind(token.scope.as_str())
    .bind(token.rate_limit.map(|limit| i64::from(limit.limit)))
    .bind(token.rate_limit.map(|limit| i64::from(limit.window_secs)))
    .bind(token.created_at)
    .bind(&token.name)
    .bind(token.expires_at)
    .execute(&mut *transaction)
    .await?;
    insert_audit(&mut transaction, audit).await?;
    Ok(transaction.commit().await?)
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

/// The token whose current secret, or rotated-out secret, has this hash.
pub async fn find_token(pool: &PgPool, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
    let row = sqlx::query(concat!(token_select!(), " WHERE t.secret_hash = $1 OR t.previous_hash = $1"))
        .bind(hash.0.as_slice())
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(token_from_row).transpose()?)
}

/// The token, its row locked until the transaction ends.
async fn lock_token(connection: &mut PgConnection, token_id: &TokenId) -> Result<TokenRecord, StoreError> {
    let row = sqlx::query(concat!(token_select!(), " WHERE t.id = $1 FOR UPDATE OF t"))
        .bind(token_id.as_str())
        .fetch_optional(connection)
        .await?;
    row.as_ref().map(token_from_row).transpose()?.ok_or(StoreError::NotFound)
}

/// Revokes at `audit.at`; a revoked token is left as it was, unaudited.
pub async fn revoke_token(pool: &PgPool, token_id: &TokenId, audit: &AuditEntry) -> Result<TokenChange, StoreError> {
    let mut transaction = pool.begin().await?;
    let token = lock_token(&mut transaction, token_id).await?;
    if token.revoked_at.is_some() {
        return Ok(TokenChange::AlreadyRevoked(token));
    }
    sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1")
        .bind(token_id.as_str())
        .bind(audit.at)
        .execute(&mut *transaction)
        .await?;
    insert_audit(&mut transaction, audit).await?;
    transaction.commit().await?;
    Ok(TokenChange::Done(TokenRecord { revoked_at: Some(audit.at), ..token }))
}

/// Gives the token its new secret, keeping the current one as the rotated-out secret.
pub async fn rotate_token(pool: &PgPool, rotation: &Rotation, audit: &AuditEntry) -> Result<TokenChange, StoreError> {
    let mut transaction = pool.begin().await?;
    let token = lock_token(&mut transaction, &rotation.token_id).await?;
    if token.revoked_at.is_some() {
        return Ok(TokenChange::AlreadyRevoked(token));
    }
    sqlx::query(
        "UPDATE tokens SET previous_hash = secret_hash, previous_expires_at = $2, secret_hash = $3, prefix = $4 \
         WHERE id = $1",
    )
    .bind(rotation.token_id.as_str())
    .bind(rotation.grace_until)
    .bind(rotation.hash.0.as_slice())
    .bind(&rotation.prefix)
    .execute(&mut *transaction)
    .await?;
    insert_audit(&mut transaction, audit).await?;
    let rotated = lock_token(&mut transaction, &rotation.token_id).await?;
    transaction.commit().await?;
    Ok(TokenChange::Done(rotated))
}

pub async fn touch_token(pool: &PgPool, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE id = $1")
        .bind(token_id.as_str())
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}
