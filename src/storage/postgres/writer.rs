//! Customer creates on PostgreSQL, grouped: one statement, one transaction and
//! one round trip for every create waiting at the same moment (issue 15).
//!
//! A create ([`Writer::create`]) is queued; one task per store takes what is
//! waiting (at most [`MAX_BATCH`]) and hands it to a batch task, which runs
//! [`INSERT_BATCH`] on one pooled connection. With `synchronous_commit = on`
//! every commit waits for a WAL flush; grouping spreads that flush over the
//! whole batch, as the SQLite writer does (`storage/sqlite/runtime.rs`). Up to
//! [`BATCHES_IN_FLIGHT`] batches run at once, so the next batch forms while
//! the last one is flushing; but a second batch starts only once it is
//! [`WORTH_A_STATEMENT`] creates (or the first has ended, or
//! [`COMPANY_WAIT_AT_MOST`] has passed), since the database's CPU per
//! statement is what limits creates on a small machine.
//!
//! The statement takes each column as an array (`unnest`), claims the
//! idempotency keys (`ON CONFLICT DO NOTHING`), inserts the customers whose
//! claim succeeded (or that had no key), and adds each account's new customers
//! to one of its count rows, all in common table expressions of one
//! statement; a further multi-row `INSERT ... SELECT ... FROM inserted` (an
//! event per created customer, say) is one more expression. A key claimed
//! before (by an earlier batch, another instance, or a retry) fails only its
//! own request, with the record that was there first
//! ([`StoreError::IdempotencyKeyTaken`]), read right after the commit. Two
//! creates with one key never share a batch: the later one waits for the next
//! batch, and then finds the key taken, as two transactions would.
//!
//! # v1's `total` without a hot row
//!
//! The count of an account's customers lives in `account_counts(account_id,
//! shard, n)` (migration 0005, [`super::counts`]): [`COUNT_SHARDS`] rows per account at most,
//! summed on read (an index range of at most 16 rows, so `total` stays O(1)).
//! A batch adds each account's count to one shard, chosen at random per
//! batch; a delete subtracts one from a random shard. Concurrent batches and
//! deletes of one account (on this instance or others) then rarely wait for one
//! another's commit on one row, where a single `accounts.customer_count` made
//! every write of an account queue behind the previous one's WAL flush. Deltas
//! per batch alone would still have serialised the batches of one account,
//! across instances as well. Rows are upserted in account order, so two
//! batches never wait for each other in a cycle. The sum is exact: every
//! change to it commits with the rows it counts.
//!
//! [`COUNT_SHARDS`]: super::counts::COUNT_SHARDS
//!
//! # Deadlines and outages
//!
//! A create waits for its batch no longer than its request's store deadline
//! (see [`crate::deadline`]): a batch refuses (answers `Unavailable`, never
//! runs) a create whose caller has gone or which has less than the statement
//! timeout left once the batch holds its connection, so the statement ends
//! before the store deadline and a create answered 503 is never applied. The
//! caller goes through the circuit breaker as every operation does; a batch
//! holds a write turn of [`WriteGates`], so reads keep their connections.
//! If the statement fails for another reason than the database being
//! unavailable (say, a customer id that already exists), each create of the
//! batch is retried on its own, so one bad create fails only its request.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use super::counts::random_shard;
use super::deliveries::database_now_ms;
use super::gates::WriteGates;
use super::queries::{self, FIND_IDEMPOTENCY};
use super::task_queue::{TaskQueue, take_waiting};
use crate::deadline;
use crate::domain::AccountId;
use crate::domain::customer::Customer;
use crate::storage::row::{CustomerColumns, idempotency_from_row};
use crate::storage::{IdempotencyRecord, StoreError};

