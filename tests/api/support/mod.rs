//! `TestApp`: a real server on a random port over a database of its own (a
//! temporary SQLite file, or an empty PostgreSQL database on the PostgreSQL
//! pass: see [`database`]), and the helpers every area of the tests shares;
//! [`process`] starts the real binary.

/// The database of each test: a SQLite file, or an emptied PostgreSQL database.
pub mod database;
/// The `clientele` binary in a process of its own.
pub mod process;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clientele::admin;
use clientele::app::AppState;
use clientele::config::ServerConfig;
use clientele::domain::Scope;
use clientele::ratelimit::{RateLimit, RateLimiter};
use clientele::server;
use clientele::storage::SharedStore;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tempfile::TempDir;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::database::{TestDatabase, open_test_store};

/// A server in this process, on `127.0.0.1` and a random port, over a database of its own.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    /// A write token of the account `default`.
    pub token: String,
    pub store: SharedStore,
    /// Where `store` keeps its data (`sqlite://<dir>/test.db`, or the test's
    /// PostgreSQL database): for a second store or the CLI on the same data.
    pub database_url: String,
    /// The test's own directory (the SQLite file lives here).
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// The default configuration and an in-memory rate limiter.
    pub async fn spawn() -> Self {
        Self::spawn_with(ServerConfig::default(), RateLimiter::in_memory()).await
    }

    /// `config` and an in-memory rate limiter.
    pub async fn spawn_with_config(config: ServerConfig) -> Self {
        Self::spawn_with(config, RateLimiter::in_memory()).await
    }

    /// `config` and `limiter`, over a fresh database of the selected backend.
    pub async fn spawn_with(config: ServerConfig, limiter: RateLimiter) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_test_store(TestDatabase::create(dir.path(), "test.db").await).await;
        Self::spawn_on(store, dir, config, limiter).await
    }

    /// Serves an existing store (to restart a server over the same database,
    /// or to run a second instance beside the first). `database_url` is the
    /// store's own when [`database`] opened it, else the SQLite file `dir/test.db`.
    pub async fn spawn_on(store: SharedStore, dir: TempDir, config: ServerConfig, limiter: RateLimiter) -> Self {
        let database_url = database::url_of(&store).unwrap_or_else(|| TestDatabase::sqlite(dir.path(), "test.db").url);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let state = AppState::new(config, store.clone(), limiter);
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(listener, state, async {
            let _ = stop.await;
        }));
        let mut app = Self {
            address,
            client: reqwest::Client::new(),
            token: String::new(),
            store,
            database_url,
            dir,
            shutdown: Some(shutdown),
            server: Some(server),
        };
        app.token = app.issue_token("default", Scope::Write, None).await;
        app
    }

    /// A second server over this one's store (with its own token cache and
    /// rate-limit state), as another instance of a deployment would be.
    pub async fn spawn_beside(&self, limiter: RateLimiter) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn_on(self.store.clone(), dir, ServerConfig::default(), limiter).await
    }

    /// A new token of `account` (created if needed).
    pub async fn issue_token(&self, account: &str, scope: Scope, rate_limit: Option<RateLimit>) -> String {
        if self.store.find_account(account).await.expect("find account").is_none() {
            admin::create_account(&self.store, account).await.expect("create account");
        }
        let (secret, _) = admin::issue_token(&self.store, account, scope, rate_limit).await.expect("issue token");
        secret.expose().to_owned()
    }

    /// `http://<its address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A request with the default token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as(&self.token, method, path)
    }

    /// A request with `token` as its bearer token.
    pub fn request_as(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    /// GET with the default token.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("request")
    }

    /// POST of a JSON body with the default token.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path).json(body).send().await.expect("request")
    }

    /// PUT of a JSON body with the default token.
    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::PUT, path).json(body).send().await.expect("request")
    }

    /// DELETE with the default token.
    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await.expect("request")
    }

    /// POSTs `request` to `path` (`/v1/customers` or `/v2/customers`), asserts a
    /// `201` with a JSON body, and returns the created customer.
    pub async fn create_at(&self, path: &str, request: &Value) -> Value {
        let response = self.post_json(path, request).await;
        assert_eq!(response.status(), 201, "POST {path} {}", truncated(request));
        body(response).await
    }

    /// Creates `count` customers `C<n>` <`c<n>@example.com`> at `path`, in order; returns their bodies.
    pub async fn create_many(&self, path: &str, count: usize) -> Vec<Value> {
        let mut created = Vec::with_capacity(count);
        for n in 0..count {
            let request = serde_json::json!({"name": format!("C{n}"), "email": format!("c{n}@example.com")});
            created.push(self.create_at(path, &request).await);
        }
        created
    }

    /// Creates a v2 customer and returns its body.
    pub async fn create_customer(&self, name: &str, email: &str) -> Value {
        self.create_at("/v2/customers", &serde_json::json!({"name": name, "email": email})).await
    }

    /// How many customers the token's account holds: the v1 list's `total`.
    pub async fn v1_total(&self, token: &str) -> u64 {
        let response = self.request_as(token, Method::GET, "/v1/customers?limit=100").send().await.expect("request");
        assert_eq!(response.status(), 200);
        let list: Value = response.json().await.expect("JSON");
        list["total"].as_u64().expect("total")
    }

    /// Stops the server gracefully, keeping the data (directory and database).
    pub async fn stop(mut self) -> (SharedStore, TempDir) {
        self.shutdown_server().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (self.store.clone(), dir)
    }

    async fn shutdown_server(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server");
        }
    }
}

// ---- services: PostgreSQL and Redis servers named by the environment ----

