//! PostgreSQL goes down under a running server and comes back (API.md §4, §7).
//!
//! The test runs its own PostgreSQL (initdb in a temporary directory, as the
//! `postgres` user when run as root, on a free port), starts the real
//! `clientele serve` on it, stops PostgreSQL the hard way (`pg_ctl stop -m
//! immediate`) and checks that every request that needs the database answers
//! `503 service_unavailable` quickly, with `Retry-After` and the JSON envelope,
//! never 500; that `/healthz` stays 200 and `/readyz` says 503; then restarts
//! PostgreSQL on the same port and checks that the same server process serves
//! the old data again within 5 s.
//!
//! It is a `needs_postgres` test, run with the others when asked for (`cargo
//! nextest run --profile ci`, with `CLIENTELE_TEST_DATABASE_URL` set: the switch
//! for every PostgreSQL test; this one needs PostgreSQL's server binaries on
//! PATH, not that server), and it fails when either is missing.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::process::{Server, blocking, cli, serve_command};
use crate::support::{
    DATABASE_URL_VAR, client, expect_error, expect_json, free_port, header, number_header, service_url,
};
use futures_util::future::join_all;
use reqwest::{Client, Method, Response};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

/// Each answer during the outage must come faster than this: well under the
/// pool's 3 s acquire timeout, which every request used to wait.
const OUTAGE_ANSWER_BOUND: Duration = Duration::from_secs(2);
/// API.md §2's bound for a change to reach every instance, and this test's for a recovery.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// The server's token cache TTL (src/http/auth.rs), and a margin under it.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2);
const SURELY_CACHED: Duration = Duration::from_millis(1_500);

/// Needs PostgreSQL: skipped by the default nextest profile.
mod needs_postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_outage_answers_503_fast_and_heals_without_a_restart() {
        service_url(DATABASE_URL_VAR);
        let mut postgres = PrivatePostgres::start().await;
        let database_url = postgres.url();
        let args = ["--default-rate-limit", "100000/60s", "--auth-failure-limit", "1000/60s"];
        let mut server = Server::start(serve_command(&database_url, &args));
        let pid = server.pid();
        let token = server.bootstrap_token().expect("the first start prints a bootstrap token");
        // A second token the server has never seen: during the outage it must be looked up.
        let uncached = cli(&database_url, &["tokens", "create", "--account", "default", "--scope", "write"]);
        let api = Api { client: client(), server: &server };

        // Healthy: a customer to find again after the outage; the token's first use caches it.
        let token_cached_at = Instant::now();
        let (_, created) = expect_json(
            api.send(Method::POST, "/v2/customers", &token, Some(json!({"name": "Ada", "email": "ada@example.com"})))
                .await,
            201,
            "create before the outage",
        )
        .await;
        let id = created["id"].as_str().expect("id").to_owned();
        let customer_path = format!("/v2/customers/{id}");
        let (headers, before) = expect_json(api.get(&customer_path, &token).await, 200, "read before").await;
        assert_eq!(header(&headers, "etag"), Some("\"1\""));
        assert_eq!(api.ops("/readyz").await.status(), 200, "ready before the outage");

        // ---- PostgreSQL dies ----
        let stop_took = postgres.stop_immediately();
        let down_at = Instant::now();
        let mut timings: Vec<(String, Duration)> = Vec::new();

        // A token still in the cache passes authentication; its request fails at the store.
        let cached_age = token_cached_at.elapsed();
        let (response, took) = api.timed(Method::GET, &customer_path, &token, None).await;
        timings.push(("GET (cached token)".into(), took));
        let headers = expect_unavailable(response, "GET with a cached token").await;
        if cached_age < SURELY_CACHED {
            assert!(header(&headers, "x-ratelimit-limit").is_some(), "a cached token passes auth: {headers:?}");
        } else {
            println!("note: the token was {cached_age:?} old, maybe no longer cached: its 503 is checked without that");
        }

