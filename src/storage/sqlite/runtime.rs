//! The threads that own SQLite connections.
//!
//! Point reads (one row by key) run inline on the calling thread, on a
//! connection that thread keeps ([`super::inline`]).
//! Scans go to a few reader threads through one queue. Writes go to a single
//! writer thread, which takes every write waiting in its queue and commits them
//! in one transaction (each in its own savepoint, so one failure does not undo
//! the others; a change made in one statement needs none, see
//! [`Runtime::write_single_statement`]). Callers are answered only after the commit, so a 2xx answer
//! means the write is in the WAL and survives the process being killed; with
//! [`Synchronous::Full`] (the default) the WAL was also flushed to disk, so it
//! survives a power cut (API.md §7). One flush serves the whole batch.
//!
//! The WAL is copied into the database file by a thread of its own
//! ([`super::checkpoint`]); the writer only restarts the WAL now and then.
//!
//! Every job carries its request's store deadline ([`crate::deadline`]): the
//! writer waits for another process's lock on the file no longer than the
//! latest deadline in its batch, and refuses (answers `Unavailable`, never
//! runs) a write whose deadline has passed or whose caller has gone, so a
//! write its request was answered 503 for is never applied later.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::checkpoint::{WAL_SIZE_LIMIT, restart_wal, serve_checkpoints};
use super::error::from_sqlite;
use super::inline::READ_SNAPSHOT_MAX_AGE;
use super::outbox::{self, Outbox, Transaction};
use crate::deadline;
use crate::storage::StoreError;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// One queued write: run inside the batch's transaction, answered after its commit.
trait WriteJob: Send {
    /// Runs the change; `false` if it failed and its savepoint must be rolled back.
    fn run(&mut self, transaction: &Transaction<'_>) -> bool;
    /// Answers the caller: the change's own result, or `error` if the batch did not commit.
    fn finish(self: Box<Self>, error: Option<StoreError>);
    /// The request's store deadline, if the write is a request's.
    fn deadline(&self) -> Option<Instant>;
    /// The caller stopped waiting (its request was answered or dropped).
    fn abandoned(&self) -> bool;
    /// Whether it runs in a savepoint of its own (see [`Runtime::write_single_statement`]).
    fn needs_savepoint(&self) -> bool;
    /// Too late to run: its deadline has passed or its caller has gone.
    fn expired(&self, now: Instant) -> bool {
        self.abandoned() || self.deadline().is_some_and(|deadline| now >= deadline)
    }
}

struct Job<T, F> {
    change: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    deadline: Option<Instant>,
    savepoint: bool,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, transaction: &Transaction<'_>) -> bool {
        let Some(change) = self.change.take() else { return false };
        let result = change(transaction);
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn finish(self: Box<Self>, error: Option<StoreError>) {
        let answer = match (error, self.result) {
            (Some(error), _) => Err(error),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Internal("a write was never run".into())),
        };
        let _ = self.reply.send(answer);
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn needs_savepoint(&self) -> bool {
        self.savepoint
    }
}

/// The answer to a job refused because its request ran out of time.
fn too_late() -> StoreError {
    StoreError::Unavailable("the request's deadline passed before its write could start".into())
}

/// The most writes committed together; bounds the latency one batch adds.
const MAX_BATCH: usize = 256;

/// SQLite's `synchronous` setting for every connection of a store (API.md §7,
/// `serve --sqlite-synchronous`). In WAL mode both survive the process being
/// killed; they differ on a power cut or an OS crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `synchronous=FULL`: each commit flushes the WAL to disk before it is
    /// acknowledged, so an acknowledged write survives a power cut.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is flushed at checkpoints only, so a power
    /// cut may lose the last acknowledged writes; faster.
    Normal,
}

impl Synchronous {
    /// The value of `PRAGMA synchronous`.
    pub fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Full => "full",
            Synchronous::Normal => "normal",
        }
    }
}

pub struct Runtime {
    /// Tells this database's inline connections apart from other stores' in one process.
    pub(super) id: usize,
    /// How many batches the writer has committed (or tried to): a read snapshot
    /// taken when it was `n` is out of date once it is not.
    pub(super) commits: Arc<AtomicU64>,
    /// How long a kept read transaction may serve point reads ([`READ_SNAPSHOT_MAX_AGE`]).
    pub(super) snapshot_max_age: Duration,
    pub(super) path: PathBuf,
    pub(super) synchronous: Synchronous,
    /// How long a reader waits for another process's lock on the file.
    pub(super) busy: Duration,
    reads: Sender<ReadJob>,
    writes: Sender<Box<dyn WriteJob>>,
    /// Dropped with the runtime, which stops the checkpointer thread.
    _checkpoints: Sender<()>,
}

