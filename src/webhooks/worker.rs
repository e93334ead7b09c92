//! The delivery worker (API.md §8): one per server, beside the HTTP server.
//!
//! It leases due deliveries from the store ([`crate::storage::Store::lease_deliveries`],
//! by ascending id, so usually in event order), groups them by endpoint and
//! sends each endpoint's in order, one at a time, while at most [`CONCURRENCY`]
//! endpoints are sent to at once: a receiver that hangs holds one slot for
//! 10 s per attempt, and slows neither the API (the worker is a task of its
//! own with its own HTTP client) nor the other endpoints.
//!
//! A lease lasts [`LEASE`], far longer than an attempt, and no attempt starts
//! later than [`SEND_WINDOW`] into it, so no other worker takes a delivery
//! while it is being sent; should a send outlast its lease all the same, its
//! outcome is not recorded over the next lease's (leases have ids, see
//! [`crate::storage::Store::record_deliveries`]). The outcome is recorded after
//! the send: a crash in between repeats the delivery when the lease has ended,
//! never loses it.
//!
//! The worker wakes when this instance commits a customer write (the store's
//! [`crate::storage::Store::deliveries_queued`]), when an endpoint's batch is
//! done, and every [`POLL_INTERVAL`] for what other instances queued and for
//! retries that fell due. On shutdown it stops leasing and gives the attempts
//! in flight until the shutdown deadline; those cut then are retried once
//! their lease ends.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::WebhookSettings;
use super::client::{Answer, Attempt, WebhookClient};
use super::schedule::retry_delay;
use crate::domain::time::now_unix_ms;
use crate::domain::{Event, WebhookEndpointId};
use crate::metrics::{DeliveryOutcome, WebhookCounters};
use crate::storage::{AttemptOutcome, AttemptRecord, Attempted, LeasedDelivery, SharedStore};

/// Renders an event as it is POSTed: the same JSON as `GET /v2/events/{id}`
/// (the server passes `http::v2::events::render_event`).
pub type RenderEvent = Arc<dyn Fn(&Event) -> Vec<u8> + Send + Sync>;

/// Endpoints sent to at once (one attempt in flight each).
pub const CONCURRENCY: usize = 32;
/// How long a leased delivery is kept from other workers.
pub const LEASE: Duration = Duration::from_secs(60);
/// No attempt starts later than this into its lease: with the 10 s attempt
/// timeout and time to record, it ends well before the lease does.
pub const SEND_WINDOW: Duration = Duration::from_secs(45);
/// Deliveries leased at once.
pub const LEASE_BATCH: u32 = 256;
/// How often the worker looks for deliveries nobody told it about.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The least time between two leases that found nothing: under a stream of
/// writes the wake-ups come faster than deliveries are due.
const IDLE_LEASE_SPACING: Duration = Duration::from_millis(20);
/// How often recording an outcome is tried before the lease is left to expire.
const RECORD_TRIES: u32 = 3;

/// Starts the worker for `store`; it stops leasing when `shutdown` turns
/// true, and returns once its attempts in flight are done or `drain` has
/// passed since (those are cut, and retried after their lease).
pub fn spawn(
    store: SharedStore,
    render: RenderEvent,
    settings: &WebhookSettings,
    counters: WebhookCounters,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) -> JoinHandle<()> {
    let worker = Arc::new(Worker {
        client: OnceLock::new(),
        allow_insecure: settings.allow_insecure,
        retry_scale: settings.retry_scale,
        sending: Semaphore::new(CONCURRENCY),
        store,
        render,
        counters,
    });
    tokio::spawn(worker.run(shutdown, drain))
}

struct Worker {
    store: SharedStore,
    render: RenderEvent,
    /// Built at the first attempt: loading the TLS roots takes a moment a
    /// server that never delivers (most tests) should not spend at start.
    client: OnceLock<Result<WebhookClient, String>>,
    allow_insecure: bool,
    retry_scale: f64,
    counters: WebhookCounters,
    /// One permit per endpoint being sent to.
    sending: Semaphore,
}

