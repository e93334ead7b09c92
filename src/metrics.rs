//! Prometheus metrics: one registry per server, rendered by `GET /metrics`.
//!
//! Each [`Metrics`] owns its recorder instead of installing a process-global
//! one, so several servers in one process (the tests) count apart. The handles
//! of a route are registered the first time it is seen and then reused: a
//! request costs a map lookup and a few atomic operations, and builds no label
//! strings.

use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use dashmap::DashMap;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::ratelimit::LimiterState;
use crate::storage::PoolStatus;

pub const REQUESTS: &str = "clientele_http_requests_total";
pub const REQUEST_DURATION: &str = "clientele_http_request_duration_seconds";
pub const RATE_LIMIT_DECISIONS: &str = "clientele_rate_limit_decisions_total";
pub const LIMITER_STATE: &str = "clientele_rate_limiter_state";
pub const POOL_CONNECTIONS: &str = "clientele_db_pool_connections";
pub const POOL_IDLE: &str = "clientele_db_pool_idle_connections";
pub const POOL_MAX: &str = "clientele_db_pool_max_connections";
pub const LOG_LINES_DROPPED: &str = crate::logging::LOG_LINES_DROPPED;
pub const WEBHOOK_DELIVERIES: &str = "clientele_webhook_deliveries_total";

/// The route label of a request no route matched: never its path, so clients cannot mint series.
pub const UNMATCHED: &str = "unmatched";

/// From half a millisecond (a cached read) to ten seconds (a stuck database).
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Method labels; anything else is `other`, to bound the number of series.
const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"];

const LIMITER_STATES: [LimiterState; 3] = [LimiterState::Memory, LimiterState::Redis, LimiterState::RedisDegraded];

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Off only to measure what recording costs (see `examples/bench_server.rs`).
    enabled: bool,
    routes: DashMap<Box<str>, RouteMetrics, ahash::RandomState>,
    /// By limiter state, then allowed (0) or limited (1); registered when first counted.
    decisions: [[OnceLock<Counter>; 2]; 3],
    webhooks: WebhookCounters,
}

/// What became of one webhook delivery attempt (API.md §8), the `outcome`
/// label of `clientele_webhook_deliveries_total`. Each attempt counts once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Answered `2xx`: `delivered`.
    Delivered,
    /// Failed, and tried again later: `failed_attempt`.
    FailedAttempt,
    /// Failed, and it was the last attempt: `given_up`.
    GivenUp,
}

impl DeliveryOutcome {
    const ALL: [DeliveryOutcome; 3] = [Self::Delivered, Self::FailedAttempt, Self::GivenUp];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::FailedAttempt => "failed_attempt",
            Self::GivenUp => "given_up",
        }
    }
}

/// The webhook delivery counters, by outcome, for the delivery worker (cheap to clone).
#[derive(Clone)]
pub struct WebhookCounters {
    by_outcome: [Counter; 3],
}

impl WebhookCounters {
    fn register(recorder: &PrometheusRecorder) -> Self {
        Self {
            by_outcome: DeliveryOutcome::ALL.map(|outcome| {
                recorder.register_counter(&key(WEBHOOK_DELIVERIES, &[("outcome", outcome.label())]), &METADATA)
            }),
        }
    }

    /// Counts one attempt.
    pub fn count(&self, outcome: DeliveryOutcome) {
        self.by_outcome[outcome as usize].increment(1);
    }
}

/// One route's handles, by method.
struct RouteMetrics {
    route: SharedString,
    by_method: [MethodMetrics; METHODS.len()],
}

#[derive(Default)]
struct MethodMetrics {
    latency: OnceLock<Histogram>,
    /// Few statuses per route and method: a short list beats a map.
    responses: RwLock<Vec<(u16, Counter)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &LATENCY_BUCKETS)
            .expect("the latency buckets are not empty")
            .build_recorder();
        describe(&recorder);
        Self {
            webhooks: WebhookCounters::register(&recorder),
            handle: recorder.handle(),
            recorder,
            enabled: true,
            routes: DashMap::default(),
            decisions: Default::default(),
        }
    }

    /// Records nothing: for measuring what recording costs.
    pub fn disabled() -> Self {
        Self { enabled: false, ..Self::new() }
    }

    /// The webhook delivery counters, registered from the start (each outcome at 0).
    pub fn webhook_deliveries(&self) -> WebhookCounters {
        self.webhooks.clone()
    }

    /// Counts one answered request; `route` is the matched route template, or [`UNMATCHED`].
    pub fn record_request(&self, route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let method = method_index(method);
        if let Some(metrics) = self.routes.get(route) {
            return metrics.record(&self.recorder, method, status, elapsed);
        }
        let metrics = self.routes.entry(route.into()).or_insert_with(|| RouteMetrics::new(route));
        metrics.record(&self.recorder, method, status, elapsed);
    }

    /// Counts one per-token rate-limit decision, by the backend that made it.
    pub fn record_rate_limit(&self, state: LimiterState, allowed: bool) {
        if !self.enabled {
            return;
        }
        let cell = &self.decisions[state_index(state)][usize::from(!allowed)];
        cell.get_or_init(|| {
            let labels = [("state", state_label(state)), ("decision", if allowed { "allowed" } else { "limited" })];
            self.recorder.register_counter(&key(RATE_LIMIT_DECISIONS, &labels), &METADATA)
        })
        .increment(1);
    }

    /// The Prometheus text exposition, with the gauges read now.
    pub fn render(&self, limiter: LimiterState, pool: Option<PoolStatus>) -> String {
        for state in LIMITER_STATES {
            let value = if state == limiter { 1.0 } else { 0.0 };
            self.gauge(LIMITER_STATE, &[("state", state_label(state))]).set(value);
        }
        // The process's log queue, shared by every server in the process (see [`crate::logging`]).
        self.recorder
            .register_counter(&key(LOG_LINES_DROPPED, &[]), &METADATA)
            .absolute(crate::logging::dropped_lines());
        if let Some(pool) = pool {
            self.gauge(POOL_CONNECTIONS, &[]).set(pool.size);
            self.gauge(POOL_IDLE, &[]).set(pool.idle);
            self.gauge(POOL_MAX, &[]).set(pool.max);
        }
        self.handle.render()
    }

    /// Folds the latency samples recorded since the last call into their
    /// buckets, so memory stays bounded when nobody scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }
}

