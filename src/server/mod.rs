//! Connection handling (API.md §1, "Slow, idle and hostile connections"): the
//! accept loop with its connection cap, hyper's HTTP/1.1 server per connection,
//! the head, body and idle timeouts, and a shutdown with a deadline.
//!
//! * At most [`ConnectionSettings::max_connections`] connections are served.
//!   At the cap, the loop takes one more connection off the listen queue and
//!   makes room for it by closing the longest-idle keep-alive connection, else
//!   the oldest one still sending its head, idle or slow for at least half a
//!   second ([`activity::Registry`]); when there is none, the new one waits,
//!   and further ones wait in the kernel's listen queue. So slow clients
//!   cannot starve ready ones, which send their request within that time.
//! * Each connection has a watchdog ([`connection`]): the head must arrive
//!   within the head timeout (from the accept, or from its first byte after a
//!   keep-alive pause), an idle keep-alive connection is closed after the idle
//!   timeout. hyper's own `header_read_timeout` is not used: it starts when a
//!   connection goes idle, so it would close keep-alive connections after the
//!   head timeout instead of the idle timeout.
//! * A request body must arrive within the body timeout ([`body::TimedBody`]);
//!   the body extractor answers `408` ([`crate::http::error::ErrorCode::RequestTimeout`]) and closes.
//! * A head too large is answered `414`/`431` in JSON before hyper sees it ([`io`]).
//! * On shutdown the listener closes, connections without a request in flight
//!   close at once, the others finish (hyper-util's graceful watcher) for up
//!   to the shutdown timeout; then the rest are dropped.

pub mod activity;
pub mod body;
pub mod connection;
pub mod head;
pub mod io;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Response;
use hyper::server::conn::http1;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::Service;

use crate::app::{self, AppState};
use crate::{http, webhooks};

use self::activity::{Activity, Registry};
pub use self::body::{BodyTimedOut, is_body_timeout};
pub use self::connection::AppRequest;
use self::connection::Connection;

/// How often the accept loop, at the cap with every connection busy, looks again for one to evict.
const EVICTION_RETRY: Duration = Duration::from_millis(50);
/// A connection is evicted only after this long idle or sending its head: a
/// ready client sends its whole request well within it, so it is never the
/// one closed, however fast new connections arrive.
const EVICTION_GRACE: Duration = Duration::from_millis(500);

/// The connection limits of `clientele serve` (API.md §1 and §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The whole request head must arrive within this (`--header-timeout`).
    pub header_timeout: Duration,
    /// The whole request body must arrive within this, counted from the end of the head (`--body-timeout`).
    pub body_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// On shutdown, requests in flight get this long to finish (`--shutdown-timeout`).
    pub shutdown_timeout: Duration,
    /// Connections served at once (`--max-connections`), at least 1.
    pub max_connections: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// The async runtime `clientele` runs on: multi-threaded, one worker per
/// core (tokio's default; the environment variable `TOKIO_WORKER_THREADS`, a
/// whole number of at least 1, sets another count: docs/deploying.md,
/// "Capacity"), every driver enabled. A worker about to wait for work ends the
/// SQLite read transactions it keeps between point reads
/// ([`crate::storage::sqlite::release_read_snapshots`]), so none is held
/// while the thread has nothing to do.
///
/// Errors: the OS refused the runtime's threads or its I/O driver.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(crate::storage::sqlite::release_read_snapshots)
        .build()
}

/// Serves the application on a bound listener until `shutdown` resolves,
/// then finishes the requests in flight, with the default connection
/// settings. Takes a bound listener, so tests can bind port 0.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ConnectionSettings::default(), shutdown).await
}

