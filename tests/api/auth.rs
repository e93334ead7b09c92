//! Authentication, scopes, tenant isolation and revocation (API.md §2), and the failed-auth limit (§5).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::database::open_store_at;
use crate::support::{TestApp, assert_error, header, leave_room_in_window};
use clientele::admin;
use clientele::config::ServerConfig;
use clientele::domain::Scope;
use clientele::ratelimit::{RateLimit, RateLimiter};
use rand::distr::{Alphanumeric, SampleString};
use reqwest::{Method, Response};
use serde_json::{Value, json};

/// A well-formed token that was never issued.
fn guessed_token() -> String {
    format!("clt_{}", Alphanumeric.sample_string(&mut rand::rng(), 32))
}

async fn send(app: &TestApp, method: Method, path: &str, authorization: Option<&str>) -> Response {
    let mut request = app.client.request(method.clone(), app.url(path));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if matches!(method, Method::POST | Method::PUT) {
        request = request.json(&json!({"name": "Mallory", "email": "mallory@example.com"}));
    }
    request.send().await.expect("request")
}

/// A 401 with the envelope and `WWW-Authenticate: Bearer...`.
async fn assert_unauthorized(response: Response, code: &str) -> Value {
    let challenge = header(&response, "www-authenticate").expect("a 401 carries WWW-Authenticate");
    assert!(challenge.starts_with("Bearer"), "WWW-Authenticate: {challenge}");
    let error = assert_error(response, 401, code).await;
    assert!(error.get("param").is_none(), "{error}");
    error
}

// ---- 401 ----

#[tokio::test]
async fn no_authorization_is_token_missing() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::GET, "/v1/customers"),
        (Method::GET, "/v2/customers"),
        (Method::GET, "/v2/customers/cus_x"),
        (Method::POST, "/v1/customers"),
        (Method::POST, "/v2/customers"),
        (Method::DELETE, "/v1/customers/cus_x"),
    ] {
        let response = send(&app, method, path, None).await;
        assert_unauthorized(response, "token_missing").await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0, "nothing was created without a token");
}

