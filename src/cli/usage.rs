//! `clientele tokens usage`: requests per token and UTC day, by status class (API.md §7).

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde_json::json;

use super::output::{print_json, print_table};
use crate::domain::TokenId;
use crate::domain::time::{now_unix, rfc3339};
use crate::storage::SharedStore;
use crate::usage::{CLASSES, SECONDS_PER_DAY};

/// What to list: one token, one account's tokens, or every token; `days` days back, today included.
pub async fn run(
    store: &SharedStore,
    token_id: Option<&str>,
    account_name: Option<&str>,
    days: u32,
    json: bool,
) -> anyhow::Result<()> {
    let token_id = match token_id {
        Some(raw) => Some(TokenId::parse(raw).with_context(|| format!("no token with id '{raw}'"))?),
        None => None,
    };
    let account_id = match account_name {
        Some(name) => match store.find_account(name).await.context("cannot look up the account")? {
            Some(account) => Some(account.id),
            None => bail!("no account named '{name}'"),
        },
        None => None,
    };
    let tokens = store.list_tokens(account_id.as_ref()).await.context("cannot list tokens")?;
    if let Some(id) = &token_id
        && !tokens.iter().any(|token| &token.id == id)
    {
        bail!("no token with id '{id}'");
    }
    let names: HashMap<&TokenId, (&str, Option<&str>)> =
        tokens.iter().map(|token| (&token.id, (token.account_name.as_str(), token.name.as_deref()))).collect();
    let today = now_unix().div_euclid(SECONDS_PER_DAY);
    let since = today - i64::from(days.max(1)) + 1;
    let rows = store.list_usage(account_id.as_ref(), token_id.as_ref(), since).await.context("cannot read usage")?;
    let day_of = |day: i64| rfc3339(day * SECONDS_PER_DAY)[..10].to_owned();
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|row| {
                let (account, name) = names.get(&row.token_id).copied().unwrap_or_default();
                let counts: serde_json::Map<_, _> =
                    CLASSES.iter().zip(row.counts).map(|(class, count)| ((*class).to_owned(), json!(count))).collect();
                json!({"token_id": row.token_id, "account": account, "name": name, "day": day_of(row.day),
                       "requests": row.total(), "by_status": counts})
            })
            .collect();
        return print_json(&rows);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let (account, name) = names.get(&row.token_id).copied().unwrap_or_default();
            let mut cells = vec![
                row.token_id.to_string(),
                account.to_owned(),
                name.unwrap_or("-").to_owned(),
                day_of(row.day),
                row.total().to_string(),
            ];
            cells.extend(row.counts.iter().map(u64::to_string));
            cells
        })
        .collect();
    print_table(&["TOKEN", "ACCOUNT", "NAME", "DAY", "REQUESTS", "2XX", "3XX", "4XX", "429", "5XX"], &table)
}