static NEXT_RUNTIME_ID: AtomicUsize = AtomicUsize::new(0);

/// Runs the statement `sql` (no parameters, no rows) from the connection's statement cache.
pub(super) fn run(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(drop)
}

impl Runtime {
    /// Starts the threads; none waits longer than `busy` for another process's lock on the file.
    pub fn start(path: &Path, readers: usize, busy: Duration, synchronous: Synchronous) -> rusqlite::Result<Self> {
        let (reads, read_queue) = crossbeam_channel::unbounded::<ReadJob>();
        let (writes, write_queue) = crossbeam_channel::unbounded::<Box<dyn WriteJob>>();
        for index in 0..readers {
            let connection = open(path, synchronous)?;
            connection.pragma_update(None, "query_only", true)?;
            connection.busy_timeout(busy)?;
            let queue = read_queue.clone();
            spawn(format!("sqlite-read-{index}"), move || serve_reads(connection, queue));
        }
        let connection = open(path, synchronous)?;
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        connection.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let checkpointer = open(path, synchronous)?;
        let commits = Arc::new(AtomicU64::new(0));
        let restart = Arc::new(AtomicI64::new(0));
        let (checkpoints, stop) = crossbeam_channel::bounded::<()>(0);
        let (counted, wanted) = (commits.clone(), restart.clone());
        spawn("sqlite-checkpoint".to_owned(), move || serve_checkpoints(&checkpointer, &stop, &counted, &wanted));
        let (counted, wanted) = (commits.clone(), restart);
        spawn("sqlite-write".to_owned(), move || serve_writes(connection, write_queue, busy, &counted, &wanted));
        let id = NEXT_RUNTIME_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            id,
            commits,
            snapshot_max_age: READ_SNAPSHOT_MAX_AGE,
            path: path.to_owned(),
            synchronous,
            busy,
            reads,
            writes,
            _checkpoints: checkpoints,
        })
    }

    pub async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.end_thread_snapshot();
        let (reply, answer) = oneshot::channel();
        let deadline = deadline::store_deadline();
        let job: ReadJob = Box::new(move |connection| {
            // A read whose request is over is not worth running.
            if reply.is_closed() || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                let _ = reply.send(Err(too_late()));
                return;
            }
            let _ = reply.send(query(connection));
        });
        self.reads.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `change` in the writer's next batch; answered after the batch commits
    /// (or with the batch's error). Events the change records commit with it.
    pub async fn write<T, F>(&self, change: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue_write(change, true).await
    }

    /// [`Runtime::write`] for a change that modifies the database in at most
    /// one statement, and only as its last step: it runs without a savepoint
    /// of its own. A failed SQLite statement undoes its own changes (its
    /// changes are atomic), so a change that fails before that statement or in
    /// it leaves nothing to roll back; what it recorded in the outbox is
    /// dropped as with a savepoint. A savepoint costs two statements and a
    /// copy of every page the job changes (its rollback journal), a fifth of
    /// a customer create's work on the writer thread (BENCHMARKS.md).
    pub async fn write_single_statement<T, F>(&self, change: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue_write(change, false).await
    }

    async fn queue_write<T, F>(&self, change: F, savepoint: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.end_thread_snapshot();
        let (reply, answer) = oneshot::channel();
        let deadline = deadline::store_deadline();
        let job: Box<dyn WriteJob> = Box::new(Job { change: Some(change), result: None, reply, deadline, savepoint });
        self.writes.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the database threads have stopped".into())
}

/// A connection to the file at `path`, in WAL mode with `synchronous` as given.
pub fn open(path: &Path, synchronous: Synchronous) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    // Replaced by the request budget's busy timeout where the connection serves requests.
    connection.busy_timeout(Duration::from_secs(5))?;
    // WAL: a committed transaction survives the process being killed; FULL also a power cut.
    connection.pragma_update(None, "journal_mode", "wal")?;
    connection.pragma_update(None, "synchronous", synchronous.pragma_value())?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.pragma_update(None, "mmap_size", 268_435_456)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// Opens the file at `path` only if it exists (never creating it).
pub fn open_existing(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) {
    thread::Builder::new().name(name).spawn(body).expect("the OS refused to start a database thread");
}

fn serve_reads(connection: Connection, queue: Receiver<ReadJob>) {
    while let Ok(job) = queue.recv() {
        job(&connection);
    }
}

