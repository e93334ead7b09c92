//! A customer id in a URL is parsed once, at the edge: one that cannot be an
//! id (anything but `cus_` + 26 of `0-9A-Z`) answers as an unknown one does
//! (the same `404 resource_not_found`, after the same body and header checks),
//! and the store is never asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use clientele::config::ServerConfig;
use clientele::domain::token::TokenHash;
use clientele::domain::{
    Account, AccountId, AuditEntry, Customer, CustomerFields, CustomerId, Event, EventId, TokenId, TokenRecord,
    WebhookEndpoint, WebhookEndpointId, WebhookSecret,
};
use clientele::ratelimit::RateLimiter;
use clientele::storage::{
    AttemptRecord, CursorQuery, EventQuery, IdempotencyRecord, ImportLine, LeasedDelivery, Page, Precondition,
    Rotation, SharedStore, Store, StoreError, TokenChange,
};
use clientele::usage::UsageRow;
use reqwest::Method;
use serde_json::json;

use crate::support::database::{TestDatabase, open_test_store};
use crate::support::{TestApp, assert_error};

/// The test's store, counting the lookups of one customer by id.
struct CountingStore {
    inner: SharedStore,
    customer_lookups: Arc<AtomicUsize>,
}

impl CountingStore {
    fn looked_up(&self) {
        self.customer_lookups.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn create_account(&self, account: Account, audit: AuditEntry) -> Result<(), StoreError> {
        self.inner.create_account(account, audit).await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.inner.list_accounts().await
    }

    async fn find_account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.inner.find_account(name).await
    }

    async fn create_token(&self, token: TokenRecord, audit: AuditEntry) -> Result<(), StoreError> {
        self.inner.create_token(token, audit).await
    }

    async fn list_tokens(&self, account_id: Option<&AccountId>) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.list_tokens(account_id).await
    }

    async fn find_token(&self, hash: TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.find_token(hash).await
    }

    async fn revoke_token(&self, token_id: &TokenId, audit: AuditEntry) -> Result<TokenChange, StoreError> {
        self.inner.revoke_token(token_id, audit).await
    }

    async fn rotate_token(&self, rotation: Rotation, audit: AuditEntry) -> Result<TokenChange, StoreError> {
        self.inner.rotate_token(rotation, audit).await
    }

    async fn list_audit(&self, since: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.list_audit(since).await
    }

    async fn add_usage(&self, rows: Vec<UsageRow>) -> Result<(), StoreError> {
        self.inner.add_usage(rows).await
    }

    async fn list_usage(
        &self,
        account_id: Option<&AccountId>,
        token_id: Option<&TokenId>,
        since_day: i64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        self.inner.list_usage(account_id, token_id, since_day).await
    }

    async fn touch_token(&self, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
        self.inner.touch_token(token_id, at).await
    }

    async fn insert_customer(
        &self,
        account_id: &AccountId,
        customer: Customer,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        self.inner.insert_customer(account_id, customer, idempotency).await
    }

    async fn get_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
    ) -> Result<Option<Customer>, StoreError> {
        self.looked_up();
        self.inner.get_customer(account_id, customer_id).await
    }

    async fn replace_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        fields: CustomerFields,
        precondition: Precondition,
        now: i64,
    ) -> Result<Customer, StoreError> {
        self.looked_up();
        self.inner.replace_customer(account_id, customer_id, fields, precondition, now).await
    }

    async fn delete_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        precondition: Precondition,
    ) -> Result<(), StoreError> {
        self.looked_up();
        self.inner.delete_customer(account_id, customer_id, precondition).await
    }

    async fn list_customers_by_offset(
        &self,
        account_id: &AccountId,
        limit: u32,
        offset: u64,
    ) -> Result<(Page<Customer>, u64), StoreError> {
        self.inner.list_customers_by_offset(account_id, limit, offset).await
    }

    async fn list_customers_after(
        &self,
        account_id: &AccountId,
        query: CursorQuery,
    ) -> Result<Page<Customer>, StoreError> {
        self.inner.list_customers_after(account_id, query).await
    }

    async fn find_idempotency(
        &self,
        account_id: &AccountId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.find_idempotency(account_id, key).await
    }

    async fn purge_idempotency(&self, before: i64) -> Result<u64, StoreError> {
        self.inner.purge_idempotency(before).await
    }

    async fn import_customers(&self, account_id: &AccountId, lines: Vec<ImportLine>) -> Result<Vec<bool>, StoreError> {
        self.inner.import_customers(account_id, lines).await
    }

    async fn imported_lines(&self, account_id: &AccountId, hashes: Vec<[u8; 32]>) -> Result<Vec<bool>, StoreError> {
        self.inner.imported_lines(account_id, hashes).await
    }

    async fn list_events(&self, account_id: &AccountId, query: EventQuery) -> Result<Page<Event>, StoreError> {
        self.inner.list_events(account_id, query).await
    }

    async fn get_event(&self, account_id: &AccountId, event_id: &EventId) -> Result<Option<Event>, StoreError> {
        self.inner.get_event(account_id, event_id).await
    }

    async fn prune_events(&self, before_ms: i64, max_rows: u32) -> Result<u64, StoreError> {
        self.inner.prune_events(before_ms, max_rows).await
    }

    async fn create_webhook_endpoint(
        &self,
        endpoint: WebhookEndpoint,
        secret: WebhookSecret,
        max_per_account: u32,
    ) -> Result<(), StoreError> {
        self.inner.create_webhook_endpoint(endpoint, secret, max_per_account).await
    }

    async fn list_webhook_endpoints(&self, account_id: &AccountId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.inner.list_webhook_endpoints(account_id).await
    }

    async fn get_webhook_endpoint(
        &self,
        account_id: &AccountId,
        endpoint_id: &WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.inner.get_webhook_endpoint(account_id, endpoint_id).await
    }

    async fn delete_webhook_endpoint(
        &self,
        account_id: &AccountId,
        endpoint_id: &WebhookEndpointId,
    ) -> Result<(), StoreError> {
        self.inner.delete_webhook_endpoint(account_id, endpoint_id).await
    }

    async fn lease_deliveries(
        &self,
        lease_ms: i64,
        limit: u32,
        skip_endpoints: Vec<WebhookEndpointId>,
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        self.inner.lease_deliveries(lease_ms, limit, skip_endpoints).await
    }

    async fn record_deliveries(&self, records: Vec<AttemptRecord>) -> Result<(), StoreError> {
        self.inner.record_deliveries(records).await
    }

    fn deliveries_queued(&self) -> &tokio::sync::Notify {
        self.inner.deliveries_queued()
    }
}

