//! The benchmark's baseline: a bare "Hello, World!" on the same HTTP stack
//! (axum + hyper + tokio, multi-threaded runtime) as the real server.

use axum::Router;
use axum::routing::get;

/// The same allocator as the `clientele` binary, so the comparison is fair.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("hello listening on http://{}", listener.local_addr()?);
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    axum::serve(listener, app).await
}
