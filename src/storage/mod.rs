//! Persistence behind one trait, so handlers never see SQL.
//!
//! The backend is chosen from the database URL ([`open`]); every backend keeps
//! the same promises: a write answered 2xx is durable, the idempotency record
//! and its customer are written in one transaction, and a conditional write
//! checks the version and writes in one atomic step.
//!
//! Every id a method takes is typed ([`crate::domain::ids`]); lists answer a
//! [`Page`]. What the backends share about rows lives in `row.rs`.

mod deliveries;
pub mod postgres;
mod row;
mod snapshot;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::deadline::Budget;
use crate::domain::customer::Customer;
use crate::domain::token::TokenHash;
use crate::domain::{
    Account, AccountId, AuditEntry, CustomerFields, CustomerId, Event, EventId, EventType, TokenId, TokenRecord,
    WebhookEndpoint, WebhookEndpointId, WebhookSecret,
};
use crate::usage::UsageRow;

pub use self::deliveries::{AttemptOutcome, AttemptRecord, Attempted, LeasedDelivery};

pub type SharedStore = Arc<dyn Store>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// `If-Match` named no current version.
    #[error("precondition failed")]
    PreconditionFailed,
    /// A unique name (account, token) is taken.
    #[error("already exists")]
    AlreadyExists,
    /// Another request already stored this idempotency key.
    #[error("idempotency key already used")]
    IdempotencyKeyTaken(Box<IdempotencyRecord>),
    /// The database cannot be reached or is busy: worth retrying.
    /// The account already has the most webhook endpoints it may have (API.md §8).
    #[error("the account has {0} webhook endpoints, the most it may have")]
    TooManyEndpoints(u32),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

/// The versions a conditional header names: `*` (any) or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Versions {
    Any,
    /// An empty list names no version.
    Listed(Vec<i64>),
}

impl Versions {
    pub fn contains(&self, version: i64) -> bool {
        match self {
            Versions::Any => true,
            Versions::Listed(versions) => versions.contains(&version),
        }
    }
}

/// The preconditions of a write or read (RFC 9110 §13.1.1, §13.1.2), checked
/// against the stored version in the same atomic step as the write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    /// `If-Match`: proceed only if the current version is one of these
    /// (`Any`: if the customer exists). A customer that does not exist fails it.
    pub if_match: Option<Versions>,
    /// `If-None-Match`: proceed only if the current version is none of these
    /// (`Any`: if the customer does not exist).
    pub if_none_match: Option<Versions>,
}

/// Why a precondition refused (RFC 9110 §13.2.2 evaluates them in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such customer, and no `If-Match`: the usual 404.
    Missing,
    /// `If-Match` is false: 412.
    IfMatch,
    /// `If-None-Match` is false: 304 on a read, 412 on a write.
    IfNoneMatch,
}

impl Precondition {
    /// No precondition: write unconditionally.
    pub const NONE: Precondition = Precondition { if_match: None, if_none_match: None };

    /// `If-Match` alone.
    pub fn if_match(versions: Versions) -> Self {
        Self { if_match: Some(versions), if_none_match: None }
    }

    /// Evaluates `If-Match`, then `If-None-Match`, against the stored
    /// version (`None` when there is no such customer): API.md §3.
    pub fn evaluate(&self, current: Option<i64>) -> Result<(), Refusal> {
        let Some(version) = current else {
            return Err(if self.if_match.is_some() { Refusal::IfMatch } else { Refusal::Missing });
        };
        if self.if_match.as_ref().is_some_and(|versions| !versions.contains(version)) {
            return Err(Refusal::IfMatch);
        }
        if self.if_none_match.as_ref().is_some_and(|versions| versions.contains(version)) {
            return Err(Refusal::IfNoneMatch);
        }
        Ok(())
    }

    /// [`Precondition::evaluate`] for a write: `NotFound` or `PreconditionFailed`.
    pub fn check(&self, current: Option<i64>) -> Result<(), StoreError> {
        match self.evaluate(current) {
            Ok(()) => Ok(()),
            Err(Refusal::Missing) => Err(StoreError::NotFound),
            Err(Refusal::IfMatch | Refusal::IfNoneMatch) => Err(StoreError::PreconditionFailed),
        }
    }
}

/// The first response to an idempotent POST, kept to be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: String,
    /// SHA-256 of the API version and the canonical request body.
    pub fingerprint: [u8; 32],
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
    pub etag: Option<String>,
    pub created_at: i64,
}

/// One valid line of `customers import`: the customer it creates and the
/// SHA-256 of the line's bytes (without its line ending), its idempotency key
/// (API.md §7 "Data tools"). A line created is marked imported into its
/// account by a row of `import_records` (account, hash), never purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    pub line_hash: [u8; 32],
    pub customer: Customer,
}

