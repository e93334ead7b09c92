//! Per-token rate limits over HTTP (API.md §5): the `X-RateLimit-*` headers, `429`,
//! windows that reset, per-token limits, exact counting under concurrency, and
//! Redis: shared by several instances, down, and back.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clientele::config::ServerConfig;
use clientele::domain::Scope;
use clientele::ratelimit::{RateLimit, RateLimiter, RedisLimiter};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::support::{
    REDIS_URL_VAR, TestApp, assert_error, free_port, leave_room_in_window, number_header, service_url,
};

// ---------------------------------------------------------------- helpers

/// What the `X-RateLimit-*` headers of one response say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RateHeaders {
    limit: u32,
    remaining: u32,
    reset: u64,
}

/// What a response was, for an assertion message.
fn seen(response: &Response) -> String {
    format!("{} response to {}", response.status(), response.url())
}

/// Reads the three headers and checks them against the limit `n` per `w` seconds.
fn rate_headers(response: &Response, n: u32, w: u32) -> RateHeaders {
    let headers = RateHeaders {
        limit: number_header(response, "x-ratelimit-limit", &seen(response)) as u32,
        remaining: number_header(response, "x-ratelimit-remaining", &seen(response)) as u32,
        reset: number_header(response, "x-ratelimit-reset", &seen(response)),
    };
    let status = response.status();
    assert_eq!(headers.limit, n, "X-RateLimit-Limit on a {status}");
    assert!(
        headers.remaining < n,
        "X-RateLimit-Remaining {} must be below the limit {n} on a {status}",
        headers.remaining
    );
    assert!(
        (1..=u64::from(w)).contains(&headers.reset),
        "X-RateLimit-Reset {} must be 1..={w} on a {status}",
        headers.reset
    );
    headers
}

fn assert_no_rate_headers(response: &Response) {
    for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(
            response.headers().get(name).is_none(),
            "{} response to {} must not carry {name}",
            response.status(),
            response.url()
        );
    }
}

/// Checks a 429: the envelope, the headers with `Remaining: 0`, and `Retry-After` of 1..=W.
async fn assert_rate_limited(response: Response, n: u32, w: u32) -> RateHeaders {
    let headers = rate_headers(&response, n, w);
    assert_eq!(headers.remaining, 0, "a 429 says no requests are left");
    let retry_after = number_header(&response, "retry-after", &seen(&response));
    assert!((1..=u64::from(w)).contains(&retry_after), "Retry-After {retry_after} must be 1..={w}");
    assert_error(response, 429, "rate_limited").await;
    headers
}

async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("request")
}

fn limit(limit: u32, window_secs: u32) -> Option<RateLimit> {
    Some(RateLimit { limit, window_secs })
}

/// How the server counts rate limits right now, from `/readyz`: 200 with
/// `rate_limiter` while its backend answers; 503 `service_unavailable` naming
/// Redis while Redis does not (API.md §7), reported here as `degraded`.
async fn limiter_state(client: &reqwest::Client, base: &str) -> String {
    let response = client.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_no_rate_headers(&response);
    if response.status() == 503 {
        assert!(response.headers().get("retry-after").is_some(), "a 503 says when to retry");
        let body: Value = response.json().await.expect("readyz json");
        assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("Redis")), "{body}");
        return "degraded".to_owned();
    }
    assert_eq!(response.status(), 200, "/readyz answers 200 or 503");
    let body: Value = response.json().await.expect("readyz json");
    body["rate_limiter"].as_str().unwrap_or_else(|| panic!("no rate_limiter in {body}")).to_owned()
}

/// Fires `count` GETs at once with `token` and returns their statuses and remaining counts.
async fn burst(client: &reqwest::Client, url: &str, token: &str, count: usize) -> Vec<(u16, u32)> {
    let barrier = Arc::new(Barrier::new(count));
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let (client, url, token, barrier) = (client.clone(), url.to_owned(), token.to_owned(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let response = client.get(url).bearer_auth(token).send().await.expect("request");
            let remaining = number_header(&response, "x-ratelimit-remaining", &seen(&response)) as u32;
            (response.status().as_u16(), remaining)
        });
    }
    tasks.join_all().await
}

/// Exactly `n` of a burst pass, the rest get 429, and the passes saw Remaining n-1 down to 0 once each.
fn assert_exactly_n_pass(results: &[(u16, u32)], n: u32) {
    let passed: Vec<u32> = results.iter().filter(|(status, _)| *status == 200).map(|(_, r)| *r).collect();
    let refused = results.iter().filter(|(status, _)| *status == 429).count();
    assert_eq!(passed.len() + refused, results.len(), "only 200 and 429 expected: {results:?}");
    assert_eq!(passed.len(), n as usize, "exactly {n} requests pass: {results:?}");
    let mut remaining = passed;
    remaining.sort_unstable();
    assert_eq!(remaining, (0..n).collect::<Vec<_>>(), "each pass sees a distinct Remaining");
    assert!(results.iter().filter(|(s, _)| *s == 429).all(|(_, r)| *r == 0), "429s say Remaining 0");
}

