//! Operator actions shared by the CLI, the first-start bootstrap and the
//! tests. Each one is written with its audit entry in one transaction
//! (API.md §7: `audit`), stamped with the operating-system user.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::time::{now_unix, rfc3339};
use crate::domain::token::{TokenHash, looks_like_token, parse_token_name};
use crate::domain::{Account, AccountName, Scope, TokenId, TokenRecord, TokenSecret, ids};
use crate::ratelimit::RateLimit;
use crate::storage::{Rotation, SharedStore, StoreError, TokenChange};

/// Creates an account; its name must be new.
pub async fn create_account(store: &SharedStore, name: &str) -> anyhow::Result<Account> {
    let name = AccountName::parse(name).map_err(|error| anyhow::anyhow!(error.message))?;
    let audit = AuditEntry::now(AuditAction::AccountCreated, name.as_str(), None);
    let account = Account { id: ids::account_id(), name: name.as_str().to_owned(), created_at: audit.at };
    let detail = format!("id {}", account.id);
    match store.create_account(account.clone(), AuditEntry { detail: Some(detail), ..audit }).await {
        Ok(()) => Ok(account),
        Err(StoreError::AlreadyExists) => bail!("an account named '{}' already exists", name.as_str()),
        Err(error) => Err(error).context("cannot create the account"),
    }
}

/// What a new token is issued with (`tokens create`, API.md §7).
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    pub scope: Scope,
    /// `None`: the server's default limit applies.
    pub rate_limit: Option<RateLimit>,
    /// The operator's label ([`parse_token_name`]).
    pub name: Option<String>,
    /// How long from now the token works; `None`: until revoked.
    pub expires_in: Option<Duration>,
}

/// Issues a token for the named account; the secret is returned once and stored only as a hash.
pub async fn issue_token(
    store: &SharedStore,
    account_name: &str,
    scope: Scope,
    rate_limit: Option<RateLimit>,
) -> anyhow::Result<(TokenSecret, TokenRecord)> {
    issue_token_with(store, account_name, TokenOptions { scope, rate_limit, ..TokenOptions::default() }).await
}

/// [`issue_token`] with a name and an expiry.
pub async fn issue_token_with(
    store: &SharedStore,
    account_name: &str,
    options: TokenOptions,
) -> anyhow::Result<(TokenSecret, TokenRecord)> {
    let name = options.name.as_deref().map(parse_token_name).transpose().map_err(anyhow::Error::msg)?;
    let account = store.find_account(account_name).await.context("cannot look up the account")?;
    let Some(account) = account else { bail!("no account named '{account_name}'") };
    let secret = TokenSecret::generate();
    let now = now_unix();
    let expires_at = options.expires_in.map(|after| seconds_after(now, after)).transpose()?;
    let record = TokenRecord {
        id: ids::token_id(),
        account_id: account.id,
        account_name: account.name,
        prefix: secret.display_prefix().to_owned(),
        hash: secret.hash(),
        scope: options.scope,
        rate_limit: options.rate_limit,
        created_at: now,
        last_used_at: None,
        revoked_at: None,
        name,
        expires_at,
        previous: None,
    };
    let mut detail = format!("account {}, scope {}", record.account_name, record.scope.as_str());
    if let Some(limit) = record.rate_limit {
        detail.push_str(&format!(", rate limit {limit}"));
    }
    if let Some(name) = &record.name {
        detail.push_str(&format!(", name {name}"));
    }
    if let Some(at) = record.expires_at {
        detail.push_str(&format!(", expires {}", rfc3339(at)));
    }
    let audit = AuditEntry { at: now, ..AuditEntry::now(AuditAction::TokenCreated, record.id.as_str(), Some(detail)) };
    store.create_token(record.clone(), audit).await.context("cannot store the token")?;
    Ok((secret, record))
}

/// `now` + `after`, in Unix seconds, refused when out of range.
fn seconds_after(now: i64, after: Duration) -> anyhow::Result<i64> {
    i64::try_from(after.as_secs()).ok().and_then(|secs| now.checked_add(secs)).context("the duration is too long")
}

/// Gives the token a new secret (same id, account, scope, limits and
/// rate-limit counter); the old secret keeps working for `grace`. Returns the
/// new secret and the token as it is now.
pub async fn rotate_token(
    store: &SharedStore,
    token_id: &str,
    grace: Duration,
) -> anyhow::Result<(TokenSecret, TokenRecord)> {
    let Some(id) = TokenId::parse(token_id) else { bail!("{}", not_a_token_id(token_id)) };
    let secret = TokenSecret::generate();
    let now = now_unix();
    let grace_until = seconds_after(now, grace)?;
    let rotation =
        Rotation { token_id: id.clone(), hash: secret.hash(), prefix: secret.display_prefix().to_owned(), grace_until };
    let detail = format!("the old secret works until {}", rfc3339(grace_until));
    let audit = AuditEntry { at: now, ..AuditEntry::now(AuditAction::TokenRotated, id.as_str(), Some(detail)) };
    match store.rotate_token(rotation, audit).await {
        Ok(TokenChange::Done(record)) => Ok((secret, record)),
        Ok(TokenChange::AlreadyRevoked(record)) => bail!(
            "token {id} was revoked at {}: issue a new one with `tokens create`",
            rfc3339(record.revoked_at.unwrap_or_default())
        ),
        Err(StoreError::NotFound) => bail!("no token with id '{id}'"),
        Err(error) => Err(error).context("cannot rotate the token"),
    }
}

/// Why `raw` names no token, quoting it only when it has an id's prefix:
/// anything else may be a secret pasted in the wrong place.
fn not_a_token_id(raw: &str) -> String {
    if raw.starts_with("tok_") && !raw.contains("clt_") {
        format!("no token with id '{raw}'")
    } else {
        "expected a token id (tok_...) or, for revoke, a token's secret (clt_...); the argument is not printed, \
         in case it is a secret"
            .to_owned()
    }
}

/// Revokes the token an id (`tok_...`) or a secret (`clt_...`, such as a
/// leaked one) names. A secret is never repeated in a message: a secret that
/// names no token is described, not quoted.
pub async fn revoke_token(store: &SharedStore, id_or_secret: &str) -> anyhow::Result<TokenChange> {
    let id = if looks_like_token(id_or_secret) {
        let found = store.find_token(TokenHash::of(id_or_secret)).await.context("cannot look up the token")?;
        let Some(record) = found else { bail!("no token has this secret (it was not printed)") };
        record.id
    } else if let Some(id) = TokenId::parse(id_or_secret) {
        id
    } else {
        bail!("{}", not_a_token_id(id_or_secret))
    };
    let audit = AuditEntry::now(AuditAction::TokenRevoked, id.as_str(), None);
    match store.revoke_token(&id, audit).await {
        Ok(change) => Ok(change),
        Err(StoreError::NotFound) => bail!("no token with id '{id}'"),
        Err(error) => Err(error).context("cannot revoke the token"),
    }
}