        // A token not in the cache: the lookup fails, which is a 503 too, not a 401.
        let (response, took) = api.timed(Method::GET, &customer_path, &uncached, None).await;
        timings.push(("GET (uncached token)".into(), took));
        expect_unavailable(response, "GET with an uncached token").await;

        let v1_body = json!({"name": "Grace", "email": "grace@example.com"});
        let requests = [
            api.request(
                Method::POST,
                "/v2/customers",
                &token,
                Some(json!({"name": "Bob", "email": "bob@example.com"})),
            ),
            api.request(Method::POST, "/v1/customers", &token, Some(v1_body.clone()))
                .header("idempotency-key", "outage-key-1"),
            api.request(
                Method::PUT,
                &customer_path,
                &token,
                Some(json!({"name": "Ada L", "email": "ada@example.com"})),
            ),
            api.request(Method::DELETE, &customer_path, &token, None).header("if-match", "\"1\""),
            api.request(Method::GET, "/v1/customers", &token, None),
            api.request(Method::GET, "/v2/customers?limit=5", &token, None),
            api.request(Method::GET, &format!("/v1/customers/{id}"), &token, None),
        ];
        for request in requests {
            let request = request.build().expect("a valid request");
            let what = format!("{} {} during the outage", request.method(), request.url().path());
            let started = Instant::now();
            let response = api.client.execute(request).await.expect("send");
            timings.push((what.clone(), started.elapsed()));
            expect_unavailable(response, &what).await;
        }

        // Operations: the process is up, but not ready.
        let started = Instant::now();
        let readyz = api.ops("/readyz").await;
        timings.push(("GET /readyz".into(), started.elapsed()));
        expect_unavailable(readyz, "/readyz during the outage").await;
        assert_eq!(api.ops("/healthz").await.status(), 200, "/healthz stays 200 during the outage");
        // What needs no database still answers as usual.
        expect_error(
            api.client.get(server.url("/v2/customers")).send().await.unwrap(),
            401,
            "token_missing",
            "no token",
        )
        .await;

        // A burst of concurrent requests, all 503 and all fast.
        let burst = (0..24).map(|n| {
            let token = if n % 2 == 0 { &token } else { &uncached };
            api.timed(Method::GET, &customer_path, token, None)
        });
        for (n, (response, took)) in join_all(burst).await.into_iter().enumerate() {
            timings.push((format!("burst GET #{n}"), took));
            expect_unavailable(response, &format!("burst GET #{n}")).await;
        }

        // Once the cached entry is stale the token is looked up again: still 503, never 401.
        let stale_at = token_cached_at + TOKEN_CACHE_TTL + Duration::from_millis(200);
        tokio::time::sleep_until(stale_at.into()).await;
        let (response, took) = api.timed(Method::GET, &customer_path, &token, None).await;
        timings.push(("GET (token cache expired)".into(), took));
        expect_unavailable(response, "GET once the token's cache entry expired").await;

        let slowest = timings.iter().max_by_key(|(_, took)| *took).expect("timings").clone();
        let mut sorted: Vec<Duration> = timings.iter().map(|(_, took)| *took).collect();
        sorted.sort();
        println!(
            "outage: pg_ctl stop took {stop_took:?}; {} requests answered 503, median {:?}, slowest {:?} ({})",
            timings.len(),
            sorted[sorted.len() / 2],
            slowest.1,
            slowest.0
        );
        for (what, took) in &timings {
            assert!(*took < OUTAGE_ANSWER_BOUND, "{what} took {took:?} to answer 503 (bound {OUTAGE_ANSWER_BOUND:?})");
        }
        println!("outage 1 lasted {:?} before the restart", down_at.elapsed());

        // ---- PostgreSQL comes back on the same port ----
        restart_and_heal(&api, &mut postgres, &customer_path, &token).await;

