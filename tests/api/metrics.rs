//! `GET /metrics` (API.md §7): Prometheus text, no token, requests counted by
//! route template (never a raw id), latency histograms, rate-limit decisions,
//! the limiter's state and, on PostgreSQL, the connection pool. Each server
//! keeps its own registry, so servers in one process do not see each other's
//! requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use clientele::app::AppState;
use clientele::config::ServerConfig;
use clientele::domain::Scope;
use clientele::http;
use clientele::ratelimit::{RateLimit, RateLimiter, RedisLimiter};
use clientele::storage::postgres::PostgresStore;
use reqwest::Method;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;

use crate::support::{DATABASE_URL_VAR, REDIS_URL_VAR, TestApp, service_url};

// ---------------------------------------------------------------- helpers

/// One sample line of the exposition: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape: the raw text and its parsed samples.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the one sample named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                labels.iter().all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
            })
            .collect();
        assert!(matching.len() <= 1, "several samples of {name} match {labels:?}: {matching:?}");
        matching.first().map(|sample| sample.value)
    }

    fn expect(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{}", self.text))
    }

    /// Every value the label `key` takes on samples named `name`.
    fn label_values(&self, name: &str, key: &str) -> Vec<&str> {
        let mut values: Vec<&str> = self
            .samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter_map(|sample| sample.labels.get(key).map(String::as_str))
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    }
}

/// Parses the text format strictly enough to catch a malformed line.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
            let value = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed {line:?}"))),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
                    (key.to_owned(), value.trim_end_matches('"').to_owned())
                })
                .collect();
            Sample { name: name.to_owned(), labels, value }
        })
        .collect()
}

/// `GET /metrics` with no token: checks the status and content type, returns the parsed body.
async fn scrape(client: &reqwest::Client, base: &str) -> Scrape {
    let response = client.get(format!("{base}/metrics")).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200, "/metrics needs no token");
    let content_type = response.headers().get("content-type").expect("content type").to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "Prometheus text format, got {content_type}");
    assert!(content_type.contains("version=0.0.4"), "{content_type}");
    let text = response.text().await.expect("body");
    Scrape { samples: parse(&text), text }
}

const REQUESTS: &str = "clientele_http_requests_total";
const DURATION_COUNT: &str = "clientele_http_request_duration_seconds_count";
const DURATION_BUCKET: &str = "clientele_http_request_duration_seconds_bucket";
const DECISIONS: &str = "clientele_rate_limit_decisions_total";
const LIMITER_STATE: &str = "clientele_rate_limiter_state";

