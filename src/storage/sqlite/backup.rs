//! `clientele backup`: a consistent copy of a SQLite database while servers
//! keep writing to it, with SQLite's online backup API (API.md §7 "Data tools").
//!
//! The copy is made in one backup step, inside one read transaction of the
//! source: in WAL mode that reads a single snapshot (every transaction
//! committed before it began, none after) without stopping the writers. A
//! step interrupted by another process's lock is retried. The copy is written
//! to a temporary file beside the destination, checked with `PRAGMA
//! integrity_check`, and renamed into place, so the destination path holds a
//! complete database or nothing.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// How long a backup retries while another process holds a lock that stops it
/// (a migration, a checkpoint truncating the WAL).
const LOCKED_FOR_AT_MOST: Duration = Duration::from_secs(30);

/// What a finished backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    /// Database pages copied.
    pub pages: u64,
    /// The copy's size in bytes.
    pub bytes: u64,
}

/// Why a backup failed, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no database at {0} (a backup never creates one)")]
    NoSource(String),
    #[error("{0} already exists; choose a new path")]
    DestinationExists(String),
    #[error("{0}")]
    Failed(String),
}

/// Copies the database at `source` to the new file `destination`.
pub fn backup(source: &Path, destination: &Path) -> Result<BackupSummary, BackupError> {
    if !source.is_file() {
        return Err(BackupError::NoSource(source.display().to_string()));
    }
    if destination.exists() {
        return Err(BackupError::DestinationExists(destination.display().to_string()));
    }
    let partial = partial_path(destination);
    let result = copy(source, &partial).and_then(|summary| {
        std::fs::rename(&partial, destination).map_err(|error| {
            BackupError::Failed(format!("cannot move the copy to {}: {error}", destination.display()))
        })?;
        Ok(summary)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(partial.with_extension("partial-journal"));
    }
    result
}

/// `DEST.partial`, beside the destination (a rename within one file system).
fn partial_path(destination: &Path) -> PathBuf {
    let mut name = destination.file_name().map(|name| name.to_owned()).unwrap_or_default();
    name.push(".partial");
    destination.with_file_name(name)
}

fn copy(source: &Path, partial: &Path) -> Result<BackupSummary, BackupError> {
    let failed = |what: &str, error: rusqlite::Error| BackupError::Failed(format!("{what}: {error}"));
    // Read-write without CREATE: a WAL database is read through its shared
    // memory file, which a read-only connection may be unable to set up.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let from = Connection::open_with_flags(source, flags)
        .map_err(|error| failed(&format!("cannot open {}", source.display()), error))?;
    from.pragma_update(None, "query_only", true).map_err(|error| failed("cannot open the source", error))?;
    from.busy_timeout(LOCKED_FOR_AT_MOST).map_err(|error| failed("cannot open the source", error))?;
    let _ = std::fs::remove_file(partial);
    let mut to =
        Connection::open(partial).map_err(|error| failed(&format!("cannot create {}", partial.display()), error))?;
    let pages = {
        let backup = Backup::new(&from, &mut to).map_err(|error| failed("cannot start the backup", error))?;
        let deadline = Instant::now() + LOCKED_FOR_AT_MOST;
        loop {
            // -1: every page in one step, so from one snapshot of the source.
            match backup.step(-1).map_err(|error| failed("the backup failed", error))? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(BackupError::Failed(format!(
                        "the database stayed locked for {} s; try again",
                        LOCKED_FOR_AT_MOST.as_secs()
                    )));
                }
            }
        }
        u64::try_from(backup.progress().pagecount).unwrap_or(0)
    };
    let check: String = to
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|error| failed("cannot check the copy", error))?;
    if check != "ok" {
        return Err(BackupError::Failed(format!("the copy failed its integrity check: {check}")));
    }
    to.close().map_err(|(_, error)| failed("cannot close the copy", error))?;
    let bytes = std::fs::metadata(partial).map(|metadata| metadata.len()).unwrap_or(0);
    Ok(BackupSummary { pages, bytes })
}
