//! Runs the HTTP layer over the application on a bound listener until shutdown.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::app::{self, AppState};
use crate::http;

/// Serves until `shutdown` resolves, then finishes the requests in flight.
/// Takes a bound listener, so tests can bind port 0.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let maintenance = tokio::spawn(app::maintain(state.clone()));
    let app = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    maintenance.abort();
    // The requests served since the last periodic flush (API.md §7: at graceful shutdown).
    app::flush_usage(&state).await;
    served
}