/// The most creates one statement inserts; bounds the latency a batch adds.
pub const MAX_BATCH: usize = 512;
/// Batches running at once per instance: while one waits for its commit's WAL
/// flush, the next forms and is sent. Two, not more: on a 2-core machine the
/// database's CPU per statement (executor start, commit) is what limits
/// creates, so fewer, larger batches go faster (BENCHMARKS.md: 12.1k creates/s
/// with 4 in flight, 15.2–16.2k with 2, 16.0–18.1k with 1, where one slow
/// flush would hold up every create).
pub const BATCHES_IN_FLIGHT: usize = 2;
/// While another batch is at the database, the next one starts only once this
/// many creates wait (or when that batch ends). Started as soon as a slot was
/// free, the second batch took the one or two creates that had arrived, and
/// its statement cost the database nearly as much as a full one: with 32
/// clients, batches averaged about 8 creates. Waiting for 32 (a full batch of
/// `wrk -c32`; more under heavier load) made them average 11 to 13 on this
/// busy 2-core machine and cut PostgreSQL's CPU per create from about 86 µs
/// to 64 µs (issue 15, A/B on one database). The wait ends when the batch in
/// flight does, and after [`COMPANY_WAIT_AT_MOST`] in any case.
pub const WORTH_A_STATEMENT: usize = 32;
/// The longest a batch waits for company ([`WORTH_A_STATEMENT`]) while another
/// is at the database: a few commits' time, so a batch stuck on a dead
/// connection or a slow flush does not hold the next one up (review).
pub const COMPANY_WAIT_AT_MOST: Duration = Duration::from_millis(5);
/// One create of [`INSERT_BATCH`]: `$1..$17` are the customer columns of
/// `customer_insert_columns!` as arrays, `$18..$24` the idempotency record
/// (NULL key: none), `$25` the count shard, `$26`/`$27` each create's
/// `customer.created` event id and customer snapshot, `$28` now (Unix
/// milliseconds, the events' `created_at`). Each inserted customer's event, and
/// a delivery per endpoint of its account subscribed to the type (due at once
/// by the database's clock, which judges leases: `deliveries::database_now_ms!`),
/// are written by the same statement (API.md §8: in the write's transaction).
/// Answers the keys it claimed.
const INSERT_BATCH: &str = concat!(
    "WITH input AS ( \
     SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BOOLEAN[], \
     $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::TEXT[], $14::TEXT[], \
     $15::BIGINT[], $16::BIGINT[], $17::BIGINT[], \
     $18::TEXT[], $19::BYTEA[], $20::INTEGER[], $21::TEXT[], $22::TEXT[], $23::TEXT[], $24::BIGINT[], \
     $26::TEXT[], $27::TEXT[]) \
     AS i (account_id, id, name, email, email_normalized, phone, has_address, \
     address_line1, address_line2, address_city, address_region, address_postal_code, address_country, \
     metadata, created_at, updated_at, version, \
     key, fingerprint, status, body, location, etag, key_created_at, event_id, event_data)), \
     claimed AS ( \
     INSERT INTO idempotency_keys (account_id, key, fingerprint, status, body, location, etag, created_at) \
     SELECT account_id, key, fingerprint, status, body, location, etag, key_created_at FROM input \
     WHERE key IS NOT NULL ORDER BY account_id, key \
     ON CONFLICT (account_id, key) DO NOTHING \
     RETURNING account_id, key), \
     inserted AS ( \
     INSERT INTO customers (account_id, id, name, email, email_normalized, phone, has_address, \
     address_line1, address_line2, address_city, address_region, address_postal_code, address_country, \
     metadata, created_at, updated_at, version) \
     SELECT account_id, id, name, email, email_normalized, phone, has_address, \
     address_line1, address_line2, address_city, address_region, address_postal_code, address_country, \
     metadata, created_at, updated_at, version FROM input \
     WHERE key IS NULL OR (account_id COLLATE \"C\", key COLLATE \"C\") IN (SELECT account_id, key FROM claimed) \
     RETURNING account_id, id), \
     recorded AS ( \
     INSERT INTO events (id, account_id, type, created_at, customer_id, data) \
     SELECT input.event_id, input.account_id, 'customer.created', $28, input.id, input.event_data \
     FROM input JOIN inserted ON inserted.account_id = input.account_id AND inserted.id = input.id \
     RETURNING id, account_id), \
     queued AS ( \
     INSERT INTO webhook_deliveries (account_id, endpoint_id, event_id, next_attempt_at) \
     SELECT w.account_id, w.id, recorded.id, ",
    database_now_ms!(),
    " FROM recorded JOIN webhook_endpoints w \
     ON w.account_id = recorded.account_id WHERE 'customer.created' = ANY (w.event_types) \
     ORDER BY recorded.id, w.id), \
     counted AS ( \
     INSERT INTO account_counts (account_id, shard, n) \
     SELECT account_id, $25, count(*) FROM inserted GROUP BY account_id ORDER BY account_id \
     ON CONFLICT (account_id, shard) DO UPDATE SET n = account_counts.n + excluded.n) \
     SELECT account_id, key FROM claimed"
);