/// How many rate-limit decisions the instance at `base` made in memory because
/// Redis did not answer in time (`clientele_rate_limit_decisions_total{state="redis_degraded"}`).
async fn degraded_decisions(client: &reqwest::Client, base: &str) -> u64 {
    let text = client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("metrics text");
    text.lines()
        .filter(|line| {
            line.starts_with("clientele_rate_limit_decisions_total{") && line.contains("state=\"redis_degraded\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Runs `burst` (given the attempt's number; it answers its statuses and
/// remaining counts, and what else the test needs of the run, such as its token)
/// until a run in which no instance at `bases` fell back to counting in memory,
/// at most three times; returns that run's answer and how many runs it took. A Redis that leaves a batch
/// unanswered for the limiter's 50 ms (a loaded CI machine can) degrades the
/// limits, as API.md allows, and then the count this test checks is not
/// Redis's: such a run proves nothing either way and is run again.
async fn burst_without_fallback<T, F, Fut>(client: &reqwest::Client, bases: &[String], mut burst: F) -> (T, usize)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for attempt in 1..=3 {
        let mut before = 0;
        for base in bases {
            before += degraded_decisions(client, base).await;
        }
        let results = burst(attempt).await;
        let mut after = 0;
        for base in bases {
            after += degraded_decisions(client, base).await;
        }
        if after == before {
            return (results, attempt);
        }
        eprintln!(
            "attempt {attempt}: Redis was late and {} decisions were made in memory; running the burst again",
            after - before
        );
        // Until Redis is back, every run would fall back.
        for base in bases {
            let deadline = Instant::now() + Duration::from_secs(5);
            while limiter_state(client, base).await != "redis" {
                assert!(Instant::now() < deadline, "the limiter at {base} stays degraded");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    panic!("the limiter fell back to memory in three bursts running: Redis never answered in time");
}

fn redis_limiter(url: &str) -> RateLimiter {
    RateLimiter::with_redis(RedisLimiter::connect(url).expect("redis url"))
}

fn base(app: &TestApp) -> String {
    format!("http://{}", app.address)
}

pub(crate) fn redis_server_available() -> bool {
    Command::new("redis-server").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// A private `redis-server` on its own port, killed when dropped (even when a test fails).
pub(crate) struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub(crate) fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut redis = Self { port, child: Some(child) };
        redis.wait_until_answering();
        redis
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_until_answering(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("try_wait")) {
                panic!("redis-server on port {} exited at start: {status}", self.port);
            }
            if ping(self.port) {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server on port {} does not answer", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is running").id()
    }

    /// Sends a signal (`STOP`, `CONT`) to this redis-server only.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} redis-server");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        *self = Self::start(self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Command::new("kill").args(["-CONT", &self.pid().to_string()]).status();
        }
        self.kill();
    }
}

/// A raw RESP `PING` on a fresh connection.
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn every_authenticated_response_carries_the_headers_counting_down() {
    let (n, w) = (9, 60);
    leave_room_in_window(u64::from(w), Duration::from_secs(2)).await;
    let app = TestApp::spawn().await;
    let token = app.issue_token("default", Scope::Write, limit(n, w)).await;
    let as_token = |method: Method, path: &str| app.request_as(&token, method, path);
    let existing = app.create_customer("Ada", "ada@example.com").await;
    let existing_path = format!("/v1/customers/{}", existing["id"].as_str().unwrap());

    let mut responses = vec![
        (200, send(as_token(Method::GET, "/v1/customers")).await),
        (
            201,
            send(as_token(Method::POST, "/v1/customers").json(&json!({"name": "B", "email": "b@example.com"}))).await,
        ),
        (200, send(as_token(Method::GET, &existing_path)).await),
        (400, send(as_token(Method::POST, "/v2/customers").json(&json!({"name": "C", "email": "nope"}))).await),
        (404, send(as_token(Method::GET, "/v1/customers/cus_doesnotexist")).await),
        (404, send(as_token(Method::GET, "/v2/nowhere")).await),
        (405, send(as_token(Method::PATCH, "/v1/customers")).await),
        (200, send(as_token(Method::GET, "/v2/customers")).await),
        (204, send(as_token(Method::DELETE, &existing_path)).await),
    ];
    assert_eq!(responses.len(), n as usize);
    responses.push((429, send(as_token(Method::GET, "/v1/customers")).await));
    responses.push((
        429,
        send(as_token(Method::POST, "/v1/customers").json(&json!({"name": "D", "email": "d@example.com"}))).await,
    ));

    for (i, (status, response)) in responses.into_iter().enumerate() {
        assert_eq!(response.status().as_u16(), status, "request {i} to {}", response.url());
        let headers = rate_headers(&response, n, w);
        let expected = (n - 1).saturating_sub(i as u32);
        assert_eq!(headers.remaining, expected, "Remaining after request {i} (a {status})");
        if status == 429 {
            assert_rate_limited(response, n, w).await;
        }
    }
}

#[tokio::test]
async fn a_read_token_refused_for_scope_still_gets_the_headers_and_429_comes_first() {
    let (n, w) = (3, 60);
    leave_room_in_window(u64::from(w), Duration::from_secs(2)).await;
    let app = TestApp::spawn().await;
    let token = app.issue_token("default", Scope::Read, limit(n, w)).await;
    let post =
        || app.request_as(&token, Method::POST, "/v1/customers").json(&json!({"name": "R", "email": "r@example.com"}));

    let forbidden = send(post()).await;
    assert_eq!(rate_headers(&forbidden, n, w).remaining, 2);
    assert_error(forbidden, 403, "scope_insufficient").await;
    let forbidden = send(app.request_as(&token, Method::DELETE, "/v1/customers/cus_x")).await;
    assert_eq!(rate_headers(&forbidden, n, w).remaining, 1);
    assert_error(forbidden, 403, "scope_insufficient").await;
    let read = send(app.request_as(&token, Method::GET, "/v1/customers")).await;
    assert_eq!(read.status(), 200);
    assert_eq!(rate_headers(&read, n, w).remaining, 0);
    // Over the limit, the answer is 429 even where the scope would have refused.
    assert_rate_limited(send(post()).await, n, w).await;
}

#[tokio::test]
async fn the_server_default_limit_appears_in_the_headers() {
    let app = TestApp::spawn().await;
    let response = app.get("/v1/customers").await;
    assert_eq!(response.status(), 200);
    let headers = rate_headers(&response, 100, 60);
    assert_eq!(headers.remaining, 99);
}

#[tokio::test]
async fn unauthenticated_responses_and_health_carry_no_rate_limit_headers() {
    let app = TestApp::spawn().await;
    let missing = send(app.client.get(app.url("/v1/customers"))).await;
    assert_no_rate_headers(&missing);
    assert_error(missing, 401, "token_missing").await;
    let unknown_token = format!("clt_{}", "A".repeat(40));
    for token in [unknown_token.as_str(), "not-a-token"] {
        let response = send(app.request_as(token, Method::GET, "/v2/customers")).await;
        assert_no_rate_headers(&response);
        assert_error(response, 401, "token_invalid").await;
    }
    let healthz = send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(healthz.status(), 200);
    assert_no_rate_headers(&healthz);
    let _ = limiter_state(&app.client, &base(&app)).await;
}

// ---------------------------------------------------------------- over the limit

#[tokio::test]
async fn a_request_over_the_limit_is_429_and_touches_nothing() {
    let (n, w) = (3, 3600);
    leave_room_in_window(u64::from(w), Duration::from_secs(5)).await;
    let app = TestApp::spawn().await;
    let victim = app.create_customer("Kept", "kept@example.com").await;
    let victim_id = victim["id"].as_str().unwrap();
    let token = app.issue_token("default", Scope::Write, limit(n, w)).await;
    let create_v1 = json!({"name": "New", "email": "new@example.com"});

    for expected_remaining in [2, 1] {
        let created = send(app.request_as(&token, Method::POST, "/v1/customers").json(&create_v1)).await;
        assert_eq!(created.status(), 201);
        assert_eq!(rate_headers(&created, n, w).remaining, expected_remaining);
    }
    let read = send(app.request_as(&token, Method::GET, &format!("/v2/customers/{victim_id}"))).await;
    assert_eq!(read.status(), 200);
    assert_eq!(rate_headers(&read, n, w).remaining, 0);

    // Every kind of write, over the limit.
    let refused = [
        app.request_as(&token, Method::POST, "/v1/customers").json(&create_v1),
        app.request_as(&token, Method::POST, "/v2/customers").json(&json!({"name": "V2", "email": "v2@example.com"})),
        app.request_as(&token, Method::POST, "/v2/customers")
            .header("Idempotency-Key", "rl-key-1")
            .json(&json!({"name": "Idem", "email": "idem@example.com"})),
        app.request_as(&token, Method::PUT, &format!("/v1/customers/{victim_id}"))
            .json(&json!({"name": "Changed", "email": "changed@example.com"})),
        app.request_as(&token, Method::PUT, &format!("/v2/customers/{victim_id}"))
            .json(&json!({"name": "Changed", "email": "changed@example.com"})),
        app.request_as(&token, Method::DELETE, &format!("/v2/customers/{victim_id}")),
    ];
    for request in refused {
        assert_rate_limited(send(request).await, n, w).await;
    }

    // Seen with another token: two customers were created, the victim is untouched.
    let list = app.get("/v1/customers?limit=100").await;
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["total"], 3, "the victim and the two accepted POSTs only: {list}");
    let emails: Vec<&str> = list["data"].as_array().unwrap().iter().map(|c| c["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["kept@example.com", "new@example.com", "new@example.com"]);
    let after = app.get(&format!("/v2/customers/{victim_id}")).await;
    assert_eq!(after.status(), 200, "a 429'd DELETE deletes nothing");
    let after: Value = after.json().await.unwrap();
    assert_eq!(after["name"], "Kept");
    assert_eq!(after["version"], victim["version"], "a 429'd PUT writes nothing");

    // The idempotency key was not consumed by the 429: with a fresh token it creates.
    let other = app.issue_token("default", Scope::Write, None).await;
    let retried = send(
        app.request_as(&other, Method::POST, "/v2/customers")
            .header("Idempotency-Key", "rl-key-1")
            .json(&json!({"name": "Idem", "email": "idem@example.com"})),
    )
    .await;
    assert_eq!(retried.status(), 201);
    assert!(retried.headers().get("idempotent-replayed").is_none(), "nothing to replay after a 429");
}

#[tokio::test]
async fn the_window_resets_and_requests_pass_again() {
    let (n, w) = (3, 2);
    leave_room_in_window(u64::from(w), Duration::from_millis(500)).await;
    let app = TestApp::spawn().await;
    let token = app.issue_token("default", Scope::Write, limit(n, w)).await;
    let get = || send(app.request_as(&token, Method::GET, "/v1/customers"));

    for expected in [2, 1, 0] {
        let response = get().await;
        assert_eq!(response.status(), 200);
        assert_eq!(rate_headers(&response, n, w).remaining, expected);
    }
    let refused = get().await;
    let retry_after = number_header(&refused, "retry-after", &seen(&refused));
    let reset = assert_rate_limited(refused, n, w).await.reset;
    assert!(retry_after <= reset + 1, "Retry-After {retry_after} points past the window end ({reset} s)");

    tokio::time::sleep(Duration::from_millis(reset * 1000 + 50)).await;
    let again = get().await;
    assert_eq!(again.status(), 200, "the next window admits requests again");
    assert_eq!(rate_headers(&again, n, w).remaining, n - 1, "a new window starts from the full limit");
}

#[tokio::test]
async fn a_token_limit_overrides_the_default_and_tokens_count_separately() {
    let config =
        ServerConfig { default_rate_limit: RateLimit { limit: 3, window_secs: 3600 }, ..ServerConfig::default() };
    leave_room_in_window(3600, Duration::from_secs(5)).await;
    let app = TestApp::spawn_with(config, RateLimiter::in_memory()).await;
    let plain_a = app.issue_token("default", Scope::Write, None).await;
    let plain_b = app.issue_token("default", Scope::Write, None).await;
    let generous = app.issue_token("default", Scope::Write, limit(5, 60)).await;
    let other_account = app.issue_token("other", Scope::Write, None).await;
    let get = |token: &str| send(app.request_as(token, Method::GET, "/v1/customers"));

    // The default applies to tokens without their own limit.
    for expected in [2, 1, 0] {
        let response = get(&plain_a).await;
        assert_eq!(response.status(), 200);
        assert_eq!(rate_headers(&response, 3, 3600).remaining, expected);
    }
    assert_rate_limited(get(&plain_a).await, 3, 3600).await;

    // The token's own limit wins, and is counted on its own.
    for expected in [4, 3, 2, 1, 0] {
        let response = get(&generous).await;
        assert_eq!(response.status(), 200, "the token's 5/60s, not the default 3");
        assert_eq!(rate_headers(&response, 5, 60).remaining, expected);
    }
    assert_rate_limited(get(&generous).await, 5, 60).await;

    // Another token of the same account, and one of another account, start fresh.
    for token in [&plain_b, &other_account] {
        let response = get(token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(rate_headers(&response, 3, 3600).remaining, 2);
    }
    assert_rate_limited(get(&plain_a).await, 3, 3600).await;
}

#[tokio::test]
async fn failed_authentication_is_limited_per_address_before_any_lookup() {
    let config =
        ServerConfig { auth_failure_limit: RateLimit { limit: 3, window_secs: 3600 }, ..ServerConfig::default() };
    leave_room_in_window(3600, Duration::from_secs(5)).await;
    let app = TestApp::spawn_with(config, RateLimiter::in_memory()).await;
    let guess = format!("clt_{}", "B".repeat(40));
    for _ in 0..3 {
        assert_error(send(app.request_as(&guess, Method::GET, "/v1/customers")).await, 401, "token_invalid").await;
    }
    let blocked = send(app.request_as(&guess, Method::GET, "/v1/customers")).await;
    let retry_after = number_header(&blocked, "retry-after", &seen(&blocked));
    assert!((1..=3600).contains(&retry_after), "Retry-After {retry_after}");
    assert_error(blocked, 429, "rate_limited").await;
    let missing = send(app.client.get(app.url("/v1/customers"))).await;
    assert_error(missing, 429, "rate_limited").await;
}

// ---------------------------------------------------------------- concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_fifty_parallel_requests_against_twenty_admit_exactly_twenty() {
    leave_room_in_window(60, Duration::from_secs(2)).await;
    let app = TestApp::spawn().await;
    assert_eq!(limiter_state(&app.client, &base(&app)).await, "memory");
    let token = app.issue_token("default", Scope::Read, limit(20, 60)).await;
    let results = burst(&app.client, &app.url("/v1/customers"), &token, 50).await;
    assert_exactly_n_pass(&results, 20);
}

// ---------------------------------------------------------------- Redis

/// Tests that need a shared Redis (`CLIENTELE_TEST_REDIS_URL`): skipped by the
/// default nextest profile.
mod needs_redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_fifty_parallel_requests_against_twenty_admit_exactly_twenty() {
        let url = service_url(REDIS_URL_VAR);
        leave_room_in_window(60, Duration::from_secs(2)).await;
        let app = TestApp::spawn_with(ServerConfig::default(), redis_limiter(&url)).await;
        // Warm the connection so that the burst measures counting, not connecting.
        assert_eq!(app.get("/v1/customers").await.status(), 200);
        assert_eq!(limiter_state(&app.client, &base(&app)).await, "redis");

        let bases = [base(&app)];
        let ((results, token), _) = burst_without_fallback(&app.client, &bases, |attempt| {
            let app = &app;
            async move {
                if attempt > 1 {
                    leave_room_in_window(60, Duration::from_secs(2)).await;
                }
                let token = app.issue_token("default", Scope::Read, limit(20, 60)).await;
                (burst(&app.client, &app.url("/v1/customers"), &token, 50).await, token)
            }
        })
        .await;
        assert_exactly_n_pass(&results, 20);

        // The count lives in Redis: a fresh instance sharing it sees the token spent.
        let second = app.spawn_beside(redis_limiter(&url)).await;
        let response = send(app.client.get(format!("{}/v1/customers", base(&second))).bearer_auth(&token)).await;
        assert_rate_limited(response, 20, 60).await;
    }

    #[tokio::test]
    async fn two_instances_sharing_redis_admit_the_limit_in_total() {
        let url = service_url(REDIS_URL_VAR);
        leave_room_in_window(60, Duration::from_secs(2)).await;
        let first = TestApp::spawn_with(ServerConfig::default(), redis_limiter(&url)).await;
        let second = first.spawn_beside(redis_limiter(&url)).await;
        let bases = [base(&first), base(&second)];
        for base in &bases {
            assert_eq!(limiter_state(&first.client, base).await, "redis");
        }
        let token = first.issue_token("default", Scope::Read, limit(20, 60)).await;

        let mut passed = 0;
        for i in 0..40 {
            let response = send(first.client.get(format!("{}/v1/customers", bases[i % 2])).bearer_auth(&token)).await;
            match response.status().as_u16() {
                200 => {
                    passed += 1;
                    let remaining = rate_headers(&response, 20, 60).remaining;
                    assert_eq!(remaining, 20 - passed, "request {i} (instance {}): one shared count", i % 2 + 1);
                }
                429 => {
                    assert!(i >= 20, "request {i} refused before the limit was reached");
                    assert_rate_limited(response, 20, 60).await;
                }
                other => panic!("request {i}: unexpected status {other}"),
            }
        }
        assert_eq!(passed, 20, "20 in total across both instances");
        for base in &bases {
            assert_eq!(limiter_state(&first.client, base).await, "redis");
        }
    }
}

#[tokio::test]
async fn redis_down_from_the_start_degrades_without_errors() {
    // Nothing listens on this port.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let (n, w) = (4, 3600);
    leave_room_in_window(u64::from(w), Duration::from_secs(5)).await;
    let app = TestApp::spawn_with(ServerConfig::default(), redis_limiter(&url)).await;
    let token = app.issue_token("default", Scope::Write, limit(n, w)).await;
    let statuses = count_locally(&app, &token, n, w).await;
    assert_eq!(statuses, [200, 200, 200, 200, 429], "counted locally from the first request");
    assert_eq!(limiter_state(&app.client, &base(&app)).await, "degraded");
}

#[tokio::test]
async fn a_redis_that_does_not_answer_times_out_fast_and_degrades() {
    // Accepts connections and never answers.
    let black_hole = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("redis://{}", black_hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = black_hole.accept().await {
            held.push(socket);
        }
    });
    let (n, w) = (4, 3600);
    leave_room_in_window(u64::from(w), Duration::from_secs(5)).await;
    let app = TestApp::spawn_with(ServerConfig::default(), redis_limiter(&url)).await;
    let token = app.issue_token("default", Scope::Write, limit(n, w)).await;
    let statuses = count_locally(&app, &token, n, w).await;
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
    assert_eq!(limiter_state(&app.client, &base(&app)).await, "degraded");
}

/// Sends n+1 GETs with a token limited to `n` per `w` s while Redis does not serve:
/// each answers fast, never 5xx, with the headers counting down locally.
async fn count_locally(app: &TestApp, token: &str, n: u32, w: u32) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..=n {
        let started = Instant::now();
        let response = send(app.request_as(token, Method::GET, "/v1/customers")).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "request {i} took {took:?} while Redis is down");
        let status = response.status().as_u16();
        assert!(status < 500, "request {i}: {status} while Redis is down");
        let headers = rate_headers(&response, n, w);
        assert_eq!(headers.remaining, (n - 1).saturating_sub(i), "request {i}: counted locally");
        if status == 429 {
            assert_rate_limited(response, n, w).await;
        }
        statuses.push(status);
    }
    statuses
}

