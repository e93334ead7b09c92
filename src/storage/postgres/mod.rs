//! The PostgreSQL store: a connection pool, migrations applied on start under
//! an advisory lock (so several instances can start at once), and the same
//! promises as the SQLite store (see [`queries`] for how each write stays atomic).
//! Every operation runs behind a circuit [`breaker`], so a database outage is
//! answered at once and a recovery is picked up within a fraction of a second.

mod admin;
mod breaker;
pub mod counts;
mod data_migrations;
mod deliveries;
mod error;
mod events;
mod gates;
mod import;
mod queries;
pub mod reader;
mod task_queue;
mod usage;
pub mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::Notify;

use self::breaker::Breaker;
pub use self::error::from_sqlx;
use self::gates::WriteGates;
use self::reader::{ReadBatches, Reader};
use self::writer::Writer;
use super::{
    AttemptRecord, CursorQuery, EventQuery, IdempotencyRecord, ImportLine, LeasedDelivery, OpenError, Page, PoolStatus,
    Precondition, Rotation, Store, StoreError, TokenChange, redact_url,
};
use crate::deadline::Budget;
use crate::domain::customer::Customer;
use crate::domain::token::TokenHash;
use crate::domain::{
    Account, AccountId, AuditEntry, CustomerFields, CustomerId, Event, EventId, TokenId, TokenRecord, WebhookEndpoint,
    WebhookEndpointId, WebhookSecret,
};
use crate::secrets::redact_quoting;
use crate::usage::UsageRow;

/// The schema, from `migrations/postgres`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per server instance: enough for a two-core server's
/// concurrent requests, few enough that several instances fit within
/// PostgreSQL's default `max_connections` of 100.
pub const MAX_CONNECTIONS: u32 = 16;
/// How long opening the store waits for its first connection. Requests wait
/// for a pooled connection [`Budget::acquire_timeout`] at most, when the
/// database is up but every connection is busy (a database that cannot be
/// reached is noticed much sooner: see [`breaker`]).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long migrating waits for a lock (another instance migrating, a table in use).
const MIGRATION_LOCK_TIMEOUT: &str = "60s";
/// A connection idle at least this long is pinged before use, so one left
/// dead by a database restart is replaced instead of failing a request.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

pub struct PostgresStore {
    pool: PgPool,
    breaker: Arc<Breaker>,
    /// Writes wait here, not on a pooled connection, while their row is busy (see [`gates`]).
    gates: WriteGates,
    /// Groups concurrent customer creates into one statement (see [`writer`]).
    writer: Writer,
    /// Groups concurrent customer reads by id into one statement (see [`reader`]).
    reader: Reader,
    /// Poked after each committed customer write ([`Store::deliveries_queued`]).
    queued: Notify,
    /// Whatever must live as long as the store (see [`PostgresStore::keeping`]).
    _kept: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl PostgresStore {
    /// Connects to `url` and brings its schema up to date. Fails within
    /// [`ACQUIRE_TIMEOUT`] when the database cannot be reached, saying why.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        Self::open_with(url, Budget::default()).await
    }

    /// [`PostgresStore::open`], with the time limits of `budget` on every
    /// pooled connection: `statement_timeout`, `lock_timeout` and
    /// `idle_in_transaction_session_timeout` (sent with the connection's
    /// startup, so they cost no round trip), and the pool's acquire timeout.
    /// Migrations run on a connection of their own, without them.
    pub async fn open_with(url: &str, budget: Budget) -> Result<Self, OpenError> {
        let fail = |message: String| OpenError::Open(format!("{}: {}", redact_url(url), redact_quoting(&message, url)));
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| fail(format!("invalid PostgreSQL URL: {error}")))?
            .application_name("clientele")
            // Not "relation _sqlx_migrations already exists, skipping" in the log on every start.
            .options([("client_min_messages", "warning")]);
        // One connection of its own first: its error says what is wrong
        // (refused, unknown database, bad password), where a pool would only time out.
        // Migrations wait for another instance's migration (sqlx's advisory lock) and for
        // the tables' locks, but not for ever: a start (or an admin command) stuck behind
        // a forgotten session fails, saying so, instead of hanging.
        let migrating = options.clone().options([("lock_timeout", MIGRATION_LOCK_TIMEOUT)]);
        let mut connection = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&migrating))
            .await
            .map_err(|_| {
                fail(format!("cannot connect to PostgreSQL: no answer within {} s", ACQUIRE_TIMEOUT.as_secs()))
            })?
            .map_err(|error| fail(format!("cannot connect to PostgreSQL: {error}")))?;
        MIGRATOR
            .run_direct(&mut connection)
            .await
            .map_err(|error| fail(format!("cannot migrate the schema: {error}")))?;
        data_migrations::run(&mut connection)
            .await
            .map_err(|error| fail(format!("cannot migrate the data: {error}")))?;
        connection.close().await.ok();
        let options = with_time_limits(options, budget);
        let breaker = Breaker::new(options.clone(), budget.operation_time());
        let pool = pool_options(&breaker).acquire_timeout(budget.acquire_timeout()).connect_lazy_with(options);
        let gates = WriteGates::new(MAX_CONNECTIONS, budget.operation_time());
        let writer = Writer::new(pool.clone(), gates.clone(), budget.statement_timeout());
        let reader = Reader::new(pool.clone(), breaker.clone(), budget.statement_timeout());
        Ok(Self { pool, breaker, gates, writer, reader, queued: Notify::new(), _kept: None })
    }

    /// A store over an existing pool, without running migrations (the pool's
    /// connections keep whatever time limits its options set).
    pub fn from_pool(pool: PgPool) -> Self {
        let budget = Budget::default();
        let operation_time = budget.operation_time();
        let breaker = Breaker::new(pool.connect_options().as_ref().clone(), operation_time);
        let gates = WriteGates::new(pool.options().get_max_connections(), operation_time);
        let writer = Writer::new(pool.clone(), gates.clone(), budget.statement_timeout());
        let reader = Reader::new(pool.clone(), breaker.clone(), budget.statement_timeout());
        Self { pool, breaker, gates, writer, reader, queued: Notify::new(), _kept: None }
    }

    /// Keeps `value` alive until the store is dropped: a test ties the
    /// removal of its temporary database to the last handle on the store.
    pub fn keeping(mut self, value: impl Send + Sync + 'static) -> Self {
        self._kept = Some(Box::new(value));
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How many statements the grouped reads by id have run, and how many reads they answered.
    pub fn read_batches(&self) -> ReadBatches {
        self.reader.batches()
    }

    /// Applies the missing migrations. Safe to run from several processes at
    /// once: sqlx holds a PostgreSQL advisory lock while it migrates.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(error) => from_sqlx(error),
            other => StoreError::Internal(other.to_string()),
        })?;
        let mut connection = self.pool.acquire().await.map_err(from_sqlx)?;
        data_migrations::run(&mut connection).await.map_err(from_sqlx)
    }
}