/// A queued create, answered once its batch has committed (or failed).
struct CreateJob {
    account_id: AccountId,
    customer: Customer,
    /// Computed by the caller, so the batch task only binds.
    columns: CustomerColumns,
    /// Its `customer.created` event's id and customer snapshot, computed by the caller too.
    event_id: String,
    event_data: String,
    idempotency: Option<IdempotencyRecord>,
    /// The request's store deadline (`None` outside a request).
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

impl CreateJob {
    /// Too late to run: its caller has gone, or the statement might not end before its deadline.
    fn expired(&self, now: Instant, statement_time: Duration) -> bool {
        self.reply.is_closed() || self.deadline.is_some_and(|deadline| now + statement_time > deadline)
    }

    fn finish(self, result: Result<(), StoreError>) {
        let _ = self.reply.send(result);
    }

    /// The account and key two creates must not share in one batch.
    fn claim(&self) -> Option<(&str, &str)> {
        self.idempotency.as_ref().map(|record| (self.account_id.as_str(), record.key.as_str()))
    }
}

/// What the batch tasks share.
struct Shared {
    pool: PgPool,
    gates: WriteGates,
    /// The connections' `statement_timeout`: what a create needs left to be run.
    statement_time: Duration,
}

/// The grouped creates of one store.
pub struct Writer {
    shared: Arc<Shared>,
    /// The queue of the task that forms batches.
    queue: TaskQueue<CreateJob>,
}

impl Writer {
    /// A writer on `pool`, whose batches take turns at `gates`; `statement_time`
    /// is the pool's `statement_timeout`.
    pub fn new(pool: PgPool, gates: WriteGates, statement_time: Duration) -> Self {
        Self { shared: Arc::new(Shared { pool, gates, statement_time }), queue: TaskQueue::new() }
    }