/// [`serve`] with these timeouts, connection cap and shutdown deadline.
/// Responses are compressed here, around the whole router
/// ([`http::compress::Compress`]); the application's upkeep and the webhook
/// delivery worker ([`webhooks::worker`]) run beside it.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let maintenance = tokio::spawn(app::maintain(state.clone()));
    // The delivery worker stops leasing when the drain starts, and gets the same deadline.
    let (stopping, stop_deliveries) = watch::channel(false);
    let deliveries = webhooks::spawn(
        state.store.clone(),
        Arc::new(http::v2::events::render_event),
        &state.config.webhooks,
        state.metrics.webhook_deliveries(),
        stop_deliveries,
        settings.shutdown_timeout,
    );
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    let service = http::compress::Compress::new(http::router(state.clone()));
    let served = serve_service(listener, service, settings, shutdown).await;
    maintenance.abort();
    if let Err(error) = deliveries.await {
        tracing::error!(%error, "the webhook delivery worker failed");
    }
    // The requests served since the last periodic flush (API.md §7: at graceful shutdown).
    app::flush_usage(&state).await;
    served
}

/// Serves `service` on `listener` until `shutdown` resolves, then drains as
/// the module's documentation says. Each request carries the peer address as
/// axum's `ConnectInfo<SocketAddr>`.
pub async fn serve_service<S, B>(
    listener: TcpListener,
    service: S,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    S: Service<AppRequest, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let settings = Arc::new(settings);
    let mut http = http1::Builder::new();
    // The watchdog times heads (see the module's documentation); hyper must not.
    http.header_read_timeout(None);
    let http = Arc::new(http);
    let registry = Arc::new(Registry::default());
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let (stop, stopped) = watch::channel(false);
    let epoch = Instant::now();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error, &registry).await;
                    continue;
                }
            },
        };
        // At the cap: make room by evicting an idle or slow connection. When
        // every connection is serving a request, look again a little later:
        // one of them may have gone idle meanwhile (still holding its place).
        let permit = loop {
            if let Ok(permit) = permits.clone().try_acquire_owned() {
                break Some(permit);
            }
            registry.evict_one(EVICTION_GRACE);
            tokio::select! {
                permit = permits.clone().acquire_owned() => break Some(permit.expect("the semaphore is never closed")),
                () = tokio::time::sleep(EVICTION_RETRY) => {}
                () = &mut shutdown => break None,
            }
        };
        let Some(permit) = permit else { break };
        let activity = Arc::new(Activity::new(epoch));
        let registration = registry.register(activity.clone());
        let connection = Connection {
            peer,
            service: service.clone(),
            settings: settings.clone(),
            http: http.clone(),
            activity: activity.clone(),
            watcher: graceful.watcher(),
            stop: stopped.clone(),
        };
        tasks.spawn(async move {
            connection.run(stream).await;
            drop((registration, permit));
        });
    }

    drop(listener);
    let _ = stop.send(true);
    let open = tasks.len();
    if tokio::time::timeout(settings.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "the shutdown timeout passed with requests still in flight; closing their connections"
        );
    } else if open > 0 {
        tracing::info!(open, "closed every connection");
    }
    tasks.shutdown().await;
    Ok(())
}

/// A failed accept: a connection that went away before it was accepted is no
/// matter; out of file handles, the server makes room as at the cap and waits
/// a moment rather than spinning.
async fn accept_failed(error: std::io::Error, registry: &Registry) {
    use std::io::ErrorKind;
    if matches!(error.kind(), ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted) {
        return;
    }
    tracing::warn!(%error, "cannot accept a connection");
    registry.evict_one(EVICTION_GRACE);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Warns when the connection cap is above what the process may open: past
/// that limit, accepting fails and nobody is served. Read from
/// `/proc/self/limits` (Linux); elsewhere nothing is checked.
pub fn warn_if_above_open_file_limit(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<usize>().ok());
    // Room for the listener, the database, Redis, logs.
    const RESERVED: usize = 64;
    if let Some(soft) = soft.filter(|&soft| max_connections + RESERVED > soft) {
        tracing::warn!(
            max_connections,
            open_file_limit = soft,
            "--max-connections is above the open-file limit: raise it (ulimit -n) or lower --max-connections"
        );
    }
}