/// `sqlite` (the default) or `postgres`: the store every `TestApp` and CLI test runs on.
pub const BACKEND_VAR: &str = "CLIENTELE_TEST_BACKEND";
/// A PostgreSQL server URL (`postgres://postgres@127.0.0.1:5432/test`); each test gets a database of its own there.
pub const DATABASE_URL_VAR: &str = "CLIENTELE_TEST_DATABASE_URL";
/// A Redis URL (`redis://127.0.0.1:6379`) for the shared rate-limit tests.
pub const REDIS_URL_VAR: &str = "CLIENTELE_TEST_REDIS_URL";

/// The URL of a service a `needs_postgres` / `needs_redis` test uses, from `var`.
///
/// Such a test runs only when asked for (`cargo nextest run --profile ci`), so a
/// missing URL fails it, saying what to set.
pub fn service_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{var} is not set, and this test needs the service it names: set {DATABASE_URL_VAR} \
             (e.g. postgres://postgres@127.0.0.1:5432/test) and {REDIS_URL_VAR} (e.g. redis://127.0.0.1:6379), \
             or leave the service tests out: plain `cargo nextest run` skips every test under a \
             `needs_postgres` or `needs_redis` module (README, \"Quick start\")"
        ),
    }
}

// ---- HTTP responses ----

/// What a response's headers can be read from: the response, or its headers kept after its body was read.
pub trait HasHeaders {
    /// The headers.
    fn header_map(&self) -> &HeaderMap;
}

impl HasHeaders for Response {
    fn header_map(&self) -> &HeaderMap {
        self.headers()
    }
}

impl HasHeaders for HeaderMap {
    fn header_map(&self) -> &HeaderMap {
        self
    }
}

/// A header's value; panics if it is not ASCII.
pub fn header<'a>(from: &'a impl HasHeaders, name: &str) -> Option<&'a str> {
    from.header_map().get(name).map(|value| value.to_str().expect("ASCII header"))
}

/// A header that must be present and hold a whole non-negative number in plain
/// digits; panics (naming `what`) otherwise.
pub fn number_header(from: &impl HasHeaders, name: &str, what: &str) -> u64 {
    let headers = from.header_map();
    let value = header(headers, name).unwrap_or_else(|| panic!("{what}: no {name} header in {headers:?}"));
    assert!(
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        "{what}: {name} must be a whole non-negative number, got {value:?}"
    );
    value.parse().unwrap_or_else(|_| panic!("{what}: {name} {value:?} does not fit in u64"))
}

/// Asserts an error response (status, JSON envelope of API.md §4, request id);
/// returns its headers and the `error` object.
pub async fn expect_error(response: Response, status: u16, code: &str, what: &str) -> (HeaderMap, Value) {
    let actual = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "{what}: expected {status} {code}, got {actual}: {text}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"), "{what}: content type");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: body is not JSON: {text}"));
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "{what}: {body}");
    let expected_type = match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    };
    assert_eq!(error["type"], expected_type, "{what}: {body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: a message: {body}");
    let request_id = header(&headers, "x-request-id").unwrap_or_else(|| panic!("{what}: no X-Request-Id"));
    assert_eq!(error["request_id"], request_id, "{what}: the request id in the body and the header");
    (headers, error)
}

/// [`expect_error`], returning the `error` object.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    expect_error(response, status, code, &format!("{status} {code}")).await.1
}

/// A response with `status` and a JSON body; returns the headers and the body.
pub async fn expect_json(response: Response, status: u16, what: &str) -> (HeaderMap, Value) {
    let actual = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "{what}: expected {status}, got {actual}: {text}");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: body is not JSON: {text}"));
    (headers, body)
}

/// The JSON body of a response, checking its content type.
pub async fn body(response: Response) -> Value {
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    response.json().await.expect("JSON body")
}

/// A JSON object's keys, sorted, to compare a representation's exact field set.
pub fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("a JSON object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// A customer's `id`.
pub fn id_of(customer: &Value) -> String {
    customer["id"].as_str().expect("id is a string").to_owned()
}

/// An RFC 3339 timestamp as Unix seconds.
pub fn unix_of(rfc3339: &str) -> i64 {
    OffsetDateTime::parse(rfc3339, &Rfc3339).expect("RFC 3339").unix_timestamp()
}

/// A request body for an assertion message, cut at 120 characters.
pub fn truncated(body: &Value) -> String {
    let text = body.to_string();
    if text.chars().count() > 120 { format!("{}...", text.chars().take(120).collect::<String>()) } else { text }
}

/// An HTTP client for servers in other processes: no proxy, a 15 s timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build().expect("HTTP client")
}

// ---- the source tree ----

/// The repository's root (`CARGO_MANIFEST_DIR`), where `README.md`, `docs/` and `src/` are.
pub fn source_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---- time and ports ----

/// Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Rate-limit windows are fixed and aligned to the epoch: if less than
/// `margin` is left in the current window of `window_secs`, waits for the next
/// one, so that a test's requests fall in one window.
pub async fn leave_room_in_window(window_secs: u64, margin: Duration) {
    let left = left_in_window(window_secs);
    if left < margin {
        tokio::time::sleep(left + Duration::from_millis(100)).await;
    }
}

/// How long is left of the current rate-limit window of `window_secs` (fixed
/// windows, aligned to the epoch).
pub fn left_in_window(window_secs: u64) -> Duration {
    let window_ms = window_secs * 1000;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    Duration::from_millis(window_ms - now_ms % window_ms)
}

/// A free port below Linux's ephemeral range (32768 and up), so that no
/// outgoing connection of this or another test takes it while a private
/// server (PostgreSQL, Redis) is down between its stop and its restart on it.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found in 20000..32000");
}
