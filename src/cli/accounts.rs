//! `clientele accounts create|list`.

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::output::{print_json, print_line, print_table, time_cell, time_json};
use crate::admin;
use crate::storage::SharedStore;

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account; prints its id.
    Create {
        /// 1-64 letters, digits, '.', '_' or '-'.
        name: String,
    },
    /// List the accounts.
    List {
        /// Print a JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(store: &SharedStore, command: AccountsCommand) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Create { name } => {
            let account = admin::create_account(store, &name).await?;
            print_line(&account.id)?;
        }
        AccountsCommand::List { json } => {
            let accounts = store.list_accounts().await.context("cannot list accounts")?;
            if json {
                let rows: Vec<_> = accounts
                    .iter()
                    .map(|a| json!({"id": a.id, "name": a.name, "created_at": time_json(Some(a.created_at))}))
                    .collect();
                print_json(&rows)?;
            } else {
                let rows: Vec<_> = accounts
                    .iter()
                    .map(|a| vec![a.id.to_string(), a.name.clone(), time_cell(Some(a.created_at))])
                    .collect();
                print_table(&["ID", "NAME", "CREATED"], &rows)?;
            }
        }
    }
    Ok(())
}
