//! Webhook delivery (API.md §8), end to end: a real receiver on 127.0.0.1
//! verifies each POST with the Standard Webhooks reference library, on both
//! backends; two instances sharing PostgreSQL deliver each event once.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clientele::config::ServerConfig;
use clientele::domain::Scope;
use clientele::ratelimit::{RateLimit, RateLimiter};
use clientele::webhooks::WebhookSettings;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::{TestApp, expect_error, expect_json, id_of};

/// What the receiver answers, in turn; 200 once the script is used up.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Never answers (the client gives up after 10 s).
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn webhook_id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Log {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
}

/// A webhook receiver on 127.0.0.1 and a random port, in this process.
struct Receiver {
    address: SocketAddr,
    log: Arc<Log>,
}

impl Receiver {
    async fn start(script: &[Reply]) -> Self {
        let log = Arc::new(Log { script: Mutex::new(script.iter().copied().collect()), ..Log::default() });
        let router = axum::Router::new().route("/hook", post(receive)).with_state(log.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { address, log }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn received(&self) -> Vec<Received> {
        self.log.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until at least `count` requests came (panics after `within`).
    async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(started.elapsed() < within, "{} of {count} webhooks within {within:?}", received.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(State(log): State<Arc<Log>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    log.received.lock().unwrap_or_else(PoisonError::into_inner).push(Received { headers, body, at: Instant::now() });
    let reply = log.script.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
    match reply {
        None => StatusCode::OK,
        Some(Reply::Status(status)) => StatusCode::from_u16(status).unwrap(),
        Some(Reply::Hang) => std::future::pending().await,
    }
}

/// Delivery to 127.0.0.1 over http (`--webhook-allow-insecure`), retries 50 times sooner.
fn insecure_config() -> ServerConfig {
    ServerConfig { webhooks: WebhookSettings { allow_insecure: true, retry_scale: 0.02 }, ..ServerConfig::default() }
}

/// Creates an endpoint for every event type; returns its id and secret.
async fn create_endpoint(app: &TestApp, token: &str, url: &str) -> (String, String) {
    let body = json!({"url": url, "event_types": ["customer.created", "customer.updated", "customer.deleted"]});
    let response = app.request_as(token, Method::POST, "/v2/webhook_endpoints").json(&body).send().await.unwrap();
    let (_, endpoint) = expect_json(response, 201, "create a webhook endpoint").await;
    (id_of(&endpoint), endpoint["secret"].as_str().expect("the secret, shown once").to_owned())
}

/// Verifies a request as a receiver would, with the specification's reference library.
fn verify(secret: &str, received: &Received) {
    let webhook = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    webhook.verify(&received.body, &received.headers).expect("a valid Standard Webhooks signature");
}

/// A counter's value in `/metrics`, 0 when absent.
async fn counter(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

fn outcome(outcome: &str) -> String {
    format!("clientele_webhook_deliveries_total{{outcome=\"{outcome}\"}}")
}

/// Waits until the endpoint shows an attempt; returns it.
async fn wait_for_attempt(app: &TestApp, endpoint_id: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (_, endpoint) =
            expect_json(app.get(&format!("/v2/webhook_endpoints/{endpoint_id}")).await, 200, "GET").await;
        if !endpoint["last_delivery_at"].is_null() {
            return endpoint;
        }
        assert!(started.elapsed() < within, "no attempt recorded within {within:?}: {endpoint}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_posted_signed_as_get_shows_it_and_the_endpoint_shows_the_attempt() {
    let app = TestApp::spawn_with_config(insecure_config()).await;
    let receiver = Receiver::start(&[]).await;
    let (endpoint_id, secret) = create_endpoint(&app, &app.token, &receiver.url()).await;
    assert_eq!(counter(&app, &outcome("delivered")).await, 0.0, "counted from the start");

    let customer = app.create_customer("Ada", "ada@example.com").await;
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    let request = &received[0];
    verify(&secret, request);
    let event_id = request.webhook_id();
    let (_, event) = expect_json(app.get(&format!("/v2/events/{event_id}")).await, 200, "GET the event").await;
    assert_eq!(request.json(), event, "the payload is the event as GET /v2/events/{{id}} shows it");
    assert_eq!(event["type"], "customer.created");
    assert_eq!(event["data"]["object"]["id"], customer["id"]);
    assert_eq!(request.headers["content-type"], "application/json");
    let user_agent = request.headers["user-agent"].to_str().unwrap();
    assert_eq!(user_agent, format!("Clientele-Webhooks/{}", env!("CARGO_PKG_VERSION")));
    let timestamp: i64 = request.headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    assert!((timestamp - crate::support::now()).abs() <= 5, "webhook-timestamp is Unix seconds, now");

    let endpoint = wait_for_attempt(&app, &endpoint_id, Duration::from_secs(5)).await;
    assert_eq!(endpoint["last_delivery_status"], 200, "{endpoint}");
    assert!(endpoint.get("secret").is_none(), "the secret is shown only at creation");
    let started = Instant::now();
    while counter(&app, &outcome("delivered")).await < 1.0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the delivery is counted in /metrics");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_retried_on_the_schedule_with_the_same_id_until_2xx() {
    let app = TestApp::spawn_with_config(insecure_config()).await;
    let receiver = Receiver::start(&[Reply::Status(500), Reply::Status(503)]).await;
    let (endpoint_id, secret) = create_endpoint(&app, &app.token, &receiver.url()).await;
    app.create_customer("Ada", "ada@example.com").await;

    let received = receiver.wait_for(3, Duration::from_secs(15)).await;
    for request in &received {
        verify(&secret, request);
    }
    let ids: Vec<String> = received.iter().map(Received::webhook_id).collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "every attempt carries the event id: {ids:?}");
    // The schedule is 5 s then 1 min, scaled by 0.02: 100 ms, then 1.2 s.
    let first_wait = received[1].at - received[0].at;
    let second_wait = received[2].at - received[1].at;
    assert!(first_wait >= Duration::from_millis(100), "{first_wait:?}");
    assert!(second_wait >= Duration::from_millis(1200), "{second_wait:?}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3, "delivered at the third attempt: no more");
    let endpoint = wait_for_attempt(&app, &endpoint_id, Duration::from_secs(5)).await;
    assert_eq!(endpoint["last_delivery_status"], 200, "{endpoint}");
    assert_eq!(counter(&app, &outcome("failed_attempt")).await, 2.0);
    assert_eq!(counter(&app, &outcome("delivered")).await, 1.0);
    assert_eq!(counter(&app, &outcome("given_up")).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_of_writes_arrives_in_order() {
    let app = TestApp::spawn_with_config(insecure_config()).await;
    let receiver = Receiver::start(&[]).await;
    create_endpoint(&app, &app.token, &receiver.url()).await;
    let mut expected = Vec::new();
    for n in 0..10 {
        let customer = app.create_customer(&format!("C{n}"), &format!("c{n}@example.com")).await;
        expected.push(("customer.created".to_owned(), id_of(&customer)));
        if n % 3 == 0 {
            let path = format!("/v2/customers/{}", id_of(&customer));
            let replaced = app.put_json(&path, &json!({"name": format!("D{n}"), "email": "d@example.com"})).await;
            assert_eq!(replaced.status(), 200);
            expected.push(("customer.updated".to_owned(), id_of(&customer)));
            assert_eq!(app.delete(&path).await.status(), 204);
            expected.push(("customer.deleted".to_owned(), id_of(&customer)));
        }
    }
    let received = receiver.wait_for(expected.len(), Duration::from_secs(15)).await;
    let got: Vec<(String, String)> = received
        .iter()
        .map(|request| {
            let event = request.json();
            (event["type"].as_str().unwrap().to_owned(), event["data"]["object"]["id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(got, expected, "the events, in the order of the writes");
    let ids: Vec<String> = received.iter().map(Received::webhook_id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "event ids sort by creation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_receives_only_its_own_account_events() {
    let app = TestApp::spawn_with_config(insecure_config()).await;
    let other = app.issue_token("other", Scope::Write, None).await;
    let (ours, theirs) = (Receiver::start(&[]).await, Receiver::start(&[]).await);
    create_endpoint(&app, &app.token, &ours.url()).await;
    create_endpoint(&app, &other, &theirs.url()).await;

    let mine = app.create_customer("Mine", "mine@example.com").await;
    let response = app
        .request_as(&other, Method::POST, "/v2/customers")
        .json(&json!({"name": "Theirs", "email": "theirs@example.com"}))
        .send()
        .await
        .unwrap();
    let (_, their_customer) = expect_json(response, 201, "create in the other account").await;

    let got_ours = ours.wait_for(1, Duration::from_secs(10)).await;
    let got_theirs = theirs.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(ours.received().len(), 1, "only our event");
    assert_eq!(theirs.received().len(), 1, "only theirs");
    assert_eq!(got_ours[0].json()["data"]["object"]["id"], mine["id"]);
    assert_eq!(got_theirs[0].json()["data"]["object"]["id"], their_customer["id"]);
    // Neither can see the other's endpoint.
    let their_event = got_theirs[0].webhook_id();
    assert_eq!(app.get(&format!("/v2/events/{their_event}")).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_only_https_to_public_addresses_is_accepted() {
    let app = TestApp::spawn().await;
    // A name counts by what it resolves to: `localhost` is loopback (API.md §8).
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/",
        "https://[::1]/",
        "http://hooks.example.com/",
        "https://localhost/h",
    ] {
        let body = json!({"url": url, "event_types": ["customer.created"]});
        let response = app.post_json("/v2/webhook_endpoints", &body).await;
        let (_, error) = expect_error(response, 400, "parameter_invalid", url).await;
        assert_eq!(error["param"], "url", "{url}: {error}");
    }
    let body = json!({"url": "https://hooks.example.com/clientele", "event_types": ["customer.created"]});
    expect_json(app.post_json("/v2/webhook_endpoints", &body).await, 201, "a public https URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_loopback_is_refused_at_delivery_and_nothing_connects() {
    // Without --webhook-allow-insecure. A name that resolved to a public address when its
    // endpoint was created may resolve to loopback later (DNS rebinding): such an endpoint is
    // put in the store directly, past the check at creation, as if it had.
    let app = TestApp::spawn_with_config(ServerConfig {
        webhooks: WebhookSettings { allow_insecure: false, retry_scale: 100.0 },
        ..ServerConfig::default()
    })
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let account = app.store.find_account("default").await.unwrap().expect("the default account");
    let endpoint = clientele::domain::WebhookEndpoint {
        id: clientele::domain::ids::webhook_endpoint_id(),
        account_id: account.id,
        url: format!("https://localhost:{port}/hook"),
        event_types: vec![clientele::domain::EventType::CustomerCreated],
        description: None,
        created_at_ms: 1,
        last_delivery_at_ms: None,
        last_delivery_status: None,
    };
    let endpoint_id = endpoint.id.to_string();
    let secret = clientele::domain::WebhookSecret::generate();
    app.store.create_webhook_endpoint(endpoint, secret, 16).await.expect("an endpoint");
    app.create_customer("Ada", "ada@example.com").await;

    let endpoint = wait_for_attempt(&app, &endpoint_id, Duration::from_secs(10)).await;
    assert_eq!(endpoint["last_delivery_status"], 0, "a failed attempt, no response: {endpoint}");
    assert_eq!(counter(&app, &outcome("failed_attempt")).await, 1.0);
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no connection reached the receiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_slows_neither_the_api_nor_other_endpoints() {
    let app = TestApp::spawn_with_config(insecure_config()).await;
    let other = app.issue_token("other", Scope::Write, None).await;
    let hanging = Receiver::start(&[Reply::Hang; 8]).await;
    let healthy = Receiver::start(&[]).await;
    create_endpoint(&app, &app.token, &hanging.url()).await;
    create_endpoint(&app, &other, &healthy.url()).await;
    app.create_customer("First", "first@example.com").await;
    hanging.wait_for(1, Duration::from_secs(10)).await;

    // The worker now waits on the hanging receiver: writes are as fast as ever.
    let mut latencies = Vec::new();
    for n in 0..40 {
        let started = Instant::now();
        app.create_customer(&format!("C{n}"), &format!("c{n}@example.com")).await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let (median, slowest) = (latencies[latencies.len() / 2], latencies[latencies.len() - 1]);
    println!("POST /v2/customers while a receiver hangs: median {median:?}, slowest {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "median {median:?}, slowest {slowest:?}");

    // The other account's endpoint gets its event at once.
    let started = Instant::now();
    let response = app
        .request_as(&other, Method::POST, "/v2/customers")
        .json(&json!({"name": "Other", "email": "other@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    healthy.wait_for(1, Duration::from_secs(3)).await;
    println!("another endpoint's delivery while one hangs: {:?}", started.elapsed());
    assert_eq!(hanging.received().len(), 1, "one attempt at a time per endpoint");
}

mod needs_postgres {
    use super::*;
    use crate::support::database::{TestDatabase, open_store_at, open_test_store};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_sharing_the_database_deliver_each_event_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_test_store(TestDatabase::postgres().await).await;
        let first = TestApp::spawn_on(store, dir, insecure_config(), RateLimiter::in_memory()).await;
        let second_store = open_store_at(&first.database_url).await;
        let dir = tempfile::tempdir().unwrap();
        let second = TestApp::spawn_on(second_store, dir, insecure_config(), RateLimiter::in_memory()).await;
        let receiver = Receiver::start(&[]).await;
        create_endpoint(&first, &first.token, &receiver.url()).await;
        // A token whose limit lets all the writes through.
        let token =
            first.issue_token("default", Scope::Write, Some(RateLimit { limit: 10_000, window_secs: 60 })).await;

        const WRITES: usize = 200;
        let writes = (0..WRITES).map(|n| {
            let app = if n % 2 == 0 { &first } else { &second };
            app.request_as(&token, Method::POST, "/v2/customers")
                .json(&json!({"name": format!("C{n}"), "email": format!("c{n}@example.com")}))
                .send()
        });
        for response in futures_util::future::join_all(writes).await {
            assert_eq!(response.unwrap().status(), 201);
        }
        receiver.wait_for(WRITES, Duration::from_secs(30)).await;
        // Time for a second attempt of any delivery, had one been made.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut per_id: HashMap<String, usize> = HashMap::new();
        for request in receiver.received() {
            *per_id.entry(request.webhook_id()).or_default() += 1;
        }
        let repeated: Vec<_> = per_id.iter().filter(|(_, count)| **count != 1).collect();
        assert_eq!(per_id.len(), WRITES, "every event delivered");
        assert!(repeated.is_empty(), "each delivered exactly once: {repeated:?}");
        let delivered = counter(&first, &outcome("delivered")).await + counter(&second, &outcome("delivered")).await;
        assert_eq!(delivered, WRITES as f64, "the two instances' attempts add up to one per event");
    }
}
