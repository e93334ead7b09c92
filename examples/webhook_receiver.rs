//! A webhook receiver for `bench/webhooks.sh`: answers every POST `204` at
//! once and counts them. `GET /stats` answers `{"received", "distinct",
//! "first_ms", "last_ms"}` (Unix milliseconds of the first and last POST).
//!
//! Usage: webhook_receiver [ADDRESS]   (default 127.0.0.1:18090)

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Default)]
struct Stats {
    received: u64,
    ids: HashSet<String>,
    first_ms: Option<u128>,
    last_ms: Option<u128>,
}

type Shared = Arc<Mutex<Stats>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("webhook receiver listening on http://{}", listener.local_addr()?);
    let app = Router::new().route("/hook", post(receive)).route("/stats", get(stats)).with_state(Shared::default());
    axum::serve(listener, app).await
}

async fn receive(State(stats): State<Shared>, headers: HeaderMap) -> StatusCode {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let mut stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
    stats.received += 1;
    if let Some(id) = headers.get("webhook-id").and_then(|id| id.to_str().ok()) {
        stats.ids.insert(id.to_owned());
    }
    stats.first_ms.get_or_insert(now);
    stats.last_ms = Some(now);
    StatusCode::NO_CONTENT
}

async fn stats(State(stats): State<Shared>) -> Json<Value> {
    let stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
    Json(json!({
        "received": stats.received,
        "distinct": stats.ids.len(),
        "first_ms": stats.first_ms.map(|ms| ms as u64),
        "last_ms": stats.last_ms.map(|ms| ms as u64),
    }))
}
