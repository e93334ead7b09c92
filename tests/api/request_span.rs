//! Every line logged while a request is served carries that request's id: the
//! edge opens one tracing span per request with the field `request_id` alone
//! (the request line has the route, method and account), and a storage
//! error's cause is logged inside it.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clientele::app::AppState;
use clientele::config::ServerConfig;
use clientele::http;
use clientele::ratelimit::RateLimiter;
use clientele::storage::postgres::PostgresStore;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;

/// Log output collected in memory, one JSON object a line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| serde_json::from_str(line).expect("a JSON log line")).collect()
    }
}

/// A database that refuses every connection makes every token lookup a storage
/// error, answered `503`; its cause is logged once, with the request's id.
/// (Current-thread runtime: the server's tasks run on this thread, under its subscriber.)
#[tokio::test]
async fn a_storage_error_is_logged_with_its_request_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    // Port 1 on loopback: nothing listens, so every connection is refused at once.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nothing")
        .unwrap();
    let state =
        AppState::new(ServerConfig::default(), Arc::new(PostgresStore::from_pool(pool)), RateLimiter::in_memory());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let response = reqwest::Client::new()
        .get(format!("{base}/v2/customers"))
        .header("Authorization", "Bearer clt_abcdefghijklmnopqrstuvwxyz012345")
        .header("X-Request-Id", "span-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-request-id"], "span-test-1");
    server.abort();

    let lines = captured.lines();
    let error_line = lines
        .iter()
        .find(|line| line["fields"]["message"] == "answered with a server error")
        .unwrap_or_else(|| panic!("no server-error line in {lines:#?}"));
    assert_eq!(error_line["level"], "WARN");
    assert_eq!(error_line["fields"]["code"], "service_unavailable");
    assert!(error_line["fields"]["cause"].as_str().unwrap().contains("database"), "{error_line}");
    let span = &error_line["span"];
    assert_eq!(span["name"], "request");
    assert_eq!(span["request_id"], "span-test-1", "{error_line}");
    assert_eq!(span.as_object().unwrap().len(), 2, "the name and the request id: {span}");
    // The one request line, logged after the span, carries the id as a field of its own.
    let served: Vec<&Value> = lines.iter().filter(|line| line["target"] == "clientele::request").collect();
    assert_eq!(served.len(), 1, "{lines:#?}");
    assert_eq!(served[0]["fields"]["request_id"], "span-test-1");
    assert_eq!(served[0]["fields"]["route"], "/v2/customers");
    assert_eq!(served[0]["fields"]["method"], "GET");
}
