//! Events and webhook endpoints (API.md §8), on the selected backend: each
//! successful customer write of either version records one event in its
//! transaction, with one delivery per subscribed endpoint; failed, refused and
//! replayed writes record none; `GET /v2/events` pages like customers; endpoints
//! are per account, at most 16, their secret shown once; old events are pruned.

use std::time::{Duration, Instant};

use clientele::config::ServerConfig;
use clientele::domain::{AccountId, Scope};
use clientele::storage::{EventQuery, ImportLine};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, body, expect_json, header, id_of, keys};

/// The account's events, oldest first (one page of up to 100).
async fn events(app: &TestApp) -> Vec<Value> {
    let (_, page) = expect_json(app.get("/v2/events?limit=100").await, 200, "GET /v2/events").await;
    assert_eq!(page["has_more"], false);
    page["data"].as_array().expect("data").clone()
}

/// Each event as (type, customer id, customer version).
fn summary(events: &[Value]) -> Vec<(String, String, i64)> {
    events
        .iter()
        .map(|event| {
            let object = &event["data"]["object"];
            (
                event["type"].as_str().expect("type").to_owned(),
                object["id"].as_str().expect("object id").to_owned(),
                object["version"].as_i64().expect("object version"),
            )
        })
        .collect()
}

fn of(kind: &str, customer: &str, version: i64) -> (String, String, i64) {
    (kind.to_owned(), customer.to_owned(), version)
}

