//! Counters in Redis, shared by every instance: the requests of a moment
//! counted together, in one pipeline on one multiplexed connection.
//!
//! Each window of each key is one Redis key. Requests to count are queued to
//! one task ([`batch`]), which sends everything queued as one pipeline with
//! one `INCRBY key k` for the `k` requests of each key, then hands each of
//! those requests its own count of the range `INCRBY` answered. `INCRBY` is
//! atomic, so every request of every instance gets a distinct count and the
//! limit is exact (API.md §5), while Redis and this process see one command
//! per key and batch instead of one per request. A key first counted by a
//! batch (its range starts at 1) is then given its expiry, a second past the
//! window's end (`PEXPIRE`, sent once per key and window beside the next
//! batch, not before it). A process that dies between the two leaves one key
//! without expiry; it is never counted again, since the next window has a key
//! of its own.
//!
//! A key counted fast is counted mostly here: its batches also reserve a
//! block of counts, given to its next requests with no round trip ([`reserve`],
//! which states the rule and what it costs other instances).
//!
//! A Redis that fails, or leaves a request without its count for [`TIMEOUT`]
//! since it was queued, marks the limiter degraded: requests are then counted
//! locally (the caller falls back to its memory limiter) and a background
//! probe switches back once Redis answers.

mod batch;
mod reserve;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Client;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use self::batch::Increment;
use self::reserve::Reservations;
use super::{Decision, RateLimit, WindowPosition, now_ms};

/// The most a request waits for Redis, queueing included, before it is counted locally.
pub const TIMEOUT: Duration = Duration::from_millis(50);
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// A handle on the shared counters; clones share one connection and one batching task.
#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// To the batching task, which ends when the last handle is dropped.
    increments: mpsc::UnboundedSender<Increment>,
}

/// What the handles and the batching task both use.
struct Shared {
    connection: ConnectionManager,
    degraded: AtomicBool,
    /// Counts reserved in Redis and not given yet, per key.
    reservations: Reservations,
}

impl RedisLimiter {
    /// Connects lazily: a Redis that is down at start leaves the server up, degraded.
    /// Must be called within a Tokio runtime (it starts the batching task there).
    ///
    /// # Errors
    ///
    /// The URL is not a Redis URL.
    pub fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let client = Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        let shared =
            Arc::new(Shared { connection, degraded: AtomicBool::new(false), reservations: Reservations::default() });
        let (increments, queue) = mpsc::unbounded_channel();
        tokio::spawn(batch::run(shared.clone(), queue));
        Ok(Self { inner: Arc::new(Inner { shared, increments }) })
    }

    /// Counts one request in Redis; `None` when Redis is degraded or just failed.
    pub async fn check(&self, key: &str, limit: RateLimit) -> Option<Decision> {
        let position = limit.position(now_ms());
        self.count(key, limit, position).await.map(|count| limit.decide(count, position))
    }

    /// Counts one request of `key` in the window at `position` and returns the
    /// count, this request included; `None` when Redis is degraded or did not
    /// give the count within [`TIMEOUT`].
    pub async fn count(&self, key: &str, limit: RateLimit, position: WindowPosition) -> Option<u64> {
        if self.is_degraded() {
            return None;
        }
        let reservations = &self.inner.shared.reservations;
        if let Some(count) = reservations.take(key, limit.window_secs, position.index) {
            return Some(count);
        }
        let (reply, count) = oneshot::channel();
        let increment = Increment {
            key: key.into(),
            window_secs: limit.window_secs,
            window_index: position.index,
            limit: limit.limit,
            expiry_ms: position.window_ms + 1000,
            queued_at: Instant::now(),
            reply,
        };
        if self.inner.increments.send(increment).is_err() {
            self.inner.shared.degrade("the batching task has stopped");
            return None;
        }
        // The task answers every request it takes, in time or with `None`.
        count.await.ok().flatten()
    }

    /// The count of `key` in the window at `position`, counting nothing (less
    /// the counts this instance has reserved and not given); `None` when Redis
    /// is degraded or just failed.
    pub async fn peek(&self, key: &str, limit: RateLimit, position: WindowPosition) -> Option<u64> {
        if self.is_degraded() {
            return None;
        }
        let mut connection = self.inner.shared.connection.clone();
        let mut command = redis::cmd("GET");
        command.arg(window_key(key, limit.window_secs, position.index));
        let call = tokio::time::timeout(TIMEOUT, command.query_async::<Option<u64>>(&mut connection));
        let count = self.inner.shared.answer(call.await)?;
        let unused = self.inner.shared.reservations.unused(key, limit.window_secs, position.index);
        Some(count.unwrap_or_default().saturating_sub(unused))
    }

    /// How many requests `key` has used in its current window, without counting one;
    /// `None` when Redis is degraded or just failed (the caller then asks its memory).
    pub async fn used(&self, key: &str, limit: RateLimit) -> Option<u64> {
        self.peek(key, limit, limit.position(now_ms())).await
    }

    pub fn is_degraded(&self) -> bool {
        self.inner.shared.is_degraded()
    }

    /// Forgets the reserved counts of windows that have ended at `now_ms`.
    pub fn prune(&self, now_ms: u64) {
        self.inner.shared.reservations.prune(now_ms);
    }

    /// Answers PING within the timeout.
    pub async fn ping(&self) -> bool {
        self.inner.shared.ping().await
    }

    /// Pings Redis unless already degraded; a failure degrades the limiter
    /// (and starts the probe that ends the outage).
    pub async fn check_health(&self) {
        if !self.is_degraded() && !self.ping().await {
            self.inner.shared.degrade("no answer to PING");
        }
    }
}

impl Shared {
    fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Redis's answer, if it came in time; otherwise `None`, and the limiter degraded.
    fn answer<T>(self: &Arc<Self>, call: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>) -> Option<T> {
        match call {
            Ok(Ok(answer)) => Some(answer),
            Ok(Err(error)) => {
                self.degrade(&crate::secrets::redact(&error.to_string()));
                None
            }
            Err(_) => {
                self.degrade("no answer within 50 ms");
                None
            }
        }
    }

    async fn ping(&self) -> bool {
        let mut connection = self.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        matches!(tokio::time::timeout(TIMEOUT * 4, ping).await, Ok(Ok(_)))
    }

    /// Logs once per outage and starts the probe that ends it.
    fn degrade(self: &Arc<Self>, reason: &str) {
        if self.degraded.swap(true, Ordering::AcqRel) {
            return;
        }
        self.reservations.clear();
        tracing::warn!(reason, "Redis is not answering: rate limits are counted locally until it does");
        let shared = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                if shared.ping().await {
                    shared.reservations.clear();
                    shared.degraded.store(false, Ordering::Release);
                    tracing::info!("Redis answers again: rate limits are shared again");
                    return;
                }
            }
        });
    }
}

/// The Redis key of one window (the `window_index`th since the Unix epoch) of one limit of `key`.
fn window_key(key: &str, window_secs: u32, window_index: u64) -> String {
    format!("clientele:rl:{key}:{window_secs}:{window_index}")
}
