//! Point reads on connections their own threads keep.
//!
//! Point reads (one row by key) run inline on the calling thread, on a
//! connection that thread keeps: a primary-key lookup in a warm WAL database
//! takes a few microseconds, less than handing it to another thread and back.
//! On the async runtime's worker threads, consecutive point reads share one
//! read transaction (see [`release_read_snapshots`]).

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rusqlite::{Connection, Statement};

use super::error::from_sqlite;
use super::runtime::{Runtime, open, run};
use crate::storage::StoreError;

/// The longest a worker thread's read transaction serves point reads. A
/// commit by this process's writer ends it at once; one by another process
/// (`clientele customers import`, another server on the file) is seen by
/// point reads at most this much later.
pub const READ_SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(1);

/// One inline connection of this thread.
struct Inline {
    /// The [`Runtime::id`] of its database.
    runtime: usize,
    connection: InlineConnection,
    /// Its open read transaction, if it keeps one between reads.
    snapshot: Option<Snapshot>,
}

self_cell::self_cell!(
    /// An inline connection with the statements it keeps prepared
    /// ([`Runtime::read_inline_prepared`]).
    struct InlineConnection {
        owner: Connection,
        #[covariant]
        dependent: Prepared,
    }
);

/// The statements an inline connection keeps prepared, by their text: a few
/// constants, found by address first, so a lookup compares a pointer or a
/// few strings and never hashes text.
#[derive(Default)]
struct Prepared<'connection> {
    statements: Vec<(&'static str, Statement<'connection>)>,
}

impl<'connection> Prepared<'connection> {
    /// The most statements one connection keeps; past that, the oldest is finalized.
    const MAX: usize = 8;

    /// The statement of `sql`, prepared on `connection` the first time.
    fn prepared(
        &mut self,
        connection: &'connection Connection,
        sql: &'static str,
    ) -> rusqlite::Result<&mut Statement<'connection>> {
        // The text's address, then the text: a constant may have more than one copy.
        let index = match self.statements.iter().position(|(kept, _)| std::ptr::eq(*kept, sql) || *kept == sql) {
            Some(index) => index,
            None => {
                let statement = connection.prepare(sql)?;
                if self.statements.len() == Self::MAX {
                    self.statements.remove(0);
                }
                self.statements.push((sql, statement));
                self.statements.len() - 1
            }
        };
        Ok(&mut self.statements[index].1)
    }
}

/// A read transaction kept open between point reads.
struct Snapshot {
    /// [`Runtime::commits`] when it began.
    commits: u64,
    began: Instant,
    /// Its runtime's [`Runtime::snapshot_max_age`].
    max_age: Duration,
}

thread_local! {
    /// This thread's read connections, one per open database.
    static INLINE_CONNECTIONS: RefCell<Vec<Inline>> = const { RefCell::new(Vec::new()) };
    /// This thread is an async worker that calls [`release_read_snapshots`]
    /// whenever it goes idle, so its reads may keep their transaction open.
    static KEEPS_SNAPSHOTS: Cell<bool> = const { Cell::new(false) };
}

/// Ends every read transaction this thread keeps open; the async runtime
/// calls it each time a worker thread is about to wait for work
/// (`on_thread_park`, in `cli::main`).
///
/// Beginning and ending a read transaction is most of what a point read
/// costs in SQLite (a POSIX lock on the shared-memory file each time, and a
/// mutex the other workers' connections contend for), so a busy worker
/// thread keeps one open and runs its point reads in it, until this
/// process's writer commits, [`READ_SNAPSHOT_MAX_AGE`] passes, the thread
/// queues a write or a scan, or it goes idle. So no thread keeps a transaction, and with it the WAL's
/// checkpoint, waiting while it has nothing to do. A thread that has never
/// called this (a test's, a blocking pool's) ends each read's transaction
/// with the read.
pub fn release_read_snapshots() {
    KEEPS_SNAPSHOTS.with(|keeps| keeps.set(true));
    INLINE_CONNECTIONS.with(|cell| {
        for inline in cell.borrow_mut().iter_mut() {
            end_snapshot(inline);
        }
    });
}

