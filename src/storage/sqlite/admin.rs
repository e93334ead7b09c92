//! The SQL for accounts and tokens.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::domain::token::TokenHash;
use crate::domain::{Account, Scope, TokenRecord};
use crate::ratelimit::RateLimit;
use crate::storage::StoreError;

pub fn create_account(connection: &Connection, account: &Account) -> Result<(), StoreError> {
    connection.prepare_cached("INSERT INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)")?.execute(params![
        account.id,
        account.name,
        account.created_at
    ])?;
    Ok(())
}

fn account_from_row(row: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account { id: row.get(0)?, name: row.get(1)?, created_at: row.get(2)? })
}

pub fn list_accounts(connection: &Connection) -> rusqlite::Result<Vec<Account>> {
    connection
        .prepare_cached("SELECT id, name, created_at FROM accounts ORDER BY id")?
        .query_map([], account_from_row)?
        .collect()
}

pub fn find_account(connection: &Connection, name: &str) -> rusqlite::Result<Option<Account>> {
    connection
        .prepare_cached("SELECT id, name, created_at FROM accounts WHERE name = ?1")?
        .query_row(params![name], account_from_row)
        .optional()
}

pub fn create_token(connection: &Connection, token: &TokenRecord) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO tokens (id, account_id, secret_hash, prefix, scope, rate_limit, rate_window_secs, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            token.id,
            token.account_id,
            token.hash.0.as_slice(),
            token.prefix,
            token.scope.as_str(),
            token.rate_limit.map(|limit| limit.limit),
            token.rate_limit.map(|limit| limit.window_secs),
            token.created_at,
        ])?;
    Ok(())
}

const TOKEN_SELECT: &str = "SELECT t.id, t.account_id, a.name, t.prefix, t.secret_hash, t.scope, t.rate_limit, \
     t.rate_window_secs, t.created_at, t.last_used_at, t.revoked_at FROM tokens t JOIN accounts a ON a.id = t.account_id";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let hash: Vec<u8> = row.get(4)?;
    let scope: String = row.get(5)?;
    let limit: Option<u32> = row.get(6)?;
    let window_secs: Option<u32> = row.get(7)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        account_id: row.get(1)?,
        account_name: row.get(2)?,
        prefix: row.get(3)?,
        hash: TokenHash(hash.try_into().unwrap_or([0; 32])),
        scope: scope.parse().unwrap_or(Scope::Read),
        rate_limit: limit.zip(window_secs).map(|(limit, window_secs)| RateLimit { limit, window_secs }),
        created_at: row.get(8)?,
        last_used_at: row.get(9)?,
        revoked_at: row.get(10)?,
    })
}

pub fn list_tokens(connection: &Connection, account_id: Option<&str>) -> rusqlite::Result<Vec<TokenRecord>> {
    match account_id {
        Some(account_id) => connection
            .prepare_cached(&format!("{TOKEN_SELECT} WHERE t.account_id = ?1 ORDER BY t.id"))?
            .query_map(params![account_id], token_from_row)?
            .collect(),
        None => connection
            .prepare_cached(&format!("{TOKEN_SELECT} ORDER BY t.id"))?
            .query_map([], token_from_row)?
            .collect(),
    }
}

pub fn find_token(connection: &Connection, hash: &TokenHash) -> rusqlite::Result<Option<TokenRecord>> {
    connection
        .prepare_cached(&format!("{TOKEN_SELECT} WHERE t.secret_hash = ?1"))?
        .query_row(params![hash.0.as_slice()], token_from_row)
        .optional()
}

/// Revoking twice is fine; revoking a token that never existed is `NotFound`.
pub fn revoke_token(connection: &Connection, token_id: &str, at: i64) -> Result<(), StoreError> {
    let changed = connection
        .prepare_cached("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1")?
        .execute(params![token_id, at])?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn touch_token(connection: &Connection, token_id: &str, at: i64) -> Result<(), StoreError> {
    connection.prepare_cached("UPDATE tokens SET last_used_at = ?2 WHERE id = ?1")?.execute(params![token_id, at])?;
    Ok(())
}
