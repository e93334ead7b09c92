//! Safe writes: `Idempotency-Key` on POST (v1 and v2) and conditional requests
//! (`ETag`, `If-Match`, `If-None-Match`) on v2, black-box over HTTP.

use clientele::config::ServerConfig;
use clientele::domain::Scope;
use clientele::ratelimit::RateLimiter;
use reqwest::header::HeaderMap;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{TestApp, assert_error, header, id_of};

/// Everything of a response the tests compare.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    async fn of(response: Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body").to_vec();
        Self { status, headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

async fn post_with_key_as(app: &TestApp, token: &str, path: &str, key: &str, body: &Value) -> Response {
    app.request_as(token, Method::POST, path).header("Idempotency-Key", key).json(body).send().await.expect("request")
}

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: &Value) -> Response {
    post_with_key_as(app, &app.token, path, key, body).await
}

/// A POST whose body is sent byte for byte as given.
async fn post_raw_with_key(app: &TestApp, path: &str, key: &str, body: &str) -> Response {
    app.request(Method::POST, path)
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request")
}

/// The ids of the account's customers, from the v2 list (and the v1 list's total agreeing).
async fn customer_ids_as(app: &TestApp, token: &str) -> Vec<String> {
    let v2 = app.request_as(token, Method::GET, "/v2/customers?limit=100").send().await.expect("request");
    assert_eq!(v2.status(), 200);
    let v2: Value = v2.json().await.expect("json");
    assert_eq!(v2["has_more"], false);
    let ids: Vec<String> =
        v2["data"].as_array().expect("data").iter().map(|c| c["id"].as_str().expect("id").to_owned()).collect();
    let v1 = app.request_as(token, Method::GET, "/v1/customers?limit=100").send().await.expect("request");
    assert_eq!(v1.status(), 200);
    let v1: Value = v1.json().await.expect("json");
    assert_eq!(v1["total"], ids.len(), "v1 total agrees with the v2 list");
    assert_eq!(v1["data"].as_array().expect("data").len(), ids.len());
    ids
}

async fn customer_ids(app: &TestApp) -> Vec<String> {
    customer_ids_as(app, &app.token).await
}

fn ada() -> Value {
    json!({"name": "Ada Lovelace", "email": "ada@example.com"})
}

// ---------------------------------------------------------------------------
// Idempotency-Key
// ---------------------------------------------------------------------------

#[tokio::test]
async fn v2_same_key_and_body_replays_the_first_response_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000",
        "address": {"city": "London", "country": "GB"}, "metadata": {"crm_id": "8812"}});
    let first = Reply::of(post_with_key(&app, "/v2/customers", "key-v2-1", &body).await).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("idempotent-replayed"), None, "the first response is not a replay");
    let created = first.json();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(first.header("location"), Some(format!("/v2/customers/{id}").as_str()));
    assert_eq!(first.header("etag"), Some("\"1\""));
    assert_eq!(created["version"], 1);

    for _ in 0..2 {
        let again = Reply::of(post_with_key(&app, "/v2/customers", "key-v2-1", &body).await).await;
        assert_eq!(again.status, 201);
        assert_eq!(again.body, first.body, "byte-identical body");
        assert_eq!(again.header("location"), first.header("location"));
        assert_eq!(again.header("etag"), Some("\"1\""));
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.header("content-type"), Some("application/json"));
        assert!(again.header("x-request-id").is_some());
    }
    assert_eq!(customer_ids(&app).await, vec![id]);
}

#[tokio::test]
async fn v1_same_key_and_body_replays_the_first_response_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let first = Reply::of(post_with_key(&app, "/v1/customers", "key-v1-1", &ada()).await).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(first.header("etag"), Some("\"1\""), "v1 sends the entity tag too");
    let id = first.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(first.header("location"), Some(format!("/v1/customers/{id}").as_str()));

    let again = Reply::of(post_with_key(&app, "/v1/customers", "key-v1-1", &ada()).await).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "byte-identical body");
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("etag"), Some("\"1\""), "a v1 replay carries the first response's ETag");
    assert_eq!(customer_ids(&app).await, vec![id]);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let first = post_with_key(&app, "/v2/customers", "k-reuse", &ada()).await;
    assert_eq!(first.status(), 201);
    let other_name = json!({"name": "Ada King", "email": "ada@example.com"});
    assert_error(post_with_key(&app, "/v2/customers", "k-reuse", &other_name).await, 422, "idempotency_key_reused")
        .await;
    let extra_field = json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": null});
    assert_error(post_with_key(&app, "/v2/customers", "k-reuse", &extra_field).await, 422, "idempotency_key_reused")
        .await;
    // v1 too.
    let first = post_with_key(&app, "/v1/customers", "k-reuse-v1", &ada()).await;
    assert_eq!(first.status(), 201);
    let other_email = json!({"name": "Ada Lovelace", "email": "ada@example.org"});
    assert_error(post_with_key(&app, "/v1/customers", "k-reuse-v1", &other_email).await, 422, "idempotency_key_reused")
        .await;
    assert_eq!(customer_ids(&app).await.len(), 2);
}