/// The labels of one request counter.
fn requests<'a>(route: &'a str, method: &'a str, status: &'a str) -> [(&'static str, &'a str); 3] {
    [("route", route), ("method", method), ("status", status)]
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn requests_are_counted_by_route_template_with_latency_and_rate_limit_decisions() {
    let app = TestApp::spawn().await;
    let first = app.create_customer("Ada Lovelace", "ada@example.com").await;
    let second = app.create_customer("Grace Hopper", "grace@example.com").await;
    let ids = [first["id"].as_str().unwrap().to_owned(), second["id"].as_str().unwrap().to_owned()];
    for id in &ids {
        assert_eq!(app.get(&format!("/v2/customers/{id}")).await.status(), 200);
    }
    let missing_id = "cus_01ZZZZZZZZZZZZZZZZZZZZZZZZ";
    assert_eq!(app.get(&format!("/v2/customers/{missing_id}")).await.status(), 404);
    assert_eq!(app.get("/v2/no-such-route/cus_unrouted").await.status(), 404);

    // A token allowed one request per hour: at least one of three is refused.
    let limited = app.issue_token("default", Scope::Read, Some(RateLimit { limit: 1, window_secs: 3600 })).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.request_as(&limited, Method::GET, "/v2/customers").send().await.unwrap().status().as_u16());
    }
    let refused = statuses.iter().filter(|&&status| status == 429).count();
    assert!(refused >= 1 && statuses.iter().all(|&status| status == 200 || status == 429), "{statuses:?}");

    let scrape = scrape(&app.client, &app.url("")).await;
    let by_id = "/v2/customers/{id}";
    assert_eq!(scrape.expect(REQUESTS, &requests(by_id, "GET", "200")), 2.0, "two reads by id");
    assert_eq!(scrape.expect(REQUESTS, &requests(by_id, "GET", "404")), 1.0);
    assert_eq!(scrape.expect(REQUESTS, &requests("/v2/customers", "POST", "201")), 2.0);
    assert_eq!(scrape.expect(REQUESTS, &requests("unmatched", "GET", "404")), 1.0);
    assert_eq!(scrape.expect(REQUESTS, &requests("/v2/customers", "GET", "429")), refused as f64);
    assert_eq!(scrape.expect(REQUESTS, &requests("/v2/customers", "GET", "200")), (3 - refused) as f64);

    // Route labels are templates: no id of any kind, requested or not.
    for route in scrape.label_values(REQUESTS, "route") {
        assert!(route == "unmatched" || route.starts_with('/'), "route label {route:?}");
    }
    for raw in ids.iter().map(String::as_str).chain([missing_id, "cus_unrouted", "no-such-route"]) {
        assert!(!scrape.text.contains(raw), "{raw} appears in the metrics:\n{}", scrape.text);
    }
    assert!(!scrape.text.contains(&app.token) && !scrape.text.contains(&limited), "a token in the metrics");

    // The latency histogram, by route template and method.
    assert!(scrape.text.contains("# TYPE clientele_http_request_duration_seconds histogram"), "{}", scrape.text);
    let by_id_get = [("route", by_id), ("method", "GET")];
    assert_eq!(scrape.expect(DURATION_COUNT, &by_id_get), 3.0, "200, 200 and 404");
    assert_eq!(scrape.expect(DURATION_BUCKET, &[("route", by_id), ("method", "GET"), ("le", "+Inf")]), 3.0);
    assert!(scrape.expect("clientele_http_request_duration_seconds_sum", &by_id_get) > 0.0);
    assert!(scrape.label_values(DURATION_BUCKET, "le").len() > 5, "real buckets, not a summary");

    // Every authenticated request is one decision: 2 POST, 3 GET by id, 1 unrouted, 3 limited-token GETs.
    let allowed = scrape.expect(DECISIONS, &[("state", "memory"), ("decision", "allowed")]);
    assert_eq!(allowed, (2 + 3 + 1 + 3 - refused) as f64);
    assert_eq!(scrape.expect(DECISIONS, &[("state", "memory"), ("decision", "limited")]), refused as f64);

    assert_eq!(scrape.expect(LIMITER_STATE, &[("state", "memory")]), 1.0);
    assert_eq!(scrape.expect(LIMITER_STATE, &[("state", "redis")]), 0.0);
    assert_eq!(scrape.expect(LIMITER_STATE, &[("state", "redis_degraded")]), 0.0);
    // Whichever backend the suite runs on: SQLite has no pool to report.
    let pool_max = scrape.value("clientele_db_pool_max_connections", &[]);
    match app.store.pool_status() {
        None => assert_eq!(scrape.value("clientele_db_pool_connections", &[]), None),
        Some(pool) => assert_eq!(pool_max, Some(f64::from(pool.max))),
    }
}