    /// Inserts `customer` with its idempotency record, in the next batch.
    ///
    /// Errors: [`StoreError::IdempotencyKeyTaken`] with the record stored
    /// first; `Unavailable` when the database is, or when the request's time
    /// ran out before the batch could start it (never applied then);
    /// `AlreadyExists` for a customer id taken.
    pub async fn create(
        &self,
        account_id: &AccountId,
        customer: Customer,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let columns = CustomerColumns::of(&customer);
        let event_id = crate::domain::ids::event_id().to_string();
        let event_data = crate::storage::snapshot::encode_customer(&customer);
        let job = CreateJob {
            account_id: account_id.clone(),
            customer,
            columns,
            event_id,
            event_data,
            idempotency,
            deadline: deadline::store_deadline(),
            reply,
        };
        let shared = self.shared.clone();
        self.queue.send(job, |receiver| serve(shared, receiver)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the PostgreSQL writer has stopped".into())
}

fn too_late() -> StoreError {
    StoreError::Unavailable("the request's deadline passed before its write could start".into())
}

/// Takes what is waiting and starts a batch, whenever fewer than
/// [`BATCHES_IN_FLIGHT`] run. Ends when the store (every sender) is dropped.
async fn serve(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<CreateJob>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let finished = Arc::new(Notify::new());
    let mut held_back: Vec<CreateJob> = Vec::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = std::mem::take(&mut held_back);
        if batch.is_empty() {
            match queue.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
        }
        // While another batch is at the database, this one waits to be worth a
        // statement of its own, or for that batch to end, or a few milliseconds.
        let company_by = tokio::time::Instant::now() + COMPANY_WAIT_AT_MOST;
        loop {
            take_waiting(&mut queue, &mut batch, MAX_BATCH);
            if batch.len() >= WORTH_A_STATEMENT || slots.available_permits() + 1 >= BATCHES_IN_FLIGHT {
                break;
            }
            tokio::select! {
                job = queue.recv() => match job {
                    Some(job) => batch.push(job),
                    None => break,
                },
                () = finished.notified() => {}
                () = tokio::time::sleep_until(company_by) => break,
            }
        }
        held_back = hold_back_repeated_keys(&mut batch);
        let shared = shared.clone();
        let ended = BatchEnd { _slot: slot, finished: finished.clone() };
        tokio::spawn(async move {
            commit(&shared, batch).await;
            drop(ended);
        });
    }
}

/// A batch's slot and the wake-up of the batch forming behind it, given back
/// when the batch ends, even by a panic.
struct BatchEnd {
    _slot: tokio::sync::OwnedSemaphorePermit,
    finished: Arc<Notify>,
}

impl Drop for BatchEnd {
    fn drop(&mut self) {
        self.finished.notify_one();
    }
}

/// Removes from `batch` every create whose (account, key) an earlier one in it
/// claims, and returns them, for the next batch.
fn hold_back_repeated_keys(batch: &mut Vec<CreateJob>) -> Vec<CreateJob> {
    if batch.iter().filter(|job| job.idempotency.is_some()).nth(1).is_none() {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut kept = Vec::with_capacity(batch.len());
    let mut later = Vec::new();
    for job in batch.drain(..) {
        let first = job.claim().is_none_or(|(account, key)| seen.insert((account.to_owned(), key.to_owned())));
        if first { kept.push(job) } else { later.push(job) }
    }
    *batch = kept;
    later
}

/// Runs one batch and answers each of its creates.
async fn commit(shared: &Shared, jobs: Vec<CreateJob>) {
    let fail_all = |jobs: Vec<CreateJob>, error: StoreError| {
        let reason = error.to_string();
        for job in jobs {
            job.finish(Err(match &error {
                StoreError::Unavailable(_) => StoreError::Unavailable(reason.clone()),
                _ => StoreError::Internal(reason.clone()),
            }));
        }
    };
    let _turn = match shared.gates.enter(None).await {
        Ok(turn) => turn,
        Err(error) => return fail_all(jobs, error),
    };
    let mut connection = match shared.pool.acquire().await {
        Ok(connection) => connection,
        Err(error) => return fail_all(jobs, error.into()),
    };
    // Waiting for the connection took time: what is too late now is refused, not run.
    let now = Instant::now();
    let (jobs, late): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| !job.expired(now, shared.statement_time));
    for job in late {
        job.finish(Err(too_late()));
    }
    if jobs.is_empty() {
        return;
    }
    match insert_batch(&mut connection, &jobs).await {
        Ok(claimed) => answer(&mut connection, jobs, &claimed).await,
        Err(error @ StoreError::Unavailable(_)) => fail_all(jobs, error),
        Err(error) => {
            tracing::debug!(%error, creates = jobs.len(), "a grouped create failed: each is retried alone");
            drop(connection);
            one_by_one(shared, jobs).await;
        }
    }
}

/// Answers the creates of a committed batch: those whose key was not claimed
/// get the record stored first.
async fn answer(
    connection: &mut PoolConnection<sqlx::Postgres>,
    jobs: Vec<CreateJob>,
    claimed: &HashSet<(String, String)>,
) {
    for job in jobs {
        let Some((account, key)) = job.claim() else {
            job.finish(Ok(()));
            continue;
        };
        if claimed.contains(&(account.to_owned(), key.to_owned())) {
            job.finish(Ok(()));
            continue;
        }
        let existing = sqlx::query(FIND_IDEMPOTENCY).bind(account).bind(key).fetch_optional(&mut **connection).await;
        let result = match existing {
            Ok(Some(row)) => match idempotency_from_row(&row) {
                Ok(record) => Err(StoreError::IdempotencyKeyTaken(Box::new(record))),
                Err(error) => Err(error.into()),
            },
            Ok(None) => Err(StoreError::Internal("an idempotency key conflicted but cannot be read".into())),
            Err(error) => Err(error.into()),
        };
        job.finish(result);
    }
}

/// Each create in a statement and transaction of its own (after the batch failed).
async fn one_by_one(shared: &Shared, jobs: Vec<CreateJob>) {
    for job in jobs {
        if job.expired(Instant::now(), shared.statement_time) {
            job.finish(Err(too_late()));
            continue;
        }
        let result = queries::insert_customer(
            &shared.pool,
            &job.account_id,
            &job.customer,
            &job.columns,
            job.idempotency.as_ref(),
        )
        .await;
        job.finish(result);
    }
}

/// Runs [`INSERT_BATCH`] (one statement: one transaction, one round trip);
/// returns the (account id, key) pairs it claimed.
async fn insert_batch(
    connection: &mut PoolConnection<sqlx::Postgres>,
    jobs: &[CreateJob],
) -> Result<HashSet<(String, String)>, StoreError> {
    let count = jobs.len();
    let mut account_id = Vec::with_capacity(count);
    let mut id = Vec::with_capacity(count);
    let mut name = Vec::with_capacity(count);
    let mut email = Vec::with_capacity(count);
    let mut email_normalized = Vec::with_capacity(count);
    let mut phone = Vec::with_capacity(count);
    let mut has_address = Vec::with_capacity(count);
    let mut line1 = Vec::with_capacity(count);
    let mut line2 = Vec::with_capacity(count);
    let mut city = Vec::with_capacity(count);
    let mut region = Vec::with_capacity(count);
    let mut postal_code = Vec::with_capacity(count);
    let mut country = Vec::with_capacity(count);
    let mut metadata = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    let mut updated = Vec::with_capacity(count);
    let mut version = Vec::with_capacity(count);
    let mut key = Vec::with_capacity(count);
    let mut fingerprint = Vec::with_capacity(count);
    let mut status = Vec::with_capacity(count);
    let mut body = Vec::with_capacity(count);
    let mut location = Vec::with_capacity(count);
    let mut etag = Vec::with_capacity(count);
    let mut key_created = Vec::with_capacity(count);
    let mut event_id = Vec::with_capacity(count);
    let mut event_data = Vec::with_capacity(count);
    for job in jobs {
        let (customer, columns, address) = (&job.customer, &job.columns, &job.columns.address);
        account_id.push(job.account_id.as_str());
        id.push(customer.id.as_str());
        name.push(customer.name.as_str());
        email.push(customer.email.as_str());
        email_normalized.push(columns.email_normalized.as_str());
        phone.push(customer.phone.as_deref());
        has_address.push(columns.has_address);
        line1.push(address.line1.as_deref());
        line2.push(address.line2.as_deref());
        city.push(address.city.as_deref());
        region.push(address.region.as_deref());
        postal_code.push(address.postal_code.as_deref());
        country.push(address.country.as_deref());
        metadata.push(columns.metadata.as_str());
        created.push(customer.created);
        updated.push(customer.updated);
        version.push(customer.version);
        let record = job.idempotency.as_ref();
        key.push(record.map(|record| record.key.as_str()));
        fingerprint.push(record.map(|record| record.fingerprint.as_slice()));
        status.push(record.map(|record| i32::from(record.status)));
        body.push(record.map(|record| record.body.as_str()));
        location.push(record.and_then(|record| record.location.as_deref()));
        etag.push(record.and_then(|record| record.etag.as_deref()));
        key_created.push(record.map(|record| record.created_at));
        event_id.push(job.event_id.as_str());
        event_data.push(job.event_data.as_str());
    }
    let rows = sqlx::query(INSERT_BATCH)
        .bind(account_id)
        .bind(id)
        .bind(name)
        .bind(email)
        .bind(email_normalized)
        .bind(phone)
        .bind(has_address)
        .bind(line1)
        .bind(line2)
        .bind(city)
        .bind(region)
        .bind(postal_code)
        .bind(country)
        .bind(metadata)
        .bind(created)
        .bind(updated)
        .bind(version)
        .bind(key)
        .bind(fingerprint)
        .bind(status)
        .bind(body)
        .bind(location)
        .bind(etag)
        .bind(key_created)
        .bind(random_shard())
        .bind(event_id)
        .bind(event_data)
        .bind(crate::domain::time::now_unix_ms())
        .fetch_all(&mut **connection)
        .await?;
    let mut claimed = HashSet::with_capacity(rows.len());
    for row in rows {
        use sqlx::Row;
        claimed.insert((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?));
    }
    Ok(claimed)
}
