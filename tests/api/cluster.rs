//! Three instances as one (API.md §2, §3, §5, §7): three real `clientele
//! serve` processes, started at the same moment on one fresh PostgreSQL
//! database and one Redis, and a client that goes round-robin across them.
//!
//! - the rate limit of a token is global: 20/60s means 20 successes in total;
//! - a token revoked with the CLI is refused by every instance within 5 s;
//! - an idempotent POST replays on the other instances, and a reused key is refused;
//! - a write on one instance is read (with its new ETag) on the others.
//!
//! Needs `CLIENTELE_TEST_DATABASE_URL` (a PostgreSQL server URL; the test
//! creates its own database there and drops it) and `CLIENTELE_TEST_REDIS_URL`:
//! plain `cargo nextest run` skips it, and it fails when run without them.

use std::time::{Duration, Instant};

use crate::support::database::TestDatabase;
use crate::support::process::{Server, cli, serve_command};
use crate::support::{
    DATABASE_URL_VAR, REDIS_URL_VAR, client, expect_error, expect_json, header, number_header, service_url,
};
use clientele::domain::ids;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};

const INSTANCES: usize = 3;
/// API.md §2: a revoked token stops working on every instance within this long.
const REVOCATION_BOUND: Duration = Duration::from_secs(5);
/// The rate-limit burst starts only with at least this much of its window left.
const MIN_WINDOW_LEFT_SECS: u64 = 10;
/// Said in a server's log when its Redis calls fail or time out (src/ratelimit/redis.rs).
const REDIS_DEGRADED: &str = "Redis is not answering";

/// Needs PostgreSQL and Redis: skipped by the default nextest profile.
mod needs_postgres_and_redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_instances_behave_as_one() {
        service_url(DATABASE_URL_VAR);
        let redis_url = service_url(REDIS_URL_VAR);
        let started = Instant::now();
        let cluster = Cluster::start(&redis_url).await;
        println!("cluster: three instances up in {:?}", started.elapsed());

        cluster.admin(&["accounts", "create", "acme"]);
        let token = cluster.admin(&["tokens", "create", "--account", "acme", "--scope", "write"]);

        let step = Instant::now();
        writes_on_one_instance_are_read_on_the_others(&cluster, &token).await;
        println!("cluster: reads after writes checked in {:?}", step.elapsed());
        let step = Instant::now();
        idempotent_posts_replay_on_every_instance(&cluster, &token).await;
        println!("cluster: idempotency checked in {:?}", step.elapsed());
        let step = Instant::now();
        a_revoked_token_is_refused_everywhere_within_5_s(&cluster).await;
        println!("cluster: revocation checked in {:?}", step.elapsed());
        let step = Instant::now();
        the_rate_limit_is_global(&cluster, &token).await;
        println!("cluster: the global rate limit checked in {:?}", step.elapsed());

        for (n, server) in cluster.servers.iter().enumerate() {
            let logs = server.logs();
            assert!(!logs.contains("panicked"), "instance {n} panicked: {logs}");
        }
        println!("cluster: the whole test took {:?}", started.elapsed());
    }
}