#[tokio::test]
async fn key_order_and_whitespace_do_not_make_another_body() {
    let app = TestApp::spawn().await;
    let first = Reply::of(
        post_raw_with_key(&app, "/v2/customers", "k-format", r#"{"name":"Ada","email":"ada@example.com"}"#).await,
    )
    .await;
    assert_eq!(first.status, 201);
    let again = Reply::of(
        post_raw_with_key(
            &app,
            "/v2/customers",
            "k-format",
            "{\n  \"email\" : \"ada@example.com\",\n\t\"name\":   \"Ada\"\n}\n",
        )
        .await,
    )
    .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    // A change of value does count, however it is formatted.
    let changed =
        post_raw_with_key(&app, "/v2/customers", "k-format", r#"{"email": "ada@example.com", "name": "Ada "}"#).await;
    assert_error(changed, 422, "idempotency_key_reused").await;
    assert_eq!(customer_ids(&app).await.len(), 1);
}

#[tokio::test]
async fn the_same_key_and_body_on_v1_then_v2_is_another_request() {
    let app = TestApp::spawn().await;
    let first = post_with_key(&app, "/v1/customers", "k-cross", &ada()).await;
    assert_eq!(first.status(), 201);
    assert_error(post_with_key(&app, "/v2/customers", "k-cross", &ada()).await, 422, "idempotency_key_reused").await;
    // And the other way round.
    let first = post_with_key(&app, "/v2/customers", "k-cross-2", &ada()).await;
    assert_eq!(first.status(), 201);
    assert_error(post_with_key(&app, "/v1/customers", "k-cross-2", &ada()).await, 422, "idempotency_key_reused").await;
    assert_eq!(customer_ids(&app).await.len(), 2);
}

#[tokio::test]
async fn twenty_concurrent_posts_with_one_key_create_exactly_one_customer() {
    for path in ["/v2/customers", "/v1/customers"] {
        let app = TestApp::spawn().await;
        let mut tasks = JoinSet::new();
        for _ in 0..20 {
            let request = app.request(Method::POST, path).header("Idempotency-Key", "k-race").json(&ada());
            tasks.spawn(async move { Reply::of(request.send().await.expect("request")).await });
        }
        let replies = tasks.join_all().await;
        assert_eq!(replies.len(), 20);

        let mut ids = Vec::new();
        let mut originals = Vec::new();
        for reply in &replies {
            match reply.status {
                201 => {
                    let id = reply.json()["id"].as_str().unwrap().to_owned();
                    match reply.header("idempotent-replayed") {
                        None => originals.push(reply.body.clone()),
                        Some(value) => assert_eq!(value, "true"),
                    }
                    assert_eq!(reply.header("location"), Some(format!("{path}/{id}").as_str()));
                    ids.push(id);
                }
                409 => {
                    let body = reply.json();
                    assert_eq!(body["error"]["code"], "idempotency_request_in_progress", "{body}");
                    assert_eq!(body["error"]["type"], "invalid_request_error");
                }
                other => panic!("unexpected status {other}: {}", String::from_utf8_lossy(&reply.body)),
            }
        }
        assert_eq!(originals.len(), 1, "exactly one response created the customer ({path})");
        for reply in replies.iter().filter(|reply| reply.status == 201) {
            assert_eq!(reply.body, originals[0], "every 201 is the original response ({path})");
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one id in every 201 ({path})");
        assert_eq!(customer_ids(&app).await, ids, "exactly one customer ({path})");

        // After the race, the key replays.
        let after = Reply::of(post_with_key(&app, path, "k-race", &ada()).await).await;
        assert_eq!(after.status, 201);
        assert_eq!(after.header("idempotent-replayed"), Some("true"));
        assert_eq!(after.body, originals[0]);
    }
}

/// Two instances over one database: the store's unique key decides, the loser replays.
#[tokio::test]
async fn two_instances_racing_on_one_key_create_exactly_one_customer() {
    let first = TestApp::spawn().await;
    let second = first.spawn_beside(RateLimiter::in_memory()).await;
    let mut tasks = JoinSet::new();
    for round in 0..20 {
        let app = if round % 2 == 0 { &first } else { &second };
        let request = app.request(Method::POST, "/v2/customers").header("Idempotency-Key", "k-two").json(&ada());
        tasks.spawn(async move { Reply::of(request.send().await.expect("request")).await });
    }
    let replies = tasks.join_all().await;
    let created: Vec<&Reply> = replies.iter().filter(|reply| reply.status == 201).collect();
    assert!(replies.iter().all(|reply| reply.status == 201 || reply.status == 409), "only 201 and 409");
    for reply in replies.iter().filter(|reply| reply.status == 409) {
        assert_eq!(reply.json()["error"]["code"], "idempotency_request_in_progress");
    }
    let originals = created.iter().filter(|reply| reply.header("idempotent-replayed").is_none()).count();
    assert_eq!(originals, 1, "exactly one original 201");
    assert!(created.iter().all(|reply| reply.body == created[0].body), "every 201 is the same response");
    let id = created[0].json()["id"].as_str().unwrap().to_owned();
    assert_eq!(customer_ids(&first).await, vec![id.clone()]);
    assert_eq!(customer_ids(&second).await, vec![id]);
    for app in [&first, &second] {
        let again = Reply::of(post_with_key(app, "/v2/customers", "k-two", &ada()).await).await;
        assert_eq!(again.status, 201);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body, created[0].body);
    }
}

#[tokio::test]
async fn invalid_keys_are_400_parameter_invalid() {
    let app = TestApp::spawn().await;
    for (key, why) in [("", "empty"), (&*"k".repeat(256), "256 characters"), ("tab\there", "a tab")] {
        for path in ["/v1/customers", "/v2/customers"] {
            let error = assert_error(post_with_key(&app, path, key, &ada()).await, 400, "parameter_invalid").await;
            assert_eq!(error["param"], "Idempotency-Key", "{why} on {path}");
        }
    }
    assert!(customer_ids(&app).await.is_empty(), "an invalid key creates nothing");
    // The body is checked before the key: a body without a name is answered about the name.
    for path in ["/v1/customers", "/v2/customers"] {
        let error = assert_error(
            post_with_key(&app, path, "", &json!({"email": "ada@example.com"})).await,
            400,
            "parameter_missing",
        )
        .await;
        assert_eq!(error["param"], "name", "an invalid body and an invalid key on {path}");
    }

    let longest = "k".repeat(255);
    let first = post_with_key(&app, "/v2/customers", &longest, &ada()).await;
    assert_eq!(first.status(), 201);
    assert_eq!(header(&first, "idempotent-replayed"), None);
    let printable = "x !\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~x";
    let first = post_with_key(&app, "/v2/customers", printable, &ada()).await;
    assert_eq!(first.status(), 201);
    let again = post_with_key(&app, "/v2/customers", &longest, &ada()).await;
    assert_eq!(again.status(), 201);
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    let again = post_with_key(&app, "/v2/customers", printable, &ada()).await;
    assert_eq!(again.status(), 201);
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(customer_ids(&app).await.len(), 2);
}

#[tokio::test]
async fn a_request_that_fails_validation_does_not_burn_its_key() {
    let app = TestApp::spawn().await;
    for path in ["/v1/customers", "/v2/customers"] {
        let key = format!("k-burn{path}");
        let bad = json!({"name": "Ada", "email": "not-an-email"});
        let error = assert_error(post_with_key(&app, path, &key, &bad).await, 400, "parameter_invalid").await;
        assert_eq!(error["param"], "email");
        // The same bad request again is the same error, not a replay.
        assert_error(post_with_key(&app, path, &key, &bad).await, 400, "parameter_invalid").await;

        let good = post_with_key(&app, path, &key, &ada()).await;
        assert_eq!(good.status(), 201, "{path}");
        assert_eq!(header(&good, "idempotent-replayed"), None, "{path}");
        let again = post_with_key(&app, path, &key, &ada()).await;
        assert_eq!(again.status(), 201);
        assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    }
    assert_eq!(customer_ids(&app).await.len(), 2);
}

#[tokio::test]
async fn a_replay_survives_a_server_restart() {
    let app = TestApp::spawn().await;
    let first = Reply::of(post_with_key(&app, "/v2/customers", "k-restart", &ada()).await).await;
    assert_eq!(first.status, 201);
    let v1_first = Reply::of(post_with_key(&app, "/v1/customers", "k-restart-v1", &ada()).await).await;
    assert_eq!(v1_first.status, 201);
    let (store, dir) = app.stop().await;

    let app = TestApp::spawn_on(store, dir, ServerConfig::default(), RateLimiter::in_memory()).await;
    let again = Reply::of(post_with_key(&app, "/v2/customers", "k-restart", &ada()).await).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), Some("\"1\""));
    let v1_again = Reply::of(post_with_key(&app, "/v1/customers", "k-restart-v1", &ada()).await).await;
    assert_eq!(v1_again.status, 201);
    assert_eq!(v1_again.header("idempotent-replayed"), Some("true"));
    assert_eq!(v1_again.body, v1_first.body);
    assert_eq!(v1_again.header("location"), v1_first.header("location"));
    // Still 422 for another body.
    let other = json!({"name": "Someone Else", "email": "ada@example.com"});
    assert_error(post_with_key(&app, "/v2/customers", "k-restart", &other).await, 422, "idempotency_key_reused").await;
    assert_eq!(customer_ids(&app).await.len(), 2);
}