impl Worker {
    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, drain: Duration) {
        let mut batches: JoinSet<()> = JoinSet::new();
        // The endpoints with a batch in this worker: not leased again until it is recorded.
        let mut busy: HashMap<tokio::task::Id, WebhookEndpointId> = HashMap::new();
        let mut failing = false;
        let mut last_empty: Option<Instant> = None;
        // The first lease waits a poll interval, or a write: a server leaves its
        // first moments to whatever starts with it.
        let first_poll = Instant::now() + POLL_INTERVAL;
        let mut woken = false;
        while !*shutdown.borrow() {
            let mut full = false;
            // After a lease that found nothing, the next waits out the spacing (and no longer);
            // writes meanwhile do not wake the worker (their notice is kept for after it).
            let idle = last_empty.map_or(Duration::ZERO, |at| IDLE_LEASE_SPACING.saturating_sub(at.elapsed()));
            let spacing = if woken { idle } else { idle.max(first_poll.saturating_duration_since(Instant::now())) };
            if batches.len() < CONCURRENCY && spacing.is_zero() {
                let skip: Vec<WebhookEndpointId> = busy.values().cloned().collect();
                match self.store.lease_deliveries(millis(LEASE), LEASE_BATCH, skip).await {
                    Ok(leased) => {
                        if std::mem::take(&mut failing) {
                            tracing::info!("webhook deliveries can be leased again");
                        }
                        full = leased.len() >= LEASE_BATCH as usize;
                        last_empty = leased.is_empty().then(Instant::now);
                        let leased_at = Instant::now();
                        for (endpoint_id, batch) in by_endpoint(leased) {
                            let handle = batches.spawn(self.clone().deliver(batch, leased_at));
                            busy.insert(handle.id(), endpoint_id);
                        }
                    }
                    Err(error) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(%error, "cannot lease webhook deliveries; trying again");
                        }
                    }
                }
            }
            if !(full && batches.len() < CONCURRENCY) {
                tokio::select! {
                    // Also when the sender is gone: the server stopped without a drain.
                    changed = shutdown.changed() => if changed.is_err() { break },
                    _ = self.store.deliveries_queued().notified(), if idle.is_zero() => woken = true,
                    _ = tokio::time::sleep(if spacing.is_zero() { POLL_INTERVAL } else { spacing }) => {}
                    Some(done) = batches.join_next_with_id() => forget(&mut busy, done),
                }
            }
            while let Some(done) = batches.try_join_next_with_id() {
                forget(&mut busy, done);
            }
        }
        let drained = tokio::time::timeout(drain, async { while batches.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(cut = batches.len(), "webhook attempts cut at shutdown; they are retried after their lease");
            batches.abort_all();
        }
    }

    /// Sends one endpoint's leased deliveries in order, then records their outcomes together.
    async fn deliver(self: Arc<Self>, batch: Vec<LeasedDelivery>, leased_at: Instant) {
        let mut records = Vec::with_capacity(batch.len());
        {
            let _turn = self.sending.acquire().await;
            // Once an attempt fails, the endpoint's other deliveries are released
            // untried: a receiver that hangs costs its slot one timeout, not one a delivery.
            let mut failing = false;
            for delivery in batch {
                let outcome = if failing || leased_at.elapsed() >= SEND_WINDOW {
                    AttemptOutcome::Released
                } else {
                    self.attempt(&delivery).await
                };
                failing |= !matches!(outcome, AttemptOutcome::Delivered(_) | AttemptOutcome::Released);
                records.push(AttemptRecord {
                    delivery_id: delivery.id,
                    lease_id: delivery.lease_id,
                    endpoint_id: delivery.endpoint_id,
                    outcome,
                });
            }
        }
        for tried in 1..=RECORD_TRIES {
            match self.store.record_deliveries(records.clone()).await {
                Ok(()) => return,
                Err(error) if tried == RECORD_TRIES => {
                    tracing::warn!(%error, "cannot record webhook attempts; they are made again after their lease");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500) * tried).await,
            }
        }
    }

    fn client(&self) -> &Result<WebhookClient, String> {
        self.client.get_or_init(|| {
            WebhookClient::new(self.allow_insecure).map_err(|error| {
                tracing::error!(%error, "cannot build the webhook client");
                format!("cannot build the webhook client: {error}")
            })
        })
    }

    /// Makes one attempt and judges it: delivered, retried later, or given up.
    async fn attempt(&self, delivery: &LeasedDelivery) -> AttemptOutcome {
        let event_id = delivery.event.id.as_str();
        let answer = match delivery.secret.key() {
            Some(key) => {
                let body = (self.render)(&delivery.event);
                let timestamp = now_unix_ms().div_euclid(1000);
                let attempt = Attempt { url: &delivery.url, message_id: event_id, key: &key, timestamp, body };
                match self.client() {
                    Ok(client) => client.send(attempt).await,
                    Err(error) => Answer::NoResponse(error.clone()),
                }
            }
            None => Answer::NoResponse("the endpoint's signing secret cannot be read".into()),
        };
        let attempted = Attempted { at_ms: now_unix_ms(), status: answer.status_code() };
        let endpoint_id = delivery.endpoint_id.as_str();
        if answer.delivered() {
            self.counters.count(DeliveryOutcome::Delivered);
            tracing::debug!(endpoint_id, event_id, status = attempted.status, "webhook delivered");
            return AttemptOutcome::Delivered(attempted);
        }
        let attempts = delivery.attempts.saturating_add(1);
        let reason = match &answer {
            Answer::Status(status) => format!("answered {status}"),
            Answer::NoResponse(reason) => reason.clone(),
        };
        match retry_delay(attempts, self.retry_scale, rand::random::<f64>()) {
            Some(wait) => {
                self.counters.count(DeliveryOutcome::FailedAttempt);
                tracing::info!(endpoint_id, event_id, attempts, %reason, retry_in_ms = millis(wait), "webhook attempt failed");
                AttemptOutcome::Retry(attempted, attempted.at_ms.saturating_add(millis(wait)))
            }
            None => {
                self.counters.count(DeliveryOutcome::GivenUp);
                tracing::warn!(endpoint_id, event_id, attempts, %reason, "webhook given up after its last attempt");
                AttemptOutcome::GivenUp(attempted)
            }
        }
    }
}

/// The deliveries of each endpoint, in the order leased (ascending id), endpoints by their first delivery.
fn by_endpoint(leased: Vec<LeasedDelivery>) -> Vec<(WebhookEndpointId, Vec<LeasedDelivery>)> {
    let mut groups: Vec<(WebhookEndpointId, Vec<LeasedDelivery>)> = Vec::new();
    let mut index: HashMap<WebhookEndpointId, usize> = HashMap::new();
    for delivery in leased {
        let slot = *index.entry(delivery.endpoint_id.clone()).or_insert_with(|| {
            groups.push((delivery.endpoint_id.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(delivery);
    }
    groups
}

/// Forgets a finished batch's endpoint, so it is leased again.
fn forget(
    busy: &mut HashMap<tokio::task::Id, WebhookEndpointId>,
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) {
    let id = match done {
        Ok((id, ())) => id,
        Err(error) => {
            if error.is_panic() {
                tracing::error!("a webhook batch panicked; its deliveries are retried after their lease");
            }
            error.id()
        }
    };
    busy.remove(&id);
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
