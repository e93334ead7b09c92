//! The operator's interface: one clap command tree, one file per command.

mod accounts;
mod duration;
mod output;
mod serve;
mod tokens;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::storage::{self, SharedStore};

#[derive(Debug, Parser)]
#[command(name = "clientele", version, about = "Clientele: a customer-records REST API server")]
struct Cli {
    /// Where the data lives: sqlite://PATH (created on first use) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "CLIENTELE_DATABASE_URL", default_value = "sqlite://clientele.db")]
    database_url: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API.
    Serve(serve::ServeArgs),
    /// Manage accounts, the tenants that own customers and tokens.
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    /// Issue, list and revoke API tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
}

/// Parses the command line and runs it; a failure is one line on stderr and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(anyhow::anyhow!("cannot start the async runtime: {error}")),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(&cli.database_url, args).await,
            Command::Accounts(command) => accounts::run(&open_store(&cli.database_url).await?, command).await,
            Command::Tokens(command) => tokens::run(&open_store(&cli.database_url).await?, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

fn fail(error: anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}

async fn open_store(database_url: &str) -> anyhow::Result<SharedStore> {
    Ok(storage::open(database_url).await?)
}