/// A v2 list page request: ascending ids after a cursor, optionally by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorQuery {
    /// The most items the page holds.
    pub limit: u32,
    /// Free text from the query string, not necessarily an id: the page starts
    /// after where it would sort (byte-wise).
    pub starting_after: Option<String>,
    /// Lower-cased email to match exactly.
    pub email_normalized: Option<String>,
}

/// A page of an account's events (`GET /v2/events`, API.md §8): ascending
/// ids after a cursor, optionally of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// The most events the page holds.
    pub limit: u32,
    /// Free text, as for [`CursorQuery::starting_after`]: the page starts after where it would sort.
    pub starting_after: Option<String>,
    pub event_type: Option<EventType>,
}

/// One page of a list, oldest (lowest id) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether at least one more item follows the last one.
    pub has_more: bool,
}

impl<T> Page<T> {
    /// A page of at most `limit` items from a query that asked for `limit + 1`
    /// ([`overfetch`]): the extra item, when it came, only says there is more.
    pub(crate) fn from_overfetched(mut items: Vec<T>, limit: u32) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = items.len() > limit;
        items.truncate(limit);
        Self { items, has_more }
    }
}

/// The row count to ask for so that [`Page::from_overfetched`] can tell whether more follow.
pub(crate) fn overfetch(limit: u32) -> i64 {
    i64::from(limit) + 1
}

/// What a change to a token (revocation, rotation) found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChange {
    /// Changed (and audited): the token as it is now.
    Done(TokenRecord),
    /// The token was revoked already (its `revoked_at` says when): nothing
    /// changed and nothing was audited.
    AlreadyRevoked(TokenRecord),
}

/// A token's new secret (`tokens rotate`, API.md §7): the current secret
/// becomes the rotated-out one, accepted until `grace_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub token_id: TokenId,
    /// The new secret's hash.
    pub hash: TokenHash,
    /// The new secret's first characters, for listings.
    pub prefix: String,
    /// Unix seconds: the end of the old secret's grace period.
    pub grace_until: i64,
}

