//! Every request ends in bounded time (issue 18, `serve --request-timeout`).
//!
//! A customer's row is held by another database session, as a manual fix in
//! psql or a long migration would hold it (PostgreSQL: `BEGIN; SELECT ... FOR
//! UPDATE`; SQLite: `BEGIN IMMEDIATE`, the file's write lock), while 20
//! clients `PUT` that customer at once against the real `clientele serve`
//! started with `--request-timeout 3s`. Checked:
//!
//! * every waiting `PUT` is answered `503 service_unavailable` with
//!   `Retry-After`, in the JSON envelope, within the deadline;
//! * meanwhile, other customers' reads (and, on PostgreSQL, writes) and
//!   `/readyz` keep answering within normal time: the locked row does not
//!   take the pool with it;
//! * once the lock is released, none of the 503'd writes is applied (the
//!   version is unchanged, checked in the database itself), and the next
//!   write succeeds.
//!
//! The PostgreSQL test is a `needs_postgres` one (`CLIENTELE_TEST_DATABASE_URL`).

use std::time::{Duration, Instant};

use crate::support::database::TestDatabase;
use crate::support::process::{Server, command, serve_command};
use crate::support::{DATABASE_URL_VAR, client, expect_error, expect_json, header, service_url};
use futures_util::future::join_all;
use reqwest::Client;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};

/// The server's `--request-timeout` in these tests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Slack on top of a deadline for a loaded CI machine (the client's clock, the loopback).
const SLACK: Duration = Duration::from_millis(700);
/// What "normal time" means for another customer's request on a shared CI
/// machine: far below the deadline, which a request starved of connections would reach.
const NORMAL: Duration = Duration::from_millis(1_000);
const WAITING_WRITERS: usize = 20;

struct Api {
    client: Client,
    token: String,
    base: String,
}

impl Api {
    fn new(server: &Server) -> Self {
        let token = server.bootstrap_token().expect("the first start prints a token");
        Self { client: client(), token, base: server.url("") }
    }

    async fn create(&self, name: &str) -> Value {
        let response = self
            .client
            .post(format!("{}/v2/customers", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"name": name, "email": format!("{name}@example.com")}))
            .send()
            .await
            .expect("POST");
        expect_json(response, 201, "create a customer").await.1
    }

    async fn put(&self, id: &str, name: &str) -> reqwest::Response {
        self.client
            .put(format!("{}/v2/customers/{id}", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"name": name, "email": format!("{name}@example.com")}))
            .send()
            .await
            .expect("PUT")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.expect("GET")
    }
}

