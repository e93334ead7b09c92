//! Counters in Redis, shared by every instance: one `INCR` per request on
//! one multiplexed connection.
//!
//! Each window of each key is one Redis key. `INCR` is atomic, so every
//! instance's request gets a distinct count and the limit is exact. The
//! window's first request (count 1) also sets the key's expiry, a second past
//! the window's end (`PEXPIRE`, one more round trip once per key and window).
//! A process that dies between the two leaves one key without expiry; it is
//! never counted again, since the next window has a key of its own.
//!
//! A Redis that fails or takes longer than [`TIMEOUT`] marks the limiter
//! degraded: requests are then counted locally (the caller falls back to its
//! memory limiter) and a background probe switches back once Redis answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Client;
use redis::aio::ConnectionManager;

use super::{Decision, RateLimit, WindowPosition, now_ms};

pub const TIMEOUT: Duration = Duration::from_millis(50);
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    degraded: AtomicBool,
}

impl RedisLimiter {
    /// Connects lazily: a Redis that is down at start leaves the server up, degraded.
    pub fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let client = Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { inner: Arc::new(Inner { connection, degraded: AtomicBool::new(false) }) })
    }

    /// Counts one request in Redis; `None` when Redis is degraded or just failed.
    pub async fn check(&self, key: &str, limit: RateLimit) -> Option<Decision> {
        let position = limit.position(now_ms());
        self.count(key, limit, position).await.map(|count| limit.decide(count, position))
    }

    /// Counts one request of `key` in the window at `position` and returns the
    /// count, this request included; `None` when Redis is degraded or just failed.
    pub async fn count(&self, key: &str, limit: RateLimit, position: WindowPosition) -> Option<u64> {
        if self.is_degraded() {
            return None;
        }
        let redis_key = window_key(key, limit, position);
        let expiry_ms = position.window_ms + 1000;
        let mut connection = self.inner.connection.clone();
        self.answer(async {
            let count = redis::cmd("INCR").arg(&redis_key).query_async::<u64>(&mut connection).await?;
            if count == 1 {
                redis::cmd("PEXPIRE").arg(&redis_key).arg(expiry_ms).exec_async(&mut connection).await?;
            }
            Ok(count)
        })
        .await
    }

    /// The count of `key` in the window at `position`, counting nothing; `None`
    /// when Redis is degraded or just failed.
    pub async fn peek(&self, key: &str, limit: RateLimit, position: WindowPosition) -> Option<u64> {
        if self.is_degraded() {
            return None;
        }
        let mut connection = self.inner.connection.clone();
        let mut command = redis::cmd("GET");
        command.arg(window_key(key, limit, position));
        let count = self.answer(command.query_async::<Option<u64>>(&mut connection)).await?;
        Some(count.unwrap_or_default())
    }

    /// Redis's answer within [`TIMEOUT`]; otherwise `None`, and the limiter degraded.
    async fn answer<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(TIMEOUT, call).await {
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

    /// How many requests `key` has used in its current window, without counting one;
    /// `None` when Redis is degraded or just failed (the caller then asks its memory).
    pub async fn used(&self, key: &str, limit: RateLimit) -> Option<u64> {
        if self.is_degraded() {
            return None;
        }
        let position = limit.position(now_ms());
        let redis_key = format!("clientele:rl:{key}:{}:{}", limit.window_secs, position.index);
        let mut connection = self.inner.connection.clone();
        let mut command = redis::cmd("GET");
        command.arg(redis_key);
        let call = command.query_async::<Option<u64>>(&mut connection);
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok(count)) => Some(count.unwrap_or(0)),
            Ok(Err(error)) => {
                self.degrade(&error.to_string());
                None
            }
            Err(_) => {
                self.degrade("no answer within 50 ms");
                None
            }
        }
    }

    pub fn is_degraded(&self) -> bool {
        self.inner.degraded.load(Ordering::Relaxed)
    }

    /// Answers PING within the timeout.
    pub async fn ping(&self) -> bool {
        let mut connection = self.inner.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        matches!(tokio::time::timeout(TIMEOUT * 4, ping).await, Ok(Ok(_)))
    }

    /// Pings Redis unless already degraded; a failure degrades the limiter
    /// (and starts the probe that ends the outage).
    pub async fn check_health(&self) {
        if !self.is_degraded() && !self.ping().await {
            self.degrade("no answer to PING");
        }
    }

    /// Logs once per outage and starts the probe that ends it.
    fn degrade(&self, reason: &str) {
        if self.inner.degraded.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(reason, "Redis is not answering: rate limits are counted locally until it does");
        let limiter = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                if limiter.ping().await {
                    limiter.inner.degraded.store(false, Ordering::Release);
                    tracing::info!("Redis answers again: rate limits are shared again");
                    return;
                }
            }
        });
    }
}

/// The Redis key of one window of one limit of `key`.
fn window_key(key: &str, limit: RateLimit, position: WindowPosition) -> String {
    format!("clientele:rl:{key}:{}:{}", limit.window_secs, position.index)
}