/// Tests that need the `redis-server` program, to run a private Redis they stop
/// and start: skipped by the default nextest profile.
mod needs_redis_server {
    use super::*;

    #[tokio::test]
    async fn redis_killed_mid_test_degrades_then_recovers() {
        assert!(redis_server_available(), "redis-server is not on PATH (needed to kill and restart a private Redis)");
        let mut redis = PrivateRedis::start(free_port());
        let (n, w) = (5, 3600);
        leave_room_in_window(u64::from(w), Duration::from_secs(15)).await;
        let app = TestApp::spawn_with(ServerConfig::default(), redis_limiter(&redis.url())).await;
        let app_base = base(&app);
        let token = app.issue_token("default", Scope::Read, limit(n, w)).await;
        let get = |base: String| send(app.client.get(format!("{base}/v1/customers")).bearer_auth(&token));

        // Up: counted in Redis.
        for expected in [4, 3] {
            let response = get(app_base.clone()).await;
            assert_eq!(response.status(), 200);
            assert_eq!(rate_headers(&response, n, w).remaining, expected);
        }
        assert_eq!(limiter_state(&app.client, &app_base).await, "redis");

        // Down: every request still answers, counted by the local limiter, which still limits.
        redis.kill();
        let mut previous = None;
        let mut refused = false;
        for i in 0..=n {
            let started = Instant::now();
            let response = get(app_base.clone()).await;
            assert!(started.elapsed() < Duration::from_secs(1), "request {i} hangs while Redis is down");
            let status = response.status().as_u16();
            let remaining = rate_headers(&response, n, w).remaining;
            match status {
                200 => {
                    assert!(!refused, "request {i} passes after a 429 in the same window");
                    if let Some(previous) = previous {
                        assert_eq!(remaining + 1, previous, "request {i}: counted one by one");
                    }
                    previous = Some(remaining);
                }
                429 => {
                    assert!(i > 0, "the first request after Redis went down is under every count");
                    refused = true;
                    assert_rate_limited(response, n, w).await;
                }
                other => panic!("request {i}: {other} while Redis is down"),
            }
        }
        assert!(refused, "the local limiter still enforces the limit of {n}");
        assert_eq!(limiter_state(&app.client, &app_base).await, "degraded");
        // A few failed probes later, still degraded, still answering.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(limiter_state(&app.client, &app_base).await, "degraded", "nothing answers yet");
        let response = get(app_base.clone()).await;
        assert_rate_limited(response, n, w).await;

        // Back: within a few seconds the probe switches to Redis again.
        redis.restart();
        wait_for_limiter_state(&app.client, &app_base, "redis").await;

        // Shared again: this instance and a new one count one window between them.
        let second = app.spawn_beside(redis_limiter(&redis.url())).await;
        let mut last = None;
        for (i, base) in [app_base.clone(), base(&second), app_base.clone(), base(&second)].into_iter().enumerate() {
            let response = get(base).await;
            assert_eq!(response.status(), 200, "request {i} after recovery (the restarted Redis is empty)");
            let remaining = rate_headers(&response, n, w).remaining;
            if let Some(last) = last {
                assert_eq!(remaining + 1, last, "request {i} after recovery: one count across both instances");
            }
            last = Some(remaining);
        }
        assert_eq!(limiter_state(&app.client, &app_base).await, "redis");
        assert_eq!(limiter_state(&app.client, &base(&second)).await, "redis");
    }

