//! The real application with a chosen rate-limit backend, for the benchmark
//! to measure what the limiter costs: `off` admits everything uncounted. Also
//! measures the telemetry: `--no-metrics` records no metrics, and
//! `--request-log PATH` writes the JSON request log (as `clientele serve
//! --log-format json` does at level `info`, through the same queue and
//! writing thread) to PATH, `/dev/null` say.
//!
//! Usage: bench_server DATABASE_URL LISTEN off|memory|redis [REDIS_URL] [--no-metrics] [--request-log PATH]

use clientele::app::AppState;
use clientele::config::ServerConfig;
use clientele::logging;
use clientele::metrics::Metrics;
use clientele::ratelimit::{RateLimiter, RedisLimiter};
use clientele::server;
use clientele::storage;

/// The same allocator as the `clientele` binary, so the comparison is fair.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str =
    "usage: bench_server DATABASE_URL LISTEN off|memory|redis [REDIS_URL] [--no-metrics] [--request-log PATH]";

/// On the runtime `clientele serve` runs on.
fn main() -> anyhow::Result<()> {
    server::runtime()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let metrics = match take_flag(&mut args, "--no-metrics") {
        true => Metrics::disabled(),
        false => Metrics::new(),
    };
    let _log = match take_option(&mut args, "--request-log")? {
        Some(path) => Some(log_requests_to(&path)?),
        None => None,
    };
    let [url, listen, limiter, rest @ ..] = args.as_slice() else {
        anyhow::bail!(USAGE);
    };
    let limiter = match limiter.as_str() {
        "off" => RateLimiter::unlimited(),
        "memory" => RateLimiter::in_memory(),
        "redis" => {
            let redis_url = rest.first().map_or("redis://127.0.0.1:6379", String::as_str);
            RateLimiter::with_redis(RedisLimiter::connect(redis_url)?)
        }
        other => anyhow::bail!("unknown limiter {other}"),
    };
    let store = storage::open(url).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("bench_server listening on http://{}", listener.local_addr()?);
    let state = AppState::with_metrics(ServerConfig::default(), store, limiter, metrics);
    server::serve(listener, state, std::future::pending()).await?;
    Ok(())
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|arg| arg != flag);
    args.len() != before
}

fn take_option(args: &mut Vec<String>, option: &str) -> anyhow::Result<Option<String>> {
    let Some(index) = args.iter().position(|arg| arg == option) else { return Ok(None) };
    anyhow::ensure!(index + 1 < args.len(), "{option} needs a value; {USAGE}");
    let value = args.remove(index + 1);
    args.remove(index);
    Ok(Some(value))
}

/// The subscriber of `clientele serve --log-format json`, writing to a file
/// instead of stderr; the guard keeps its writing thread.
fn log_requests_to(path: &str) -> anyhow::Result<logging::LogGuard> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    Ok(logging::init(logging::Format::Json, file, false))
}
