//! `TestApp`: a real server on a random port over a database of its own (a
//! temporary SQLite file, or an empty PostgreSQL database on the PostgreSQL
//! pass: see [`database`]), and the helpers every area of the tests shares;
//! [`process`] starts the real binary.

pub mod database;
pub mod process;

use std::net::SocketAddr;

use clientele::admin;
use clientele::app::{self, AppState};
use clientele::config::ServerConfig;
use clientele::domain::Scope;
use clientele::ratelimit::{RateLimit, RateLimiter};
use clientele::storage::SharedStore;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[allow(unused_imports)]
pub use self::database::{Backend, TestDatabase, open_store_at, open_test_store};

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
    pub async fn spawn() -> Self {
        Self::spawn_with(ServerConfig::default(), RateLimiter::in_memory()).await
    }

    pub async fn spawn_with_config(config: ServerConfig) -> Self {
        Self::spawn_with(config, RateLimiter::in_memory()).await
    }

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
        let server = tokio::spawn(app::serve(listener, state, async {
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

    /// A new token of `account` (created if needed).
    pub async fn issue_token(&self, account: &str, scope: Scope, rate_limit: Option<RateLimit>) -> String {
        if self.store.find_account(account).await.expect("find account").is_none() {
            admin::create_account(&self.store, account).await.expect("create account");
        }
        let (secret, _) = admin::issue_token(&self.store, account, scope, rate_limit).await.expect("issue token");
        secret.expose().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A request with the default token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as(&self.token, method, path)
    }

    pub fn request_as(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path).json(body).send().await.expect("request")
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::PUT, path).json(body).send().await.expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await.expect("request")
    }

    /// Creates a v2 customer and returns its body.
    pub async fn create_customer(&self, name: &str, email: &str) -> Value {
        let response = self.post_json("/v2/customers", &serde_json::json!({"name": name, "email": email})).await;
        assert_eq!(response.status(), 201, "create customer");
        response.json().await.expect("json")
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

/// Asserts an error response's status and envelope, returning the `error` object.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "content type for {code}"
    );
    let request_id = response.headers().get("x-request-id").expect("x-request-id").to_str().unwrap().to_owned();
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "body: {body}");
    assert_eq!(error["request_id"], request_id.as_str(), "request id in body and header");
    let expected_type = match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500 | 503 => "api_error",
        _ => "invalid_request_error",
    };
    assert_eq!(error["type"], expected_type, "type for {code}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "message for {code}");
    error
}

/// A JSON object's keys, sorted, to compare a representation's exact field set.
pub fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("a JSON object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

pub fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|value| value.to_str().expect("ASCII header"))
}

/// The JSON body of a response, checking its content type.
pub async fn body(response: Response) -> Value {
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    response.json().await.expect("JSON body")
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
