//! The operator's interface: one clap command tree, one file per command.

mod accounts;
mod audit;
mod backup;
mod customers;
mod duration;
mod ndjson;
mod openapi;
mod output;
mod serve;
mod tokens;
mod usage;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::secrets::{self, SecretUrl};
use crate::storage::{self, SharedStore};

#[derive(Debug, Parser)]
#[command(name = "clientele", version = crate::build_info::VERSION, about = "Clientele: a customer-records REST API server")]
struct Cli {
    /// Where the data lives: sqlite://PATH (created by `serve` on first use) or postgres://USER@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "CLIENTELE_DATABASE_URL",
        default_value = "sqlite://clientele.db",
        hide_env_values = true
    )]
    database_url: SecretUrl,

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
    /// Issue, list, rotate and revoke API tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Print a version's OpenAPI document, optionally tailored to a token, on stdout.
    Openapi(openapi::OpenapiArgs),
    /// List the admin actions: who created accounts, created, rotated or revoked tokens, and when.
    Audit(audit::AuditArgs),
    /// Copy a SQLite database, consistently, while servers keep writing to it.
    Backup(backup::BackupArgs),
    /// Export and import an account's customers as NDJSON.
    #[command(subcommand)]
    Customers(customers::CustomersCommand),
}

/// Parses the command line and runs it; a failure is one line on stderr and exit code 1.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(parse) => return exit_for_clap(parse),
    };
    output::install_pipe_panic_hook();
    let runtime = match crate::server::runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(anyhow::anyhow!("cannot start the async runtime: {error}")),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(cli.database_url.expose(), args).await,
            Command::Accounts(command) => accounts::run(&open_store(&cli.database_url).await?, command).await,
            Command::Tokens(command) => tokens::run(&open_store(&cli.database_url).await?, command).await,
            Command::Openapi(args) => {
                let store = if args.needs_store() { Some(open_store(&cli.database_url).await?) } else { None };
                openapi::run(store.as_ref(), args).await
            }
            Command::Audit(args) => audit::run(&open_store(&cli.database_url).await?, args).await,
            Command::Backup(args) => backup::run(&cli.database_url, args).await,
            Command::Customers(command) => customers::run(&open_store(&cli.database_url).await?, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

/// One line on stderr, passwords masked, and exit code 1; nothing and 0 when
/// stdout's reader went away (see [`output`]).
fn fail(error: anyhow::Error) -> ExitCode {
    if error.chain().any(|cause| cause.is::<output::StdoutClosed>()) {
        return ExitCode::SUCCESS;
    }
    let _ = writeln!(std::io::stderr(), "error: {}", secrets::redact(&format!("{error:#}")));
    match error.downcast_ref::<Exit>() {
        Some(exit) => ExitCode::from(exit.code),
        None => ExitCode::FAILURE,
    }
}

/// A failure that exits with a code of its own instead of 1 (`backup` on
/// PostgreSQL exits 2), after the usual `error:` line.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Exit {
    code: u8,
    message: String,
}

/// The store of an admin command: never created here (API.md §7), only `serve` creates one.
async fn open_store(database_url: &SecretUrl) -> anyhow::Result<SharedStore> {
    Ok(storage::open_existing(database_url.expose()).await?)
}

/// Prints clap's answer (usage error, `--help`, `--version`) as `Cli::parse` would, but a
/// failure to write it is reported like any other output's: a closed pipe ends
/// quietly, any other write error is one `error:` line and exit 1 (issue 18).
fn exit_for_clap(parse: clap::Error) -> ExitCode {
    let code = parse.exit_code();
    match parse.print() {
        Ok(()) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: cannot write to {}: {error}", if parse.use_stderr() { "stderr" } else { "stdout" });
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_arguments_print_without_passwords() {
        let cli = Cli::parse_from([
            "clientele",
            "--database-url",
            "postgres://app:s3cret@db/x?sslpassword=s3cret",
            "serve",
            "--redis-url",
            "redis://:s3cret@cache",
        ]);
        let printed = format!("{cli:?}");
        assert!(!printed.contains("s3cret") && printed.contains("redis://:***@cache"), "{printed}");
    }
}
