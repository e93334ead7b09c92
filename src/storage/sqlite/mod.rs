//! The embedded SQLite store: one file, WAL mode, reads on dedicated threads
//! and group-committed writes on one writer thread (see [`runtime`]).

mod admin;
pub mod backup;
mod checkpoint;
mod deliveries;
mod error;
mod events;
mod import;
mod inline;
mod migrations;
mod outbox;
mod queries;
mod runtime;
mod usage;

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::sync::Notify;

pub use self::inline::{READ_SNAPSHOT_MAX_AGE, end_old_read_snapshots, release_read_snapshots};
use self::runtime::Runtime;
pub use self::runtime::Synchronous;
use super::row::CustomerColumns;
use super::snapshot::encode_customer;
use super::{
    AttemptRecord, CursorQuery, EventQuery, IdempotencyRecord, ImportLine, LeasedDelivery, OpenError, Page,
    Precondition, Rotation, Store, StoreError, TokenChange,
};
use crate::deadline::Budget;
use crate::domain::customer::Customer;
use crate::domain::token::TokenHash;
use crate::domain::{
    Account, AccountId, AuditEntry, CustomerFields, CustomerId, Event, EventId, EventType, TokenId, TokenRecord,
    WebhookEndpoint, WebhookEndpointId, WebhookSecret,
};
use crate::usage::UsageRow;

/// Reader threads: enough to keep both cores busy while some wait on the disk.
const READERS: usize = 4;

pub struct SqliteStore {
    runtime: Runtime,
    /// Poked after each committed customer write ([`Store::deliveries_queued`]).
    queued: Notify,
}

impl SqliteStore {
    /// Opens (creating if needed) the file at `path` and brings its schema up to date.
    pub async fn open(path: &str) -> Result<Self, OpenError> {
        Self::open_with(path, Budget::default()).await
    }

    /// [`SqliteStore::open`] for a file that must already exist: the admin
    /// commands never create a database (API.md §7), only `serve` does.
    pub async fn open_existing(path: &str) -> Result<Self, OpenError> {
        let probe = PathBuf::from(path);
        let exists = tokio::task::spawn_blocking(move || runtime::open_existing(&probe).is_ok())
            .await
            .map_err(|error| OpenError::Open(error.to_string()))?;
        if !exists {
            return Err(OpenError::Open(format!(
                "{path}: no database there (only `clientele serve` creates one); check --database-url"
            )));
        }
        Self::open_with(path, Budget::default()).await
    }

    /// [`SqliteStore::open`], waiting for other processes' locks no longer than `budget` allows.
    pub async fn open_with(path: &str, budget: Budget) -> Result<Self, OpenError> {
        Self::open_with_synchronous(path, budget, Synchronous::default()).await
    }

