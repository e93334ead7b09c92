//! `clientele tokens create|list|rotate|revoke` (API.md §7, "Token lifecycle").

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::duration::parse_duration;
use super::output::{StdoutClosed, print_json, print_line, print_table, time_cell, time_json};
use crate::admin::{self, TokenOptions};
use crate::domain::token::parse_token_name;
use crate::domain::{Scope, TokenRecord, TokenSecret};
use crate::ratelimit::RateLimit;
use crate::storage::{SharedStore, TokenChange};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a token; prints the secret alone on stdout (shown only this once) and its id on stderr.
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
        /// The token stops working after this long (N followed by s, m, h or d, such as 90d).
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
        /// A label for listings and the audit trail (no spaces), such as ci-deploy.
        #[arg(long, value_parser = parse_token_name)]
        name: Option<String>,
        /// Print {"id", "token", "account", "scope", "rate_limit", "expires_at", "name"} instead.
        #[arg(long)]
        json: bool,
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
    /// Give a token a new secret (same id, account, scope and limits); prints it like create.
    Rotate {
        /// The token's id (tok_...).
        token_id: String,
        /// How long the old secret keeps working (N followed by s, m, h or d; 0s for not at all).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        grace: Duration,
        /// Print the new secret as JSON, like create --json.
        #[arg(long)]
        json: bool,
    },
    /// Requests per token and UTC day, by status class (2xx, 3xx, 4xx other than 429, 429, 5xx).
    Usage {
        /// Only this token (tok_...).
        token_id: Option<String>,
        /// Only this account's tokens.
        #[arg(long)]
        account: Option<String>,
        /// How many days back, today included.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3660))]
        days: u32,
        /// Print a JSON array of {"token_id", "account", "name", "day", "requests", "by_status"}, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (tok_...) or its secret (clt_...); every server refuses it within 5 seconds.
    Revoke {
        /// The token's id, or its secret (a leaked one, say); the secret is never printed.
        token_id_or_secret: String,
    },
}

fn parse_scope(raw: &str) -> Result<Scope, String> {
    raw.parse()
}

pub async fn run(store: &SharedStore, command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create { account, scope, rate_limit, expires_in, name, json } => {
            let options = TokenOptions { scope, rate_limit, name, expires_in };
            let (secret, record) = admin::issue_token_with(store, &account, options).await?;
            note(&format!("created token {} for account {}", record.id, record.account_name));
            if let Err(error) = print_secret(&secret, &record, json) {
                return Err(withdraw(store, &record, error).await);
            }
        }
        TokensCommand::List { account, json } => list(store, account.as_deref(), json).await?,
        TokensCommand::Usage { token_id, account, days, json } => {
            super::usage::run(store, token_id.as_deref(), account.as_deref(), days, json).await?
        }
        TokensCommand::Rotate { token_id, grace, json } => {
            let (secret, record) = admin::rotate_token(store, &token_id, grace).await?;
            let until = record.previous.map(|previous| time_cell(Some(previous.until))).unwrap_or_default();
            note(&format!("rotated token {}; the old secret works until {until}", record.id));
            print_secret(&secret, &record, json)?;
        }
        TokensCommand::Revoke { token_id_or_secret } => match admin::revoke_token(store, &token_id_or_secret).await? {
            TokenChange::Done(record) => note(&format!("revoked {}", record.id)),
            TokenChange::AlreadyRevoked(record) => {
                note(&format!("{} was already revoked at {}", record.id, time_cell(record.revoked_at)))
            }
        },
    }
    Ok(())
}

/// The secret of a token just created could not be written (a full disk, a
/// closed pipe), so nobody has it: the token is revoked at once rather than
/// left working with a secret no one can know or revoke by. The answer is the
/// command's error (exit 1, even for a closed pipe): what happened and what to do.
async fn withdraw(store: &SharedStore, record: &TokenRecord, error: anyhow::Error) -> anyhow::Error {
    // A closed pipe normally ends a command quietly; here it lost a secret, so it is an error.
    let error = match error.downcast::<StdoutClosed>() {
        Ok(closed) => anyhow::anyhow!("cannot write to stdout: {closed}"),
        Err(error) => error,
    };
    let id = &record.id;
    match admin::revoke_token(store, id.as_str()).await {
        Ok(_) => error.context(format!("token {id} was revoked, since its secret was never shown; create another")),
        Err(revoking) => error.context(format!(
            "token {id} was created but its secret was never shown, and revoking it failed ({revoking:#}); \
             run `clientele tokens revoke {id}`"
        )),
    }
}

/// One line on stderr, for the operator (stdout stays for the secret alone).
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The secret alone on stdout, or with what it is (`--json`).
fn print_secret(secret: &TokenSecret, record: &TokenRecord, json: bool) -> anyhow::Result<()> {
    if !json {
        return print_line(secret.expose());
    }
    print_json(&json!({
        "id": record.id, "token": secret.expose(), "account": record.account_name, "scope": record.scope.as_str(),
        "rate_limit": record.rate_limit.map(|limit| limit.to_string()), "expires_at": time_json(record.expires_at),
        "name": record.name,
    }))
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
                    "revoked_at": time_json(t.revoked_at), "name": t.name, "expires_at": time_json(t.expires_at),
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
                t.name.clone().unwrap_or_else(|| "-".to_owned()),
                time_cell(t.expires_at),
            ]
        })
        .collect();
    print_table(
        &["ID", "ACCOUNT", "PREFIX", "SCOPE", "RATE_LIMIT", "CREATED", "LAST_USED", "REVOKED", "NAME", "EXPIRES"],
        &rows,
    )
}