#[tokio::test]
async fn keys_are_scoped_to_the_account() {
    let app = TestApp::spawn().await;
    let other = app.issue_token("other", Scope::Write, None).await;
    let mine = Reply::of(post_with_key(&app, "/v2/customers", "k-shared", &ada()).await).await;
    let theirs = Reply::of(post_with_key_as(&app, &other, "/v2/customers", "k-shared", &ada()).await).await;
    assert_eq!(mine.status, 201);
    assert_eq!(theirs.status, 201);
    assert_eq!(theirs.header("idempotent-replayed"), None, "not a replay of another account's response");
    let (mine_id, theirs_id) = (mine.json()["id"].clone(), theirs.json()["id"].clone());
    assert_ne!(mine_id, theirs_id);
    assert_eq!(customer_ids(&app).await, vec![mine_id.as_str().unwrap().to_owned()]);
    assert_eq!(customer_ids_as(&app, &other).await, vec![theirs_id.as_str().unwrap().to_owned()]);

    // Each account's key replays its own response.
    let theirs_again = Reply::of(post_with_key_as(&app, &other, "/v2/customers", "k-shared", &ada()).await).await;
    assert_eq!(theirs_again.header("idempotent-replayed"), Some("true"));
    assert_eq!(theirs_again.body, theirs.body);
    // Another account's key with another body is not "reused" here.
    let different = json!({"name": "Other", "email": "other@example.com"});
    let fresh = post_with_key_as(&app, &other, "/v2/customers", "k-mine-only", &different).await;
    assert_eq!(fresh.status(), 201);
    let mine_fresh = post_with_key(&app, "/v2/customers", "k-mine-only", &ada()).await;
    assert_eq!(mine_fresh.status(), 201);
    assert_eq!(header(&mine_fresh, "idempotent-replayed"), None);
}