#[tokio::test]
async fn writes_of_both_versions_record_their_events_in_order() {
    let app = TestApp::spawn().await;
    let v2 = app
        .create_at("/v2/customers", &json!({"name": "Ada", "email": "ada@example.com", "metadata": {"k": "v"}}))
        .await;
    let v1 = app.create_at("/v1/customers", &json!({"name": "Bob", "email": "bob@example.com"})).await;
    let (a, b) = (id_of(&v2), id_of(&v1));
    let replaced =
        body(app.put_json(&format!("/v2/customers/{a}"), &json!({"name": "Ada L", "email": "ada@example.com"})).await)
            .await;
    assert_eq!(replaced["version"], 2);
    let response =
        app.put_json(&format!("/v1/customers/{b}"), &json!({"name": "Bob B", "email": "bob@example.com"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.delete(&format!("/v1/customers/{a}")).await.status(), 204);
    assert_eq!(app.delete(&format!("/v2/customers/{b}")).await.status(), 204);

    let listed = events(&app).await;
    assert_eq!(
        summary(&listed),
        [
            of("customer.created", &a, 1),
            of("customer.created", &b, 1),
            of("customer.updated", &a, 2),
            of("customer.updated", &b, 2),
            of("customer.deleted", &a, 2),
            of("customer.deleted", &b, 2),
        ],
        "a deletion shows the last stored state, version unchanged"
    );
    let ids: Vec<&str> = listed.iter().map(|event| event["id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| id.starts_with("evt_") && id.len() == 30), "{ids:?}");
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids sort by creation: {ids:?}");

    // The event's object is the v2 representation the write answered.
    assert_eq!(keys(&listed[0]), ["created_at", "data", "id", "type"]);
    assert_eq!(listed[0]["data"]["object"], v2);
    assert_eq!(listed[2]["data"]["object"], replaced);
    assert_eq!(listed[4]["data"]["object"], replaced, "deleted: the last stored state");
    let created_at = listed[0]["created_at"].as_str().unwrap();
    assert!((crate::support::unix_of(created_at) - crate::support::now()).abs() < 60, "{created_at}");

    // One event by id is the listed one, byte for byte in JSON.
    let (_, one) = expect_json(app.get(&format!("/v2/events/{}", ids[3])).await, 200, "GET one event").await;
    assert_eq!(one, listed[3]);
}

#[tokio::test]
async fn refused_failed_and_replayed_writes_record_no_event() {
    let app = TestApp::spawn().await;
    let send = |key: &str, request: Value| {
        app.request(Method::POST, "/v2/customers").header("Idempotency-Key", key).json(&request).send()
    };
    let first = send("k1", json!({"name": "Ada", "email": "ada@example.com"})).await.unwrap();
    assert_eq!(first.status(), 201);
    let id = id_of(&body(first).await);
    let replayed = send("k1", json!({"name": "Ada", "email": "ada@example.com"})).await.unwrap();
    assert_eq!((replayed.status().as_u16(), header(&replayed, "idempotent-replayed")), (201, Some("true")));
    assert_error(
        send("k1", json!({"name": "Eve", "email": "eve@example.com"})).await.unwrap(),
        422,
        "idempotency_key_reused",
    )
    .await;

    let stale = app.request(Method::PUT, &format!("/v2/customers/{id}")).header("If-Match", "\"9\"");
    assert_error(
        stale.json(&json!({"name": "X", "email": "x@example.com"})).send().await.unwrap(),
        412,
        "precondition_failed",
    )
    .await;
    let stale = app.request(Method::DELETE, &format!("/v2/customers/{id}")).header("If-Match", "\"9\"");
    assert_error(stale.send().await.unwrap(), 412, "precondition_failed").await;
    let missing = "/v2/customers/cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D";
    assert_error(
        app.put_json(missing, &json!({"name": "X", "email": "x@example.com"})).await,
        404,
        "resource_not_found",
    )
    .await;
    assert_error(app.delete(missing).await, 404, "resource_not_found").await;
    assert_error(app.delete("/v1/customers/cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D").await, 404, "resource_not_found").await;
    assert_error(
        app.post_json("/v2/customers", &json!({"name": "", "email": "x@example.com"})).await,
        400,
        "parameter_invalid",
    )
    .await;
    assert_error(app.put_json(&format!("/v1/customers/{id}"), &json!({"name": "X"})).await, 400, "parameter_missing")
        .await;

    assert_eq!(summary(&events(&app).await), [of("customer.created", &id, 1)]);
}

#[tokio::test]
async fn events_page_by_cursor_type_and_limit() {
    let app = TestApp::spawn().await;
    let created = app.create_many("/v2/customers", 5).await;
    for customer in &created[..2] {
        let path = format!("/v2/customers/{}", id_of(customer));
        assert_eq!(app.put_json(&path, &json!({"name": "Renamed", "email": "r@example.com"})).await.status(), 200);
    }
    let all = events(&app).await;
    assert_eq!(all.len(), 7);

    // Follow the Link headers three at a time.
    let mut seen = Vec::new();
    let mut next = Some("/v2/events?limit=3".to_owned());
    while let Some(path) = next.take() {
        let (headers, page) = expect_json(app.get(&path).await, 200, &path).await;
        seen.extend(page["data"].as_array().unwrap().iter().cloned());
        if page["has_more"] == true {
            let link = header(&headers, "link").expect("a Link while has_more");
            let target = link.strip_prefix('<').and_then(|rest| rest.split_once('>')).expect("<...>").0;
            assert!(link.ends_with("rel=\"next\""), "{link}");
            next = Some(target.to_owned());
        } else {
            assert_eq!(header(&headers, "link"), None);
        }
    }
    assert_eq!(seen, all);

    let (_, updated) = expect_json(app.get("/v2/events?type=customer.updated").await, 200, "by type").await;
    assert_eq!(summary(updated["data"].as_array().unwrap()), summary(&all[5..]));
    let after = all[5]["id"].as_str().unwrap();
    let (_, rest) =
        expect_json(app.get(&format!("/v2/events?type=customer.updated&starting_after={after}")).await, 200, "after")
            .await;
    assert_eq!(rest["data"].as_array().unwrap(), &all[6..]);
    let (_, none) = expect_json(app.get("/v2/events?type=customer.deleted").await, 200, "none deleted").await;
    assert_eq!((none["data"].as_array().unwrap().len(), &none["has_more"]), (0, &json!(false)));
    let (_, unknown_cursor) = expect_json(app.get("/v2/events?starting_after=evt_").await, 200, "cursor").await;
    assert_eq!(unknown_cursor["data"].as_array().unwrap().len(), 7, "an unknown cursor starts where it would sort");

    let error = assert_error(app.get("/v2/events?type=invoice.paid").await, 400, "parameter_invalid").await;
    assert_eq!(error["param"], "type");
    let error = assert_error(app.get("/v2/events?limit=0").await, 400, "parameter_invalid").await;
    assert_eq!(error["param"], "limit");
    let error = assert_error(app.get("/v2/events?email=a@b.co").await, 400, "parameter_unknown").await;
    assert_eq!(error["param"], "email");
    let error =
        assert_error(app.get("/v2/events/evt_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D").await, 404, "resource_not_found").await;
    assert_eq!(error["message"], "no such event: evt_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D");
    assert_error(app.get("/v2/events/nope").await, 404, "resource_not_found").await;
}

fn endpoint_request(url: &str, types: &[&str]) -> Value {
    json!({"url": url, "event_types": types, "description": "CRM sync"})
}

#[tokio::test]
async fn endpoints_are_created_listed_read_and_deleted_with_the_secret_shown_once() {
    let app = TestApp::spawn().await;
    let request = endpoint_request("https://crm.example.com/hooks", &["customer.created", "customer.deleted"]);
    let response = app.post_json("/v2/webhook_endpoints", &request).await;
    let (headers, created) = expect_json(response, 201, "create an endpoint").await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("we_") && id.len() == 29, "{id}");
    assert_eq!(header(&headers, "location"), Some(format!("/v2/webhook_endpoints/{id}").as_str()));
    assert_eq!(
        keys(&created),
        ["created_at", "description", "event_types", "id", "last_delivery_at", "last_delivery_status", "secret", "url"]
    );
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() == 50, "{secret}");
    assert_eq!(created["event_types"], json!(["customer.created", "customer.deleted"]));
    assert_eq!((&created["last_delivery_at"], &created["last_delivery_status"]), (&Value::Null, &Value::Null));

    let (_, read) = expect_json(app.get(&format!("/v2/webhook_endpoints/{id}")).await, 200, "read").await;
    let mut shown = created.clone();
    shown.as_object_mut().unwrap().remove("secret");
    assert_eq!(read, shown, "the same endpoint, without its secret");
    let (_, list) = expect_json(app.get("/v2/webhook_endpoints").await, 200, "list").await;
    assert_eq!(list, json!({"data": [shown], "has_more": false}));
    assert!(!list.to_string().contains(secret));

    assert_eq!(app.delete(&format!("/v2/webhook_endpoints/{id}")).await.status(), 204);
    let error = assert_error(app.get(&format!("/v2/webhook_endpoints/{id}")).await, 404, "resource_not_found").await;
    assert_eq!(error["message"], format!("no such webhook endpoint: {id}"));
    assert_error(app.delete(&format!("/v2/webhook_endpoints/{id}")).await, 404, "resource_not_found").await;
    let (_, list) = expect_json(app.get("/v2/webhook_endpoints").await, 200, "list").await;
    assert_eq!(list, json!({"data": [], "has_more": false}));
}

#[tokio::test]
async fn endpoint_bodies_are_parsed_strictly() {
    let app = TestApp::spawn().await;
    let created = ["customer.created"];
    for (request, code, param) in [
        (json!({"url": "https://a.example.com", "event_types": created, "secret": "x"}), "parameter_unknown", "secret"),
        (json!({"event_types": created}), "parameter_missing", "url"),
        (json!({"url": null, "event_types": created}), "parameter_missing", "url"),
        (json!({"url": "https://a.example.com"}), "parameter_missing", "event_types"),
        (json!({"url": "https://a.example.com", "event_types": []}), "parameter_invalid", "event_types"),
        (json!({"url": "https://\u{f8}\u{bc}/", "event_types": created}), "parameter_invalid", "url"),
        (json!({"url": "https://a.example.com", "event_types": ["customer.paid"]}), "parameter_invalid", "event_types"),
        (
            json!({"url": "https://a.example.com", "event_types": "customer.created"}),
            "parameter_invalid",
            "event_types",
        ),
        (json!({"url": "https://a.example.com", "event_types": [1]}), "parameter_invalid", "event_types"),
        (json!({"url": "http://a.example.com", "event_types": created}), "parameter_invalid", "url"),
        (json!({"url": "ftp://a.example.com", "event_types": created}), "parameter_invalid", "url"),
        (json!({"url": "not a url", "event_types": created}), "parameter_invalid", "url"),
        (json!({"url": "/relative", "event_types": created}), "parameter_invalid", "url"),
        (json!({"url": 7, "event_types": created}), "parameter_invalid", "url"),
        (
            json!({"url": "https://a.example.com", "event_types": created, "description": "x".repeat(501)}),
            "parameter_invalid",
            "description",
        ),
        (
            json!({"url": "https://a.example.com", "event_types": created, "description": "a\u{0}b"}),
            "parameter_invalid",
            "description",
        ),
    ] {
        let error = assert_error(app.post_json("/v2/webhook_endpoints", &request).await, 400, code).await;
        assert_eq!(error["param"], param, "{request}");
    }
    // A repeated type counts once; a null description is none.
    let request = json!({"url": "https://a.example.com/h", "event_types": ["customer.updated", "customer.updated"], "description": null});
    let (_, created) = expect_json(app.post_json("/v2/webhook_endpoints", &request).await, 201, "create").await;
    assert_eq!((&created["event_types"], &created["description"]), (&json!(["customer.updated"]), &Value::Null));
    let (_, list) = expect_json(app.get("/v2/webhook_endpoints").await, 200, "list").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "nothing else was created");
}

#[tokio::test]
async fn an_account_has_at_most_sixteen_endpoints() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for n in 0..16 {
        let request = endpoint_request(&format!("https://hooks.example.com/{n}"), &["customer.created"]);
        let (_, created) = expect_json(app.post_json("/v2/webhook_endpoints", &request).await, 201, "create").await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let seventeenth = endpoint_request("https://hooks.example.com/17", &["customer.created"]);
    let error =
        assert_error(app.post_json("/v2/webhook_endpoints", &seventeenth).await, 400, "parameter_invalid").await;
    assert!(error["message"].as_str().unwrap().contains("at most 16"), "{error}");
    assert_eq!(error.get("param"), None, "no one field is at fault");
    // Another account has room of its own.
    let other = app.issue_token("other", Scope::Write, None).await;
    let response =
        app.request_as(&other, Method::POST, "/v2/webhook_endpoints").json(&seventeenth).send().await.unwrap();
    assert_eq!(response.status(), 201);
    // Deleting one makes room.
    assert_eq!(app.delete(&format!("/v2/webhook_endpoints/{}", ids[0])).await.status(), 204);
    assert_eq!(app.post_json("/v2/webhook_endpoints", &seventeenth).await.status(), 201);
    let (_, list) = expect_json(app.get("/v2/webhook_endpoints").await, 200, "list").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 16);
}