/// The other work of the instance while the row is held: another customer's
/// GET (and PUT when `writes_too`) and `/readyz`, again and again until
/// `until`; returns the slowest answer of each kind.
async fn other_work(api: &Api, other_id: &str, writes_too: bool, until: Instant) -> Vec<(&'static str, Duration)> {
    let mut slowest = vec![("GET another customer", Duration::ZERO), ("/readyz", Duration::ZERO)];
    if writes_too {
        slowest.push(("PUT another customer", Duration::ZERO));
    }
    let mut round = 0;
    while Instant::now() < until {
        round += 1;
        let started = Instant::now();
        expect_json(api.get(&format!("/v2/customers/{other_id}")).await, 200, "GET another customer").await;
        slowest[0].1 = slowest[0].1.max(started.elapsed());
        let started = Instant::now();
        expect_json(api.get("/readyz").await, 200, "/readyz").await;
        slowest[1].1 = slowest[1].1.max(started.elapsed());
        if writes_too {
            let started = Instant::now();
            expect_json(api.put(other_id, &format!("other{round}")).await, 200, "PUT another customer").await;
            slowest[2].1 = slowest[2].1.max(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(round >= 3, "the other work ran while the row was held ({round} rounds)");
    slowest
}

/// 20 PUTs of the held customer, while other work runs; asserts the answers.
async fn put_the_held_row(api: &Api, held_id: &str, other_id: &str, other_writes: bool) {
    let started = Instant::now();
    let writers = join_all((0..WAITING_WRITERS).map(|n| async move {
        let response = api.put(held_id, &format!("waiting{n}")).await;
        (started.elapsed(), response)
    }));
    let other = other_work(api, other_id, other_writes, started + REQUEST_TIMEOUT + SLACK);
    let (answers, slowest) = tokio::join!(writers, other);
    for (elapsed, response) in answers {
        assert!(elapsed < REQUEST_TIMEOUT + SLACK, "a waiting PUT was answered after {elapsed:?}");
        let (headers, _) = expect_error(response, 503, "service_unavailable", "a PUT of the held row").await;
        assert!(header(&headers, "retry-after").is_some_and(|value| value.parse::<u64>().is_ok()), "{headers:?}");
        assert!(header(&headers, "x-ratelimit-limit").is_some(), "an authenticated 503 has its rate-limit headers");
    }
    for (what, elapsed) in slowest {
        assert!(elapsed < NORMAL, "{what} took {elapsed:?} while a row was held");
    }
}

fn serve(database_url: &str) -> Server {
    let timeout = format!("{}s", REQUEST_TIMEOUT.as_secs());
    Server::start(serve_command(database_url, &["--request-timeout", &timeout, "--default-rate-limit", "100000/60s"]))
}

/// Needs PostgreSQL: skipped by the default nextest profile.
mod needs_postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_row_held_on_postgres_delays_only_its_own_writes_and_none_is_applied_after_its_503() {
        service_url(DATABASE_URL_VAR);
        let database = TestDatabase::postgres().await;
        let server = serve(&database.url);
        let api = Api::new(&server);
        let held = api.create("held").await;
        let other = api.create("other").await;
        let held_id = held["id"].as_str().unwrap();

        let mut session = PgConnection::connect_with(&database.pg_options()).await.expect("a session of our own");
        session.execute("BEGIN").await.unwrap();
        sqlx::query("SELECT id FROM customers WHERE id = $1 FOR UPDATE")
            .bind(held_id)
            .fetch_one(&mut session)
            .await
            .expect("hold the row");

        put_the_held_row(&api, held_id, other["id"].as_str().unwrap(), true).await;

        // Nothing of the 503'd writes waits in the database any more ...
        let mut observer = PgConnection::connect_with(&database.pg_options()).await.unwrap();
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut observer)
        .await
        .unwrap();
        assert_eq!(waiting, 0, "no statement of the server still waits for the row");
        // ... so releasing the row applies none of them.
        session.execute("ROLLBACK").await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (version, name): (i64, String) = sqlx::query_as("SELECT version, name FROM customers WHERE id = $1")
            .bind(held_id)
            .fetch_one(&mut observer)
            .await
            .unwrap();
        assert_eq!((version, name.as_str()), (1, "held"), "no write answered 503 was applied");

        let (_, after) = expect_json(api.put(held_id, "after").await, 200, "a PUT once the row is free").await;
        assert_eq!(after["version"], 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_file_locked_by_another_process_delays_only_writes_and_none_is_applied_after_its_503() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let server = serve(&TestDatabase::sqlite(dir.path(), "locked.db").url);
    let api = Api::new(&server);
    let held = api.create("held").await;
    let other = api.create("other").await;
    let held_id = held["id"].as_str().unwrap();

    // Another connection takes the file's write lock, as the admin CLI or a manual fix would.
    let session = rusqlite::Connection::open(&path).unwrap();
    session.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");

    // SQLite has one write lock per file: every write waits, reads do not.
    put_the_held_row(&api, held_id, other["id"].as_str().unwrap(), false).await;

    session.execute_batch("ROLLBACK").unwrap();
    // The writer thread has refused every queued write past its deadline; give it a moment to prove it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (version, name): (i64, String) = session
        .query_row("SELECT version, name FROM customers WHERE id = ?1", [held_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap();
    assert_eq!((version, name.as_str()), (1, "held"), "no write answered 503 was applied");

    let (_, after) = expect_json(api.put(held_id, "after").await, 200, "a PUT once the file is free").await;
    assert_eq!(after["version"], 2);
}

#[test]
fn request_timeout_takes_a_duration_of_at_least_one_second() {
    for bad in ["0s", "10", "500ms", "1.5s", "ten"] {
        let output = command().args(["serve", "--request-timeout", bad]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "--request-timeout {bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--request-timeout"), "{stderr}");
    }
    let output = command().env("CLIENTELE_REQUEST_TIMEOUT", "0s").arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "the environment variable is checked too");
}