#[tokio::test]
async fn a_replay_returns_the_original_response_after_an_update() {
    let app = TestApp::spawn().await;
    let first = Reply::of(post_with_key(&app, "/v2/customers", "k-updated", &ada()).await).await;
    assert_eq!(first.status, 201);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let updated =
        app.put_json(&format!("/v2/customers/{id}"), &json!({"name": "Ada King", "email": "ak@example.com"})).await;
    assert_eq!(updated.status(), 200);
    assert_eq!(header(&updated, "etag"), Some("\"2\""));

    let again = Reply::of(post_with_key(&app, "/v2/customers", "k-updated", &ada()).await).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the original response, not the current customer");
    assert_eq!(again.json()["name"], "Ada Lovelace");
    assert_eq!(again.json()["version"], 1);
    assert_eq!(again.header("etag"), Some("\"1\""));
    assert_eq!(customer_ids(&app).await, vec![id.clone()]);

    // v1 likewise, after a v1 update.
    let first = Reply::of(post_with_key(&app, "/v1/customers", "k-updated-v1", &ada()).await).await;
    let v1_id = first.json()["id"].as_str().unwrap().to_owned();
    let updated =
        app.put_json(&format!("/v1/customers/{v1_id}"), &json!({"name": "B", "email": "b@example.com"})).await;
    assert_eq!(updated.status(), 200);
    let again = Reply::of(post_with_key(&app, "/v1/customers", "k-updated-v1", &ada()).await).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.json()["name"], "Ada Lovelace");
}