#[tokio::test]
async fn accounts_see_only_their_own_events_and_endpoints() {
    let app = TestApp::spawn().await;
    let customer = app.create_customer("Ada", "ada@example.com").await;
    let event_id = events(&app).await[0]["id"].as_str().unwrap().to_owned();
    let request = endpoint_request("https://hooks.example.com/a", &["customer.created"]);
    let (_, endpoint) = expect_json(app.post_json("/v2/webhook_endpoints", &request).await, 201, "create").await;
    let endpoint_id = endpoint["id"].as_str().unwrap();

    let other = app.issue_token("other", Scope::Write, None).await;
    let get = |path: String| app.request_as(&other, Method::GET, &path).send();
    let (_, page) = expect_json(get("/v2/events".into()).await.unwrap(), 200, "other's events").await;
    assert_eq!(page, json!({"data": [], "has_more": false}));
    assert_error(get(format!("/v2/events/{event_id}")).await.unwrap(), 404, "resource_not_found").await;
    let (_, list) = expect_json(get("/v2/webhook_endpoints".into()).await.unwrap(), 200, "other's endpoints").await;
    assert_eq!(list, json!({"data": [], "has_more": false}));
    assert_error(get(format!("/v2/webhook_endpoints/{endpoint_id}")).await.unwrap(), 404, "resource_not_found").await;
    let delete = app.request_as(&other, Method::DELETE, &format!("/v2/webhook_endpoints/{endpoint_id}"));
    assert_error(delete.send().await.unwrap(), 404, "resource_not_found").await;
    assert_eq!(app.get(&format!("/v2/webhook_endpoints/{endpoint_id}")).await.status(), 200, "still there");

    // The other account's writes are its own events.
    let response = app.request_as(&other, Method::DELETE, &format!("/v2/customers/{}", id_of(&customer))).send().await;
    assert_eq!(response.unwrap().status(), 404);
    assert_eq!(events(&app).await.len(), 1);
}