    /// [`SqliteStore::open_with`], committing with SQLite's `synchronous` set to `synchronous`.
    pub async fn open_with_synchronous(
        path: &str,
        budget: Budget,
        synchronous: Synchronous,
    ) -> Result<Self, OpenError> {
        let path = PathBuf::from(path);
        let opened = path.clone();
        let runtime = tokio::task::spawn_blocking(move || -> rusqlite::Result<Runtime> {
            let mut connection = runtime::open(&opened, synchronous)?;
            migrations::run(&mut connection)?;
            Runtime::start(&opened, READERS, budget.busy_timeout(), synchronous)
        })
        .await
        .map_err(|error| OpenError::Open(error.to_string()))?
        .map_err(|error| OpenError::Open(format!("{}: {error}", path.display())))?;
        Ok(Self { runtime, queued: Notify::new() })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.runtime.read(|connection| Ok(connection.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn create_account(&self, account: Account, audit: AuditEntry) -> Result<(), StoreError> {
        self.runtime.write(move |connection| admin::create_account(connection, &account, &audit)).await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.runtime.read(|connection| Ok(admin::list_accounts(connection)?)).await
    }

    async fn find_account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let name = name.to_owned();
        self.runtime.read(move |connection| Ok(admin::find_account(connection, &name)?)).await
    }

    async fn create_token(&self, token: TokenRecord, audit: AuditEntry) -> Result<(), StoreError> {
        self.runtime.write(move |connection| admin::create_token(connection, &token, &audit)).await
    }

    async fn list_tokens(&self, account_id: Option<&AccountId>) -> Result<Vec<TokenRecord>, StoreError> {
        let account_id = account_id.cloned();
        self.runtime.read(move |connection| Ok(admin::list_tokens(connection, account_id.as_ref())?)).await
    }

    async fn find_token(&self, hash: TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.runtime.read_inline(|connection| Ok(admin::find_token(connection, &hash)?))
    }

    async fn revoke_token(&self, token_id: &TokenId, audit: AuditEntry) -> Result<TokenChange, StoreError> {
        let token_id = token_id.clone();
        self.runtime.write(move |connection| admin::revoke_token(connection, &token_id, &audit)).await
    }

    async fn rotate_token(&self, rotation: Rotation, audit: AuditEntry) -> Result<TokenChange, StoreError> {
        self.runtime.write(move |connection| admin::rotate_token(connection, &rotation, &audit)).await
    }

    async fn list_audit(&self, since: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.runtime.read(move |connection| Ok(admin::list_audit(connection, since)?)).await
    }

    async fn add_usage(&self, rows: Vec<UsageRow>) -> Result<(), StoreError> {
        self.runtime.write(move |connection| usage::add_usage(connection, &rows)).await
    }

    async fn list_usage(
        &self,
        account_id: Option<&AccountId>,
        token_id: Option<&TokenId>,
        since_day: i64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let (account_id, token_id) = (account_id.cloned(), token_id.cloned());
        self.runtime
            .read(move |connection| {
                Ok(usage::list_usage(connection, account_id.as_ref(), token_id.as_ref(), since_day)?)
            })
            .await
    }

    async fn touch_token(&self, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
        let token_id = token_id.clone();
        self.runtime.write(move |connection| admin::touch_token(connection, &token_id, at)).await
    }

    async fn insert_customer(
        &self,
        account_id: &AccountId,
        customer: Customer,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let has_key = idempotency.is_some();
        let account_id = account_id.clone();
        // Worked out here, on the caller's thread: the writer thread is the one
        // every write waits for.
        let columns = CustomerColumns::of(&customer);
        let event_data = encode_customer(&customer);
        let change = move |transaction: &outbox::Transaction<'_>| {
            queries::insert_customer(transaction, &account_id, &customer, columns, idempotency.as_ref())?;
            events::record_encoded(transaction, &account_id, EventType::CustomerCreated, event_data);
            Ok(())
        };
        // Without a key the insert is the change's one statement (the count and
        // the event go to the outbox); claiming a key is a second one.
        let written =
            if has_key { self.runtime.write(change).await } else { self.runtime.write_single_statement(change).await };
        written.inspect(|_| self.queued.notify_one())
    }

    async fn get_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
    ) -> Result<Option<Customer>, StoreError> {
        self.runtime.read_inline_prepared(queries::GET_CUSTOMER, |statement| {
            Ok(queries::get_customer(statement, account_id, customer_id)?)
        })
    }