#[tokio::test]
async fn a_replay_after_delete_still_returns_the_original_response_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let first = Reply::of(post_with_key(&app, "/v2/customers", "k-deleted", &ada()).await).await;
    let id = first.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/v2/customers/{id}")).await.status(), 204);
    let again = Reply::of(post_with_key(&app, "/v2/customers", "k-deleted", &ada()).await).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert!(customer_ids(&app).await.is_empty(), "the retry does not resurrect or recreate");
}

// ---------------------------------------------------------------------------
// Conditional requests on v2
// ---------------------------------------------------------------------------

async fn get_with(app: &TestApp, id: &str, name: &str, value: &str) -> Response {
    app.request(Method::GET, &format!("/v2/customers/{id}")).header(name, value).send().await.expect("request")
}

async fn put_if_match(app: &TestApp, id: &str, if_match: &str, body: &Value) -> Response {
    app.request(Method::PUT, &format!("/v2/customers/{id}"))
        .header("If-Match", if_match)
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn delete_if_match(app: &TestApp, id: &str, if_match: &str) -> Response {
    app.request(Method::DELETE, &format!("/v2/customers/{id}"))
        .header("If-Match", if_match)
        .send()
        .await
        .expect("request")
}

/// GETs the v2 customer, asserting that the ETag is its version.
async fn current(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/v2/customers/{id}")).await;
    assert_eq!(response.status(), 200);
    let etag = header(&response, "etag").expect("etag").to_owned();
    let body: Value = response.json().await.expect("json");
    assert_eq!(etag, format!("\"{}\"", body["version"]), "ETag is the quoted version");
    body
}

#[tokio::test]
async fn get_answers_with_the_etag_and_if_none_match_gives_304() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    let response = app.get(&format!("/v2/customers/{id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag"), Some("\"1\""));

    for hit in ["\"1\"", "*", "\"7\", \"1\"", "\"3\",\"1\",\"9\"", "W/\"1\""] {
        let response = Reply::of(get_with(&app, &id, "If-None-Match", hit).await).await;
        assert_eq!(response.status, 304, "If-None-Match: {hit}");
        assert!(response.body.is_empty(), "304 has no body (If-None-Match: {hit})");
        assert_eq!(response.header("etag"), Some("\"1\""), "If-None-Match: {hit}");
        assert!(response.header("x-request-id").is_some());
    }
    for miss in ["\"2\"", "\"0\", \"2\"", "W/\"2\"", "\"abc\""] {
        let response = Reply::of(get_with(&app, &id, "If-None-Match", miss).await).await;
        assert_eq!(response.status, 200, "If-None-Match: {miss}");
        assert_eq!(response.header("etag"), Some("\"1\""));
        assert_eq!(response.json()["id"], id.as_str());
        assert_eq!(response.json()["version"], 1);
    }

    // After a write the old ETag no longer hits; the new one does.
    let put = app.put_json(&format!("/v2/customers/{id}"), &json!({"name": "Ada K", "email": "ada@example.com"})).await;
    assert_eq!(put.status(), 200);
    let stale = Reply::of(get_with(&app, &id, "If-None-Match", "\"1\"").await).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.header("etag"), Some("\"2\""));
    assert_eq!(stale.json()["name"], "Ada K");
    let fresh = Reply::of(get_with(&app, &id, "If-None-Match", "\"2\"").await).await;
    assert_eq!(fresh.status, 304);
    assert!(fresh.body.is_empty());
    assert_eq!(fresh.header("etag"), Some("\"2\""));
}

#[tokio::test]
async fn put_with_the_current_if_match_writes_and_answers_the_new_etag() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    let response = put_if_match(&app, &id, "\"1\"", &json!({"name": "Ada K", "email": "ak@example.com"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag"), Some("\"2\""));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], 2);
    assert_eq!(body["name"], "Ada K");
    let now = current(&app, &id).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["email"], "ak@example.com");
}