    #[tokio::test]
    async fn a_redis_started_after_the_server_is_picked_up() {
        assert!(redis_server_available(), "redis-server is not on PATH (needed to start a private Redis)");
        let port = free_port();
        let url = format!("redis://127.0.0.1:{port}");
        let (n, w) = (5, 3600);
        leave_room_in_window(u64::from(w), Duration::from_secs(15)).await;
        let app = TestApp::spawn_with(ServerConfig::default(), redis_limiter(&url)).await;
        let app_base = base(&app);
        let token = app.issue_token("default", Scope::Read, limit(n, w)).await;
        let get = |base: String| send(app.client.get(format!("{base}/v1/customers")).bearer_auth(&token));

        let response = get(app_base.clone()).await;
        assert_eq!(response.status(), 200, "no Redis yet: counted locally");
        assert_eq!(rate_headers(&response, n, w).remaining, 4);
        assert_eq!(limiter_state(&app.client, &app_base).await, "degraded");

        let _redis = PrivateRedis::start(port);
        wait_for_limiter_state(&app.client, &app_base, "redis").await;
        let second = app.spawn_beside(redis_limiter(&url)).await;
        let mut seen = Vec::new();
        for base in [app_base.clone(), base(&second), app_base.clone()] {
            let response = get(base).await;
            assert_eq!(response.status(), 200);
            seen.push(rate_headers(&response, n, w).remaining);
        }
        assert_eq!(seen, [4, 3, 2], "counted in the (new, empty) Redis, shared by both instances");
    }

