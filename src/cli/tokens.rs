//! `clientele tokens create|list|revoke`.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::output::{print_json, print_line, print_table, time_cell, time_json};
use crate::admin;
use crate::domain::time::now_unix;
use crate::domain::{Scope, TokenId};
use crate::ratelimit::RateLimit;
use crate::storage::{SharedStore, StoreError};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a token; prints the secret alone on stdout. It is shown only this once.
    Create {
        /// The account the token acts for.
        #[arg(long)]
        account: String,
        /// read: GET only; write: every method.
        #[arg(long, default_value = "read", value_parser = parse_scope)]
        scope: Scope,
        /// N requests per window, such as 1000/60s (default: the server's --default-rate-limit).
        #[arg(long)]
        rate_limit: Option<RateLimit>,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this account's tokens.
        #[arg(long)]
        account: Option<String>,
        /// Print a JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (tok_...); every server refuses it within 5 seconds.
    Revoke { token_id: String },
}

fn parse_scope(raw: &str) -> Result<Scope, String> {
    raw.parse()
}

pub async fn run(store: &SharedStore, command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create { account, scope, rate_limit } => {
            let (secret, _) = admin::issue_token(store, &account, scope, rate_limit).await?;
            print_line(secret.expose())?;
        }
        TokensCommand::List { account, json } => list(store, account.as_deref(), json).await?,
        TokensCommand::Revoke { token_id } => match revoke(store, &token_id).await {
            Ok(()) => {
                let _ = writeln!(std::io::stderr(), "revoked {token_id}");
            }
            Err(StoreError::NotFound) => bail!("no token with id '{token_id}'"),
            Err(error) => return Err(error).context("cannot revoke the token"),
        },
    }
    Ok(())
}

/// Revokes the token `raw` names; an id of another shape names no token.
async fn revoke(store: &SharedStore, raw: &str) -> Result<(), StoreError> {
    let token_id = TokenId::parse(raw).ok_or(StoreError::NotFound)?;
    store.revoke_token(&token_id, now_unix()).await
}

async fn list(store: &SharedStore, account_name: Option<&str>, json: bool) -> anyhow::Result<()> {
    let account_id = match account_name {
        Some(name) => match store.find_account(name).await.context("cannot look up the account")? {
            Some(account) => Some(account.id),
            None => bail!("no account named '{name}'"),
        },
        None => None,
    };
    let tokens = store.list_tokens(account_id.as_ref()).await.context("cannot list tokens")?;
    if json {
        let rows: Vec<_> = tokens
            .iter()
            .map(|t| {
                json!({
                    "id": t.id, "account": t.account_name, "prefix": t.prefix, "scope": t.scope.as_str(),
                    "rate_limit": t.rate_limit.map(|limit| limit.to_string()),
                    "created_at": time_json(Some(t.created_at)), "last_used_at": time_json(t.last_used_at),
                    "revoked_at": time_json(t.revoked_at),
                })
            })
            .collect();
        return print_json(&rows);
    }
    let rows: Vec<_> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.account_name.clone(),
                t.prefix.clone(),
                t.scope.as_str().to_owned(),
                t.rate_limit.map_or_else(|| "default".to_owned(), |limit| limit.to_string()),
                time_cell(Some(t.created_at)),
                time_cell(t.last_used_at),
                time_cell(t.revoked_at),
            ]
        })
        .collect();
    print_table(&["ID", "ACCOUNT", "PREFIX", "SCOPE", "RATE_LIMIT", "CREATED", "LAST_USED", "REVOKED"], &rows)
}
