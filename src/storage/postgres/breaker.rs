//! A circuit breaker in front of the PostgreSQL pool: fail fast while the
//! database is down, heal within a fraction of a second once it is back.
//!
//! Without it every request during an outage would wait the pool's whole
//! acquire timeout (sqlx retries a refused connection until then) before its
//! 503. Instead, a failed or slow operation makes the breaker try one direct
//! connection (a probe); if the database cannot be reached the circuit opens:
//! operations waiting on the pool and every new one answer `Unavailable` at
//! once, while a background probe retries every [`PROBE_INTERVAL`] and closes
//! the circuit as soon as a connection opens. Only a database that cannot be
//! reached trips it: one that answers with an error (too many connections, a
//! bad password) is up, and its errors are the requests' to report.
//!
//! The healthy path costs one atomic load and one timer per operation.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use tokio::sync::Notify;

use crate::storage::StoreError;

/// An operation still running after this long makes the breaker check the
/// database: so a request caught by an outage waits about this long, not the
/// pool's acquire timeout.
const SUSPECT_AFTER: Duration = Duration::from_millis(250);
/// While the circuit is open the database is probed this often, so a recovery
/// is noticed within about this long; also the least time between two probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// A probe that has not connected within this long counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Breaker {
    /// Where a probe connects: the pool's own options.
    options: PgConnectOptions,
    open: AtomicBool,
    /// A probe task is running; at most one at a time.
    probing: AtomicBool,
    /// Milliseconds since `epoch`, plus one (0: never), of the last probe started
    /// and of the last failure seen (see [`Breaker::idle_since_last_failure`]).
    last_probe: AtomicU64,
    last_failure: AtomicU64,
    epoch: Instant,
    /// Wakes the operations waiting on the pool when the circuit opens.
    tripped: Notify,
    /// What an operation needs left of its request's time to start (see [`crate::deadline`]).
    operation_time: Duration,
}

impl Breaker {
    pub fn new(options: PgConnectOptions, operation_time: Duration) -> Arc<Self> {
        Arc::new(Self {
            options,
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            last_probe: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            epoch: Instant::now(),
            tripped: Notify::new(),
            operation_time,
        })
    }

    /// Runs a store operation unless the circuit is open or its request has
    /// too little time left to finish it; reports its failure.
    pub async fn run<T>(
        self: &Arc<Self>,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if !crate::deadline::has_left(self.operation_time) {
            return Err(StoreError::Unavailable("too little of the request's time is left to use the database".into()));
        }
        if self.open.load(Ordering::Acquire) {
            // A probe is normally running already; this only restarts one that was lost.
            self.probe_soon();
            return Err(open_error());
        }
        let mut operation = std::pin::pin!(operation);
        let result = match tokio::time::timeout(SUSPECT_AFTER, operation.as_mut()).await {
            Ok(result) => result,
            Err(_) => self.wait_unless_tripped(operation).await,
        };
        if let Err(StoreError::Unavailable(_)) = &result {
            self.last_failure.store(self.now_ms(), Ordering::Release);
            self.probe_soon();
        }
        result
    }

    /// Whether a pooled connection has been idle since before the last failure:
    /// it may have died with the database, so it is pinged before use.
    pub fn idle_since_last_failure(&self, idle_for: Duration) -> bool {
        let failed_at = self.last_failure.load(Ordering::Acquire);
        failed_at != 0 && self.now_ms().saturating_sub(failed_at) <= millis(idle_for)
    }

    /// A slow operation: probe the database, and give up at once if the circuit opens.
    async fn wait_unless_tripped<T>(
        self: &Arc<Self>,
        mut operation: Pin<&mut impl Future<Output = Result<T, StoreError>>>,
    ) -> Result<T, StoreError> {
        let mut tripped = std::pin::pin!(self.tripped.notified());
        // Registered before the state is read, so no trip falls between the two.
        tripped.as_mut().enable();
        loop {
            if self.open.load(Ordering::Acquire) {
                return Err(open_error());
            }
            self.probe_soon();
            tokio::select! {
                biased;
                result = operation.as_mut() => return result,
                () = tripped.as_mut() => return Err(open_error()),
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
        }
    }

    /// Starts a probe unless one is running or one started less than [`PROBE_INTERVAL`] ago.
    fn probe_soon(self: &Arc<Self>) {
        let now = self.now_ms();
        let last = self.last_probe.load(Ordering::Acquire);
        if last != 0 && now.saturating_sub(last) < millis(PROBE_INTERVAL) {
            return;
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last_probe.store(now, Ordering::Release);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.probing.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(probe(ProbeTask(Arc::downgrade(self))));
    }

    /// Opens the circuit (if closed) and wakes every operation waiting on the pool.
    fn trip(&self, reason: &str) {
        self.last_failure.store(self.now_ms(), Ordering::Release);
        if !self.open.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                reason = %crate::secrets::redact(reason),
                "PostgreSQL cannot be reached: answering 503 at once, probing every {} ms",
                PROBE_INTERVAL.as_millis()
            );
        }
        self.tripped.notify_waiters();
    }