    #[tokio::test]
    async fn a_paused_redis_degrades_fast_and_recovers_when_resumed() {
        assert!(redis_server_available(), "redis-server is not on PATH (needed to pause a private Redis)");
        let redis = PrivateRedis::start(free_port());
        let (n, w) = (5, 3600);
        leave_room_in_window(u64::from(w), Duration::from_secs(15)).await;
        let app = TestApp::spawn_with(ServerConfig::default(), redis_limiter(&redis.url())).await;
        let app_base = base(&app);
        let token = app.issue_token("default", Scope::Read, limit(n, w)).await;
        let get = |base: String| send(app.client.get(format!("{base}/v1/customers")).bearer_auth(&token));
        let response = get(app_base.clone()).await;
        assert_eq!(rate_headers(&response, n, w).remaining, 4);
        assert_eq!(limiter_state(&app.client, &app_base).await, "redis");

        // Hung: the connection stays open and nothing answers.
        redis.signal("STOP");
        for i in 0..3 {
            let started = Instant::now();
            let response = get(app_base.clone()).await;
            let took = started.elapsed();
            assert!(took < Duration::from_secs(1), "request {i} took {took:?} while Redis hangs");
            assert_eq!(response.status(), 200, "request {i} while Redis hangs");
            let remaining = rate_headers(&response, n, w).remaining;
            assert_eq!(remaining, 3 - i, "request {i}: counted locally, on from Redis's count of 1");
        }
        assert_eq!(limiter_state(&app.client, &app_base).await, "degraded");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(limiter_state(&app.client, &app_base).await, "degraded", "still hung");

        redis.signal("CONT");
        wait_for_limiter_state(&app.client, &app_base, "redis").await;
        let second = app.spawn_beside(redis_limiter(&redis.url())).await;
        let mut seen = Vec::new();
        for base in [app_base.clone(), base(&second), app_base.clone()] {
            let response = get(base).await;
            assert_eq!(response.status(), 200);
            seen.push(rate_headers(&response, n, w).remaining);
        }
        // Redis kept its count from before the pause (1, or 2 when the request that timed out
        // ran once Redis resumed): counting there resumes from it, shared with a new instance.
        assert!(
            [[3, 2, 1], [2, 1, 0]].contains(&seen.as_slice().try_into().unwrap()),
            "counted in Redis again, shared by both instances: {seen:?}"
        );
    }
}

