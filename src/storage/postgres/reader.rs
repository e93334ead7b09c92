//! Customer reads by id on PostgreSQL, grouped: one statement and one round
//! trip for every `get_customer` waiting at the same moment (issue 15).
//!
//! A read by id is the API's hottest operation, and on its own it costs
//! little inside PostgreSQL: what costs is around it. Each statement wakes a
//! backend process, and sqlx sends a further `Sync` round trip (a ping) every
//! time a connection goes back to its pool, so a read on its own took two
//! round trips and two wake-ups, on a machine whose cores the server, the
//! database and the clients share. Grouped, a batch of reads pays that once.
//!
//! A read ([`Reader::get`]) is queued; one task per store takes what is
//! waiting (at most [`MAX_BATCH`]) and hands it to a batch, which runs
//! [`SELECT_BATCH`]: the wanted (account, id) pairs as two arrays, each
//! looked up on `customers`' primary key, each row found tagged with the
//! position of the read that asked for it. Each read is answered its own row, or `None`; a
//! read of another account's id finds nothing, as the key includes the
//! account. Up to [`BATCHES_IN_FLIGHT`] batches run at once, so the next
//! forms while one is at the database; it starts once it holds
//! [`WORTH_A_STATEMENT`] reads, or when the batch at the database ends, or
//! after [`COMPANY_WAIT_AT_MOST`].
//!
//! A read sees every write answered before it was queued: its batch is formed
//! after it was queued, and its statement (in a transaction of its own,
//! READ COMMITTED) starts after that, so it sees every commit made by then.
//!
//! # Connections held while busy
//!
//! Each batch slot keeps its pooled connection from one batch to the next,
//! so a busy server neither pays the pool's ping on release nor waits to
//! acquire. A connection goes back to the pool (and is pinged there) when it
//! was idle [`HOLD_IDLE`] (the queue was empty that long), when it has been
//! held [`HOLD_AT_MOST`] (so the pool's lifetime limits still apply), after
//! any failed statement, and when the breaker has seen a failure since its
//! last use (it may have died with the database). At most
//! [`BATCHES_IN_FLIGHT`] connections are held, out of the pool's
//! [`super::MAX_CONNECTIONS`]; reads take no write turn of [`super::gates`].
//!
//! # Deadlines and outages
//!
//! The caller goes through the circuit breaker as every operation does: while
//! the circuit is open it is answered `Unavailable` at once, and one stuck in
//! a batch is answered as soon as the circuit opens (its read is then dropped
//! from the queue). A caller never waits past its request's store deadline
//! (see [`crate::deadline`]): it stops waiting then, answered `Unavailable`.
//! A batch leaves out the reads whose caller has gone or whose deadline has
//! passed by the time it holds a connection, and waits for a connection, and
//! for its statement's answer, no longer than the latest deadline of its
//! reads (a connection whose peer died then goes, not the slot with it;
//! outside a request, the statement timeout bounds the wait). A failed
//! statement fails every read of its batch with its error (`Unavailable`
//! when the database is), which the breaker sees as it would a read on its
//! own; the connection then goes back to the pool, which checks it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::breaker::Breaker;
use super::task_queue::{TaskQueue, take_waiting};
use crate::deadline;
use crate::domain::customer::Customer;
use crate::domain::{AccountId, CustomerId};
use crate::storage::StoreError;
use crate::storage::row::{customer_columns, customer_from_row};

/// The most reads one statement answers; bounds the latency a batch adds.
pub const MAX_BATCH: usize = 256;
/// Batches running at once per instance: while one is at the database, the
/// next forms, and one slow statement does not hold up every read. Fewer
/// batches are larger ones: on two cores shared with PostgreSQL, 4 made about
/// 21k GETs/s, 2 about 30k, 1 about 37k (BENCHMARKS.md); 2 keeps a second
/// statement going while one waits on a cold page.
pub const BATCHES_IN_FLIGHT: usize = 2;
/// While another batch is at the database, the next one starts only once this
/// many reads wait (or when that batch ends), as the writer's batches do
/// (`writer::WORTH_A_STATEMENT`): a second batch started as soon as a slot was
/// free took the few reads that had arrived, and PostgreSQL's CPU per
/// statement (wake-up, executor start, the answer's send) is most of a grouped
/// read's cost. With `wrk -c32` on this 2-core machine, PostgreSQL's CPU per
/// read fell from about 13 µs to 7–10 µs (issue 15, A/B on one database).
pub const WORTH_A_STATEMENT: usize = 32;
/// The longest a batch waits for company while another is at the database, as
/// the writer's (`writer::COMPANY_WAIT_AT_MOST`): a batch stuck on a dead kept
/// connection does not hold the next one up.
pub const COMPANY_WAIT_AT_MOST: Duration = Duration::from_millis(5);
/// A held connection unused this long goes back to the pool.
pub const HOLD_IDLE: Duration = Duration::from_millis(100);
/// A connection is held across batches for this long at most, then released (and pinged) once.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(1);

