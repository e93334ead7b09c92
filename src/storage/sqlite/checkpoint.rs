//! The checkpointer: copies the WAL into the database file off the writer's thread.
//!
//! The WAL is copied into the database file (checkpointed) by a thread of
//! its own ([`serve_checkpoints`]), not by the writer after a commit as
//! SQLite does by default: a checkpoint writes every page the WAL changed
//! and flushes the database file, which would hold up every write queued
//! behind it. The writer only finishes a checkpoint off now and then, so that
//! the WAL can start again from its beginning and stays bounded ([`RESTART_FRAMES`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rusqlite::Connection;

/// How often the checkpointer thread copies what the WAL gained into the
/// database file (a `PASSIVE` checkpoint, if anything was committed since
/// the last): under the POST benchmark's pace of about 30,000 WAL frames a
/// second, some 600 frames (SQLite's own checkpoints come every 1,000).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(20);

/// WAL frames (pages of 4 KiB) past which the writer, between two batches,
/// finishes the checkpoint (`RESTART`: the few frames the checkpointer has not
/// copied yet, waiting for readers to leave the WAL) so that its next commit
/// writes the WAL from its start again. The checkpointer alone cannot: the
/// writer adds frames while it copies, so it never catches up under load.
pub const RESTART_FRAMES: i64 = 4096;

/// The longest the writer waits for readers to leave the WAL at a restart;
/// it tries again after the next checkpoint if they have not. Once the WAL
/// holds [`RESTART_FRAMES_AT_MOST`] frames it waits longer
/// ([`RESTART_WAIT_AT_MOST`]), but only once per [`LONG_RESTART_EVERY`]: a
/// long read (`clientele backup` copying the file) keeps the WAL from
/// restarting however long the writer waits, and must not hold every batch
/// up meanwhile (API.md §7: a backup runs while servers keep serving); the
/// WAL then grows until that read ends, as SQLite's own checkpoints would let it.
const RESTART_WAIT: Duration = Duration::from_millis(10);

/// WAL frames past which a restart waits [`RESTART_WAIT_AT_MOST`].
pub const RESTART_FRAMES_AT_MOST: i64 = 4 * RESTART_FRAMES;

/// The longest a restart of a WAL past [`RESTART_FRAMES_AT_MOST`] waits for readers
/// (the request budget's busy timeout, if shorter).
const RESTART_WAIT_AT_MOST: Duration = Duration::from_millis(200);

/// How often at most the writer waits [`RESTART_WAIT_AT_MOST`] rather than [`RESTART_WAIT`].
const LONG_RESTART_EVERY: Duration = Duration::from_secs(1);