#[tokio::test]
async fn wrong_scheme_malformed_and_unknown_tokens_are_token_invalid() {
    // More failures than the default failed-auth limit allows: raise it for this test.
    let config = ServerConfig { auth_failure_limit: RateLimit { limit: 1000, window_secs: 60 }, ..Default::default() };
    let app = TestApp::spawn_with_config(config).await;
    let valid = app.token.clone();
    let authorizations = [
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        format!("Basic {valid}"),
        format!("Token {valid}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer not-a-token".to_owned(),
        "Bearer clt_short".to_owned(),
        format!("Bearer {valid}x"),
        format!("Bearer {}", &valid[..valid.len() - 1]),
        format!("Bearer {}", valid.to_ascii_uppercase()),
        format!("Bearer xyz_{}", &valid[4..]),
        format!("Bearer {}", guessed_token()),
        format!("Bearer {}", guessed_token()),
        valid.clone(),
    ];
    for authorization in &authorizations {
        for path in ["/v1/customers", "/v2/customers"] {
            let response = send(&app, Method::GET, path, Some(authorization)).await;
            let error = assert_unauthorized(response, "token_invalid").await;
            let message = error["message"].as_str().unwrap();
            assert!(!message.contains(&valid[4..]), "the presented token is not echoed: {message}");
        }
    }
    // The real token still works (scheme is case-insensitive, per RFC 7235).
    for authorization in [format!("Bearer {valid}"), format!("bearer {valid}")] {
        let response = send(&app, Method::GET, "/v1/customers", Some(&authorization)).await;
        assert_eq!(response.status(), 200, "{authorization}");
    }
}

#[tokio::test]
async fn a_revoked_token_is_token_invalid() {
    let app = TestApp::spawn().await;
    let (secret, record) = admin::issue_token(&app.store, "default", Scope::Write, None).await.unwrap();
    admin::revoke_token(&app.store, record.id.as_str()).await.unwrap();
    for path in ["/v1/customers", "/v2/customers"] {
        let response = app.request_as(secret.expose(), Method::GET, path).send().await.unwrap();
        assert_unauthorized(response, "token_invalid").await;
    }
    let response = app
        .request_as(secret.expose(), Method::POST, "/v2/customers")
        .json(&json!({"name": "A", "email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    assert_unauthorized(response, "token_invalid").await;
    assert_eq!(app.v1_total(&app.token).await, 0);
}

// ---- Token format ----

#[tokio::test]
async fn issued_tokens_have_the_prefix_and_128_bits_of_randomness() {
    let app = TestApp::spawn().await;
    let mut tokens = BTreeSet::new();
    let mut alphabet = BTreeSet::new();
    for _ in 0..40 {
        let token = app.issue_token("default", Scope::Read, None).await;
        let random = token.strip_prefix("clt_").unwrap_or_else(|| panic!("token without clt_: {token}"));
        assert!(random.len() >= 32, "at least 32 random characters: {token}");
        assert!(random.bytes().all(|b| b.is_ascii_alphanumeric()), "alphanumeric: {token}");
        alphabet.extend(random.bytes());
        assert!(tokens.insert(token), "tokens are unique");
    }
    // 32 characters of a 62-letter alphabet is about 190 bits; check the alphabet is really used.
    assert!(alphabet.iter().any(u8::is_ascii_lowercase));
    assert!(alphabet.iter().any(u8::is_ascii_uppercase));
    assert!(alphabet.iter().any(u8::is_ascii_digit));
    assert!(alphabet.len() >= 50, "only {} distinct characters in 1280", alphabet.len());

    // The store never holds the secret itself.
    let (secret, record) = admin::issue_token(&app.store, "default", Scope::Write, None).await.unwrap();
    assert!(secret.expose().starts_with(&record.prefix) && record.prefix.len() < 16, "prefix {}", record.prefix);
    assert!(!format!("{record:?}").contains(&secret.expose()[4..]), "the record does not contain the secret");
    let listed = app.store.list_tokens(None).await.unwrap();
    assert!(listed.iter().any(|t| t.id == record.id));
    assert!(!format!("{listed:?}").contains(&secret.expose()[4..]));
}

// ---- Scope ----

#[tokio::test]
async fn a_read_token_can_only_read() {
    let app = TestApp::spawn().await;
    let created = app.create_customer("Ada", "ada@example.com").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let read = app.issue_token("default", Scope::Read, None).await;

    for path in [
        "/v1/customers".to_owned(),
        "/v2/customers".to_owned(),
        format!("/v1/customers/{id}"),
        format!("/v2/customers/{id}"),
    ] {
        let response = app.request_as(&read, Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path} with a read token");
    }

    for version in ["v1", "v2"] {
        let cases = [
            (Method::POST, format!("/{version}/customers")),
            (Method::PUT, format!("/{version}/customers/{id}")),
            (Method::DELETE, format!("/{version}/customers/{id}")),
            (Method::PUT, format!("/{version}/customers/cus_missing")),
            (Method::DELETE, format!("/{version}/customers/cus_missing")),
        ];
        for (method, path) in cases {
            let response = send(&app, method.clone(), &path, Some(&format!("Bearer {read}"))).await;
            let error = assert_error(response, 403, "scope_insufficient").await;
            assert!(error.get("param").is_none(), "{method} {path}: {error}");
        }
        // Scope is checked before the body: even a malformed body gets 403.
        let response = app
            .request_as(&read, Method::POST, &format!("/{version}/customers"))
            .header("content-type", "text/plain")
            .body("{")
            .send()
            .await
            .unwrap();
        assert_error(response, 403, "scope_insufficient").await;
    }

    // Nothing was written.
    let response = app.get(&format!("/v2/customers/{id}")).await;
    assert_eq!(response.status(), 200);
    let now: Value = response.json().await.unwrap();
    assert_eq!(now, created, "the customer is untouched");
    assert_eq!(app.v1_total(&app.token).await, 1, "nothing was created");
}

// ---- Tenant isolation ----

/// Everything of an error but the request id, with `id` replaced by a placeholder.
fn shape(error: &Value, id: &str) -> Value {
    let mut error = error.clone();
    let object = error.as_object_mut().unwrap();
    object.remove("request_id");
    let message = object["message"].as_str().unwrap().replace(id, "<id>");
    object.insert("message".into(), Value::String(message));
    error
}

async fn not_found_shape(response: Response, id: &str) -> (Vec<(String, String)>, Value) {
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            // `ratelimit` carries the same moving numbers as the two X- headers.
            !matches!(
                name.as_str(),
                "x-request-id" | "date" | "x-ratelimit-remaining" | "x-ratelimit-reset" | "ratelimit"
            )
        })
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let error = assert_error(response, 404, "resource_not_found").await;
    (headers, shape(&error, id))
}

#[tokio::test]
async fn another_accounts_customer_is_not_found_like_a_missing_one() {
    let app = TestApp::spawn().await;
    let created = app.create_customer("Ada", "ada@example.com").await;
    let id = created["id"].as_str().unwrap().to_owned();
    // An id that never existed, of the same shape and length.
    let missing = format!("cus_{}", "0".repeat(id.len() - 4));
    assert_eq!(missing.len(), id.len());
    let other = app.issue_token("other", Scope::Write, None).await;

    for version in ["v1", "v2"] {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let foreign =
                send(&app, method.clone(), &format!("/{version}/customers/{id}"), Some(&format!("Bearer {other}")))
                    .await;
            let never = send(
                &app,
                method.clone(),
                &format!("/{version}/customers/{missing}"),
                Some(&format!("Bearer {other}")),
            )
            .await;
            let foreign = not_found_shape(foreign, &id).await;
            let never = not_found_shape(never, &missing).await;
            assert_eq!(foreign, never, "{method} /{version}: a foreign id looks exactly like a missing one");
        }
    }
    // With If-Match, a foreign customer answers exactly as one that never existed: If-Match is
    // false on both (412, API.md §3), whether or not it names the foreign customer's real ETag.
    for method in [Method::PUT, Method::DELETE] {
        for tag in ["\"1\"", "\"7\""] {
            let attempt = |path: String| {
                app.request_as(&other, method.clone(), &path)
                    .header("if-match", tag)
                    .json(&json!({"name": "Mallory", "email": "mallory@example.com"}))
                    .send()
            };
            let foreign = attempt(format!("/v2/customers/{id}")).await.unwrap();
            let never = attempt(format!("/v2/customers/{missing}")).await.unwrap();
            let foreign = assert_error(foreign, 412, "precondition_failed").await;
            let never = assert_error(never, 412, "precondition_failed").await;
            assert_eq!(
                (&foreign["message"], &foreign["param"]),
                (&never["message"], &never["param"]),
                "{method} {tag}"
            );
        }
    }

    // The owner's customer is untouched.
    let response = app.get(&format!("/v2/customers/{id}")).await;
    assert_eq!(response.status(), 200);
    let now: Value = response.json().await.unwrap();
    assert_eq!(now, created);
}

#[tokio::test]
async fn lists_show_only_the_accounts_own_customers() {
    let app = TestApp::spawn().await;
    let mut own_a = Vec::new();
    for i in 0..3 {
        own_a.push(app.create_customer("Ada", &format!("ada{i}@example.com")).await["id"].as_str().unwrap().to_owned());
    }
    let other = app.issue_token("other", Scope::Write, None).await;
    let response = app
        .request_as(&other, Method::POST, "/v2/customers")
        .json(&json!({"name": "Bob", "email": "ada0@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let own_b = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    // v1: data and total.
    let response = app.request_as(&other, Method::GET, "/v1/customers").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["total"], 1, "{body}");
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [own_b.as_str()]);
    assert_eq!(app.v1_total(&app.token).await, 3);

    // v2: data, also with an email filter and a cursor at another account's id.
    for query in
        ["", "?email=ada0@example.com", "?email=ADA1@example.com", "?limit=1", &format!("?starting_after={}", own_a[0])]
    {
        let response = app.request_as(&other, Method::GET, &format!("/v2/customers{query}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{query}");
        let body: Value = response.json().await.unwrap();
        let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        for id in &ids {
            assert_eq!(*id, own_b, "B's list {query} shows only B's customers: {body}");
        }
        assert_eq!(body["has_more"], false, "{query}: {body}");
    }
    let response = app.get("/v2/customers?limit=100").await;
    let body: Value = response.json().await.unwrap();
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, own_a.iter().map(String::as_str).collect::<Vec<_>>());
}

// ---- Revocation ----

#[tokio::test]
async fn a_revoked_token_stops_working_within_5_seconds() {
    let app = TestApp::spawn().await;
    let (secret, record) = admin::issue_token(&app.store, "default", Scope::Write, None).await.unwrap();
    let token = secret.expose().to_owned();
    // Used successfully (and so cached by the server) just before the revocation.
    for path in ["/v1/customers", "/v2/customers", "/v1/customers"] {
        let response = app.request_as(&token, Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(app.store.list_tokens(None).await.unwrap().iter().any(|t| t.id == record.id));
    // The account's other token is in use too (so the failed-auth limit, which the
    // revoked token's 401s will reach, does not refuse it: see the tests below).
    assert_eq!(app.v1_total(&app.token).await, 0);

    admin::revoke_token(&app.store, record.id.as_str()).await.unwrap();
    let revoked_at = Instant::now();
    loop {
        let response = app.request_as(&token, Method::GET, "/v2/customers").send().await.unwrap();
        if response.status() == 401 {
            assert_unauthorized(response, "token_invalid").await;
            break;
        }
        assert_eq!(response.status(), 200, "until revocation is seen the token works");
        assert!(revoked_at.elapsed() < Duration::from_secs(6), "still accepted after 6 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = revoked_at.elapsed();
    assert!(elapsed < Duration::from_secs(5), "revocation took {elapsed:?}");

    // And stays revoked, across more than one cache period, for reads and writes.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for (method, path) in [(Method::GET, "/v1/customers"), (Method::POST, "/v2/customers")] {
            let response = send(&app, method, path, Some(&format!("Bearer {token}"))).await;
            assert_unauthorized(response, "token_invalid").await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0, "the revoked token created nothing");
    // Other tokens of the account are unaffected.
    assert_eq!(app.get("/v2/customers").await.status(), 200);
}

#[tokio::test]
async fn a_revoked_token_stops_working_on_every_instance_within_5_seconds() {
    // Two servers over one database, each with its own store and token cache.
    let first = TestApp::spawn().await;
    let store = open_store_at(&first.database_url).await;
    let second =
        TestApp::spawn_on(store, tempfile::tempdir().unwrap(), ServerConfig::default(), RateLimiter::in_memory()).await;

    let (secret, record) = admin::issue_token(&first.store, "default", Scope::Read, None).await.unwrap();
    let token = secret.expose().to_owned();
    for app in [&first, &second] {
        let response = app.request_as(&token, Method::GET, "/v2/customers").send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    admin::revoke_token(&first.store, record.id.as_str()).await.unwrap();
    let revoked_at = Instant::now();
    let mut pending = vec![&first, &second];
    while !pending.is_empty() {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "still accepted after 5 s by {} instance(s)",
            pending.len()
        );
        let mut still = Vec::new();
        for app in pending {
            let response = app.request_as(&token, Method::GET, "/v1/customers").send().await.unwrap();
            match response.status().as_u16() {
                200 => still.push(app),
                _ => {
                    assert_unauthorized(response, "token_invalid").await;
                }
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for app in [&first, &second] {
        let response = app.request_as(&token, Method::GET, "/v1/customers").send().await.unwrap();
        assert_unauthorized(response, "token_invalid").await;
    }
}

// ---- Failed-auth limit ----

fn limited_app_config() -> ServerConfig {
    ServerConfig { auth_failure_limit: RateLimit { limit: 5, window_secs: 60 }, ..Default::default() }
}

#[tokio::test]
async fn repeated_failed_auth_is_rate_limited_but_a_known_token_still_works() {
    let app = TestApp::spawn_with_config(limited_app_config()).await;
    leave_room_in_window(60, Duration::from_secs(5)).await;
    let known = app.token.clone();

    // Successful requests do not count as failures.
    for _ in 0..8 {
        assert_eq!(app.request_as(&known, Method::GET, "/v1/customers").send().await.unwrap().status(), 200);
    }

    // Five failures are answered 401...
    let guesses: Vec<String> = (0..6).map(|_| guessed_token()).collect();
    for guess in &guesses[..5] {
        let response = send(&app, Method::GET, "/v1/customers", Some(&format!("Bearer {guess}"))).await;
        assert_unauthorized(response, "token_invalid").await;
    }
    // ...the sixth is refused.
    let response = send(&app, Method::GET, "/v2/customers", Some(&format!("Bearer {}", guesses[5]))).await;
    let retry_after = header(&response, "retry-after").expect("a 429 carries Retry-After");
    let retry_after: u64 = retry_after.parse().expect("Retry-After is whole seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    let error = assert_error(response, 429, "rate_limited").await;
    assert!(error.get("param").is_none());

    // Also a guess repeated, a malformed token, and no token at all: refused before any lookup.
    let repeated = format!("Bearer {}", guesses[0]);
    for authorization in [Some(repeated.as_str()), Some("Bearer nope"), Some("Basic dXNlcjpwYXNz"), None] {
        let response = send(&app, Method::GET, "/v1/customers", authorization).await;
        assert!(header(&response, "retry-after").is_some(), "{authorization:?}");
        assert_error(response, 429, "rate_limited").await;
    }

    // A valid token never seen by this server cannot be told from a guess without a lookup.
    let fresh = app.issue_token("default", Scope::Write, None).await;
    let response = app.request_as(&fresh, Method::GET, "/v1/customers").send().await.unwrap();
    assert_error(response, 429, "rate_limited").await;

    // The token used before the block keeps working, for reads and writes.
    let response = app.request_as(&known, Method::GET, "/v1/customers").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .request_as(&known, Method::POST, "/v2/customers")
        .json(&json!({"name": "Ada", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // Even after the server's token cache has expired.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = app.request_as(&known, Method::GET, "/v2/customers").send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn missing_tokens_count_as_failures() {
    let app = TestApp::spawn_with_config(limited_app_config()).await;
    leave_room_in_window(60, Duration::from_secs(5)).await;
    for _ in 0..5 {
        let response = send(&app, Method::GET, "/v1/customers", None).await;
        assert_unauthorized(response, "token_missing").await;
    }
    let response = send(&app, Method::GET, "/v1/customers", None).await;
    assert_error(response, 429, "rate_limited").await;
    let response = send(&app, Method::GET, "/v1/customers", Some(&format!("Bearer {}", guessed_token()))).await;
    assert_error(response, 429, "rate_limited").await;
}

#[tokio::test]
async fn the_default_failed_auth_limit_is_20_per_minute() {
    let app = TestApp::spawn().await;
    leave_room_in_window(60, Duration::from_secs(5)).await;
    for i in 0..20 {
        let response = send(&app, Method::GET, "/v2/customers", Some(&format!("Bearer {}", guessed_token()))).await;
        assert_eq!(response.status(), 401, "failure {}", i + 1);
    }
    let response = send(&app, Method::GET, "/v2/customers", Some(&format!("Bearer {}", guessed_token()))).await;
    assert_error(response, 429, "rate_limited").await;
}