/// (d) A customer created on one instance is read on the others; an update
/// with `If-Match` on one is seen, with its new ETag, on the others.
async fn writes_on_one_instance_are_read_on_the_others(cluster: &Cluster, token: &str) {
    let body = json!({"name": "Ada Lovelace", "email": "ada@example.com", "metadata": {"crm_id": "8812"}});
    let (headers, created) =
        expect_json(cluster.post(2, "/v2/customers", token, &body).send().await.unwrap(), 201, "create on #2").await;
    assert_eq!(header(&headers, "etag"), Some("\"1\""));
    let id = created["id"].as_str().expect("id");
    let path = format!("/v2/customers/{id}");
    for n in [0, 1] {
        let (headers, read) = expect_json(cluster.get(n, &path, token).await, 200, &format!("read on #{n}")).await;
        assert_eq!(read, created, "instance {n} reads what instance 2 created");
        assert_eq!(header(&headers, "etag"), Some("\"1\""));
    }

    let update = json!({"name": "Ada King", "email": "ada@example.com", "metadata": {"crm_id": "8812"}});
    let response = cluster.request(0, Method::PUT, &path, token).header("if-match", "\"1\"").json(&update).send();
    let (headers, updated) = expect_json(response.await.unwrap(), 200, "update on #0 with If-Match").await;
    assert_eq!(header(&headers, "etag"), Some("\"2\""));
    assert_eq!(updated["version"], 2);
    for n in [1, 2] {
        let (headers, read) = expect_json(cluster.get(n, &path, token).await, 200, &format!("read on #{n}")).await;
        assert_eq!(header(&headers, "etag"), Some("\"2\""), "instance {n} sees the new ETag");
        assert_eq!(read, updated, "instance {n} sees the update");
    }
    let not_modified = cluster.request(2, Method::GET, &path, token).header("if-none-match", "\"2\"").send();
    assert_eq!(not_modified.await.unwrap().status(), 304, "If-None-Match with the new ETag on #2");
    let (_, v1) = expect_json(cluster.get(1, &format!("/v1/customers/{id}"), token).await, 200, "v1 read on #1").await;
    assert_eq!(v1["name"], "Ada King");

    // A writer that read version 1 on another instance loses, and writes nothing.
    let stale = json!({"name": "Stale", "email": "ada@example.com"});
    let response = cluster.request(2, Method::PUT, &path, token).header("if-match", "\"1\"").json(&stale).send();
    expect_error(response.await.unwrap(), 412, "precondition_failed", "stale If-Match on #2").await;
    let (_, read) = expect_json(cluster.get(0, &path, token).await, 200, "read on #0").await;
    assert_eq!(read, updated, "the stale write changed nothing");

    let response = cluster.request(1, Method::DELETE, &path, token).header("if-match", "\"2\"").send();
    assert_eq!(response.await.unwrap().status(), 204, "delete on #1");
    for n in [0, 2] {
        expect_error(cluster.get(n, &path, token).await, 404, "resource_not_found", &format!("read on #{n}")).await;
    }
}

/// (c) An `Idempotency-Key` POST on one instance replays on the others; the
/// same key with another body gets `422 idempotency_key_reused`.
async fn idempotent_posts_replay_on_every_instance(cluster: &Cluster, token: &str) {
    let key = format!("cluster-{}", ids::token_id());
    let body = json!({"name": "Grace Hopper", "email": "grace@example.com"});
    let post =
        |n: usize, body: &Value| cluster.post(n, "/v2/customers", token, body).header("idempotency-key", &key).send();

    let (first_headers, first) = expect_json(post(0, &body).await.unwrap(), 201, "first POST on #0").await;
    assert_eq!(header(&first_headers, "idempotent-replayed"), None, "the first POST is no replay");
    for n in [1, 2, 0] {
        let (headers, replayed) = expect_json(post(n, &body).await.unwrap(), 201, &format!("replay on #{n}")).await;
        assert_eq!(header(&headers, "idempotent-replayed"), Some("true"), "instance {n} replays");
        assert_eq!(replayed, first, "instance {n} replays the first body, same id");
        for name in ["location", "etag"] {
            assert_eq!(header(&headers, name), header(&first_headers, name), "instance {n} replays {name}");
        }
    }
    let other = json!({"name": "Grace Brewster", "email": "grace@example.com"});
    for n in [1, 2] {
        let response = post(n, &other).await.unwrap();
        expect_error(response, 422, "idempotency_key_reused", &format!("the key with another body on #{n}")).await;
    }
    let (_, list) =
        expect_json(cluster.get(2, "/v2/customers?email=grace@example.com", token).await, 200, "list by email").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "one customer created in all: {list}");
}