    async fn replace_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        fields: CustomerFields,
        precondition: Precondition,
        now: i64,
    ) -> Result<Customer, StoreError> {
        let (account_id, customer_id) = (account_id.clone(), customer_id.clone());
        self.runtime
            .write(move |connection| {
                let replaced =
                    queries::replace_customer(connection, &account_id, &customer_id, fields, &precondition, now)?;
                events::record(connection, &account_id, EventType::CustomerUpdated, &replaced);
                Ok(replaced)
            })
            .await
            .inspect(|_| self.queued.notify_one())
    }

    async fn delete_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        precondition: Precondition,
    ) -> Result<(), StoreError> {
        let (account_id, customer_id) = (account_id.clone(), customer_id.clone());
        self.runtime
            .write(move |connection| {
                let deleted = queries::delete_customer(connection, &account_id, &customer_id, &precondition)?;
                events::record(connection, &account_id, EventType::CustomerDeleted, &deleted);
                Ok(())
            })
            .await
            .inspect(|_| self.queued.notify_one())
    }

    async fn list_customers_by_offset(
        &self,
        account_id: &AccountId,
        limit: u32,
        offset: u64,
    ) -> Result<(Page<Customer>, u64), StoreError> {
        let account_id = account_id.clone();
        self.runtime.read(move |connection| Ok(queries::list_by_offset(connection, &account_id, limit, offset)?)).await
    }

    async fn list_customers_after(
        &self,
        account_id: &AccountId,
        query: CursorQuery,
    ) -> Result<Page<Customer>, StoreError> {
        let account_id = account_id.clone();
        self.runtime.read(move |connection| Ok(queries::list_after(connection, &account_id, &query)?)).await
    }

    async fn find_idempotency(
        &self,
        account_id: &AccountId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.runtime.read_inline(|connection| Ok(queries::find_idempotency(connection, account_id, key)?))
    }

    async fn purge_idempotency(&self, before: i64) -> Result<u64, StoreError> {
        self.runtime.write(move |connection| Ok(queries::purge_idempotency(connection, before)?)).await
    }

    async fn import_customers(&self, account_id: &AccountId, lines: Vec<ImportLine>) -> Result<Vec<bool>, StoreError> {
        let account_id = account_id.clone();
        self.runtime.write(move |connection| import::import_customers(connection, &account_id, &lines)).await
    }

    async fn list_events(&self, account_id: &AccountId, query: EventQuery) -> Result<Page<Event>, StoreError> {
        let account_id = account_id.clone();
        self.runtime.read(move |connection| Ok(events::list_events(connection, &account_id, &query)?)).await
    }

    async fn get_event(&self, account_id: &AccountId, event_id: &EventId) -> Result<Option<Event>, StoreError> {
        self.runtime.read_inline(|connection| Ok(events::get_event(connection, account_id, event_id)?))
    }

    async fn prune_events(&self, before_ms: i64, max_rows: u32) -> Result<u64, StoreError> {
        self.runtime.write(move |connection| Ok(events::prune_events(connection, before_ms, max_rows)?)).await
    }

    async fn create_webhook_endpoint(
        &self,
        endpoint: WebhookEndpoint,
        secret: WebhookSecret,
        max_per_account: u32,
    ) -> Result<(), StoreError> {
        self.runtime
            .write(move |connection| events::create_endpoint(connection, &endpoint, &secret, max_per_account))
            .await
    }

    async fn list_webhook_endpoints(&self, account_id: &AccountId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let account_id = account_id.clone();
        self.runtime.read(move |connection| Ok(events::list_endpoints(connection, &account_id)?)).await
    }

    async fn get_webhook_endpoint(
        &self,
        account_id: &AccountId,
        endpoint_id: &WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.runtime.read_inline(|connection| Ok(events::get_endpoint(connection, account_id, endpoint_id)?))
    }

    async fn delete_webhook_endpoint(
        &self,
        account_id: &AccountId,
        endpoint_id: &WebhookEndpointId,
    ) -> Result<(), StoreError> {
        let (account_id, endpoint_id) = (account_id.clone(), endpoint_id.clone());
        self.runtime.write(move |connection| events::delete_endpoint(connection, &account_id, &endpoint_id)).await
    }

    async fn imported_lines(
        &self,
        account_id: &AccountId,
        line_hashes: Vec<[u8; 32]>,
    ) -> Result<Vec<bool>, StoreError> {
        let account_id = account_id.clone();
        self.runtime.read(move |connection| Ok(import::imported_lines(connection, &account_id, &line_hashes)?)).await
    }

    async fn lease_deliveries(
        &self,
        lease_ms: i64,
        limit: u32,
        skip_endpoints: Vec<WebhookEndpointId>,
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        // One instance serves the file: its own clock judges the leases.
        let now_ms = crate::domain::time::now_unix_ms();
        let skip = deliveries::skip_list(&skip_endpoints);
        if !self.runtime.read_inline(|connection| Ok(deliveries::any_due(connection, now_ms, &skip)?))? {
            return Ok(Vec::new());
        }
        self.runtime.write(move |connection| deliveries::lease(connection, now_ms, lease_ms, limit, &skip)).await
    }

    async fn record_deliveries(&self, records: Vec<AttemptRecord>) -> Result<(), StoreError> {
        self.runtime.write(move |connection| deliveries::record(connection, &records)).await
    }

    fn deliveries_queued(&self) -> &Notify {
        &self.queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PRAGMA synchronous` as the writer, a reader thread and an inline read see it: 2 is FULL, 1 NORMAL.
    async fn synchronous_levels(store: &SqliteStore) -> [i64; 3] {
        fn level(connection: &rusqlite::Connection) -> Result<i64, StoreError> {
            Ok(connection.query_row("PRAGMA synchronous", [], |row| row.get(0))?)
        }
        let writer = store.runtime.write(|transaction| level(transaction)).await.unwrap();
        let reader = store.runtime.read(level).await.unwrap();
        let inline = store.runtime.read_inline(level).unwrap();
        [writer, reader, inline]
    }

    #[tokio::test]
    async fn commits_are_flushed_to_disk_by_default_and_normal_is_a_choice() {
        let dir = tempfile::tempdir().unwrap();
        let path = |file: &str| dir.path().join(file).to_str().unwrap().to_owned();
        let default = SqliteStore::open(&path("default.db")).await.unwrap();
        assert_eq!(synchronous_levels(&default).await, [2, 2, 2], "FULL by default");
        let full = SqliteStore::open_with_synchronous(&path("full.db"), Budget::default(), Synchronous::Full).await;
        assert_eq!(synchronous_levels(&full.unwrap()).await, [2, 2, 2]);
        let normal =
            SqliteStore::open_with_synchronous(&path("normal.db"), Budget::default(), Synchronous::Normal).await;
        assert_eq!(synchronous_levels(&normal.unwrap()).await, [1, 1, 1]);
    }

    /// A create without an idempotency key runs without a savepoint: when its
    /// insert fails (here, an id already taken), SQLite undoes the statement,
    /// its count change and event are dropped, and the other creates of its
    /// batch commit with their counts and events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_create_that_fails_without_a_savepoint_leaves_no_trace_and_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            std::sync::Arc::new(SqliteStore::open(dir.path().join("single.db").to_str().unwrap()).await.unwrap());
        let shared: std::sync::Arc<dyn Store> = store.clone();
        let account = crate::admin::create_account(&shared, "acme").await.unwrap().id;
        let customer = |n: usize, id: CustomerId| {
            let fields = crate::domain::CustomerFields {
                name: crate::domain::CustomerName::parse(&format!("Customer {n}")).unwrap(),
                email: crate::domain::Email::parse(&format!("c{n}@example.com")).unwrap(),
                phone: None,
                extended: None,
            };
            Customer::create(id, fields, 1_764_326_000)
        };
        let taken = crate::domain::ids::customer_id();
        store.insert_customer(&account, customer(0, taken.clone()), None).await.unwrap();
        // Concurrently (so usually in one batch): every fourth reuses the taken id.
        let creates = (1..=40).map(|n| {
            let (store, account) = (store.clone(), account.clone());
            let id = if n % 4 == 0 { taken.clone() } else { crate::domain::ids::customer_id() };
            let customer = customer(n, id);
            tokio::spawn(async move { store.insert_customer(&account, customer, None).await })
        });
        let mut failed = 0;
        for create in creates.collect::<Vec<_>>() {
            failed += usize::from(create.await.unwrap().is_err());
        }
        assert_eq!(failed, 10, "only the creates with a taken id fail");
        let (page, total) = store.list_customers_by_offset(&account, 100, 0).await.unwrap();
        assert_eq!((page.items.len(), total), (31, 31), "the count matches the rows");
        let query = EventQuery { limit: 100, starting_after: None, event_type: None };
        assert_eq!(store.list_events(&account, query).await.unwrap().items.len(), 31, "one event per created customer");
    }

    /// The outbox keeps a job's events only if the job succeeds: written
    /// concurrently (so usually in one batch), the failing writes' events are
    /// dropped with their savepoints and the others' committed, in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_leaves_no_event_and_its_batch_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            std::sync::Arc::new(SqliteStore::open(dir.path().join("outbox.db").to_str().unwrap()).await.unwrap());
        let shared: std::sync::Arc<dyn Store> = store.clone();
        let account = crate::admin::create_account(&shared, "acme").await.unwrap().id;
        let writes = (0..40).map(|n| {
            let (store, account) = (store.clone(), account.clone());
            tokio::spawn(async move {
                let name = format!("Customer {n}");
                store
                    .runtime
                    .write(move |transaction: &outbox::Transaction<'_>| {
                        let fields = crate::domain::CustomerFields {
                            name: crate::domain::CustomerName::parse(&name).unwrap(),
                            email: crate::domain::Email::parse(&format!("c{n}@example.com")).unwrap(),
                            phone: None,
                            extended: None,
                        };
                        let customer = Customer::create(crate::domain::ids::customer_id(), fields, 1_764_326_000);
                        let columns = CustomerColumns::of(&customer);
                        queries::insert_customer(transaction, &account, &customer, columns, None)?;
                        events::record(transaction, &account, EventType::CustomerCreated, &customer);
                        if n % 3 == 0 {
                            return Err(StoreError::Internal(format!("{name} fails after recording its event")));
                        }
                        Ok(customer.id)
                    })
                    .await
            })
        });
        let mut created = Vec::new();
        for write in writes.collect::<Vec<_>>() {
            if let Ok(id) = write.await.unwrap() {
                created.push(id);
            }
        }
        assert_eq!(created.len(), 26, "every write but each third");
        let query = EventQuery { limit: 100, starting_after: None, event_type: None };
        let events = store.list_events(&account, query).await.unwrap().items;
        let mut recorded: Vec<_> = events.iter().map(|event| event.customer.id.clone()).collect();
        assert!(events.windows(2).all(|pair| pair[0].id.as_str() < pair[1].id.as_str()), "ids sort by creation");
        recorded.sort();
        created.sort();
        assert_eq!(recorded, created, "one event per committed write, none for a failed one");
    }
}