#[tokio::test]
async fn unmatched_paths_share_one_label_and_failed_auth_is_counted() {
    let app = TestApp::spawn().await;
    let base = app.url("");
    for path in ["/nowhere-abc123", "/v1/nowhere-def456", "/v3/customers/cus_ghi789", "/v2/customers/x/y/z"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    let no_token = app.client.get(app.url("/v2/customers")).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let scrape = scrape(&app.client, &base).await;
    assert_eq!(scrape.expect(REQUESTS, &requests("unmatched", "GET", "404")), 4.0, "{}", scrape.text);
    assert_eq!(scrape.expect(REQUESTS, &requests("/v2/customers", "GET", "401")), 1.0);
    for raw in ["abc123", "def456", "ghi789", "/v3", "x/y/z", "__private__"] {
        assert!(!scrape.text.contains(raw), "{raw} appears in the metrics:\n{}", scrape.text);
    }
    assert_eq!(scrape.value(DECISIONS, &[("decision", "limited")]), None, "a 401 is no rate-limit decision");
}

#[tokio::test]
async fn each_server_counts_only_its_own_requests() {
    let (one, two) = (TestApp::spawn().await, TestApp::spawn().await);
    for _ in 0..3 {
        assert_eq!(one.get("/v1/customers").await.status(), 200);
    }
    assert_eq!(two.get("/v2/customers").await.status(), 200);
    let (first, second) = (scrape(&one.client, &one.url("")).await, scrape(&two.client, &two.url("")).await);
    assert_eq!(first.expect(REQUESTS, &requests("/v1/customers", "GET", "200")), 3.0);
    assert_eq!(first.value(REQUESTS, &requests("/v2/customers", "GET", "200")), None);
    assert_eq!(second.expect(REQUESTS, &requests("/v2/customers", "GET", "200")), 1.0);
    assert_eq!(second.value(REQUESTS, &requests("/v1/customers", "GET", "200")), None);
    // The scrape itself is counted, after it answers.
    let again = scrape(&one.client, &one.url("")).await;
    assert_eq!(again.expect(REQUESTS, &requests("/metrics", "GET", "200")), 1.0);
}

#[tokio::test]
async fn decisions_counted_in_memory_while_redis_is_down_are_labelled_degraded() {
    // Nothing listens on port 1: the first check degrades the limiter and counts in memory.
    let redis = RedisLimiter::connect("redis://127.0.0.1:1").expect("a valid URL");
    let app = TestApp::spawn_with(ServerConfig::default(), RateLimiter::with_redis(redis)).await;
    assert_eq!(app.get("/v2/customers").await.status(), 200);
    let scrape = scrape(&app.client, &app.url("")).await;
    assert_eq!(scrape.expect(DECISIONS, &[("state", "redis_degraded"), ("decision", "allowed")]), 1.0);
    assert_eq!(scrape.value(DECISIONS, &[("state", "memory")]), None);
    assert_eq!(scrape.expect(LIMITER_STATE, &[("state", "redis_degraded")]), 1.0);
    assert_eq!(scrape.expect(LIMITER_STATE, &[("state", "memory")]), 0.0);
}

/// Needs Redis: skipped by the default nextest profile.
mod needs_redis {
    use super::*;

    #[tokio::test]
    async fn decisions_counted_in_redis_are_labelled_redis() {
        let url = service_url(REDIS_URL_VAR);
        let limiter = RateLimiter::with_redis(RedisLimiter::connect(&url).expect("a valid Redis URL"));
        let app = TestApp::spawn_with(ServerConfig::default(), limiter).await;
        assert_eq!(
            app.post_json("/v2/customers", &json!({"name": "Ada", "email": "ada@example.com"})).await.status(),
            201
        );
        let scrape = scrape(&app.client, &app.url("")).await;
        assert_eq!(scrape.expect(DECISIONS, &[("state", "redis"), ("decision", "allowed")]), 1.0);
        assert_eq!(scrape.expect(LIMITER_STATE, &[("state", "redis")]), 1.0);
    }
}

/// Needs PostgreSQL: skipped by the default nextest profile.
mod needs_postgres {
    use super::*;

    /// The pool gauges read the store's pool. No schema is needed, so this uses the
    /// test server's database as it is, without migrating it, and serves the router
    /// without `server::serve`'s maintenance task, so nothing but `/readyz` queries it.
    #[tokio::test]
    async fn postgres_pool_use_is_reported() {
        let url = service_url(DATABASE_URL_VAR);
        let pool = PgPoolOptions::new().max_connections(3).connect_lazy(&url).expect("a valid PostgreSQL URL");
        let store = Arc::new(PostgresStore::from_pool(pool));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(ServerConfig::default(), store, RateLimiter::in_memory());
        let router = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let client = reqwest::Client::new();

        let before = scrape(&client, &base).await;
        assert_eq!(before.expect("clientele_db_pool_max_connections", &[]), 3.0);
        assert_eq!(before.expect("clientele_db_pool_connections", &[]), 0.0, "a lazy pool opens nothing by itself");
        assert_eq!(client.get(format!("{base}/readyz")).send().await.unwrap().status(), 200, "the database answers");
        // The connection goes back to the pool in the background: give it a moment.
        for attempt in 1.. {
            let after = scrape(&client, &base).await;
            let open = after.expect("clientele_db_pool_connections", &[]);
            assert!((1.0..=3.0).contains(&open), "the readiness check opened a connection: {open}");
            let idle = after.expect("clientele_db_pool_idle_connections", &[]);
            if idle == open {
                break;
            }
            assert!(attempt < 40, "{idle} of {open} connections idle after the request");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        server.abort();
    }
}
