//! The SQL for accounts and tokens.

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::token::TokenHash;
use crate::domain::{Account, AccountId, TokenId, TokenRecord};
use crate::storage::StoreError;
use crate::storage::row::{account_columns, account_from_row, token_from_row, token_select};

pub fn create_account(connection: &Connection, account: &Account) -> Result<(), StoreError> {
    connection.prepare_cached("INSERT INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)")?.execute(params![
        account.id.as_str(),
        account.name,
        account.created_at
    ])?;
    Ok(())
}

pub fn list_accounts(connection: &Connection) -> rusqlite::Result<Vec<Account>> {
    connection
        .prepare_cached(concat!("SELECT ", account_columns!(), " FROM accounts ORDER BY id"))?
        .query_map([], |row| account_from_row(row))?
        .collect()
}

pub fn find_account(connection: &Connection, name: &str) -> rusqlite::Result<Option<Account>> {
    connection
        .prepare_cached(concat!("SELECT ", account_columns!(), " FROM accounts WHERE name = ?1"))?
        .query_row(params![name], |row| account_from_row(row))
        .optional()
}

pub fn create_token(connection: &Connection, token: &TokenRecord) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO tokens (id, account_id, secret_hash, prefix, scope, rate_limit, rate_window_secs, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            token.id.as_str(),
            token.account_id.as_str(),
            token.hash.0.as_slice(),
            token.prefix,
            token.scope.as_str(),
            token.rate_limit.map(|limit| limit.limit),
            token.rate_limit.map(|limit| limit.window_secs),
            token.created_at,
        ])?;
    Ok(())
}

pub fn list_tokens(connection: &Connection, account_id: Option<&AccountId>) -> rusqlite::Result<Vec<TokenRecord>> {
    match account_id {
        Some(account_id) => connection
            .prepare_cached(concat!(token_select!(), " WHERE t.account_id = ?1 ORDER BY t.id"))?
            .query_map(params![account_id.as_str()], |row| token_from_row(row))?
            .collect(),
        None => connection
            .prepare_cached(concat!(token_select!(), " ORDER BY t.id"))?
            .query_map([], |row| token_from_row(row))?
            .collect(),
    }
}

pub fn find_token(connection: &Connection, hash: &TokenHash) -> rusqlite::Result<Option<TokenRecord>> {
    connection
        .prepare_cached(concat!(token_select!(), " WHERE t.secret_hash = ?1"))?
        .query_row(params![hash.0.as_slice()], |row| token_from_row(row))
        .optional()
}

/// Revoking twice is fine; revoking a token that never existed is `NotFound`.
pub fn revoke_token(connection: &Connection, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
    let changed = connection
        .prepare_cached("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1")?
        .execute(params![token_id.as_str(), at])?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn touch_token(connection: &Connection, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE tokens SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![token_id.as_str(), at])?;
    Ok(())
}