fn serve_writes(
    connection: Connection,
    queue: Receiver<Box<dyn WriteJob>>,
    busy: Duration,
    commits: &AtomicU64,
    restart: &AtomicI64,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let outbox = RefCell::new(Outbox::default());
    let mut last_long_wait = None;
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let live = refuse_expired(batch.drain(..));
        if live.is_empty() {
            continue;
        }
        // Wait for another process's lock no longer than some job can still use it.
        let wait = lock_wait(&live, busy);
        if let Err(error) = connection.busy_timeout(wait) {
            tracing::warn!(%error, "cannot set SQLite's busy timeout");
        }
        commit_batch(&Transaction::new(&connection, &outbox), live.into_iter(), commits);
        // After the batch is answered: the next one waits for the restart, if any.
        let frames = restart.swap(0, Ordering::AcqRel);
        if frames > 0 {
            restart_wal(&connection, frames, busy, &mut last_long_wait);
        }
    }
}

/// Answers the jobs that are too late to run; returns the others.
fn refuse_expired(jobs: impl Iterator<Item = Box<dyn WriteJob>>) -> Vec<Box<dyn WriteJob>> {
    let now = Instant::now();
    let mut live = Vec::with_capacity(MAX_BATCH);
    for job in jobs {
        if job.expired(now) {
            job.finish(Some(too_late()));
        } else {
            live.push(job);
        }
    }
    live
}

/// How long the batch may wait for the file's write lock: until the latest
/// deadline among its jobs, and never longer than `busy`.
fn lock_wait(jobs: &[Box<dyn WriteJob>], busy: Duration) -> Duration {
    let now = Instant::now();
    let latest = jobs
        .iter()
        .map(|job| job.deadline().map(|deadline| deadline.saturating_duration_since(now)))
        .try_fold(Duration::ZERO, |latest, left| left.map(|left| latest.max(left)));
    latest.map_or(busy, |left| left.min(busy))
}

/// Runs the jobs in one transaction, each in its savepoint, then writes the
/// events they recorded ([`outbox::flush`]) and commits. A failed flush or
/// commit rolls everything back and answers every job with the error.
/// `commits` is counted up before any job is answered, so no kept read
/// snapshot older than the commit serves a read that follows an answer.
fn commit_batch(transaction: &Transaction<'_>, jobs: impl Iterator<Item = Box<dyn WriteJob>>, commits: &AtomicU64) {
    let connection: &Connection = transaction;
    if let Err(error) = run(connection, "BEGIN IMMEDIATE") {
        let reason = from_sqlite(error).to_string();
        for job in jobs {
            job.finish(Some(StoreError::Unavailable(reason.clone())));
        }
        return;
    }
    let mut ran = Vec::with_capacity(MAX_BATCH);
    let mut ended: Option<String> = None;
    // Waiting for the lock took time: a job that is too late now is refused, not run.
    for mut job in refuse_expired(jobs) {
        if let Some(reason) = &ended {
            job.finish(Some(StoreError::Unavailable(reason.clone())));
            continue;
        }
        let outcome = if job.needs_savepoint() {
            run_in_savepoint(transaction, job.as_mut())
        } else {
            run_alone(transaction, job.as_mut());
            Ok(())
        };
        match outcome {
            Ok(()) => ran.push(job),
            Err(error) => job.finish(Some(error)),
        }
        // Some errors (a full disk, an I/O error) make SQLite roll back the
        // whole transaction: nothing of the batch is left to commit.
        if connection.is_autocommit() {
            ended = Some("SQLite rolled the batch's transaction back after an error".to_owned());
        }
    }
    let committed = match &ended {
        Some(reason) => Err(reason.clone()),
        None => outbox::flush(connection, &mut transaction.outbox().borrow_mut())
            .and_then(|()| Ok(run(connection, "COMMIT")?))
            .map_err(|error| error.to_string()),
    };
    let commit_error = committed.err().inspect(|_| {
        transaction.outbox().borrow_mut().clear();
        if !connection.is_autocommit() {
            let _ = run(connection, "ROLLBACK");
        }
    });
    commits.fetch_add(1, Ordering::Release);
    for job in ran {
        job.finish(commit_error.clone().map(StoreError::Unavailable));
    }
}