/// (b) A token revoked with the CLI while every instance has it cached is
/// refused (401) by all three within 5 s.
async fn a_revoked_token_is_refused_everywhere_within_5_s(cluster: &Cluster) {
    cluster.admin(&["accounts", "create", "doomed"]);
    let doomed = cluster.admin(&["tokens", "create", "--account", "doomed", "--scope", "read"]);
    let listed: Value = serde_json::from_str(&cluster.admin(&["tokens", "list", "--account", "doomed", "--json"]))
        .expect("tokens list --json");
    let token_id = listed[0]["id"].as_str().expect("the token's id").to_owned();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // Cached on every instance.
    for n in 0..INSTANCES {
        expect_json(cluster.get(n, "/v2/customers", &doomed).await, 200, &format!("before revocation on #{n}")).await;
    }
    let revoke_began = Instant::now();
    cluster.admin(&["tokens", "revoke", &token_id]);
    let revoked = Instant::now();

    let mut refused_after: [Option<Duration>; INSTANCES] = [None; INSTANCES];
    while refused_after.iter().any(Option::is_none) {
        for (n, refused) in refused_after.iter_mut().enumerate() {
            if refused.is_some() {
                continue;
            }
            let response = cluster.get(n, "/v2/customers", &doomed).await;
            match response.status().as_u16() {
                200 => {}
                401 => {
                    let (headers, _) = expect_error(response, 401, "token_invalid", "a revoked token").await;
                    assert!(header(&headers, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
                    *refused = Some(revoked.elapsed());
                }
                other => panic!("instance {n}: {other} for a token being revoked: {}", response.text().await.unwrap()),
            }
        }
        assert!(
            revoked.elapsed() < REVOCATION_BOUND + Duration::from_secs(1),
            "not refused everywhere {:?} after the revocation: {refused_after:?}",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "revocation: `tokens revoke` took {:?}; refused by the instances after {refused_after:?}",
        revoked - revoke_began
    );
    for (n, after) in refused_after.iter().enumerate() {
        let after = after.expect("refused");
        assert!(after <= REVOCATION_BOUND, "instance {n} still accepted the revoked token {after:?} later");
    }
    // And it stays refused.
    for n in 0..INSTANCES {
        expect_error(cluster.get(n, "/v2/customers", &doomed).await, 401, "token_invalid", "still revoked").await;
    }
}

/// (a) A token limited to 20 requests per 60 s gets exactly 20 successes in
/// total from 30 requests spread over the three instances, the rest 429,
/// with the `X-RateLimit-*` headers counting down globally.
async fn the_rate_limit_is_global(cluster: &Cluster, token: &str) {
    for attempt in 1..=3 {
        wait_for_enough_window(cluster, token).await;
        let limited =
            cluster.admin(&["tokens", "create", "--account", "acme", "--scope", "read", "--rate-limit", "20/60s"]);
        let logs_before: Vec<usize> = cluster.servers.iter().map(|server| server.logs().len()).collect();
        let mut answers = Vec::new();
        for n in 0..30 {
            let instance = n % INSTANCES;
            let response = cluster.get(instance, "/v2/customers?limit=1", &limited).await;
            answers.push((instance, Answer::read(response, n).await));
        }
        // Counting is exact only while every instance counts in Redis and the
        // window does not roll over: either can fail on a loaded machine, and
        // then the attempt is repeated with a new token (a new counter).
        let degraded = cluster
            .servers
            .iter()
            .zip(&logs_before)
            .any(|(server, &before)| server.logs()[before..].contains(REDIS_DEGRADED));
        let rolled_over = answers.windows(2).any(|pair| pair[1].1.reset > pair[0].1.reset);
        if degraded || rolled_over {
            println!(
                "rate limit: attempt {attempt} is void (Redis degraded: {degraded}, window rolled over: {rolled_over})"
            );
            continue;
        }
        check_global_counting(&answers);
        return;
    }
    panic!("three attempts in a row were void: Redis kept timing out or the windows kept rolling over");
}

/// The exact story of 30 sequential requests against a 20/60s limit.
fn check_global_counting(answers: &[(usize, Answer)]) {
    let successes = answers.iter().filter(|(_, answer)| answer.status == 200).count();
    let limited = answers.iter().filter(|(_, answer)| answer.status == 429).count();
    let summary: Vec<String> = answers.iter().map(|(n, a)| format!("#{n}:{}/{}", a.status, a.remaining)).collect();
    println!("rate limit: {successes} successes, {limited} 429s: {}", summary.join(" "));
    assert_eq!((successes, limited), (20, 10), "exactly 20 of 30 succeed across the instances: {summary:?}");
    for (index, (instance, answer)) in answers.iter().enumerate() {
        let count = index as u64 + 1;
        let what = format!("request {count} (instance {instance})");
        assert_eq!(answer.status, if count <= 20 { 200 } else { 429 }, "{what}: {summary:?}");
        assert_eq!(answer.limit, 20, "{what}: X-RateLimit-Limit");
        assert_eq!(answer.remaining, 20u64.saturating_sub(count), "{what}: X-RateLimit-Remaining counts globally");
        assert!((1..=60).contains(&answer.reset), "{what}: X-RateLimit-Reset {}", answer.reset);
        if let Some(retry_after) = answer.retry_after {
            assert!(retry_after >= 1 && retry_after <= answer.reset, "{what}: Retry-After {retry_after}");
        }
    }
    let first_reset = answers[0].1.reset;
    assert!(
        answers.iter().all(|(_, a)| first_reset.saturating_sub(a.reset) <= 2),
        "one window, one reset time: {answers:?}"
    );
    for instance in 0..INSTANCES {
        let served = |status| answers.iter().filter(|(n, a)| *n == instance && a.status == status).count();
        assert!(served(200) > 0 && served(429) > 0, "instance {instance} both served and refused");
    }
}

/// Waits for the next 60 s window when the current one ends within
/// [`MIN_WINDOW_LEFT_SECS`], as `X-RateLimit-Reset` says. (Windows are aligned
/// to the epoch, so every 60 s limit shares them: asking costs the limited token nothing.)
async fn wait_for_enough_window(cluster: &Cluster, token: &str) {
    let response = cluster.get(0, "/v2/customers?limit=1", token).await;
    let reset = number_header(response.headers(), "x-ratelimit-reset", "a request with the default 60 s limit");
    if reset < MIN_WINDOW_LEFT_SECS {
        println!("rate limit: the window ends in {reset} s; waiting for the next one");
        tokio::time::sleep(Duration::from_secs(reset) + Duration::from_millis(300)).await;
    }
}

/// One response of the rate-limit burst.
#[derive(Debug)]
struct Answer {
    status: u16,
    limit: u64,
    remaining: u64,
    reset: u64,
    retry_after: Option<u64>,
}

impl Answer {
    async fn read(response: Response, n: usize) -> Self {
        let what = format!("rate-limited request {n}");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let answer = Self {
            status,
            limit: number_header(&headers, "x-ratelimit-limit", &what),
            remaining: number_header(&headers, "x-ratelimit-remaining", &what),
            reset: number_header(&headers, "x-ratelimit-reset", &what),
            retry_after: (status == 429).then(|| number_header(&headers, "retry-after", &what)),
        };
        match status {
            200 => drop(expect_json(response, 200, &what).await),
            429 => drop(expect_error(response, 429, "rate_limited", &what).await),
            other => panic!("{what}: status {other}: {}", response.text().await.unwrap_or_default()),
        }
        answer
    }
}

/// Three servers over one fresh database and one Redis; killed, then the database dropped, on drop.
struct Cluster {
    // Declared first: dropped (killed) before the database they use.
    servers: Vec<Server>,
    database: TestDatabase,
    client: Client,
}

impl Cluster {
    async fn start(redis_url: &str) -> Self {
        let database = TestDatabase::postgres_empty().await;
        let args = ["--redis-url", redis_url, "--default-rate-limit", "100000/60s", "--auth-failure-limit", "1000/60s"];
        // All three at the same moment, on an empty database: each migrates and
        // may bootstrap, and all three must come up.
        let mut servers: Vec<Server> =
            (0..INSTANCES).map(|_| Server::spawn(serve_command(&database.url, &args))).collect();
        for server in &mut servers {
            server.wait_listening();
        }
        let cluster = Self { servers, database, client: client() };

        let bootstrapped: Vec<usize> =
            (0..INSTANCES).filter(|&n| cluster.servers[n].bootstrap_token().is_some()).collect();
        assert_eq!(bootstrapped.len(), 1, "exactly one instance bootstraps the empty database: {bootstrapped:?}");
        let accounts: Value = serde_json::from_str(&cluster.admin(&["accounts", "list", "--json"])).expect("JSON");
        assert_eq!(accounts.as_array().map(Vec::len), Some(1), "one default account: {accounts}");
        for n in 0..INSTANCES {
            let (_, ready) = expect_json(cluster.ops(n, "/readyz").await, 200, &format!("/readyz on #{n}")).await;
            assert_eq!(ready["rate_limiter"], "redis", "instance {n} counts in Redis: {ready}");
        }
        cluster
    }

    /// Runs the admin CLI on the cluster's database; returns its stdout.
    fn admin(&self, args: &[&str]) -> String {
        cli(&self.database.url, args)
    }

    fn request(&self, n: usize, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client.request(method, self.servers[n].url(path)).bearer_auth(token)
    }

    fn post(&self, n: usize, path: &str, token: &str, body: &Value) -> RequestBuilder {
        self.request(n, Method::POST, path, token).json(body)
    }

    async fn get(&self, n: usize, path: &str, token: &str) -> Response {
        self.request(n, Method::GET, path, token).send().await.expect("send")
    }

    async fn ops(&self, n: usize, path: &str) -> Response {
        self.client.get(self.servers[n].url(path)).send().await.expect("send")
    }
}