/// Ends the read transactions this thread has kept longer than their
/// [`READ_SNAPSHOT_MAX_AGE`]; the edge layer calls it after every request, so
/// a worker busy with requests that read nothing (answered from caches, say)
/// and never idle holds none back from the WAL's checkpoint for long.
pub fn end_old_read_snapshots() {
    if !KEEPS_SNAPSHOTS.with(Cell::get) {
        return;
    }
    let now = Instant::now();
    INLINE_CONNECTIONS.with(|cell| {
        for inline in cell.borrow_mut().iter_mut() {
            if inline.snapshot.as_ref().is_some_and(|snapshot| now.duration_since(snapshot.began) >= snapshot.max_age) {
                end_snapshot(inline);
            }
        }
    });
}

/// Ends the connection's kept read transaction, if it has one.
fn end_snapshot(inline: &mut Inline) {
    if inline.snapshot.take().is_some() {
        // A read-only transaction: COMMIT cannot lose anything; if it fails, ROLLBACK ends it.
        let connection = inline.connection.borrow_owner();
        if run(connection, "COMMIT").is_err() {
            let _ = run(connection, "ROLLBACK");
        }
    }
}

impl Runtime {
    /// Runs a short read (a lookup by key) on this thread's own connection: in
    /// the thread's kept read transaction where it keeps one (see
    /// [`release_read_snapshots`]), which sees every write this process's
    /// writer has answered.
    pub fn read_inline<T>(&self, query: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_inline(|connection| query(connection.borrow_owner()))
    }

