//! Every request's time budget (`serve --request-timeout`) and the limits derived from it.
//!
//! A request is answered by its deadline, `503` with
//! `Retry-After` at the latest ([`crate::http::deadline`]). Its database work
//! must be over by then, or a write answered 503 could still be applied
//! afterwards. So the store works to an earlier deadline, the *store
//! deadline*, [`Budget::margin`] before the answer's:
//!
//! ```text
//! request starts            store deadline           answer deadline
//! |--------------------------------|- - - margin - - - -|
//!   database operations start only while they can end
//!   before the store deadline: PostgreSQL's statement_timeout,
//!   lock_timeout and the pool's acquire timeout are shorter;
//!   SQLite's writer refuses a queued write past its deadline
//! ```
//!
//! The HTTP layer puts the request's [`RequestClock`] in a task-local
//! ([`scope`]); the stores read it with [`store_deadline`]. The clock stops
//! while the request's body arrives ([`excluding`]): that time is bounded by
//! `--body-timeout`, and the request timeout restarts once the body is in. Work outside a request (the
//! admin CLI, background maintenance) has none and is bounded by the
//! per-connection limits alone.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// `--request-timeout` unless set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits one request timeout implies. All are fractions of it, so a
/// shorter `--request-timeout` shortens every wait below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    request: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(DEFAULT_REQUEST_TIMEOUT)
    }
}

impl Budget {
    /// The budget of a request timeout (at least 100 ms, so every limit below it stays positive).
    pub fn new(deadline: Duration) -> Self {
        Self { request: deadline.max(Duration::from_millis(100)) }
    }

    /// When a request is answered at the latest (`--request-timeout`).
    pub fn request(&self) -> Duration {
        self.request
    }

    /// Time between the store deadline and the answer: a write the store
    /// started before its deadline has committed (or failed) by the time the
    /// request would be answered 503. A tenth of the request timeout, 100 ms to 1 s.
    pub fn margin(&self) -> Duration {
        (self.request / 10).clamp(Duration::from_millis(100), Duration::from_secs(1)).min(self.request / 2)
    }

    /// When the store stops working for a request, after the request started.
    pub fn store(&self) -> Duration {
        self.request - self.margin()
    }

    /// PostgreSQL's `statement_timeout` on every pooled connection: a third of [`Budget::store`].
    pub fn statement_timeout(&self) -> Duration {
        self.store() / 3
    }

    /// PostgreSQL's `lock_timeout`: half the statement timeout, at most 2 s. Two
    /// writers of one row wait for each other for milliseconds; a row held
    /// longer (a manual `SELECT ... FOR UPDATE`, a migration) answers 503 soon.
    pub fn lock_timeout(&self) -> Duration {
        (self.statement_timeout() / 2).min(Duration::from_secs(2))
    }

    /// How long a PostgreSQL operation may wait for a pooled connection: a
    /// third of [`Budget::store`], at most 3 s.
    pub fn acquire_timeout(&self) -> Duration {
        (self.store() / 3).min(Duration::from_secs(3))
    }

    /// What a PostgreSQL operation needs left before the store deadline to
    /// start: a connection's wait, then a statement's. One that starts with
    /// less could still run on the server after its request was answered 503.
    pub fn operation_time(&self) -> Duration {
        self.acquire_timeout() + self.statement_timeout()
    }

    /// SQLite's busy timeout (how long a connection waits for another
    /// process's lock on the file): half of [`Budget::store`], at most 5 s.
    pub fn busy_timeout(&self) -> Duration {
        (self.store() / 2).min(Duration::from_secs(5))
    }
}

/// One request's deadlines, set by the HTTP layer for everything the request awaits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The store gives up by then (see the module docs).
    pub store: Instant,
    /// The request is answered by then.
    pub answer: Instant,
}

impl Deadlines {
    /// The deadlines of a request starting now.
    pub fn starting_now(budget: Budget) -> Self {
        let now = Instant::now();
        Self { store: now + budget.store(), answer: now + budget.request() }
    }
}

/// A request's deadlines as they run: they count from the request's start,
/// stop while its body arrives (the body has its own limit, `--body-timeout`,
/// API.md §1) and count again, from the start, once it has arrived. Shared by
/// the layers that answer by the deadline and by the body reader.
#[derive(Debug, Clone)]
pub struct RequestClock(Arc<Clock>);

#[derive(Debug)]
struct Clock {
    budget: Budget,
    /// `None` while the request's body arrives.
    running: Mutex<Option<Deadlines>>,
    /// Woken when `running` changes.
    moved: Notify,
}

impl RequestClock {
    /// A clock for a request starting now.
    pub fn start(budget: Budget) -> Self {
        Self::with(budget, Deadlines::starting_now(budget))
    }

    fn with(budget: Budget, deadlines: Deadlines) -> Self {
        Self(Arc::new(Clock { budget, running: Mutex::new(Some(deadlines)), moved: Notify::new() }))
    }

    /// The budget the clock started with (and restarts with).
    pub fn budget(&self) -> Budget {
        self.0.budget
    }