/// The server-side limits of [`Budget`], as startup options of every connection.
fn with_time_limits(options: PgConnectOptions, budget: Budget) -> PgConnectOptions {
    let millis = |duration: Duration| format!("{}ms", duration.as_millis());
    options.options([
        ("statement_timeout", millis(budget.statement_timeout())),
        ("lock_timeout", millis(budget.lock_timeout())),
        // A transaction left open by a request that went away ends too.
        ("idle_in_transaction_session_timeout", millis(budget.statement_timeout())),
    ])
}

fn pool_options(breaker: &Arc<Breaker>) -> PgPoolOptions {
    let breaker = Arc::downgrade(breaker);
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Duration::from_secs(300))
        .max_lifetime(Duration::from_secs(1800))
        // sqlx already pings every connection when it is released; a full
        // ping before each use would add a round trip to every request.
        .test_before_acquire(false)
        // A connection idle since before the last failure may have died with
        // the database: it is pinged too, so a restart costs no request a 503.
        .before_acquire(move |connection, meta| {
            let suspect = breaker.upgrade().is_some_and(|breaker| breaker.idle_since_last_failure(meta.idle_for));
            Box::pin(async move {
                if suspect || meta.idle_for >= PING_IF_IDLE_FOR {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.breaker.run(async { self.pool.execute("SELECT 1").await.map(drop).map_err(from_sqlx) }).await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        Some(PoolStatus { size: self.pool.size(), idle, max: self.pool.options().get_max_connections() })
    }

    async fn create_account(&self, account: Account, audit: AuditEntry) -> Result<(), StoreError> {
        self.breaker.run(admin::create_account(&self.pool, &account, &audit)).await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.breaker.run(admin::list_accounts(&self.pool)).await
    }

    async fn find_account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.breaker.run(admin::find_account(&self.pool, name)).await
    }

    async fn create_token(&self, token: TokenRecord, audit: AuditEntry) -> Result<(), StoreError> {
        self.breaker.run(admin::create_token(&self.pool, &token, &audit)).await
    }

    async fn list_tokens(&self, account_id: Option<&AccountId>) -> Result<Vec<TokenRecord>, StoreError> {
        self.breaker.run(admin::list_tokens(&self.pool, account_id)).await
    }

    async fn find_token(&self, hash: TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.breaker.run(admin::find_token(&self.pool, &hash)).await
    }

    async fn revoke_token(&self, token_id: &TokenId, audit: AuditEntry) -> Result<TokenChange, StoreError> {
        self.breaker.run(admin::revoke_token(&self.pool, token_id, &audit)).await
    }

    async fn rotate_token(&self, rotation: Rotation, audit: AuditEntry) -> Result<TokenChange, StoreError> {
        self.breaker.run(admin::rotate_token(&self.pool, &rotation, &audit)).await
    }

    async fn list_audit(&self, since: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.breaker.run(admin::list_audit(&self.pool, since)).await
    }

    async fn add_usage(&self, rows: Vec<UsageRow>) -> Result<(), StoreError> {
        self.breaker.run(usage::add_usage(&self.pool, &rows)).await
    }

    async fn list_usage(
        &self,
        account_id: Option<&AccountId>,
        token_id: Option<&TokenId>,
        since_day: i64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        self.breaker.run(usage::list_usage(&self.pool, account_id, token_id, since_day)).await
    }

    async fn touch_token(&self, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
        self.breaker.run(admin::touch_token(&self.pool, token_id, at)).await
    }

    async fn insert_customer(
        &self,
        account_id: &AccountId,
        customer: Customer,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        // The batch takes the write turn (see [`writer`]).
        self.breaker
            .run(self.writer.create(account_id, customer, idempotency))
            .await
            .inspect(|_| self.queued.notify_one())
    }

    async fn get_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
    ) -> Result<Option<Customer>, StoreError> {
        self.breaker.run(self.reader.get(account_id, customer_id)).await
    }

    async fn replace_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        fields: CustomerFields,
        precondition: Precondition,
        now: i64,
    ) -> Result<Customer, StoreError> {
        let _turn = self.gates.enter(Some((account_id.as_str(), customer_id.as_str()))).await?;
        self.breaker
            .run(queries::replace_customer(&self.pool, account_id, customer_id, fields, &precondition, now))
            .await
            .inspect(|_| self.queued.notify_one())
    }

    async fn delete_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        precondition: Precondition,
    ) -> Result<(), StoreError> {
        let _turn = self.gates.enter(Some((account_id.as_str(), customer_id.as_str()))).await?;
        self.breaker
            .run(queries::delete_customer(&self.pool, account_id, customer_id, &precondition))
            .await
            .inspect(|_| self.queued.notify_one())
    }

    async fn list_customers_by_offset(
        &self,
        account_id: &AccountId,
        limit: u32,
        offset: u64,
    ) -> Result<(Page<Customer>, u64), StoreError> {
        self.breaker.run(queries::list_by_offset(&self.pool, account_id, limit, offset)).await
    }

    async fn list_customers_after(
        &self,
        account_id: &AccountId,
        query: CursorQuery,
    ) -> Result<Page<Customer>, StoreError> {
        self.breaker.run(queries::list_after(&self.pool, account_id, &query)).await
    }

    async fn find_idempotency(
        &self,
        account_id: &AccountId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.breaker.run(queries::find_idempotency(&self.pool, account_id, key)).await
    }

    async fn purge_idempotency(&self, before: i64) -> Result<u64, StoreError> {
        self.breaker.run(queries::purge_idempotency(&self.pool, before)).await
    }

    async fn import_customers(&self, account_id: &AccountId, lines: Vec<ImportLine>) -> Result<Vec<bool>, StoreError> {
        let _turn = self.gates.enter(None).await?;
        self.breaker.run(import::import_customers(&self.pool, account_id, &lines)).await
    }

    async fn imported_lines(
        &self,
        account_id: &AccountId,
        line_hashes: Vec<[u8; 32]>,
    ) -> Result<Vec<bool>, StoreError> {
        self.breaker.run(import::imported_lines(&self.pool, account_id, &line_hashes)).await
    }

    async fn list_events(&self, account_id: &AccountId, query: EventQuery) -> Result<Page<Event>, StoreError> {
        self.breaker.run(events::list_events(&self.pool, account_id, &query)).await
    }

    async fn get_event(&self, account_id: &AccountId, event_id: &EventId) -> Result<Option<Event>, StoreError> {
        self.breaker.run(events::get_event(&self.pool, account_id, event_id)).await
    }

    async fn prune_events(&self, before_ms: i64, max_rows: u32) -> Result<u64, StoreError> {
        self.breaker.run(events::prune_events(&self.pool, before_ms, max_rows)).await
    }

    async fn create_webhook_endpoint(
        &self,
        endpoint: WebhookEndpoint,
        secret: WebhookSecret,
        max_per_account: u32,
    ) -> Result<(), StoreError> {
        self.breaker.run(events::create_endpoint(&self.pool, &endpoint, &secret, max_per_account)).await
    }

    async fn list_webhook_endpoints(&self, account_id: &AccountId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.breaker.run(events::list_endpoints(&self.pool, account_id)).await
    }

    async fn get_webhook_endpoint(
        &self,
        account_id: &AccountId,
        endpoint_id: &WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.breaker.run(events::get_endpoint(&self.pool, account_id, endpoint_id)).await
    }

    async fn delete_webhook_endpoint(
        &self,
        account_id: &AccountId,
        endpoint_id: &WebhookEndpointId,
    ) -> Result<(), StoreError> {
        self.breaker.run(events::delete_endpoint(&self.pool, account_id, endpoint_id)).await
    }

    async fn lease_deliveries(
        &self,
        lease_ms: i64,
        limit: u32,
        skip_endpoints: Vec<WebhookEndpointId>,
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        self.breaker.run(deliveries::lease(&self.pool, lease_ms, limit, &skip_endpoints)).await
    }

    async fn record_deliveries(&self, records: Vec<AttemptRecord>) -> Result<(), StoreError> {
        self.breaker.run(deliveries::record(&self.pool, &records)).await
    }

    fn deliveries_queued(&self) -> &Notify {
        &self.queued
    }
}