    /// [`Runtime::read_inline`] by the statement `sql` (a `static`, found by its
    /// address), which the thread's connection keeps prepared: no
    /// lookup in rusqlite's statement cache, which hashes the text twice a
    /// read. rusqlite resets a statement when the rows of its query are dropped,
    /// so a statement never stays mid-step past its read.
    pub fn read_inline_prepared<T>(
        &self,
        sql: &'static str,
        query: impl FnOnce(&mut Statement<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_inline(|connection| {
            connection
                .with_dependent_mut(|connection, kept| query(kept.prepared(connection, sql).map_err(from_sqlite)?))
        })
    }

    /// Runs `read` on this thread's connection to the database, opened on first use.
    fn with_inline<T>(
        &self,
        read: impl FnOnce(&mut InlineConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        INLINE_CONNECTIONS.with(|cell| {
            let mut connections = cell.borrow_mut();
            let index = match connections.iter().position(|inline| inline.runtime == self.id) {
                Some(index) => index,
                None => {
                    let connection = open(&self.path, self.synchronous).and_then(|connection| {
                        connection.pragma_update(None, "query_only", true)?;
                        connection.busy_timeout(self.busy)?;
                        Ok(connection)
                    });
                    connections.push(Inline {
                        runtime: self.id,
                        connection: InlineConnection::new(connection.map_err(from_sqlite)?, |_| Prepared::default()),
                        snapshot: None,
                    });
                    connections.len() - 1
                }
            };
            let inline = &mut connections[index];
            if !KEEPS_SNAPSHOTS.with(Cell::get) {
                return read(&mut inline.connection);
            }
            // Read before the transaction's first read: a commit after this
            // load makes the snapshot out of date, even one it already sees.
            let commits = self.commits.load(Ordering::Acquire);
            let now = Instant::now();
            if let Some(snapshot) = &inline.snapshot
                && (snapshot.commits != commits || now.duration_since(snapshot.began) >= self.snapshot_max_age)
            {
                end_snapshot(inline);
            }
            if inline.snapshot.is_none() {
                if let Err(error) = run(inline.connection.borrow_owner(), "BEGIN") {
                    // A transaction nothing could end (see `end_snapshot`): a new connection next time.
                    if !inline.connection.borrow_owner().is_autocommit() {
                        connections.swap_remove(index);
                    }
                    return Err(from_sqlite(error));
                }
                inline.snapshot = Some(Snapshot { commits, began: now, max_age: self.snapshot_max_age });
            }
            let result = read(&mut inline.connection);
            if result.is_err() {
                // Whatever went wrong, the next read starts afresh.
                end_snapshot(inline);
            }
            result
        })
    }

    /// Ends this thread's kept read transaction on this database, if any: a
    /// thread that queues a scan or a write may go on doing other work than
    /// point reads for a while without going idle, and its snapshot must not
    /// hold the WAL's checkpoint back meanwhile.
    pub(super) fn end_thread_snapshot(&self) {
        if !KEEPS_SNAPSHOTS.with(Cell::get) {
            return;
        }
        INLINE_CONNECTIONS.with(|cell| {
            if let Some(inline) = cell.borrow_mut().iter_mut().find(|inline| inline.runtime == self.id) {
                end_snapshot(inline);
            }
        });
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::thread;

    use super::*;
    use crate::storage::sqlite::runtime::Synchronous;
    use crate::storage::sqlite::runtime::tests::{insert, runtime, written};

    /// A runtime whose kept read transactions last `max_age`, and a connection of
    /// another process's to the same file.
    fn kept_for(dir: &tempfile::TempDir, max_age: Duration) -> (Runtime, Connection) {
        let mut runtime = runtime(dir);
        runtime.snapshot_max_age = max_age;
        (runtime, open(&dir.path().join("queue.db"), Synchronous::Normal).unwrap())
    }

    /// `written` run on this thread, keeping its read transaction as a worker does.
    fn written_kept(runtime: &Runtime) -> Vec<String> {
        KEEPS_SNAPSHOTS.with(|keeps| keeps.set(true));
        written(runtime)
    }

    #[tokio::test]
    async fn a_kept_read_snapshot_sees_every_answered_write_and_ends_when_the_thread_goes_idle() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, other) = kept_for(&dir, Duration::from_secs(3600));
        let runtime = std::sync::Arc::new(runtime);
        let outside = |what: &str| other.execute("INSERT INTO written VALUES (?1)", [what]).unwrap();
        assert!(written_kept(&runtime).is_empty());
        // Another process's commit is not seen while the snapshot is kept ...
        outside("outside");
        assert!(written_kept(&runtime).is_empty(), "the read ran in the kept transaction");
        // ... but every write this process's writer answered is, even one another
        // thread queued: its commit ends the snapshot.
        let writer = runtime.clone();
        let answered = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(writer.write(insert("inside", Duration::ZERO)))
        });
        answered.join().unwrap().unwrap();
        assert_eq!(written_kept(&runtime), ["inside", "outside"]);
        // This thread queueing a scan (or a write) ends it.
        outside("before a scan");
        assert_eq!(written_kept(&runtime), ["inside", "outside"]);
        runtime.read(|_| Ok(())).await.unwrap();
        assert_eq!(written_kept(&runtime), ["before a scan", "inside", "outside"]);
        // So does the thread going idle.
        outside("later");
        assert_eq!(written_kept(&runtime), ["before a scan", "inside", "outside"]);
        release_read_snapshots();
        assert_eq!(written_kept(&runtime), ["before a scan", "inside", "later", "outside"]);
    }

    #[tokio::test]
    async fn a_kept_read_snapshot_ends_when_it_is_too_old_and_after_a_failed_read() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, other) = kept_for(&dir, Duration::from_millis(50));
        assert!(written_kept(&runtime).is_empty());
        other.execute("INSERT INTO written VALUES ('outside')", []).unwrap();
        thread::sleep(Duration::from_millis(60));
        assert_eq!(written_kept(&runtime), ["outside"], "a snapshot older than its age is not used");
        other.execute("INSERT INTO written VALUES ('after')", []).unwrap();
        let failed = runtime.read_inline(|connection| Ok(connection.execute("SELECT nothing FROM nowhere", [])?));
        assert!(failed.is_err());
        assert_eq!(written_kept(&runtime), ["after", "outside"], "a failed read ends the snapshot");
    }

    static COUNT_WRITTEN: &str = "SELECT count(*) FROM written";

    /// `COUNT_WRITTEN` on this thread's kept statement, keeping the read transaction as a worker does.
    fn count_kept(runtime: &Runtime) -> i64 {
        KEEPS_SNAPSHOTS.with(|keeps| keeps.set(true));
        runtime.read_inline_prepared(COUNT_WRITTEN, |statement| Ok(statement.query_row([], |row| row.get(0))?)).unwrap()
    }

    /// How many statements this thread's connection to `runtime`'s database keeps prepared.
    fn kept_statements(runtime: &Runtime) -> usize {
        INLINE_CONNECTIONS.with(|cell| {
            let connections = cell.borrow();
            let inline = connections.iter().find(|inline| inline.runtime == runtime.id).expect("a connection");
            inline.connection.borrow_dependent().statements.len()
        })
    }

    #[tokio::test]
    async fn a_kept_statement_reads_in_the_kept_snapshot_and_never_holds_it_open() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, other) = kept_for(&dir, Duration::from_secs(3600));
        assert_eq!(count_kept(&runtime), 0);
        // Another copy of the same text finds the same statement.
        let copy: &'static str = Box::leak(COUNT_WRITTEN.to_owned().into_boxed_str());
        let again =
            runtime.read_inline_prepared(copy, |statement| Ok(statement.query_row([], |row| row.get::<_, i64>(0))?));
        assert_eq!(again.unwrap(), 0);
        assert_eq!(kept_statements(&runtime), 1, "one statement for one text");
        other.execute("INSERT INTO written VALUES ('outside')", []).unwrap();
        assert_eq!(count_kept(&runtime), 0, "read in the kept snapshot");
        // The statement was reset after its read: the snapshot's COMMIT succeeds.
        release_read_snapshots();
        INLINE_CONNECTIONS.with(|cell| {
            assert!(cell.borrow().iter().all(|inline| inline.connection.borrow_owner().is_autocommit()));
        });
        assert_eq!(count_kept(&runtime), 1);
        // Nothing holds the WAL back once the thread is idle.
        release_read_snapshots();
        let busy: i64 = other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0)).unwrap();
        assert_eq!(busy, 0, "the checkpoint completed");
        // The connection closes with its kept statement (finalized first).
        INLINE_CONNECTIONS.with(|cell| cell.borrow_mut().clear());
    }

    /// Whether this thread keeps a read transaction open.
    fn keeps_one() -> bool {
        INLINE_CONNECTIONS.with(|cell| cell.borrow().iter().any(|inline| inline.snapshot.is_some()))
    }

    #[tokio::test]
    async fn after_each_request_a_kept_read_snapshot_older_than_its_age_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, _) = kept_for(&dir, Duration::from_millis(50));
        assert!(written_kept(&runtime).is_empty());
        end_old_read_snapshots();
        assert!(keeps_one(), "a young snapshot is kept");
        thread::sleep(Duration::from_millis(60));
        end_old_read_snapshots();
        assert!(!keeps_one(), "an old one is ended without waiting for a read");
    }

    #[tokio::test]
    async fn a_thread_that_never_goes_idle_through_the_runtime_keeps_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, other) = kept_for(&dir, Duration::from_secs(3600));
        assert!(written(&runtime).is_empty());
        other.execute("INSERT INTO written VALUES ('outside')", []).unwrap();
        assert_eq!(written(&runtime), ["outside"]);
    }

    /// Makes this thread keep its read transactions between point reads, as an async worker does.
    pub(in crate::storage::sqlite) fn keep_snapshots() {
        KEEPS_SNAPSHOTS.with(|keeps| keeps.set(true));
    }
}
