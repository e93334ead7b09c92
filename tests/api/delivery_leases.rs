//! The store's side of webhook delivery (API.md §8), without a worker, on the
//! backend of the run: leases exclude each other until they end (judged by
//! the store's clock, so these tests wait for short leases to run out rather
//! than pass a later time), skip the endpoints asked, and outcomes end them;
//! an outcome is recorded only under the lease it was made under.

use std::time::Duration;

use clientele::admin;
use clientele::domain::time::now_unix_ms;
use clientele::domain::{
    AccountId, Customer, CustomerFields, CustomerName, Email, EventType, WebhookEndpoint, WebhookSecret, ids,
};
use clientele::storage::{AttemptOutcome, AttemptRecord, Attempted, LeasedDelivery, SharedStore};
use tempfile::TempDir;

use crate::support::database::{TestDatabase, open_store_at, open_test_store, url_of};

/// A lease short enough to wait out, long enough for the checks made under it
/// on a busy machine.
const SHORT_LEASE_MS: i64 = 1_500;
/// A lease no test waits out.
const LONG_LEASE_MS: i64 = 60_000;

/// A store with an account and an endpoint per URL (subscribed to
/// `customer.created`), and one customer created: one delivery per endpoint.
async fn store_with_deliveries(
    dir: &TempDir,
    urls: &[&str],
) -> (SharedStore, AccountId, Vec<WebhookEndpoint>, Customer) {
    let store = open_test_store(TestDatabase::create(dir.path(), "test.db").await).await;
    let account = admin::create_account(&store, "acme").await.unwrap();
    let mut endpoints = Vec::new();
    for url in urls {
        let endpoint = WebhookEndpoint {
            id: ids::webhook_endpoint_id(),
            account_id: account.id.clone(),
            url: (*url).to_owned(),
            event_types: vec![EventType::CustomerCreated],
            description: None,
            created_at_ms: now_unix_ms(),
            last_delivery_at_ms: None,
            last_delivery_status: None,
        };
        store.create_webhook_endpoint(endpoint.clone(), WebhookSecret::generate(), 16).await.unwrap();
        endpoints.push(endpoint);
    }
    let fields = CustomerFields {
        name: CustomerName::parse("Ada").unwrap(),
        email: Email::parse("ada@example.com").unwrap(),
        phone: None,
        extended: None,
    };
    let customer = Customer::create(ids::customer_id(), fields, now_unix_ms() / 1000);
    store.insert_customer(&account.id, customer.clone(), None).await.unwrap();
    (store, account.id, endpoints, customer)
}

async fn lease(
    store: &SharedStore,
    lease_ms: i64,
    skip: Vec<clientele::domain::WebhookEndpointId>,
) -> Vec<LeasedDelivery> {
    store.lease_deliveries(lease_ms, 10, skip).await.unwrap()
}

fn record(delivery: &LeasedDelivery, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        delivery_id: delivery.id,
        lease_id: delivery.lease_id,
        endpoint_id: delivery.endpoint_id.clone(),
        outcome,
    }
}