/// `$1`/`$2`: the account ids and customer ids wanted. Answers the customer
/// columns ([`customer_from_row`]'s order) and, last, the 1-based position of
/// the pair that found the row. Each pair is looked up on the primary key on
/// its own (`LATERAL ... LIMIT 1` keeps the planner from joining otherwise:
/// a generic plan hash-joined a seq scan of `customers` on a small table).
const SELECT_BATCH: &str = concat!(
    "SELECT found.*, wanted.position FROM unnest($1::TEXT[], $2::TEXT[]) WITH ORDINALITY \
     AS wanted (wanted_account, wanted_id, position) \
     CROSS JOIN LATERAL (SELECT ",
    customer_columns!(),
    " FROM customers WHERE account_id = wanted.wanted_account AND id = wanted.wanted_id LIMIT 1) AS found"
);
/// The column of [`SELECT_BATCH`] that holds the position.
const POSITION_COLUMN: usize = 15;

/// A queued read, answered once its batch has run (or failed).
struct ReadJob {
    account_id: AccountId,
    customer_id: CustomerId,
    /// The request's store deadline (`None` outside a request).
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Option<Customer>, StoreError>>,
}

impl ReadJob {
    /// Not worth running: its caller has gone, or its time is up.
    fn expired(&self, now: Instant) -> bool {
        self.reply.is_closed() || self.deadline.is_some_and(|deadline| now >= deadline)
    }

    fn finish(self, result: Result<Option<Customer>, StoreError>) {
        let _ = self.reply.send(result);
    }
}

/// How many statements the reader has run and how many reads they answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadBatches {
    pub statements: u64,
    pub reads: u64,
    /// The most reads one statement answered.
    pub largest: u64,
}

#[derive(Default)]
struct Counters {
    statements: AtomicU64,
    reads: AtomicU64,
    largest: AtomicU64,
}

/// What the batches share.
struct Shared {
    pool: PgPool,
    breaker: Arc<Breaker>,
    /// The connections' `statement_timeout`: how long a statement outside a request may take.
    statement_time: Duration,
    counters: Counters,
}

/// A batch slot's connection, kept between batches while reads keep coming.
#[derive(Default)]
struct Slot {
    held: Option<Held>,
}

struct Held {
    connection: PoolConnection<Postgres>,
    acquired: Instant,
    last_used: Instant,
}

impl Slot {
    /// The held connection (and when it was acquired) if it is still fit to
    /// use; otherwise it goes back to the pool.
    fn take_fresh(&mut self, shared: &Shared, now: Instant) -> Option<(PoolConnection<Postgres>, Instant)> {
        let held = self.held.take()?;
        let idle = now.saturating_duration_since(held.last_used);
        let fresh = idle < HOLD_IDLE
            && now.saturating_duration_since(held.acquired) < HOLD_AT_MOST
            && !shared.breaker.idle_since_last_failure(idle);
        fresh.then_some((held.connection, held.acquired))
    }

    fn keep(&mut self, connection: PoolConnection<Postgres>, acquired: Instant) {
        self.held = Some(Held { connection, acquired, last_used: Instant::now() });
    }
}

/// The grouped reads of one store.
pub struct Reader {
    shared: Arc<Shared>,
    /// The queue of the task that forms batches.
    queue: TaskQueue<ReadJob>,
}

