//! The SQL for accounts, tokens and the audit log. Each admin action runs as
//! one job of the writer, so its audit entry commits with it or not at all.

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::token::TokenHash;
use crate::domain::{Account, AccountId, AuditEntry, TokenId, TokenRecord};
use crate::storage::row::{
    account_columns, account_from_row, audit_columns, audit_from_row, token_from_row, token_select,
};
use crate::storage::{Rotation, StoreError, TokenChange};

pub fn create_account(connection: &Connection, account: &Account, audit: &AuditEntry) -> Result<(), StoreError> {
    connection.prepare_cached("INSERT INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)")?.execute(params![
        account.id.as_str(),
        account.name,
        account.created_at
    ])?;
    insert_audit(connection, audit)
}

fn insert_audit(connection: &Connection, audit: &AuditEntry) -> Result<(), StoreError> {
    connection
        .prepare_cached("INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![audit.at, audit.actor, audit.action.as_str(), audit.target, audit.detail])?;
    Ok(())
}

/// The entries from `since` (Unix seconds) on, oldest first.
pub fn list_audit(connection: &Connection, since: i64) -> rusqlite::Result<Vec<AuditEntry>> {
    connection
        .prepare_cached(concat!("SELECT ", audit_columns!(), " FROM audit_log WHERE at >= ?1 ORDER BY id"))?
        .query_map(params![since], |row| audit_from_row(row))?
        .collect()
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

pub fn create_token(connection: &Connection, token: &TokenRecord, audit: &AuditEntry) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO tokens (id, account_id, secret_hash, prefix, scope, rate_limit, rate_window_secs, created_at, \
             name, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
            token.name,
            token.expires_at,
        ])?;
    insert_audit(connection, audit)
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

/// The token whose current secret, or rotated-out secret, has this hash.
pub fn find_token(connection: &Connection, hash: &TokenHash) -> rusqlite::Result<Option<TokenRecord>> {
    connection
        .prepare_cached(concat!(token_select!(), " WHERE t.secret_hash = ?1 OR t.previous_hash = ?1"))?
        .query_row(params![hash.0.as_slice()], |row| token_from_row(row))
        .optional()
}

fn token_by_id(connection: &Connection, token_id: &TokenId) -> Result<TokenRecord, StoreError> {
    connection
        .prepare_cached(concat!(token_select!(), " WHERE t.id = ?1"))?
        .query_row(params![token_id.as_str()], |row| token_from_row(row))
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// Revokes at `audit.at`; a revoked token is left as it was, unaudited.
pub fn revoke_token(
    connection: &Connection,
    token_id: &TokenId,
    audit: &AuditEntry,
) -> Result<TokenChange, StoreError> {
    let token = token_by_id(connection, token_id)?;
    if token.revoked_at.is_some() {
        return Ok(TokenChange::AlreadyRevoked(token));
    }
    connection
        .prepare_cached("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1")?
        .execute(params![token_id.as_str(), audit.at])?;
    insert_audit(connection, audit)?;
    Ok(TokenChange::Done(TokenRecord { revoked_at: Some(audit.at), ..token }))
}

/// Gives the token its new secret, keeping the current one as the rotated-out secret.
pub fn rotate_token(
    connection: &Connection,
    rotation: &Rotation,
    audit: &AuditEntry,
) -> Result<TokenChange, StoreError> {
    let token = token_by_id(connection, &rotation.token_id)?;
    if token.revoked_at.is_some() {
        return Ok(TokenChange::AlreadyRevoked(token));
    }
    connection
        .prepare_cached(
            "UPDATE tokens SET previous_hash = secret_hash, previous_expires_at = ?2, secret_hash = ?3, prefix = ?4 \
             WHERE id = ?1",
        )?
        .execute(params![
            rotation.token_id.as_str(),
            rotation.grace_until,
            rotation.hash.0.as_slice(),
            rotation.prefix
        ])?;
    insert_audit(connection, audit)?;
    Ok(TokenChange::Done(token_by_id(connection, &rotation.token_id)?))
}

pub fn touch_token(connection: &Connection, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE tokens SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![token_id.as_str(), at])?;
    Ok(())
}