#[tokio::test]
async fn put_with_a_stale_if_match_is_412_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    let before = current(&app, &id).await;
    for stale in ["\"2\"", "\"0\"", "\"3\", \"4\"", "W/\"1\"", "\"abc\""] {
        let response =
            put_if_match(&app, &id, stale, &json!({"name": "Changed", "email": "changed@example.com"})).await;
        assert_error(response, 412, "precondition_failed").await;
    }
    let after = current(&app, &id).await;
    assert_eq!(after, before, "nothing written");
    assert_eq!(after["version"], 1);
    assert_eq!(after["name"], "Ada");
}

#[tokio::test]
async fn if_match_star_and_lists_match_the_current_version() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    let star = put_if_match(&app, &id, "*", &json!({"name": "Star", "email": "ada@example.com"})).await;
    assert_eq!(star.status(), 200);
    assert_eq!(header(&star, "etag"), Some("\"2\""));
    let list = put_if_match(&app, &id, "\"1\", \"2\"", &json!({"name": "List", "email": "ada@example.com"})).await;
    assert_eq!(list.status(), 200);
    assert_eq!(header(&list, "etag"), Some("\"3\""));
    let spaced = put_if_match(&app, &id, "\"9\",\"3\"", &json!({"name": "Spaced", "email": "ada@example.com"})).await;
    assert_eq!(spaced.status(), 200);
    assert_eq!(header(&spaced, "etag"), Some("\"4\""));
    let now = current(&app, &id).await;
    assert_eq!(now["version"], 4);
    assert_eq!(now["name"], "Spaced");

    // `If-Match: *` on a customer that does not exist is false: 412, and creates nothing (API.md §3).
    let missing = put_if_match(&app, "cus_doesnotexist", "*", &json!({"name": "X", "email": "x@example.com"})).await;
    assert_error(missing, 412, "precondition_failed").await;
    let never =
        put_if_match(&app, "cus_00000000000000000000000000", "*", &json!({"name": "X", "email": "x@x.co"})).await;
    assert_error(never, 412, "precondition_failed").await;
}

#[tokio::test]
async fn a_weak_if_match_never_matches() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    let response = put_if_match(&app, &id, "W/\"1\"", &json!({"name": "Weak", "email": "ada@example.com"})).await;
    assert_error(response, 412, "precondition_failed").await;
    assert_error(delete_if_match(&app, &id, "W/\"1\"").await, 412, "precondition_failed").await;
    let now = current(&app, &id).await;
    assert_eq!(now["version"], 1);
    assert_eq!(now["name"], "Ada");
}

#[tokio::test]
async fn a_malformed_if_match_is_400() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    for malformed in ["1", "\"1", "W/1", ""] {
        let response = put_if_match(&app, &id, malformed, &json!({"name": "Bad", "email": "ada@example.com"})).await;
        let error = assert_error(response, 400, "parameter_invalid").await;
        assert_eq!(error["param"], "If-Match", "PUT If-Match: {malformed:?}");
        let error = assert_error(delete_if_match(&app, &id, malformed).await, 400, "parameter_invalid").await;
        assert_eq!(error["param"], "If-Match", "DELETE If-Match: {malformed:?}");
    }
    let error = assert_error(get_with(&app, &id, "If-None-Match", "1").await, 400, "parameter_invalid").await;
    assert_eq!(error["param"], "If-None-Match");
    let now = current(&app, &id).await;
    assert_eq!(now["version"], 1);
    assert_eq!(now["name"], "Ada");
}

#[tokio::test]
async fn delete_honours_if_match() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    assert_error(delete_if_match(&app, &id, "\"2\"").await, 412, "precondition_failed").await;
    let still = current(&app, &id).await;
    assert_eq!(still["version"], 1);
    assert_eq!(customer_ids(&app).await, vec![id.clone()]);

    let deleted = Reply::of(delete_if_match(&app, &id, "\"1\"").await).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    assert_error(app.get(&format!("/v2/customers/{id}")).await, 404, "resource_not_found").await;
    assert!(customer_ids(&app).await.is_empty());
    // Gone: If-Match, even `*`, is now false (412); without it, 404.
    assert_error(delete_if_match(&app, &id, "*").await, 412, "precondition_failed").await;
    assert_error(app.delete(&format!("/v2/customers/{id}")).await, 404, "resource_not_found").await;

    // `*` deletes an existing customer.
    let other = id_of(&app.create_customer("Bob", "bob@example.com").await);
    assert_eq!(delete_if_match(&app, &other, "*").await.status(), 204);
    assert_error(app.get(&format!("/v2/customers/{other}")).await, 404, "resource_not_found").await;
}