impl Reader {
    /// A reader on `pool`, whose connections it stops holding after a failure
    /// `breaker` saw; `statement_time` is the pool's `statement_timeout`.
    pub(super) fn new(pool: PgPool, breaker: Arc<Breaker>, statement_time: Duration) -> Self {
        let shared = Shared { pool, breaker, statement_time, counters: Counters::default() };
        Self { shared: Arc::new(shared), queue: TaskQueue::new() }
    }

    /// The customer `customer_id` of `account_id`, read in the next batch.
    ///
    /// Errors: `Unavailable` when the database is, or when the request's
    /// store deadline passed before its batch answered.
    pub async fn get(&self, account_id: &AccountId, customer_id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let deadline = deadline::store_deadline();
        let job = ReadJob { account_id: account_id.clone(), customer_id: customer_id.clone(), deadline, reply };
        let shared = self.shared.clone();
        self.queue.send(job, |receiver| serve(shared, receiver)).map_err(|_| stopped())?;
        let answer = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), answer).await.map_err(|_| too_late())?,
            None => answer.await,
        };
        answer.map_err(|_| stopped())?
    }

    /// The statements run so far and the reads they answered.
    pub fn batches(&self) -> ReadBatches {
        let counters = &self.shared.counters;
        ReadBatches {
            statements: counters.statements.load(Ordering::Relaxed),
            reads: counters.reads.load(Ordering::Relaxed),
            largest: counters.largest.load(Ordering::Relaxed),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the PostgreSQL reader has stopped".into())
}

fn too_late() -> StoreError {
    StoreError::Unavailable("the request's deadline passed before its read was answered".into())
}

/// Takes what is waiting and starts a batch on a free slot. Slots come back
/// over a channel with the connection they hold; when no read has come for
/// [`HOLD_IDLE`], every free slot gives its connection back to the pool.
/// Ends when the store (every sender) is dropped.
async fn serve(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<ReadJob>) {
    let (slot_back, mut free_slots) = mpsc::unbounded_channel::<Slot>();
    for _ in 0..BATCHES_IN_FLIGHT {
        let _ = slot_back.send(Slot::default());
    }
    loop {
        let Some(mut slot) = free_slots.recv().await else { return };
        let first = match queue.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => match tokio::time::timeout(HOLD_IDLE, queue.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(_) => {
                    // Idle: give every free slot's connection back, then wait as long as it takes.
                    slot.held = None;
                    let mut idle = Vec::with_capacity(BATCHES_IN_FLIGHT);
                    while let Ok(other) = free_slots.try_recv() {
                        idle.push(other);
                    }
                    for mut other in idle {
                        other.held = None;
                        let _ = slot_back.send(other);
                    }
                    match queue.recv().await {
                        Some(job) => job,
                        None => return,
                    }
                }
            },
        };
        let mut batch = Vec::with_capacity(MAX_BATCH.min(queue.len() + 1));
        batch.push(first);
        // While another batch is at the database, this one waits to be worth a
        // statement of its own, or for that batch to end, or a few milliseconds.
        let company_by = tokio::time::Instant::now() + COMPANY_WAIT_AT_MOST;
        loop {
            take_waiting(&mut queue, &mut batch, MAX_BATCH);
            if batch.len() >= WORTH_A_STATEMENT || free_slots.len() + 1 >= BATCHES_IN_FLIGHT {
                break;
            }
            tokio::select! {
                job = queue.recv() => match job {
                    Some(job) => batch.push(job),
                    None => break,
                },
                other = free_slots.recv() => {
                    if let Some(other) = other {
                        let _ = slot_back.send(other);
                    }
                    break;
                }
                () = tokio::time::sleep_until(company_by) => break,
            }
        }
        let shared = shared.clone();
        let slot_back = slot_back.clone();
        tokio::spawn(async move {
            run(&shared, &mut slot, batch).await;
            let _ = slot_back.send(slot);
        });
    }
}