impl RouteMetrics {
    fn new(route: &str) -> Self {
        Self { route: SharedString::from_owned(route.to_owned()), by_method: Default::default() }
    }

    fn record(&self, recorder: &PrometheusRecorder, method: usize, status: StatusCode, elapsed: Duration) {
        let metrics = &self.by_method[method];
        let labels =
            || vec![Label::new("route", self.route.clone()), Label::from_static_parts("method", METHODS[method])];
        metrics
            .latency
            .get_or_init(|| recorder.register_histogram(&Key::from_parts(REQUEST_DURATION, labels()), &METADATA))
            .record(elapsed.as_secs_f64());
        let status = status.as_u16();
        if metrics.count(status) {
            return;
        }
        let mut responses = metrics.responses.write().unwrap_or_else(PoisonError::into_inner);
        // Another request may have registered it meanwhile.
        if let Some((_, counter)) = responses.iter().find(|(seen, _)| *seen == status) {
            counter.increment(1);
            return;
        }
        let mut labels = labels();
        labels.push(Label::new("status", status.to_string()));
        let counter = recorder.register_counter(&Key::from_parts(REQUESTS, labels), &METADATA);
        counter.increment(1);
        responses.push((status, counter));
    }
}

impl MethodMetrics {
    /// Counts a response with a status already seen; `false` for a new status.
    fn count(&self, status: u16) -> bool {
        let responses = self.responses.read().unwrap_or_else(PoisonError::into_inner);
        let counter = responses.iter().find(|(seen, _)| *seen == status).map(|(_, counter)| counter);
        counter.inspect(|counter| counter.increment(1)).is_some()
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    Key::from_parts(name, labels.iter().map(|&(key, value)| Label::from_static_parts(key, value)).collect::<Vec<_>>())
}

fn describe(recorder: &PrometheusRecorder) {
    let help = |name: &'static str| KeyName::from_const_str(name);
    recorder.describe_counter(help(REQUESTS), None, "Requests answered, by route template, method and status.".into());
    recorder.describe_histogram(
        help(REQUEST_DURATION),
        Some(Unit::Seconds),
        "Time to produce a response, by route template and method.".into(),
    );
    recorder.describe_counter(
        help(RATE_LIMIT_DECISIONS),
        None,
        "Per-token rate-limit decisions, by the backend that counted (redis_degraded: in memory while Redis is down)."
            .into(),
    );
    recorder.describe_gauge(help(LIMITER_STATE), None, "1 for the backend counting rate limits now.".into());
    recorder.describe_counter(
        help(LOG_LINES_DROPPED),
        None,
        "Log lines dropped because the log writer's queue was full (stderr not keeping up).".into(),
    );
    recorder.describe_counter(
        help(WEBHOOK_DELIVERIES),
        None,
        "Webhook delivery attempts, by outcome: delivered (2xx), failed_attempt (retried later), given_up (the last)."
            .into(),
    );
    recorder.describe_gauge(help(POOL_CONNECTIONS), None, "Database connections open.".into());
    recorder.describe_gauge(help(POOL_IDLE), None, "Database connections open and idle.".into());
    recorder.describe_gauge(help(POOL_MAX), None, "Database connections the pool may open.".into());
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

fn state_index(state: LimiterState) -> usize {
    match state {
        LimiterState::Memory => 0,
        LimiterState::Redis => 1,
        LimiterState::RedisDegraded => 2,
    }
}

fn state_label(state: LimiterState) -> &'static str {
    match state {
        LimiterState::Memory => "memory",
        LimiterState::Redis => "redis",
        LimiterState::RedisDegraded => "redis_degraded",
    }
}