        // Healed for good: the old data, no dead pooled connection left to fail a request.
        let (headers, after) = expect_json(api.get(&customer_path, &token).await, 200, "read after").await;
        assert_eq!(after, before, "the customer is unchanged: nothing written during the outage");
        assert_eq!(header(&headers, "etag"), Some("\"1\""));
        for n in 0..20 {
            expect_json(api.get(&customer_path, &token).await, 200, &format!("sequential read #{n} after")).await;
        }
        let burst = (0..20).map(|n| api.get(&customer_path, if n % 2 == 0 { &token } else { &uncached }));
        for (n, response) in join_all(burst).await.into_iter().enumerate() {
            expect_json(response, 200, &format!("concurrent read #{n} after")).await;
        }
        let (_, listed) = expect_json(api.get("/v2/customers", &uncached).await, 200, "list after").await;
        assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "no customer was created during the outage");

        // The POST that got a 503 is retried with its key: created now, once, then replayed.
        let retry = || async {
            api.request(Method::POST, "/v1/customers", &token, Some(v1_body.clone()))
                .header("idempotency-key", "outage-key-1")
                .send()
                .await
                .expect("send")
        };
        let (headers, first) = expect_json(retry().await, 201, "the retried POST").await;
        assert_eq!(header(&headers, "idempotent-replayed"), None, "the 503 stored nothing to replay");
        let (headers, second) = expect_json(retry().await, 201, "the POST retried again").await;
        assert_eq!(header(&headers, "idempotent-replayed"), Some("true"));
        assert_eq!(first, second);

        assert_eq!(api.ops("/readyz").await.status(), 200, "ready again");

        // ---- A second outage, after a quiet second ----
        // Every pooled connection has now been idle long enough to be pinged before
        // use, so a request finds no live one and the pool would retry connecting
        // until its acquire timeout: the breaker must cut that short too. And it
        // opens again after having closed once.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        postgres.stop_immediately();
        let (response, first_took) = api.timed(Method::GET, &customer_path, &token, None).await;
        expect_unavailable(response, "the first GET of the second outage").await;
        let (response, then_took) = api
            .timed(Method::POST, "/v2/customers", &token, Some(json!({"name": "C", "email": "c@example.com"})))
            .await;
        expect_unavailable(response, "a POST in the second outage").await;
        expect_unavailable(api.ops("/readyz").await, "/readyz in the second outage").await;
        println!("outage 2: the first request answered 503 in {first_took:?}, the next in {then_took:?}");
        assert!(first_took < OUTAGE_ANSWER_BOUND, "the first request of the second outage took {first_took:?}");
        assert!(then_took < OUTAGE_ANSWER_BOUND, "a request in the second outage took {then_took:?}");
        restart_and_heal(&api, &mut postgres, &customer_path, &token).await;
        let (_, again) = expect_json(api.get(&customer_path, &token).await, 200, "read after the second outage").await;
        assert_eq!(again, before);
        assert!(server.is_running(), "the server healed without a restart");
        assert_eq!(server.pid(), pid);
        let logs = server.logs();
        assert!(!logs.contains("panicked"), "no panic in the server: {logs}");
    }
}

