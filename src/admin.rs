//! Operator actions shared by the CLI, the first-start bootstrap and the tests.

use anyhow::{Context, bail};

use crate::domain::time::now_unix;
use crate::domain::{Account, AccountName, Scope, TokenRecord, TokenSecret, ids};
use crate::ratelimit::RateLimit;
use crate::storage::{SharedStore, StoreError};

/// Creates an account; its name must be new.
pub async fn create_account(store: &SharedStore, name: &str) -> anyhow::Result<Account> {
    let name = AccountName::parse(name).map_err(|error| anyhow::anyhow!(error.message))?;
    let account = Account { id: ids::account_id(), name: name.as_str().to_owned(), created_at: now_unix() };
    match store.create_account(account.clone()).await {
        Ok(()) => Ok(account),
        Err(StoreError::AlreadyExists) => bail!("an account named '{}' already exists", name.as_str()),
        Err(error) => Err(error).context("cannot create the account"),
    }
}

/// Issues a token for the named account; the secret is returned once and stored only as a hash.
pub async fn issue_token(
    store: &SharedStore,
    account_name: &str,
    scope: Scope,
    rate_limit: Option<RateLimit>,
) -> anyhow::Result<(TokenSecret, TokenRecord)> {
    let account = store.find_account(account_name).await.context("cannot look up the account")?;
    let Some(account) = account else { bail!("no account named '{account_name}'") };
    let secret = TokenSecret::generate();
    let record = TokenRecord {
        id: ids::token_id(),
        account_id: account.id,
        account_name: account.name,
        prefix: secret.display_prefix().to_owned(),
        hash: secret.hash(),
        scope,
        rate_limit,
        created_at: now_unix(),
        last_used_at: None,
        revoked_at: None,
    };
    store.create_token(record.clone()).await.context("cannot store the token")?;
    Ok((secret, record))
}