/// Runs one job in its own savepoint, so its failure undoes only its own
/// changes, and drops what it recorded in the outbox.
fn run_in_savepoint(transaction: &Transaction<'_>, job: &mut dyn WriteJob) -> Result<(), StoreError> {
    let statement = |sql: &str| -> Result<(), StoreError> {
        transaction.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    statement("SAVEPOINT job")?;
    let recorded = transaction.outbox().borrow().mark();
    let drop_records = || transaction.outbox().borrow_mut().truncate(recorded);
    if !job.run(transaction) {
        drop_records();
        statement("ROLLBACK TO job")?;
    }
    statement("RELEASE job").inspect_err(|_| drop_records())
}

/// Runs a job of [`Runtime::write_single_statement`]: no savepoint; if it
/// fails, what it recorded in the outbox is dropped (its one statement undid itself).
fn run_alone(transaction: &Transaction<'_>, job: &mut dyn WriteJob) {
    let recorded = transaction.outbox().borrow().mark();
    if !job.run(transaction) {
        transaction.outbox().borrow_mut().truncate(recorded);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::deadline::{Budget, Deadlines, scope};

    /// A runtime on `queue.db` in `dir`, with a table `written (what TEXT)`; 1 reader, 200 ms busy timeout.
    pub(in crate::storage::sqlite) fn runtime(dir: &tempfile::TempDir) -> Runtime {
        let path = dir.path().join("queue.db");
        open(&path, Synchronous::Full).unwrap().execute_batch("CREATE TABLE written (what TEXT)").unwrap();
        Runtime::start(&path, 1, Duration::from_millis(200), Synchronous::Full).unwrap()
    }

    /// The bundled SQLite is built as `.cargo/config.toml` asks (an exported
    /// `LIBSQLITE3_FLAGS` would replace it): without memory statistics and without
    /// one page-cache group for every connection, each of which takes a
    /// process-wide mutex on every allocation or page fetch.
    #[test]
    fn sqlite_is_built_without_its_process_wide_mutexes() {
        let connection = Connection::open_in_memory().unwrap();
        let options: Vec<String> = connection
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"), "{options:?}");
        assert!(!options.iter().any(|option| option == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        assert!(options.iter().any(|option| option == "USE_ALLOCA"), "{options:?}");
    }

    /// The rows of `written`, in order, read inline on this thread.
    pub(in crate::storage::sqlite) fn written(runtime: &Runtime) -> Vec<String> {
        runtime
            .read_inline(|connection| {
                let mut statement = connection.prepare("SELECT what FROM written ORDER BY what")?;
                let rows = statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
                Ok(rows)
            })
            .unwrap()
    }

    /// A change that sleeps `sleep`, then inserts `what` into `written`.
    pub(in crate::storage::sqlite) fn insert(
        what: &'static str,
        sleep: Duration,
    ) -> impl FnOnce(&Transaction<'_>) -> Result<(), StoreError> {
        move |connection| {
            thread::sleep(sleep);
            connection.execute("INSERT INTO written VALUES (?1)", [what])?;
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_queued_past_its_deadline_is_refused_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = std::sync::Arc::new(runtime(&dir));
        // The writer is busy for 600 ms with a write outside any request.
        let busy = tokio::spawn({
            let runtime = runtime.clone();
            async move { runtime.write(insert("slow", Duration::from_millis(600))).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A request with 1 s in all (a 900 ms store deadline) queues behind it ...
        let deadlines = Deadlines::starting_now(Budget::new(Duration::from_secs(1)));
        let late = scope(deadlines, runtime.write(insert("late", Duration::ZERO)));
        // ... and a request that gives up (its client went away) before its turn.
        let gone = scope(deadlines, runtime.write(insert("gone", Duration::ZERO)));
        let gone = tokio::time::timeout(Duration::from_millis(100), gone);
        // The store deadline passes while both wait.
        tokio::time::sleep(Duration::from_millis(900)).await;
        let (late, gone) = tokio::join!(late, gone);
        busy.await.unwrap().unwrap();
        assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
        assert!(gone.is_err(), "the caller stopped waiting");
        assert_eq!(written(&runtime), ["slow"], "neither write that was too late was applied");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_waits_for_another_process_lock_no_longer_than_its_jobs_can_use_it() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime(&dir);
        let other = open(&dir.path().join("queue.db"), Synchronous::Full).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = Instant::now();
        let refused = runtime.write(insert("blocked", Duration::ZERO)).await;
        assert!(matches!(refused, Err(StoreError::Unavailable(_))), "{refused:?}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_millis(800), "{waited:?}");
        other.execute_batch("ROLLBACK").unwrap();
        runtime.write(insert("free", Duration::ZERO)).await.unwrap();
        assert_eq!(written(&runtime), ["free"]);
    }
}