#[tokio::test]
async fn ten_concurrent_puts_with_one_if_match_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    let mut tasks = JoinSet::new();
    for writer in 0..10 {
        let request = app
            .request(Method::PUT, &format!("/v2/customers/{id}"))
            .header("If-Match", "\"1\"")
            .json(&json!({"name": format!("Writer {writer}"), "email": "ada@example.com"}));
        tasks.spawn(async move { Reply::of(request.send().await.expect("request")).await });
    }
    let replies = tasks.join_all().await;
    let winners: Vec<&Reply> = replies.iter().filter(|reply| reply.status == 200).collect();
    let losers: Vec<&Reply> = replies.iter().filter(|reply| reply.status == 412).collect();
    assert_eq!(winners.len(), 1, "exactly one 200");
    assert_eq!(losers.len(), 9, "nine 412");
    for loser in losers {
        assert_eq!(loser.json()["error"]["code"], "precondition_failed");
    }
    let winner = winners[0].json();
    assert_eq!(winners[0].header("etag"), Some("\"2\""));
    let now = current(&app, &id).await;
    assert_eq!(now["version"], 2, "the version went up by exactly one");
    assert_eq!(now["name"], winner["name"], "the winner's write is the one stored");
}

#[tokio::test]
async fn writes_without_if_match_are_unconditional() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    for version in 2..=3 {
        let response = app
            .put_json(&format!("/v2/customers/{id}"), &json!({"name": format!("v{version}"), "email": "a@example.com"}))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "etag"), Some(format!("\"{version}\"").as_str()));
    }
    assert_eq!(current(&app, &id).await["name"], "v3");
    let deleted = app.delete(&format!("/v2/customers/{id}")).await;
    assert_eq!(deleted.status(), 204);
    assert_error(app.get(&format!("/v2/customers/{id}")).await, 404, "resource_not_found").await;
}

#[tokio::test]
async fn both_versions_carry_etags_and_v1_writes_move_the_version() {
    let app = TestApp::spawn().await;
    let created = app.post_json("/v2/customers", &ada()).await;
    assert_eq!(created.status(), 201);
    assert_eq!(header(&created, "etag"), Some("\"1\""));
    let id = id_of(&created.json().await.unwrap());

    // v1 reads and writes of the same customer carry the same entity tag, and the version moves.
    let v1_get = app.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(v1_get.status(), 200);
    assert_eq!(header(&v1_get, "etag"), Some("\"1\""));
    let v1_get =
        app.request(Method::GET, &format!("/v1/customers/{id}")).header("If-None-Match", "\"1\"").send().await.unwrap();
    assert_eq!(v1_get.status(), 304, "v1 has conditional GETs too");
    assert_eq!(header(&v1_get, "etag"), Some("\"1\""));
    let v1_put =
        app.put_json(&format!("/v1/customers/{id}"), &json!({"name": "V1 Name", "email": "ada@example.com"})).await;
    assert_eq!(v1_put.status(), 200);
    assert_eq!(header(&v1_put, "etag"), Some("\"2\""));
    let v1_post = app.post_json("/v1/customers", &ada()).await;
    assert_eq!(v1_post.status(), 201);
    assert_eq!(header(&v1_post, "etag"), Some("\"1\""));
    let v1_list = app.get("/v1/customers").await;
    assert_eq!(v1_list.status(), 200);
    assert_eq!(header(&v1_list, "etag"), None);

    // The v1 write moved the version: the old ETag is stale for v2.
    assert_error(
        put_if_match(&app, &id, "\"1\"", &json!({"name": "Lost", "email": "ada@example.com"})).await,
        412,
        "precondition_failed",
    )
    .await;
    let now = current(&app, &id).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["name"], "V1 Name");
    let put = put_if_match(&app, &id, "\"2\"", &json!({"name": "V2 Name", "email": "ada@example.com"})).await;
    assert_eq!(put.status(), 200);
    assert_eq!(header(&put, "etag"), Some("\"3\""));
}