async fn counting_app() -> (TestApp, Arc<AtomicUsize>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let inner = open_test_store(TestDatabase::create(dir.path(), "test.db").await).await;
    let customer_lookups = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(CountingStore { inner, customer_lookups: customer_lookups.clone() });
    let app = TestApp::spawn_on(store, dir, ServerConfig::default(), RateLimiter::in_memory()).await;
    (app, customer_lookups)
}

#[tokio::test]
async fn malformed_customer_ids_are_404_without_asking_the_store() {
    let (app, lookups) = counting_app().await;
    let created = app.create_customer("Ada", "ada@example.com").await;
    let id = created["id"].as_str().expect("id");
    let ulid = &id["cus_".len()..];
    let malformed = [
        "cus_".to_owned(),
        "cus_missing".to_owned(),
        "whatever".to_owned(),
        id.to_lowercase(),
        format!("{id}0"),
        id[..id.len() - 1].to_owned(),
        format!("acct_{ulid}"),
        format!("{}%00", &id[..id.len() - 1]),
    ];
    for version in ["v1", "v2"] {
        for raw in &malformed {
            let path = format!("/{version}/customers/{raw}");
            let responses = [
                app.get(&path).await,
                app.put_json(&path, &json!({"name": "B", "email": "b@example.com"})).await,
                app.delete(&path).await,
            ];
            for response in responses {
                let error = assert_error(response, 404, "resource_not_found").await;
                assert_eq!(error["param"], "id", "{path}: {error}");
                let shown = if raw.ends_with("%00") { "(invalid id)".to_owned() } else { raw.clone() };
                assert_eq!(error["message"], format!("no such customer: {shown}"), "{path}: the body of today");
            }
        }
    }
    assert_eq!(lookups.load(Ordering::SeqCst), 0, "no malformed id reached the store");

    // The checks that come before the lookup answer first, as for an unknown id.
    let unknown = format!("cus_{}", "0".repeat(26));
    for raw in malformed.iter().chain([&unknown]) {
        for version in ["v1", "v2"] {
            let path = format!("/{version}/customers/{raw}");
            let invalid = app.put_json(&path, &json!({"name": "B", "email": "not an email"})).await;
            assert_eq!(assert_error(invalid, 400, "parameter_invalid").await["param"], "email", "{path}");
        }
        let path = format!("/v2/customers/{raw}");
        let bad_if_match = app.request(Method::DELETE, &path).header("if-match", "1").send().await.unwrap();
        assert_eq!(bad_if_match.status(), 400, "{path}");
    }
    assert_eq!(lookups.load(Ordering::SeqCst), 0, "nothing was looked up");

    // A well-formed id is looked up, whether it exists or not.
    let error = assert_error(app.get(&format!("/v2/customers/{unknown}")).await, 404, "resource_not_found").await;
    assert_eq!(error["message"], format!("no such customer: {unknown}"));
    assert_eq!(app.get(&format!("/v1/customers/{id}")).await.status(), 200);
    assert_eq!(lookups.load(Ordering::SeqCst), 2);
}
