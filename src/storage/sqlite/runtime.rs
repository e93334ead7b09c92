//! The threads that own SQLite connections.
//!
//! Point reads (one row by key) run inline on the calling thread, on a
//! connection that thread keeps: a primary-key lookup in a warm WAL database
//! takes a few microseconds, less than handing it to another thread and back.
//! On the async runtime's worker threads, consecutive point reads share one
//! read transaction (see [`release_read_snapshots`]).
//! Scans go to a few reader threads through one queue. Writes go to a single
//! writer thread, which takes every write waiting in its queue and commits them
//! in one transaction (each in its own savepoint, so one failure does not undo
//! the others; a change made in one statement needs none, see
//! [`Runtime::write_single_statement`]). Callers are answered only after the commit, so a 2xx answer
//! means the write is in the WAL and survives the process being killed; with
//! [`Synchronous::Full`] (the default) the WAL was also flushed to disk, so it
//! survives a power cut (API.md §7). One flush serves the whole batch.
//!
//! The WAL is copied into the database file (checkpointed) by a thread of
//! its own ([`serve_checkpoints`]), not by the writer after a commit as
//! SQLite does by default: a checkpoint writes every page the WAL changed
//! and flushes the database file, which would hold up every write queued
//! behind it. The writer only finishes a checkpoint off now and then, so that
//! the WAL can start again from its beginning and stays bounded ([`RESTART_FRAMES`]).
//!
//! Every job carries its request's store deadline ([`crate::deadline`]): the
//! writer waits for another process's lock on the file no longer than the
//! latest deadline in its batch, and refuses (answers `Unavailable`, never
//! runs) a write whose deadline has passed or whose caller has gone, so a
//! write its request was answered 503 for is never applied later.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, OpenFlags, Statement};
use tokio::sync::oneshot;

use super::error::from_sqlite;
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
    id: usize,
    /// How many batches the writer has committed (or tried to): a read snapshot
    /// taken when it was `n` is out of date once it is not.
    commits: Arc<AtomicU64>,
    /// How long a kept read transaction may serve point reads ([`READ_SNAPSHOT_MAX_AGE`]).
    snapshot_max_age: Duration,
    path: PathBuf,
    synchronous: Synchronous,
    /// How long a reader waits for another process's lock on the file.
    busy: Duration,
    reads: Sender<ReadJob>,
    writes: Sender<Box<dyn WriteJob>>,
    /// Dropped with the runtime, which stops the checkpointer thread.
    _checkpoints: Sender<()>,
}

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
/// holds [`RESTART_FRAMES_AT_MOST`] frames it waits as long as it waits for
/// another process's lock: a reader that keeps the WAL from restarting then
/// holds writes up, rather than the WAL growing without bound.
const RESTART_WAIT: Duration = Duration::from_millis(10);

/// WAL frames past which a restart waits as long as it must ([`RESTART_WAIT`]).
pub const RESTART_FRAMES_AT_MOST: i64 = 4 * RESTART_FRAMES;

/// The WAL file's size that a restart cuts it back to, in bytes
/// (`PRAGMA journal_size_limit`): well above what [`RESTART_FRAMES`] makes it
/// in steady traffic, so it is cut only after it grew with a long read or an import.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

static NEXT_RUNTIME_ID: AtomicUsize = AtomicUsize::new(0);

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

fn run(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
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

impl Runtime {
    /// Ends this thread's kept read transaction on this database, if any: a
    /// thread that queues a scan or a write may go on doing other work than
    /// point reads for a while without going idle, and its snapshot must not
    /// hold the WAL's checkpoint back meanwhile.
    fn end_thread_snapshot(&self) {
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

/// Copies the WAL into the database file every [`CHECKPOINT_INTERVAL`] in
/// which the writer committed, without holding the writer up (`PASSIVE`), and
/// asks the writer to restart the WAL once it holds [`RESTART_FRAMES`] (by
/// setting `restart` to the WAL's frames); returns when `stop`'s sender is dropped.
fn serve_checkpoints(connection: &Connection, stop: &Receiver<()>, commits: &AtomicU64, restart: &AtomicI64) {
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
/// most [`RESTART_WAIT`], or `busy` once it is too large.
fn restart_wal(connection: &Connection, frames: i64, busy: Duration) {
    let wait = if frames >= RESTART_FRAMES_AT_MOST { busy } else { RESTART_WAIT };
    let restarted = connection.busy_timeout(wait).and_then(|()| checkpoint(connection, "RESTART"));
    if let Err(error) = restarted {
        tracing::warn!(%error, "cannot restart the SQLite WAL");
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
            restart_wal(&connection, frames, busy);
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
mod tests {
    use super::*;
    use crate::deadline::{Budget, Deadlines, scope};

    fn runtime(dir: &tempfile::TempDir) -> Runtime {
        let path = dir.path().join("queue.db");
        open(&path, Synchronous::Full).unwrap().execute_batch("CREATE TABLE written (what TEXT)").unwrap();
        Runtime::start(&path, 1, Duration::from_millis(200), Synchronous::Full).unwrap()
    }

    fn written(runtime: &Runtime) -> Vec<String> {
        runtime
            .read_inline(|connection| {
                let mut statement = connection.prepare("SELECT what FROM written ORDER BY what")?;
                let rows = statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
                Ok(rows)
            })
            .unwrap()
    }

    fn insert(what: &'static str, sleep: Duration) -> impl FnOnce(&Transaction<'_>) -> Result<(), StoreError> {
        move |connection| {
            thread::sleep(sleep);
            connection.execute("INSERT INTO written VALUES (?1)", [what])?;
            Ok(())
        }
    }

    /// A runtime whose kept read transactions last `max_age`, and a connection of
    /// another process's to the same file.
    fn kept_for(dir: &tempfile::TempDir, max_age: Duration) -> (Runtime, Connection) {
        let runtime = Runtime { snapshot_max_age: max_age, ..runtime(dir) };
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
                    KEEPS_SNAPSHOTS.with(|keeps| keeps.set(true));
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