/// How a store's connection pool is used, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open, idle or in use.
    pub size: u32,
    pub idle: u32,
    /// Connections the pool may open.
    pub max: u32,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database does.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pool's use, read without waiting; `None` for a store
    /// without a pool (SQLite's fixed reader and writer threads).
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Creates the account and writes `audit` in the same transaction.
    async fn create_account(&self, account: Account, audit: AuditEntry) -> Result<(), StoreError>;
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;
    async fn find_account(&self, name: &str) -> Result<Option<Account>, StoreError>;

    /// Stores the token and writes `audit` in the same transaction.
    async fn create_token(&self, token: TokenRecord, audit: AuditEntry) -> Result<(), StoreError>;
    /// Every token, or those of one account, oldest first.
    async fn list_tokens(&self, account_id: Option<&AccountId>) -> Result<Vec<TokenRecord>, StoreError>;
    /// The token whose current secret, or rotated-out secret, hashes to `hash`.
    async fn find_token(&self, hash: TokenHash) -> Result<Option<TokenRecord>, StoreError>;
    /// Marks the token revoked at `audit.at` and writes `audit` in the same
    /// transaction; `NotFound` when there is no such token.
    async fn revoke_token(&self, token_id: &TokenId, audit: AuditEntry) -> Result<TokenChange, StoreError>;
    /// Gives a token that is not revoked a new secret and writes `audit` in the
    /// same transaction; `NotFound` when there is no such token.
    async fn rotate_token(&self, rotation: Rotation, audit: AuditEntry) -> Result<TokenChange, StoreError>;
    /// The audit entries from `since` (Unix seconds) on, oldest first.
    async fn list_audit(&self, since: i64) -> Result<Vec<AuditEntry>, StoreError>;

    /// Adds each row's counts to its token and day, in one transaction.
    async fn add_usage(&self, rows: Vec<UsageRow>) -> Result<(), StoreError>;
    /// The usage rows from `since_day` on (days since the epoch, UTC), of one
    /// account's tokens and/or one token, by token and day.
    async fn list_usage(
        &self,
        account_id: Option<&AccountId>,
        token_id: Option<&TokenId>,
        since_day: i64,
    ) -> Result<Vec<UsageRow>, StoreError>;
    async fn touch_token(&self, token_id: &TokenId, at: i64) -> Result<(), StoreError>;

    /// Stores a new customer and, in the same transaction, its idempotency
    /// record and its `customer.created` event, with a delivery for each of the
    /// account's endpoints subscribed to it (API.md §8). `IdempotencyKeyTaken`
    /// carries the record that was there first (and nothing is written).
    async fn insert_customer(
        &self,
        account_id: &AccountId,
        customer: Customer,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError>;
    async fn get_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
    ) -> Result<Option<Customer>, StoreError>;
    /// Replaces the fields if the precondition holds, bumping the version, and
    /// records a `customer.updated` event in the same transaction; returns the new state.
    async fn replace_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        fields: CustomerFields,
        precondition: Precondition,
        now: i64,
    ) -> Result<Customer, StoreError>;
    /// Deletes the customer if the precondition holds, and records a
    /// `customer.deleted` event of its last stored state in the same transaction.
    async fn delete_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        precondition: Precondition,
    ) -> Result<(), StoreError>;
    /// At most `limit` customers, oldest first from `offset`, with the account's total.
    async fn list_customers_by_offset(
        &self,
        account_id: &AccountId,
        limit: u32,
        offset: u64,
    ) -> Result<(Page<Customer>, u64), StoreError>;
    /// At most `query.limit` customers by ascending id after the cursor.
    async fn list_customers_after(
        &self,
        account_id: &AccountId,
        query: CursorQuery,
    ) -> Result<Page<Customer>, StoreError>;

    async fn find_idempotency(
        &self,
        account_id: &AccountId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Deletes idempotency records created before `before`; returns how many.
    async fn purge_idempotency(&self, before: i64) -> Result<u64, StoreError>;

    /// At most `query.limit` of the account's events by ascending id (creation order) after the cursor.
    async fn list_events(&self, account_id: &AccountId, query: EventQuery) -> Result<Page<Event>, StoreError>;
    /// One of the account's events; `None` for another account's.
    async fn get_event(&self, account_id: &AccountId, event_id: &EventId) -> Result<Option<Event>, StoreError>;
    /// Deletes at most `max_rows` events created before `before_ms` (Unix
    /// milliseconds), oldest first, with their deliveries; returns how many events.
    async fn prune_events(&self, before_ms: i64, max_rows: u32) -> Result<u64, StoreError>;

    /// Stores a new endpoint with its secret unless its account already has
    /// `max_per_account` endpoints (`TooManyEndpoints`), counted atomically with the insert.
    async fn create_webhook_endpoint(
        &self,
        endpoint: WebhookEndpoint,
        secret: WebhookSecret,
        max_per_account: u32,
    ) -> Result<(), StoreError>;
    /// The account's endpoints, oldest first.
    async fn list_webhook_endpoints(&self, account_id: &AccountId) -> Result<Vec<WebhookEndpoint>, StoreError>;
    /// One of the account's endpoints; `None` for another account's.
    async fn get_webhook_endpoint(
        &self,
        account_id: &AccountId,
        endpoint_id: &WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// Deletes one of the account's endpoints and all its deliveries; `NotFound` when there is none.
    async fn delete_webhook_endpoint(
        &self,
        account_id: &AccountId,
        endpoint_id: &WebhookEndpointId,
    ) -> Result<(), StoreError>;

    /// Creates, in one transaction, the customer of each line whose hash the
    /// account has not imported before (nor earlier in `lines`), recording the
    /// hash in `import_records` in the same transaction. Answers, line by
    /// line, whether it created the customer (`false`: a duplicate). Records no
    /// event (API.md §7, §8).
    async fn import_customers(&self, account_id: &AccountId, lines: Vec<ImportLine>) -> Result<Vec<bool>, StoreError>;

    /// Hash by hash, whether the account already imported a line with this hash
    /// (what `customers import --dry-run` reads; it writes nothing).
    async fn imported_lines(&self, account_id: &AccountId, line_hashes: Vec<[u8; 32]>)
    -> Result<Vec<bool>, StoreError>;

    /// Leases at most `limit` deliveries that are due now (pending,
    /// `next_attempt_at` passed, not leased or their lease ended), by
    /// ascending id, skipping those of `skip_endpoints`, for `lease_ms`
    /// milliseconds, with their endpoint's URL and secret and their event,
    /// under a new lease id. No other caller, of this or another instance,
    /// leases them before the lease ends (PostgreSQL: `FOR UPDATE SKIP
    /// LOCKED`), API.md §8. "Now" is the store's clock: the database's on
    /// PostgreSQL (instances' clocks need not agree), this instance's on SQLite.
    async fn lease_deliveries(
        &self,
        lease_ms: i64,
        limit: u32,
        skip_endpoints: Vec<WebhookEndpointId>,
    ) -> Result<Vec<LeasedDelivery>, StoreError>;

    /// Records leased deliveries' outcomes, ending their leases, and in the
    /// same transaction each endpoint's latest recorded attempt as its
    /// `last_delivery_at` and `last_delivery_status` (never moved back in time).
    /// Only outcomes whose lease ([`AttemptRecord::lease_id`]) is still the
    /// row's are recorded: not one whose lease ran out and was taken by
    /// another worker, nor one recorded already. A delivery deleted meanwhile
    /// (with its endpoint or event) is skipped. A retry's next attempt is due
    /// [`AttemptOutcome::retry_in_ms`] after the attempt, counted on the
    /// store's clock (as for leases).
    async fn record_deliveries(&self, records: Vec<AttemptRecord>) -> Result<(), StoreError>;

    /// Signalled after this store commits a customer write, which may have
    /// queued deliveries: the delivery worker wakes on it.
    fn deliveries_queued(&self) -> &tokio::sync::Notify;
}

/// Opens the store a URL names, `sqlite://PATH` or `postgres://...`, running
/// migrations, with the time limits of the default request timeout.
pub async fn open(url: &str) -> Result<SharedStore, OpenError> {
    open_with(url, Budget::default()).await
}

/// [`open`], with the database time limits of `budget` (see [`crate::deadline`]).
pub async fn open_with(url: &str, budget: Budget) -> Result<SharedStore, OpenError> {
    open_with_options(url, OpenOptions { budget, ..OpenOptions::default() }).await
}

/// How [`open_with_options`] opens a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// The database time limits (see [`crate::deadline`]).
    pub budget: Budget,
    /// SQLite only: whether each commit is flushed to disk (API.md §7,
    /// `serve --sqlite-synchronous`); FULL by default.
    pub sqlite_synchronous: sqlite::Synchronous,
}