/// Runs one batch on `slot`'s connection (or a pooled one) and answers each of its reads.
async fn run(shared: &Shared, slot: &mut Slot, jobs: Vec<ReadJob>) {
    let jobs = drop_expired(jobs);
    if jobs.is_empty() {
        return;
    }
    let (mut connection, acquired) = match slot.take_fresh(shared, Instant::now()) {
        Some(held) => held,
        None => match acquire(shared, &jobs).await {
            Ok(connection) => (connection, Instant::now()),
            Err(error) => return fail_all(jobs, &error),
        },
    };
    // Waiting for the connection took time: what is too late now is not run.
    let jobs = drop_expired(jobs);
    if jobs.is_empty() {
        return slot.keep(connection, acquired);
    }
    // A connection that stopped answering (a dead peer) holds the slot no
    // longer than its reads may wait; it is dropped, not kept.
    let limit = latest_deadline(&jobs).unwrap_or_else(|| Instant::now() + shared.statement_time);
    let result = match tokio::time::timeout_at(limit.into(), select_batch(&mut connection, &jobs)).await {
        Ok(result) => result,
        Err(_) => return fail_all(jobs, &too_late()),
    };
    match result {
        Ok(found) => {
            slot.keep(connection, acquired);
            let counters = &shared.counters;
            let reads = jobs.len() as u64;
            counters.statements.fetch_add(1, Ordering::Relaxed);
            counters.reads.fetch_add(reads, Ordering::Relaxed);
            counters.largest.fetch_max(reads, Ordering::Relaxed);
            for (job, customer) in jobs.into_iter().zip(found) {
                job.finish(Ok(customer));
            }
        }
        // The connection goes back to the pool, which checks it.
        Err(error) => fail_all(jobs, &error),
    }
}

/// Answers `Unavailable` to the reads too late to run, and returns the others.
fn drop_expired(jobs: Vec<ReadJob>) -> Vec<ReadJob> {
    let now = Instant::now();
    let (jobs, late): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| !job.expired(now));
    for job in late {
        job.finish(Err(too_late()));
    }
    jobs
}

/// The latest deadline of `jobs`; `None` if one of them has none.
fn latest_deadline(jobs: &[ReadJob]) -> Option<Instant> {
    let latest = jobs.iter().map(|job| job.deadline).try_fold(None::<Instant>, |latest, deadline| {
        deadline.map(|deadline| Some(latest.map_or(deadline, |latest| latest.max(deadline))))
    });
    latest.flatten()
}

/// A pooled connection, waited for no longer than the latest deadline of `jobs`.
async fn acquire(shared: &Shared, jobs: &[ReadJob]) -> Result<PoolConnection<Postgres>, StoreError> {
    match latest_deadline(jobs) {
        Some(latest) => tokio::time::timeout_at(latest.into(), shared.pool.acquire())
            .await
            .map_err(|_| too_late())?
            .map_err(StoreError::from),
        None => shared.pool.acquire().await.map_err(StoreError::from),
    }
}

fn fail_all(jobs: Vec<ReadJob>, error: &StoreError) {
    let reason = error.to_string();
    for job in jobs {
        job.finish(Err(match error {
            StoreError::Unavailable(_) => StoreError::Unavailable(reason.clone()),
            _ => StoreError::Internal(reason.clone()),
        }));
    }
}

/// Runs [`SELECT_BATCH`] for `jobs`; answers each job's customer, in their order.
async fn select_batch(
    connection: &mut PoolConnection<Postgres>,
    jobs: &[ReadJob],
) -> Result<Vec<Option<Customer>>, StoreError> {
    let accounts: Vec<&str> = jobs.iter().map(|job| job.account_id.as_str()).collect();
    let ids: Vec<&str> = jobs.iter().map(|job| job.customer_id.as_str()).collect();
    let rows = sqlx::query(SELECT_BATCH).bind(accounts).bind(ids).fetch_all(&mut **connection).await?;
    let mut found = vec![None; jobs.len()];
    for row in &rows {
        let index = position(row, jobs.len())?;
        found[index] = Some(customer_from_row(row)?);
    }
    Ok(found)
}

/// The 0-based index of the read `row` answers.
fn position(row: &PgRow, reads: usize) -> Result<usize, StoreError> {
    let position: i64 = row.try_get(POSITION_COLUMN)?;
    usize::try_from(position)
        .ok()
        .and_then(|position| position.checked_sub(1))
        .filter(|index| *index < reads)
        .ok_or_else(|| StoreError::Internal(format!("a grouped read answered position {position} of {reads}")))
}
