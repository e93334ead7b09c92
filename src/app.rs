//! The application: its state, shared by every request, and the background
//! upkeep it needs. No HTTP here: [`crate::http`] serves it, [`crate::server`]
//! runs both.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Authenticator, FailedAuthLimiter};
use crate::config::ServerConfig;
use crate::domain::time::{now_unix, now_unix_ms};
use crate::idempotency::{InFlight, RETENTION_SECS};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::storage::SharedStore;
use crate::usage::{FLUSH_INTERVAL, UsageCounter};

/// Everything a request may need; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: ServerConfig,
    pub store: SharedStore,
    pub authenticator: Authenticator,
    pub failed_auth: FailedAuthLimiter,
    pub limiter: RateLimiter,
    pub in_flight: InFlight,
    pub metrics: Metrics,
    /// Requests per token and day since the last flush ([`flush_usage`]).
    pub usage: UsageCounter,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: ServerConfig, store: SharedStore, limiter: RateLimiter) -> Self {
        Self::with_metrics(config, store, limiter, Metrics::new())
    }

    /// With a registry of its own choosing ([`Metrics::disabled`] to measure what metrics cost).
    pub fn with_metrics(config: ServerConfig, store: SharedStore, limiter: RateLimiter, metrics: Metrics) -> Self {
        Self(Arc::new(Inner {
            authenticator: Authenticator::new(store.clone()),
            failed_auth: FailedAuthLimiter::shared(config.auth_failure_limit, limiter.redis().cloned()),
            in_flight: InFlight::default(),
            usage: UsageCounter::default(),
            config,
            store,
            limiter,
            metrics,
        }))
    }
}

const PRUNE_INTERVAL: Duration = Duration::from_secs(30);
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// Latency samples wait in a buffer until folded into their histogram; at 100k
/// requests/s five seconds of them take about 4 MB.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The most events one prune deletes: one short write at a time (API.md §8).
const EVENT_PRUNE_CHUNK: u32 = 1000;

/// How often old events are pruned: a quarter of the retention, from 100 ms to a minute.
pub fn event_prune_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Deletes one chunk of [`EVENT_PRUNE_CHUNK`] events older than
/// `--event-retention`, with their deliveries; returns how many went. A full
/// chunk means more may be due: [`maintain`] then prunes again at once, with
/// its other upkeep (the usage flush among it) free to run in between.
pub async fn prune_events(state: &AppState) -> Result<u64, crate::storage::StoreError> {
    let retention_ms = i64::try_from(state.config.event_retention.as_millis()).unwrap_or(i64::MAX);
    let before_ms = now_unix_ms().saturating_sub(retention_ms);
    state.store.prune_events(before_ms, EVENT_PRUNE_CHUNK).await
}

/// Adds the requests counted since the last flush to the store (API.md §7,
/// `tokens usage`); what cannot be written now is kept for the next flush.
pub async fn flush_usage(state: &AppState) {
    let rows = state.usage.take();
    if rows.is_empty() {
        return;
    }
    if let Err(error) = state.store.add_usage(rows.clone()).await {
        tracing::warn!(%error, "cannot record token usage; keeping the counts for the next try");
        state.usage.restore(rows);
    }
}

/// Forgets ended rate-limit windows and idle cache entries; purges expired
/// idempotency keys and old events; folds latency samples into their histograms.
pub async fn maintain(state: AppState) {
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    let mut purge = tokio::time::interval(PURGE_INTERVAL);
    let mut upkeep = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
    let mut usage = tokio::time::interval(FLUSH_INTERVAL);
    let mut events = tokio::time::interval(event_prune_interval(state.config.event_retention));
    events.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = usage.tick() => flush_usage(&state).await,
            _ = upkeep.tick() => state.metrics.run_upkeep(),
            _ = prune.tick() => {
                state.limiter.prune();
                state.failed_auth.prune();
                state.authenticator.prune();
            }
            _ = events.tick() => match prune_events(&state).await {
                Ok(0) => {}
                Ok(pruned) => {
                    tracing::debug!(pruned, "pruned events past their retention");
                    if pruned >= u64::from(EVENT_PRUNE_CHUNK) {
                        events.reset_immediately();
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot prune old events"),
            },
            _ = purge.tick() => {
                match state.store.purge_idempotency(now_unix() - RETENTION_SECS).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged expired idempotency keys"),
                    Err(error) => tracing::warn!(%error, "cannot purge expired idempotency keys"),
                }
            }
        }
    }
}