/// [`open`], with the time limits and SQLite durability of `options`.
pub async fn open_with_options(url: &str, options: OpenOptions) -> Result<SharedStore, OpenError> {
    let budget = options.budget;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = sqlite::SqliteStore::open_with_synchronous(path, budget, options.sqlite_synchronous).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PostgresStore::open_with(url, budget).await?;
        return Ok(Arc::new(store));
    }
    Err(OpenError::Unsupported(format!(
        "unsupported database URL '{}': expected sqlite://PATH or postgres://USER@HOST:PORT/DATABASE",
        redact_url(url)
    )))
}

/// [`open`] for the admin commands, which never create a database (API.md
/// §7): a SQLite file that does not exist is an error, and nothing is created.
pub async fn open_existing(url: &str) -> Result<SharedStore, OpenError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(sqlite::SqliteStore::open_existing(path).await?));
    }
    open(url).await
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot open the database: {0}")]
    Open(String),
}

/// A URL with any password replaced, for messages: [`crate::secrets::redact`]
/// (every form the drivers accept), under the name older callers use.
pub fn redact_url(url: &str) -> String {
    crate::secrets::redact(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db?password=secret"), "postgres://u@h/db?password=***");
        assert_eq!(redact_url("host=h password=secret"), "host=h password=***");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn pages_from_one_row_too_many() {
        assert_eq!(Page::from_overfetched(vec![1, 2, 3], 2), Page { items: vec![1, 2], has_more: true });
        assert_eq!(Page::from_overfetched(vec![1, 2], 2), Page { items: vec![1, 2], has_more: false });
        assert_eq!(Page::from_overfetched(Vec::<u8>::new(), 2), Page { items: vec![], has_more: false });
        assert_eq!(overfetch(u32::MAX), i64::from(u32::MAX) + 1, "no overflow");
    }

    #[test]
    fn preconditions() {
        use Versions::{Any, Listed};
        let both = |m, n| Precondition { if_match: Some(m), if_none_match: Some(n) };
        let none_match = |n| Precondition { if_match: None, if_none_match: Some(n) };
        assert_eq!(Precondition::NONE.evaluate(Some(3)), Ok(()));
        assert_eq!(Precondition::NONE.evaluate(None), Err(Refusal::Missing));
        assert_eq!(Precondition::if_match(Any).evaluate(Some(3)), Ok(()));
        assert_eq!(Precondition::if_match(Any).evaluate(None), Err(Refusal::IfMatch));
        assert_eq!(Precondition::if_match(Listed(vec![2, 3])).evaluate(Some(3)), Ok(()));
        assert_eq!(Precondition::if_match(Listed(vec![])).evaluate(Some(3)), Err(Refusal::IfMatch));
        assert_eq!(none_match(Any).evaluate(Some(3)), Err(Refusal::IfNoneMatch));
        assert_eq!(none_match(Any).evaluate(None), Err(Refusal::Missing));
        assert_eq!(none_match(Listed(vec![3])).evaluate(Some(3)), Err(Refusal::IfNoneMatch));
        assert_eq!(none_match(Listed(vec![2])).evaluate(Some(3)), Ok(()));
        // If-Match first: a failing If-Match wins over a matching If-None-Match.
        assert_eq!(both(Listed(vec![1]), Any).evaluate(Some(3)), Err(Refusal::IfMatch));
        assert_eq!(both(Listed(vec![3]), Listed(vec![3])).evaluate(Some(3)), Err(Refusal::IfNoneMatch));
    }
}