#[tokio::test]
async fn a_read_token_reads_events_and_endpoints_but_changes_no_endpoint() {
    let app = TestApp::spawn().await;
    let request = endpoint_request("https://hooks.example.com/a", &["customer.created"]);
    let (_, endpoint) = expect_json(app.post_json("/v2/webhook_endpoints", &request).await, 201, "create").await;
    let reader = app.issue_token("default", Scope::Read, None).await;
    let call = |method: Method, path: &str| app.request_as(&reader, method, path);
    assert_eq!(call(Method::GET, "/v2/events").send().await.unwrap().status(), 200);
    assert_eq!(call(Method::GET, "/v2/webhook_endpoints").send().await.unwrap().status(), 200);
    let path = format!("/v2/webhook_endpoints/{}", endpoint["id"].as_str().unwrap());
    let (_, read) = expect_json(call(Method::GET, &path).send().await.unwrap(), 200, "read").await;
    assert_eq!(read.get("secret"), None);
    let post = call(Method::POST, "/v2/webhook_endpoints").json(&request).send().await.unwrap();
    assert_error(post, 403, "scope_insufficient").await;
    assert_error(call(Method::DELETE, &path).send().await.unwrap(), 403, "scope_insufficient").await;
}

/// The delivery rows of the app's database, as (endpoint id, event id, state), by id. The
/// attempts are left out: the server's delivery worker tries these endpoints (which do not
/// resolve) as soon as they are queued, and they stay pending, retried later.
async fn deliveries(app: &TestApp) -> Vec<(String, String, String)> {
    const SQL: &str = "SELECT endpoint_id, event_id, state FROM webhook_deliveries ORDER BY id";
    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        let connection = rusqlite::Connection::open(path).unwrap();
        let mut statement = connection.prepare(SQL).unwrap();
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).unwrap();
        return rows.collect::<Result<_, _>>().unwrap();
    }
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn each_event_is_queued_for_every_endpoint_subscribed_to_its_type() {
    let app = TestApp::spawn().await;
    let app = &app;
    let create = |url: &'static str, types: &'static [&'static str]| {
        let request = endpoint_request(url, types);
        async move { app.post_json("/v2/webhook_endpoints", &request).await }
    };
    let (_, on_create) = expect_json(create("https://a.example.com", &["customer.created"]).await, 201, "a").await;
    let (_, on_change) =
        expect_json(create("https://b.example.com", &["customer.updated", "customer.deleted"]).await, 201, "b").await;
    let other = app.issue_token("other", Scope::Write, None).await;
    let all = endpoint_request("https://c.example.com", &["customer.created", "customer.updated", "customer.deleted"]);
    let response = app.request_as(&other, Method::POST, "/v2/webhook_endpoints").json(&all).send().await.unwrap();
    assert_eq!(response.status(), 201, "another account's endpoint gets none of these");

    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    let path = format!("/v2/customers/{id}");
    assert_eq!(app.put_json(&path, &json!({"name": "Ada L", "email": "ada@example.com"})).await.status(), 200);
    assert_eq!(app.delete(&path).await.status(), 204);
    let events: Vec<String> = events(app).await.iter().map(|event| event["id"].as_str().unwrap().to_owned()).collect();
    let (a, b) = (on_create["id"].as_str().unwrap().to_owned(), on_change["id"].as_str().unwrap().to_owned());
    let pending = |endpoint: &str, event: &str| (endpoint.to_owned(), event.to_owned(), "pending".to_owned());
    assert_eq!(deliveries(app).await, [pending(&a, &events[0]), pending(&b, &events[1]), pending(&b, &events[2])]);

    // A deleted endpoint's deliveries go with it.
    assert_eq!(app.delete(&format!("/v2/webhook_endpoints/{b}")).await.status(), 204);
    assert_eq!(deliveries(app).await, [pending(&a, &events[0])]);
}