/// Waits until a lease of `lease_ms` taken before this call has run out.
async fn outlive(lease_ms: i64) {
    tokio::time::sleep(Duration::from_millis(lease_ms as u64 + 200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_delivery_is_leased_by_no_one_else_until_its_lease_ends_or_its_outcome_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account, endpoints, customer) =
        store_with_deliveries(&dir, &["https://a.example.com/", "https://b.example.com/"]).await;
    let (first, second) = (&endpoints[0], &endpoints[1]);

    let leased = lease(&store, SHORT_LEASE_MS, vec![second.id.clone()]).await;
    assert_eq!(leased.len(), 1, "the skipped endpoint's delivery stays");
    assert_eq!(leased[0].endpoint_id, first.id);
    assert_eq!(leased[0].event.customer, customer, "the event comes with the lease");
    assert_eq!(leased[0].attempts, 0);
    assert_eq!(leased[0].url, "https://a.example.com/");
    let others = lease(&store, SHORT_LEASE_MS, vec![]).await;
    assert_eq!(others.len(), 1, "a leased delivery is not leased again");
    assert_eq!(others[0].endpoint_id, second.id);
    assert_ne!(others[0].lease_id, leased[0].lease_id, "each lease has its own identity");
    assert!(lease(&store, SHORT_LEASE_MS, vec![]).await.is_empty(), "nor before its lease ends");
    outlive(SHORT_LEASE_MS).await;
    let again = lease(&store, LONG_LEASE_MS, vec![]).await;
    assert_eq!(again.len(), 2, "an ended lease (a crashed worker) makes it due again");

    let at = now_unix_ms();
    let attempted = Attempted { at_ms: at, status: 503 };
    store
        .record_deliveries(vec![
            record(&again[0], AttemptOutcome::Retry(attempted, at + SHORT_LEASE_MS)),
            record(&again[1], AttemptOutcome::Delivered(Attempted { status: 204, ..attempted })),
        ])
        .await
        .unwrap();
    assert!(
        lease(&store, LONG_LEASE_MS, vec![]).await.is_empty(),
        "the retry is not due yet; the delivered one is done"
    );
    outlive(SHORT_LEASE_MS).await;
    let retried = lease(&store, LONG_LEASE_MS, vec![]).await;
    assert_eq!(retried.len(), 1);
    assert_eq!((retried[0].id, retried[0].attempts), (again[0].id, 1), "one attempt counted");
    store.record_deliveries(vec![record(&retried[0], AttemptOutcome::Released)]).await.unwrap();
    let released = lease(&store, LONG_LEASE_MS, vec![]).await;
    assert_eq!(released.len(), 1, "a released delivery is due again at once");
    assert_eq!(released[0].attempts, 1, "releasing counts no attempt");

    let shown = store.get_webhook_endpoint(&account, &again[0].endpoint_id).await.unwrap().unwrap();
    assert_eq!((shown.last_delivery_at_ms, shown.last_delivery_status), (Some(at), Some(503)));
    let shown = store.get_webhook_endpoint(&account, &again[1].endpoint_id).await.unwrap().unwrap();
    assert_eq!((shown.last_delivery_at_ms, shown.last_delivery_status), (Some(at), Some(204)));
}

/// A worker whose lease ran out during a slow send records after another
/// instance leased the delivery again: its outcome must not overwrite the
/// later attempt's, nor end the other's lease. (SQLite has one instance; the
/// second "instance" is then the same store.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_recorded_after_its_lease_ran_out_and_was_taken_again_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (slow, account, endpoints, _) = store_with_deliveries(&dir, &["https://a.example.com/"]).await;
    let url = url_of(&slow).expect("a test store's URL");
    let other = if url.starts_with("sqlite://") { slow.clone() } else { open_store_at(&url).await };

    let first = lease(&slow, SHORT_LEASE_MS, vec![]).await;
    assert_eq!(first.len(), 1);
    outlive(SHORT_LEASE_MS).await;
    let second = lease(&other, LONG_LEASE_MS, vec![]).await;
    assert_eq!(second.len(), 1, "the ended lease is taken by another instance");
    assert_eq!(second[0].id, first[0].id);

    // The slow worker's outcome (sent last, so its time is the latest) comes in first.
    let earlier = Attempted { at_ms: now_unix_ms(), status: 503 };
    let late = Attempted { at_ms: earlier.at_ms + 1_000, status: 204 };
    slow.record_deliveries(vec![record(&first[0], AttemptOutcome::Delivered(late))]).await.unwrap();
    let shown = other.get_webhook_endpoint(&account, &endpoints[0].id).await.unwrap().unwrap();
    assert_eq!(shown.last_delivery_at_ms, None, "the outcome of a lost lease changes nothing");
    assert!(lease(&other, LONG_LEASE_MS, vec![]).await.is_empty(), "nor ends the other's lease");

    let retry_at = earlier.at_ms + SHORT_LEASE_MS;
    let applied = record(&second[0], AttemptOutcome::Retry(earlier, retry_at));
    other.record_deliveries(vec![applied.clone()]).await.unwrap();
    let shown = other.get_webhook_endpoint(&account, &endpoints[0].id).await.unwrap().unwrap();
    assert_eq!((shown.last_delivery_at_ms, shown.last_delivery_status), (Some(earlier.at_ms), Some(503)));
    // Recording it again (a retry of a record whose answer was lost) is not counted twice.
    other.record_deliveries(vec![applied]).await.unwrap();
    outlive(SHORT_LEASE_MS).await;
    let due = lease(&other, LONG_LEASE_MS, vec![]).await;
    assert_eq!(due.len(), 1, "the applied retry, due again: the lost lease did not mark it delivered");
    assert_eq!(due[0].attempts, 1, "one attempt counted: the lease's own");
}