/// Tests with two instances over one private Redis that is paused or killed mid-window
/// (API.md §5): the local count goes on from the last count Redis gave each instance.
mod needs_redis_server_two_instances {
    use super::*;

    /// Two servers over one store, each with `config` and its own limiter on `redis_url`.
    async fn two_instances(config: ServerConfig, redis_url: &str) -> (TestApp, TestApp) {
        let first = TestApp::spawn_with(config.clone(), redis_limiter(redis_url)).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let second = TestApp::spawn_on(first.store.clone(), dir, config, redis_limiter(redis_url)).await;
        (first, second)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn bursts_at_two_instances_at_once_admit_the_limit_in_total_and_every_window_key_expires() {
        assert!(redis_server_available(), "redis-server is not on PATH (needed to start a private Redis)");
        let redis = PrivateRedis::start(free_port());
        let (n, w) = (20, 60);
        leave_room_in_window(u64::from(w), Duration::from_secs(2)).await;
        let (first, second) = two_instances(ServerConfig::default(), &redis.url()).await;
        for app in [&first, &second] {
            // Warm each connection, so that the bursts measure counting, not connecting.
            assert_eq!(app.get("/v1/customers").await.status(), 200);
        }

        // Each instance counts its burst in batches; the batches of both share one count.
        let bases = [base(&first), base(&second)];
        let urls = [&first, &second].map(|app| format!("{}/v1/customers", base(app)));
        let (results, attempts) = burst_without_fallback(&first.client, &bases, |attempt| {
            let (first, second, urls) = (&first, &second, &urls);
            async move {
                if attempt > 1 {
                    leave_room_in_window(u64::from(w), Duration::from_secs(2)).await;
                }
                let token = first.issue_token("default", Scope::Read, limit(n, w)).await;
                let (at_first, at_second) = tokio::join!(
                    burst(&first.client, &urls[0], &token, 30),
                    burst(&second.client, &urls[1], &token, 30)
                );
                [at_first, at_second].concat()
            }
        })
        .await;
        assert_exactly_n_pass(&results, n);

        // Each window key was made with its expiry (by the pipeline that counted its first request).
        let client = redis::Client::open(redis.url()).expect("redis url");
        let mut connection = client.get_multiplexed_async_connection().await.expect("connect to the private Redis");
        let keys: Vec<String> = redis::cmd("KEYS").arg("clientele:rl:*").query_async(&mut connection).await.unwrap();
        assert_eq!(keys.len(), attempts + 2, "each burst's token and each instance's own token: {keys:?}");
        let deadline = Instant::now() + Duration::from_secs(2);
        for key in keys {
            loop {
                let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut connection).await.unwrap();
                if ttl_ms > 0 {
                    assert!(ttl_ms <= (i64::from(w) + 1) * 1000, "{key} expires in {ttl_ms} ms");
                    break;
                }
                assert!(Instant::now() < deadline, "{key} has no expiry (PTTL {ttl_ms})");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    #[tokio::test]
    async fn with_redis_paused_each_instance_counts_on_from_the_last_count_redis_gave_it() {
        assert!(redis_server_available(), "redis-server is not on PATH (needed to pause a private Redis)");
        let redis = PrivateRedis::start(free_port());
        let (n, w) = (10, 3600);
        leave_room_in_window(u64::from(w), Duration::from_secs(15)).await;
        let (first, second) = two_instances(ServerConfig::default(), &redis.url()).await;
        let token = first.issue_token("default", Scope::Read, limit(n, w)).await;
        let get = |app: &TestApp| send(app.client.get(format!("{}/v1/customers", base(app))).bearer_auth(&token));

        // Shared: 3 on the first, 4 on the second, 1 more on the first: Redis counted 8,
        // the last count the first saw; the second last saw 7.
        let mut remaining = Vec::new();
        for app in [&first, &first, &first, &second, &second, &second, &second, &first] {
            let response = get(app).await;
            assert_eq!(response.status(), 200);
            remaining.push(rate_headers(&response, n, w).remaining);
        }
        assert_eq!(remaining, [9, 8, 7, 6, 5, 4, 3, 2], "one count in Redis");

        redis.signal("STOP");
        let mut statuses = Vec::new();
        for (name, app, admits) in [("first", &first, 2u32), ("second", &second, 3)] {
            for i in 0..=admits {
                let started = Instant::now();
                let response = get(app).await;
                assert!(started.elapsed() < Duration::from_secs(1), "{name} {i}: fast while Redis hangs");
                let left = rate_headers(&response, n, w).remaining;
                assert_eq!(left, (admits - 1).saturating_sub(i), "{name} {i}: counted on from Redis's count");
                if response.status() == 429 {
                    assert_rate_limited(response, n, w).await;
                    statuses.push((name, 429));
                } else {
                    statuses.push((name, response.status().as_u16()));
                }
            }
            assert_eq!(limiter_state(&app.client, &base(app)).await, "degraded", "{name}");
        }
        assert_eq!(
            statuses,
            [
                ("first", 200),
                ("first", 200),
                ("first", 429),
                ("second", 200),
                ("second", 200),
                ("second", 200),
                ("second", 429)
            ],
            "neither instance admits more than {n} in the window"
        );
    }

    #[tokio::test]
    async fn failed_authentications_are_counted_across_instances_and_stay_counted_when_redis_dies() {
        assert!(redis_server_available(), "redis-server is not on PATH (needed to kill a private Redis)");
        let mut redis = PrivateRedis::start(free_port());
        let w = 3600;
        let config =
            ServerConfig { auth_failure_limit: RateLimit { limit: 4, window_secs: w }, ..ServerConfig::default() };
        leave_room_in_window(u64::from(w), Duration::from_secs(15)).await;
        let (first, second) = two_instances(config, &redis.url()).await;
        let guess = format!("clt_{}", "G".repeat(32));
        let guessing = |app: &TestApp| send(app.request_as(&guess, Method::GET, "/v1/customers"));

        // Four failures in all, two at each instance: the limit, global.
        for app in [&first, &second, &first, &second] {
            assert_error(guessing(app).await, 401, "token_invalid").await;
        }
        for (name, app) in [("first", &first), ("second", &second)] {
            let blocked = guessing(app).await;
            assert_eq!(blocked.status(), 429, "{name}: the fifth failure across instances is refused");
            let retry_after = number_header(&blocked, "retry-after", &seen(&blocked));
            assert!((1..=u64::from(w)).contains(&retry_after), "Retry-After {retry_after}");
            assert_error(blocked, 429, "rate_limited").await;
        }

        // Redis gone: each instance goes on from the count Redis last gave it, which was the limit.
        redis.kill();
        for (name, app) in [("first", &first), ("second", &second)] {
            let started = Instant::now();
            let blocked = guessing(app).await;
            assert!(started.elapsed() < Duration::from_secs(1), "{name}: fast while Redis is down");
            assert_error(blocked, 429, "rate_limited").await;
            let missing = send(app.client.get(app.url("/v1/customers"))).await;
            assert_error(missing, 429, "rate_limited").await;
        }
    }
}

/// Waits up to 5 s for `/readyz` to report `state`.
async fn wait_for_limiter_state(client: &reqwest::Client, base: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = limiter_state(client, base).await;
        if now == state {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz says {now:?}, still not {state:?} after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
