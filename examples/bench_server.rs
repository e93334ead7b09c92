//! The real application with a chosen rate-limit backend, for the benchmark
//! to measure what the limiter costs: `off` admits everything uncounted.
//!
//! Usage: bench_server DATABASE_URL LISTEN off|memory|redis [REDIS_URL]

use clientele::app::{self, AppState};
use clientele::config::ServerConfig;
use clientele::ratelimit::{RateLimiter, RedisLimiter};
use clientele::storage;

/// The same allocator as the `clientele` binary, so the comparison is fair.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, listen, limiter, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: bench_server DATABASE_URL LISTEN off|memory|redis [REDIS_URL]");
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
    let state = AppState::new(ServerConfig::default(), store, limiter);
    app::serve(listener, state, std::future::pending()).await?;
    Ok(())
}
