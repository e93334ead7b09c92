//! `clientele backup PATH` (API.md §7 "Data tools"): a consistent copy of a
//! SQLite database while servers keep writing to it
//! ([`crate::storage::sqlite::backup`]). PostgreSQL has its own tool for
//! this, `pg_dump`: the command says so and exits 2.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::Exit;
use crate::secrets::SecretUrl;
use crate::storage::sqlite::backup::backup;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write: a new path (an existing file is never replaced).
    pub path: PathBuf,
}

/// Exit code when the database is not SQLite.
const NOT_SQLITE: u8 = 2;

pub async fn run(database_url: &SecretUrl, args: BackupArgs) -> anyhow::Result<()> {
    let url = database_url.expose();
    let Some(source) = url.strip_prefix("sqlite://") else {
        let message = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            "backup copies SQLite databases; for PostgreSQL use pg_dump (for example `pg_dump --format=custom \
             --file=clientele.dump DATABASE_URL`)"
        } else {
            "backup copies SQLite databases (sqlite://PATH)"
        };
        return Err(Exit { code: NOT_SQLITE, message: message.to_owned() }.into());
    };
    let (from, to) = (PathBuf::from(source), args.path.clone());
    tokio::task::spawn_blocking(move || backup(&from, &to))
        .await
        .map_err(|error| anyhow::anyhow!("the backup task failed: {error}"))??;
    let _ = writeln!(
        std::io::stderr(),
        "backed up {source} to {} (a consistent copy; integrity check ok)",
        args.path.display()
    );
    Ok(())
}