    fn close(&self) {
        if self.open.swap(false, Ordering::AcqRel) {
            tracing::info!("PostgreSQL answers again: serving from the database");
        }
    }

    /// Tries one connection of its own; `Err` says why the database cannot be reached.
    async fn reach(&self) -> Result<(), String> {
        let connecting = async {
            let mut connection = PgConnection::connect_with(&self.options).await?;
            connection.execute("SELECT 1").await?;
            connection.close().await
        };
        match tokio::time::timeout(PROBE_TIMEOUT, connecting).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) if is_answer(&error) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no connection within {} ms", PROBE_TIMEOUT.as_millis())),
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed()) + 1
    }
}

/// An error that proves the server is up and talking (too many connections,
/// authentication, unknown database, ...), unlike a refused or dropped
/// connection, or a server starting up or shutting down (SQLSTATE class 57).
fn is_answer(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            let code = database.code().unwrap_or_default();
            !(code.starts_with("57") || code.starts_with("08"))
        }
        _ => false,
    }
}

fn open_error() -> StoreError {
    StoreError::Unavailable(format!(
        "PostgreSQL cannot be reached (circuit open, probing every {} ms)",
        PROBE_INTERVAL.as_millis()
    ))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The running probe: it lets the next one start when it ends, even if its runtime drops it.
struct ProbeTask(Weak<Breaker>);

impl Drop for ProbeTask {
    fn drop(&mut self) {
        if let Some(breaker) = self.0.upgrade() {
            breaker.probing.store(false, Ordering::Release);
        }
    }
}

/// Probes until the database can be reached, keeping the circuit open meanwhile.
/// Ends when the store is dropped.
async fn probe(task: ProbeTask) {
    loop {
        let Some(breaker) = task.0.upgrade() else { return };
        breaker.last_probe.store(breaker.now_ms(), Ordering::Release);
        match breaker.reach().await {
            Ok(()) => {
                breaker.close();
                return;
            }
            Err(reason) => breaker.trip(&reason),
        }
        drop(breaker);
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_breaker() -> Arc<Breaker> {
        // Port 1 on the loopback: refused at once.
        Breaker::new(PgConnectOptions::new().host("127.0.0.1").port(1).username("nobody"), Duration::from_secs(1))
    }

    #[tokio::test]
    async fn an_unreachable_database_opens_the_circuit_and_fails_fast() {
        let breaker = unreachable_breaker();
        let first = breaker.run(async { Err::<(), _>(StoreError::Unavailable("refused".into())) }).await;
        assert!(matches!(first, Err(StoreError::Unavailable(_))));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !breaker.open.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the probe opens the circuit");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        let never = breaker.run(std::future::pending::<Result<(), StoreError>>()).await;
        assert!(matches!(never, Err(StoreError::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_waiting_operation_gives_up_when_the_circuit_opens() {
        let breaker = unreachable_breaker();
        let started = Instant::now();
        let stuck = breaker.run(std::future::pending::<Result<(), StoreError>>()).await;
        assert!(matches!(stuck, Err(StoreError::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn other_errors_and_successes_leave_the_circuit_closed() {
        let breaker = unreachable_breaker();
        assert_eq!(breaker.run(async { Ok::<_, StoreError>(7) }).await.unwrap(), 7);
        let conflict = breaker.run(async { Err::<(), _>(StoreError::AlreadyExists) }).await;
        assert!(matches!(conflict, Err(StoreError::AlreadyExists)));
        assert!(!breaker.probing.load(Ordering::Acquire) && !breaker.open.load(Ordering::Acquire));
        assert!(!breaker.idle_since_last_failure(Duration::from_secs(3600)));
    }

    #[test]
    fn connections_idle_since_a_failure_are_suspect() {
        let breaker = unreachable_breaker();
        std::thread::sleep(Duration::from_millis(20));
        breaker.last_failure.store(breaker.now_ms(), Ordering::Release);
        assert!(breaker.idle_since_last_failure(Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!breaker.idle_since_last_failure(Duration::from_millis(5)));
    }
}