/// Restarts PostgreSQL and polls the server until it serves `path` again:
/// 503 meanwhile (never 500), 200 within [`RECOVERY_BOUND`] of PostgreSQL
/// accepting connections.
async fn restart_and_heal(api: &Api<'_>, postgres: &mut PrivatePostgres, path: &str, token: &str) {
    let restart_began = Instant::now();
    postgres.restart().await;
    let postgres_ready = Instant::now();
    let mut answers_while_healing = 0;
    let healed_at = loop {
        let response = api.get(path, token).await;
        if response.status() == 200 {
            break Instant::now();
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 503, "GET while PostgreSQL restarts: {body}; logs: {}", api.server.logs());
        answers_while_healing += 1;
        assert!(
            postgres_ready.elapsed() < RECOVERY_BOUND,
            "still 503 {:?} after PostgreSQL was back (bound {RECOVERY_BOUND:?}); logs: {}",
            postgres_ready.elapsed(),
            api.server.logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let recovery = healed_at - postgres_ready;
    println!(
        "recovery: PostgreSQL took {:?} to restart; the server answered 200 {recovery:?} after it accepted \
         connections ({answers_while_healing} 503s meanwhile), {:?} after the restart began",
        postgres_ready - restart_began,
        healed_at - restart_began
    );
    assert!(recovery < RECOVERY_BOUND, "recovered in {recovery:?}");
}

/// Asserts the outage answer of API.md §4: 503 `service_unavailable` with the
/// envelope and a small `Retry-After`; returns the headers.
async fn expect_unavailable(response: Response, what: &str) -> reqwest::header::HeaderMap {
    let status = response.status().as_u16();
    assert_ne!(status, 500, "{what}: 500 instead of 503: {}", response.text().await.unwrap_or_default());
    let (headers, error) = expect_error(response, 503, "service_unavailable", what).await;
    let retry_after = number_header(&headers, "retry-after", what);
    assert!((1..=5).contains(&retry_after), "{what}: Retry-After {retry_after} s is not a small honest number");
    let message = error["message"].as_str().unwrap_or_default();
    for internal in ["127.0.0.1", "sqlx", "os error", "PoolTimedOut", "circuit"] {
        assert!(!message.contains(internal), "{what}: the message shows internals: {message}");
    }
    headers
}

/// The HTTP client and the server it talks to.
struct Api<'a> {
    client: Client,
    server: &'a Server,
}

impl Api<'_> {
    fn request(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> reqwest::RequestBuilder {
        let request = self.client.request(method, self.server.url(path)).bearer_auth(token);
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    }

    async fn send(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Response {
        self.request(method, path, token, body).send().await.expect("send")
    }

    async fn timed(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (Response, Duration) {
        let started = Instant::now();
        let response = self.send(method, path, token, body).await;
        (response, started.elapsed())
    }

    async fn get(&self, path: &str, token: &str) -> Response {
        self.send(Method::GET, path, token, None).await
    }

    async fn ops(&self, path: &str) -> Response {
        self.client.get(self.server.url(path)).send().await.expect("send")
    }
}

/// A PostgreSQL server of this test's own, in a temporary directory, on a
/// free port; stopped (immediately) and removed when dropped.
struct PrivatePostgres {
    dir: TempDir,
    port: u16,
    /// `Some((uid, gid))` of the `postgres` user when the test runs as root (PostgreSQL refuses root).
    user: Option<(u32, u32)>,
    postmaster: Option<Child>,
}

impl PrivatePostgres {
    /// Panics, saying what is missing, when PostgreSQL's binaries or, as root, the `postgres` user are.
    async fn start() -> Self {
        for binary in ["initdb", "postgres", "pg_ctl"] {
            if !Command::new(binary).arg("--version").output().is_ok_and(|output| output.status.success()) {
                panic!(
                    "`{binary}` (PostgreSQL's server binaries) is not on PATH; this test runs a PostgreSQL of its own"
                );
            }
        }
        let user = if id(&["-u"]) == Some(0) {
            match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
                (Some(uid), Some(gid)) => Some((uid, gid)),
                _ => panic!("running as root, and there is no `postgres` user to run PostgreSQL as"),
            }
        } else {
            None
        };
        let dir = tempfile::Builder::new().prefix("clientele-pg-outage-").tempdir().expect("temp dir");
        if let Some((uid, gid)) = user {
            let chown = Command::new("chown").arg(format!("{uid}:{gid}")).arg(dir.path()).status();
            assert!(chown.is_ok_and(|status| status.success()), "chown the temp dir to postgres");
        }
        let mut postgres = Self { port: free_port(), dir, user, postmaster: None };
        let initdb = blocking(|| {
            postgres
                .as_postgres("initdb")
                .arg("-D")
                .arg(postgres.data())
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
                .output()
        })
        .expect("run initdb");
        assert!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
        // A port is free when chosen but may be taken before PostgreSQL binds it: then another.
        for attempt in 1..=5 {
            match postgres.try_start().await {
                Ok(()) => return postgres,
                Err(log) if attempt < 5 && log.contains("could not bind") => postgres.port = free_port(),
                Err(log) => panic!("PostgreSQL did not start; its log: {log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A PostgreSQL program, run as the `postgres` user if we are root.
    fn as_postgres(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid).env("HOME", self.dir.path()).env("USER", "postgres");
        }
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        command
    }

    /// Starts the postmaster again on the same port and waits until it accepts connections.
    async fn restart(&mut self) {
        if let Err(log) = self.try_start().await {
            panic!("PostgreSQL did not start again on port {}; its log: {log}", self.port);
        }
    }

    /// Starts the postmaster (a child of this test, so it dies with it) and waits until it
    /// accepts connections; `Err` with its log if it exits first.
    async fn try_start(&mut self) -> Result<(), String> {
        assert!(self.postmaster.is_none(), "already running");
        let log = File::options().create(true).append(true).open(self.log_path()).expect("PostgreSQL log file");
        let socket_dir = self.dir.path().display().to_string();
        let mut command = self.as_postgres("postgres");
        command.arg("-D").arg(self.data());
        for setting in [
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={}", self.port),
            format!("unix_socket_directories={socket_dir}"),
            // Fast, and still safe here: an immediate stop is a crash of PostgreSQL, not of the
            // machine, so what was written reaches the disk anyway. (synchronous_commit=off would
            // not be: the last commits would be lost with the WAL buffers.)
            "fsync=off".to_owned(),
            "full_page_writes=off".to_owned(),
            "max_connections=50".to_owned(),
            "shared_buffers=16MB".to_owned(),
        ] {
            command.arg("-c").arg(setting);
        }
        command.stdout(log.try_clone().expect("log file")).stderr(log);
        self.postmaster = Some(command.spawn().expect("start postgres"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(connection) = PgConnection::connect(&self.url()).await {
                connection.close().await.ok();
                return Ok(());
            }
            if let Some(status) = self.postmaster.as_mut().and_then(|child| child.try_wait().ok().flatten()) {
                self.postmaster = None;
                return Err(format!("postgres exited at start ({status}): {}", self.log()));
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not accept connections in 30 s; log: {}", self.log());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `pg_ctl stop -m immediate`: no checkpoint, connections cut, as in a crash. Returns how long it took.
    fn stop_immediately(&mut self) -> Duration {
        let started = Instant::now();
        let data = self.data();
        let stopped = blocking(|| {
            self.as_postgres("pg_ctl").arg("stop").arg("-D").arg(&data).args(["-m", "immediate", "-w"]).output()
        })
        .expect("run pg_ctl");
        assert!(stopped.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&stopped.stderr));
        if let Some(mut postmaster) = self.postmaster.take() {
            blocking(|| postmaster.wait()).expect("reap the postmaster");
        }
        started.elapsed()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let Some(mut postmaster) = self.postmaster.take() else { return };
        let data = self.data();
        let stopped = self.as_postgres("pg_ctl").arg("stop").arg("-D").arg(&data).args(["-m", "immediate"]).output();
        if !stopped.is_ok_and(|output| output.status.success()) {
            let _ = postmaster.kill();
        }
        let _ = postmaster.wait();
        remove_quietly(self.dir.path());
    }
}

/// Files a still-exiting backend may hold open can make the TempDir's own removal fail; retry once.
fn remove_quietly(path: &Path) {
    if std::fs::remove_dir_all(path).is_err() {
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(path);
    }
}

/// `id ARGS` as a number.
fn id(args: &[&str]) -> Option<u32> {
    let output = Command::new("id").args(args).output().ok()?;
    String::from_utf8(output.stdout).ok()?.trim().parse().ok()
}