/// The WAL file's size that a restart cuts it back to, in bytes
/// (`PRAGMA journal_size_limit`): well above what [`RESTART_FRAMES`] makes it
/// in steady traffic, so it is cut only after it grew with a long read or an import.
pub(super) const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Copies the WAL into the database file every [`CHECKPOINT_INTERVAL`] in
/// which the writer committed, without holding the writer up (`PASSIVE`), and
/// asks the writer to restart the WAL once it holds [`RESTART_FRAMES`] (by
/// setting `restart` to the WAL's frames); returns when `stop`'s sender is dropped.
pub(super) fn serve_checkpoints(
    connection: &Connection,
    stop: &Receiver<()>,
    commits: &AtomicU64,
    restart: &AtomicI64,
) {
    let mut checkpointed = commits.load(Ordering::Acquire);
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_INTERVAL) {
        let committed = commits.load(Ordering::Acquire);
        if committed == checkpointed {
            continue;
        }
        checkpointed = committed;
        match checkpoint(connection, "PASSIVE") {
            Ok((frames, _)) if frames >= RESTART_FRAMES => restart.store(frames, Ordering::Release),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot checkpoint the SQLite WAL"),
        }
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`; returns the WAL's frames and those
/// now in the database file (both -1 if the checkpoint could not run: `SQLITE_BUSY`).
fn checkpoint(connection: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    let sql = format!("PRAGMA wal_checkpoint({mode})");
    connection.prepare_cached(&sql)?.query_row([], |row| Ok((row.get(1)?, row.get(2)?)))
}

/// Finishes the checkpoint of a WAL of `frames` frames on the writer's
/// connection so that its next commit starts the WAL again from the
/// beginning (see [`RESTART_FRAMES`]), waiting for readers to leave it at
/// most [`RESTART_WAIT`], or, once it is too large, [`RESTART_WAIT_AT_MOST`]
/// (or `busy`, if shorter) when the last long wait was [`LONG_RESTART_EVERY`]
/// ago or more (`last_long_wait`, updated here).
pub(super) fn restart_wal(connection: &Connection, frames: i64, busy: Duration, last_long_wait: &mut Option<Instant>) {
    let now = Instant::now();
    let long = frames >= RESTART_FRAMES_AT_MOST
        && last_long_wait.is_none_or(|last| now.duration_since(last) >= LONG_RESTART_EVERY);
    let wait = if long {
        *last_long_wait = Some(now);
        RESTART_WAIT_AT_MOST.min(busy)
    } else {
        RESTART_WAIT
    };
    let restarted = connection.busy_timeout(wait).and_then(|()| checkpoint(connection, "RESTART"));
    if let Err(error) = restarted {
        tracing::warn!(%error, "cannot restart the SQLite WAL");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::thread;
    use std::time::Instant;

    use super::*;
    use crate::storage::sqlite::inline::tests::keep_snapshots;
    use crate::storage::sqlite::outbox::Transaction;
    use crate::storage::sqlite::runtime::tests::{insert, runtime, written};
    use crate::storage::sqlite::runtime::{Runtime, Synchronous, open};
    use crate::storage::sqlite::{end_old_read_snapshots, release_read_snapshots};

    /// `PRAGMA wal_checkpoint(PASSIVE)` on a connection of its own: (WAL frames, frames in the database file).
    fn wal_frames(path: &Path) -> (i64, i64) {
        checkpoint(&open(path, Synchronous::Full).unwrap(), "PASSIVE").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_do_not_checkpoint_and_the_checkpointer_copies_the_wal_soon_after() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime(&dir);
        let setting = runtime.write(|transaction| {
            Ok(transaction.pragma_query_value(None, "wal_autocheckpoint", |row| row.get::<_, i64>(0))?)
        });
        assert_eq!(setting.await.unwrap(), 0, "the writer's commits never checkpoint");
        for what in ["one", "two", "three"] {
            runtime.write(insert(what, Duration::ZERO)).await.unwrap();
        }
        let path = dir.path().join("queue.db");
        let started = Instant::now();
        loop {
            let (frames, copied) = wal_frames(&path);
            if frames > 0 && frames == copied {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(2), "not checkpointed: {frames} frames, {copied} copied");
            thread::sleep(CHECKPOINT_INTERVAL);
        }
        drop(runtime);
        let reopened = Runtime::start(&path, 1, Duration::from_millis(200), Synchronous::Full).unwrap();
        assert_eq!(written(&reopened), ["one", "three", "two"], "every answered write is there");
    }

    /// Sustained writes, with point reads keeping read transactions open on
    /// other threads all along: the WAL file still stops growing, because the
    /// writer restarts it once it holds [`RESTART_FRAMES`].
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_sustained_writes_and_reads() {
        // Each write is 8 rows of a page each: twice RESTART_FRAMES_AT_MOST frames in all.
        const WRITES: usize = RESTART_FRAMES_AT_MOST as usize / 4;
        const ROWS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let runtime = Arc::new(runtime(&dir));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (runtime, done) = (runtime.clone(), done.clone());
                thread::spawn(move || {
                    keep_snapshots();
                    let mut reads = 0u64;
                    while !done.load(Ordering::Acquire) {
                        runtime
                            .read_inline(|connection| {
                                Ok(connection
                                    .query_row("SELECT count(*) FROM written", [], |row| row.get::<_, i64>(0))?)
                            })
                            .unwrap();
                        end_old_read_snapshots();
                        reads += 1;
                    }
                    release_read_snapshots();
                    reads
                })
            })
            .collect();
        // Each row is a page of its own: a 3 KB value.
        let page = "x".repeat(3000);
        let writers: Vec<_> = (0..32)
            .map(|writer| {
                let (runtime, page) = (runtime.clone(), page.clone());
                tokio::spawn(async move {
                    for n in (writer..WRITES).step_by(32) {
                        let page = page.clone();
                        let rows = move |transaction: &Transaction<'_>| {
                            for row in 0..ROWS {
                                transaction
                                    .execute("INSERT INTO written VALUES (?1)", [format!("{n:06}{row}{page}")])?;
                            }
                            Ok(())
                        };
                        runtime.write(rows).await.unwrap();
                    }
                })
            })
            .collect();
        let wal = dir.path().join("queue.db-wal");
        let mut largest = 0;
        for writer in writers {
            writer.await.unwrap();
            largest = largest.max(std::fs::metadata(&wal).unwrap().len());
        }
        done.store(true, Ordering::Release);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
        let rows: i64 = runtime
            .read_inline(|connection| Ok(connection.query_row("SELECT count(*) FROM written", [], |row| row.get(0))?))
            .unwrap();
        assert_eq!(rows, (WRITES * ROWS) as i64);
        // A WAL that never restarted would hold every frame written (8 × RESTART_FRAMES, 135 MB); past
        // RESTART_FRAMES_AT_MOST the writer waits for the readers, so it ends little beyond.
        let bound = (RESTART_FRAMES_AT_MOST + RESTART_FRAMES) as u64 * 4120;
        let size = std::fs::metadata(&wal).unwrap().len().max(largest);
        assert!(size < bound, "the WAL grew to {size} bytes");
    }

    /// A long read (`clientele backup` copying the file) keeps the WAL from
    /// restarting however long the writer waits: writes go on meanwhile, held
    /// up by no more than a short wait now and then, and the WAL restarts once it ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_read_does_not_hold_writes_up_and_the_wal_restarts_after_it() {
        const WRITES: usize = RESTART_FRAMES_AT_MOST as usize / 4;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        open(&path, Synchronous::Full).unwrap().execute_batch("CREATE TABLE written (what TEXT)").unwrap();
        // A busy timeout of 5 s, as a server's default budget gives the writer.
        let runtime = Arc::new(Runtime::start(&path, 1, Duration::from_secs(5), Synchronous::Full).unwrap());
        let backup = open(&path, Synchronous::Full).unwrap();
        backup.execute_batch("BEGIN").unwrap();
        let _: i64 = backup.query_row("SELECT count(*) FROM written", [], |row| row.get(0)).unwrap();
        let page = "x".repeat(3000);
        let started = Instant::now();
        let writers: Vec<_> = (0..32)
            .map(|writer| {
                let (runtime, page) = (runtime.clone(), page.clone());
                tokio::spawn(async move {
                    let mut slowest = Duration::ZERO;
                    for n in (writer..WRITES).step_by(32) {
                        let row = format!("{n:06}{page}");
                        let rows = move |transaction: &Transaction<'_>| {
                            for _ in 0..8 {
                                transaction.execute("INSERT INTO written VALUES (?1)", [&row])?;
                            }
                            Ok(())
                        };
                        let asked = Instant::now();
                        runtime.write(rows).await.unwrap();
                        slowest = slowest.max(asked.elapsed());
                    }
                    slowest
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for writer in writers {
            slowest = slowest.max(writer.await.unwrap());
        }
        assert!(slowest < Duration::from_secs(1), "a write waited {slowest:?} for the long read");
        assert!(started.elapsed() < Duration::from_secs(20), "writes took {:?}", started.elapsed());
        // Once the read ends, the next restart starts the WAL again from its beginning.
        backup.execute_batch("COMMIT").unwrap();
        thread::sleep(LONG_RESTART_EVERY);
        for _ in 0..50 {
            runtime.write(insert("after", Duration::ZERO)).await.unwrap();
            thread::sleep(CHECKPOINT_INTERVAL);
        }
        let frames: i64 = backup.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1)).unwrap();
        assert!(frames < RESTART_FRAMES, "the WAL restarted: {frames} frames in it");
    }
}