#[tokio::test]
async fn events_past_their_retention_are_pruned_with_their_deliveries() {
    let config = ServerConfig { event_retention: Duration::from_secs(1), ..ServerConfig::default() };
    let app = TestApp::spawn_with_config(config).await;
    let request = endpoint_request("https://a.example.com", &["customer.created"]);
    assert_eq!(app.post_json("/v2/webhook_endpoints", &request).await.status(), 201);
    app.create_customer("Ada", "ada@example.com").await;
    assert_eq!(events(&app).await.len(), 1);
    assert_eq!(deliveries(&app).await.len(), 1);
    let started = Instant::now();
    while !events(&app).await.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the event is still there after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(deliveries(&app).await, [], "its delivery went with it");
    // A new event is kept until its own retention has passed.
    app.create_customer("Bob", "bob@example.com").await;
    assert_eq!(events(&app).await.len(), 1);
}

#[tokio::test]
async fn the_default_retention_keeps_events_and_prune_deletes_in_chunks() {
    let app = TestApp::spawn().await;
    app.create_many("/v2/customers", 5).await;
    let account: AccountId = app.store.find_account("default").await.unwrap().unwrap().id;
    let far_future = i64::MAX;
    assert_eq!(app.store.prune_events(0, 10).await.unwrap(), 0, "none is older than 1970");
    assert_eq!(app.store.prune_events(far_future, 2).await.unwrap(), 2, "at most a chunk");
    let query = EventQuery { limit: 10, starting_after: None, event_type: None };
    let left = app.store.list_events(&account, query.clone()).await.unwrap();
    assert_eq!(left.items.len(), 3);
    let names: Vec<&str> = left.items.iter().map(|event| event.customer.name.as_str()).collect();
    assert_eq!(names, ["C2", "C3", "C4"], "oldest first");
    assert_eq!(app.store.prune_events(far_future, 10).await.unwrap(), 3);
    assert!(app.store.list_events(&account, query).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn customers_import_records_no_event() {
    let app = TestApp::spawn().await;
    let account = app.store.find_account("default").await.unwrap().unwrap();
    let fields = clientele::domain::CustomerFields {
        name: clientele::domain::CustomerName::parse("Imp").unwrap(),
        email: clientele::domain::Email::parse("imp@example.com").unwrap(),
        phone: None,
        extended: None,
    };
    let customer = clientele::domain::Customer::create(clientele::domain::ids::customer_id(), fields, 1);
    let line = ImportLine { line_hash: [7; 32], customer };
    assert_eq!(app.store.import_customers(&account.id, vec![line]).await.unwrap(), [true]);
    assert_eq!(app.v1_total(&app.token).await, 1);
    assert!(events(&app).await.is_empty());
}
