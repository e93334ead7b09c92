//! `tokens usage` (API.md §7): requests per token and UTC day, by status
//! class, counted in memory and added to the database by each instance at
//! least once a minute and at graceful shutdown, never once per request.

use clientele::admin;
use clientele::config::ServerConfig;
use clientele::domain::Scope;
use clientele::domain::time::now_unix;
use clientele::ratelimit::{RateLimit, RateLimiter};
use clientele::usage::SECONDS_PER_DAY;
use reqwest::Method;
use serde_json::json;

use crate::support::TestApp;
use crate::support::process::{cli, command};

#[tokio::test]
async fn requests_are_counted_by_class_in_memory_and_written_at_shutdown() {
    let app = TestApp::spawn_with_config(ServerConfig::default()).await;
    let limit = Some(RateLimit { limit: 5, window_secs: 3600 });
    let (secret, record) = admin::issue_token(&app.store, "default", Scope::Read, limit).await.unwrap();
    let token = secret.expose().to_owned();
    let statuses = [
        (Method::GET, "/v2/customers"),                                // 200
        (Method::GET, "/v2/customers/cus_01M8PAAAAAAAAAAAAAAAAAAAA1"), // 404
        (Method::POST, "/v2/customers"),                               // 403 scope
        (Method::GET, "/v1/customers"),                                // 200
        (Method::GET, "/v2/customers"),                                // 200 (5th: the limit)
        (Method::GET, "/v2/customers"),                                // 429
        (Method::GET, "/v2/customers"),                                // 429
    ];
    for (method, path) in statuses {
        let request = app.request_as(&token, method.clone(), path);
        let request =
            if method == Method::POST { request.json(&json!({"name": "A", "email": "a@b.co"})) } else { request };
        request.send().await.unwrap();
    }
    let today = now_unix().div_euclid(SECONDS_PER_DAY);
    assert!(
        app.store.list_usage(None, Some(&record.id), today).await.unwrap().is_empty(),
        "nothing written per request"
    );
    let (store, _dir) = app.stop().await;
    let rows = store.list_usage(None, Some(&record.id), today).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].day, rows[0].counts), (today, [3, 0, 2, 2, 0]), "2xx, 3xx, 4xx, 429, 5xx");
}

#[tokio::test]
async fn counts_of_several_flushes_and_instances_add_up() {
    let first = TestApp::spawn().await;
    let second = first.spawn_beside(RateLimiter::in_memory()).await;
    let (secret, record) = admin::issue_token(&first.store, "default", Scope::Read, None).await.unwrap();
    for app in [&first, &second] {
        for _ in 0..3 {
            assert_eq!(
                app.request_as(secret.expose(), Method::GET, "/v2/customers").send().await.unwrap().status(),
                200
            );
        }
    }
    let store = first.store.clone();
    second.stop().await;
    first.stop().await;
    let today = now_unix().div_euclid(SECONDS_PER_DAY);
    let rows = store.list_usage(None, Some(&record.id), today).await.unwrap();
    assert_eq!(rows.iter().map(|row| row.counts[0]).sum::<u64>(), 6, "{rows:?}");
}

#[tokio::test]
async fn tokens_usage_prints_per_token_and_day() {
    let app = TestApp::spawn().await;
    let (secret, record) = admin::issue_token(&app.store, "default", Scope::Read, None).await.unwrap();
    for _ in 0..2 {
        app.request_as(secret.expose(), Method::GET, "/v2/customers").send().await.unwrap();
    }
    app.request_as(secret.expose(), Method::GET, "/v2/customers/cus_01M8PAAAAAAAAAAAAAAAAAAAA1").send().await.unwrap();
    let url = app.database_url.clone();
    let (_store, dir) = app.stop().await;
    // The CLI reads what the server wrote when it stopped.
    let rows: serde_json::Value =
        serde_json::from_str(&cli(&url, &["tokens", "usage", record.id.as_str(), "--json"])).expect("JSON");
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let row = &rows[0];
    assert_eq!(row["token_id"], record.id.as_str());
    assert_eq!(row["account"], "default");
    assert_eq!(row["requests"], 3);
    assert_eq!(row["by_status"], json!({"2xx": 2, "3xx": 0, "4xx": 1, "429": 0, "5xx": 0}));
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(row["day"], today.as_str());
    let table = cli(&url, &["tokens", "usage", "--account", "default"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TOKEN", "ACCOUNT", "NAME", "DAY", "REQUESTS", "2XX", "3XX", "4XX", "429", "5XX"]);
    assert!(table.lines().any(|line| line.starts_with(record.id.as_str()) && line.contains(&today)), "{table}");
    let output = command().args(["--database-url", &url, "tokens", "usage", "tok_00000000000000000000000000"]).output();
    assert_eq!(output.expect("run").status.code(), Some(1));
    drop(dir);
}

#[tokio::test]
async fn a_running_server_writes_its_counts_at_least_once_a_minute() {
    let app = TestApp::spawn().await;
    let (secret, record) = admin::issue_token(&app.store, "default", Scope::Read, None).await.unwrap();
    assert_eq!(app.request_as(secret.expose(), Method::GET, "/v2/customers").send().await.unwrap().status(), 200);
    let started = std::time::Instant::now();
    let today = now_unix().div_euclid(SECONDS_PER_DAY);
    loop {
        let rows = app.store.list_usage(None, Some(&record.id), today).await.unwrap();
        if let Some(row) = rows.first() {
            assert_eq!(row.counts, [1, 0, 0, 0, 0]);
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "nothing written within a minute");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(started.elapsed() <= clientele::usage::FLUSH_INTERVAL + std::time::Duration::from_secs(2));
}