    /// The deadlines now; `None` while the body arrives.
    pub fn deadlines(&self) -> Option<Deadlines> {
        *self.0.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set(&self, running: Option<Deadlines>) {
        *self.0.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = running;
        self.0.moved.notify_waiters();
    }

    /// Runs `work` until the answer deadline plus `grace`: `None` if it is
    /// still running then. While the clock is stopped nothing expires; when it
    /// restarts, the new deadline counts.
    pub async fn run<F: Future>(&self, grace: Duration, work: F) -> Option<F::Output> {
        let mut work = std::pin::pin!(work);
        // Most requests are done at their first poll (a point read in SQLite
        // runs inline): they need neither the timer nor the wake-up below.
        if let Poll::Ready(output) = std::future::poll_fn(|context| Poll::Ready(work.as_mut().poll(context))).await {
            return Some(output);
        }
        loop {
            let moved = self.0.moved.notified();
            let mut moved = std::pin::pin!(moved);
            moved.as_mut().enable();
            let answer_by = self.deadlines().map(|deadlines| deadlines.answer + grace);
            let expired = async {
                match answer_by {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                output = &mut work => return Some(output),
                () = &mut moved => {}
                () = expired => {
                    // Expired unless the clock moved meanwhile.
                    if self.deadlines().map(|deadlines| deadlines.answer + grace) == answer_by {
                        return None;
                    }
                }
            }
        }
    }
}

impl From<Deadlines> for RequestClock {
    /// A clock at these deadlines, which restarts with the budget they leave from now.
    fn from(deadlines: Deadlines) -> Self {
        Self::with(Budget::new(deadlines.answer.saturating_duration_since(Instant::now())), deadlines)
    }
}

tokio::task_local! {
    static CLOCK: RequestClock;
}

/// Runs `work` (a request) with its clock visible to [`store_deadline`] and
/// [`excluding`].
pub async fn scope<F: Future>(clock: impl Into<RequestClock>, work: F) -> F::Output {
    CLOCK.scope(clock.into(), work).await
}

/// The current request's clock, as [`scope`] made it visible; `None` outside a request.
pub fn current_clock() -> Option<RequestClock> {
    CLOCK.try_with(RequestClock::clone).ok()
}

/// The current request's store deadline; `None` outside a request (and in
/// tasks a request spawned: they outlive it on purpose), and while the
/// request's body arrives.
pub fn store_deadline() -> Option<Instant> {
    CLOCK.try_with(|clock| clock.deadlines().map(|deadlines| deadlines.store)).ok().flatten()
}

/// Runs `arrival` (the read of the request's body) with the request's clock
/// stopped, then restarts the clock: the request timeout counts the work done
/// for the request, not the time its client takes to send it (that is
/// `--body-timeout`'s, API.md §1). Outside a request, just runs it.
pub async fn excluding<F: Future>(arrival: F) -> F::Output {
    let Some(clock) = current_clock() else {
        return arrival.await;
    };
    clock.set(None);
    let output = arrival.await;
    clock.set(Some(Deadlines::starting_now(clock.0.budget)));
    output
}

/// Whether `needed` still fits before the current request's store deadline
/// (always, outside a request).
pub fn has_left(needed: Duration) -> bool {
    store_deadline().is_none_or(|deadline| Instant::now() + needed <= deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_ends_before_the_store_deadline_which_ends_before_the_answer() {
        for seconds in [1, 2, 3, 10, 30, 600] {
            let budget = Budget::new(Duration::from_secs(seconds));
            assert!(budget.margin() >= Duration::from_millis(100), "{budget:?}");
            assert!(budget.store() < budget.request());
            assert!(budget.lock_timeout() < budget.statement_timeout());
            assert!(budget.operation_time() < budget.store(), "{budget:?}");
            assert!(budget.busy_timeout() < budget.store());
        }
        let default = Budget::default();
        assert_eq!(default.store(), Duration::from_secs(9));
        assert_eq!(default.statement_timeout(), Duration::from_secs(3));
        assert_eq!(default.lock_timeout(), Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn the_deadline_is_seen_inside_its_scope_only() {
        assert_eq!(store_deadline(), None);
        assert!(has_left(Duration::from_secs(3600)));
        let deadlines = Deadlines::starting_now(Budget::new(Duration::from_secs(2)));
        scope(deadlines, async move {
            assert_eq!(store_deadline(), Some(deadlines.store));
            assert!(has_left(Duration::from_millis(100)));
            assert!(!has_left(Duration::from_secs(2)));
            let spawned = tokio::spawn(async { store_deadline() }).await.unwrap();
            assert_eq!(spawned, None, "a spawned task outlives the request");
        })
        .await;
    }

    #[tokio::test]
    async fn the_clock_stops_while_the_body_arrives_and_restarts_after() {
        let budget = Budget::new(Duration::from_millis(300));
        // Work longer than the budget is cut at the answer deadline.
        let clock = RequestClock::start(budget);
        let started = Instant::now();
        let cut = clock.run(Duration::ZERO, scope(clock.clone(), tokio::time::sleep(Duration::from_secs(5)))).await;
        assert!(cut.is_none());
        assert!(started.elapsed() < Duration::from_millis(1_000), "{:?}", started.elapsed());

        // A body arriving for twice the budget, then work within it: answered.
        let clock = RequestClock::start(budget);
        let request = async {
            excluding(async {
                assert_eq!(store_deadline(), None, "no store deadline while the body arrives");
                tokio::time::sleep(Duration::from_millis(600)).await;
            })
            .await;
            let restarted = store_deadline().expect("a store deadline once the body is in");
            assert!(restarted > Instant::now() + Duration::from_millis(100), "counted from the body's end");
            tokio::time::sleep(Duration::from_millis(150)).await;
            "answered"
        };
        assert_eq!(clock.run(Duration::ZERO, scope(clock.clone(), request)).await, Some("answered"));

        // The restarted deadline still cuts slow work after the body.
        let clock = RequestClock::start(budget);
        let request = async {
            excluding(tokio::time::sleep(Duration::from_millis(50))).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        let started = Instant::now();
        assert!(clock.run(Duration::ZERO, scope(clock.clone(), request)).await.is_none());
        assert!(started.elapsed() < Duration::from_millis(1_000), "{:?}", started.elapsed());
    }
}
