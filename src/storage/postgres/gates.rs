//! Bounds on how many pooled connections writes may hold while they wait.
//!
//! A write blocked on a row lock holds its connection until PostgreSQL's
//! `lock_timeout`. Twenty requests writing one locked row would hold twenty
//! connections, more than the pool has, and every other request on the
//! instance (other customers, `/readyz`) would wait for one. So:
//!
//! * per row: at most one write of a given customer is at the database at a
//!   time on this instance; the others wait here, holding no connection
//!   (PostgreSQL would have them wait for the same row lock anyway);
//! * in all: writes hold at most the pool's size less [`RESERVED_FOR_READS`]
//!   connections, so reads and health checks always find one, whatever rows
//!   or tables (an account's counter row, say) writes wait on.
//!
//! A wait here ends when the request could no longer start its operation in
//! time ([`crate::deadline::has_left`]): it is answered `Unavailable` (503).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::deadline;
use crate::storage::StoreError;

/// Pooled connections writes leave to reads and health checks.
pub const RESERVED_FOR_READS: u32 = 4;

type RowKey = (String, String);

/// Cloned, it shares the same turns.
#[derive(Clone)]
pub struct WriteGates {
    writers: Arc<Semaphore>,
    rows: Arc<Mutex<HashMap<RowKey, Arc<TurnLock<()>>>>>,
    /// What an operation needs left of its request's time to start.
    operation_time: Duration,
}

/// A write's right to use a connection; gives it back when dropped.
pub struct WriteTurn {
    _row: Option<RowTurn>,
    _writer: OwnedSemaphorePermit,
}

struct RowTurn {
    key: RowKey,
    rows: Arc<Mutex<HashMap<RowKey, Arc<TurnLock<()>>>>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for RowTurn {
    fn drop(&mut self) {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget the row unless another write holds or awaits it: the map holds
        // one reference, this turn's guard (if it got the turn) another.
        let own = usize::from(self.guard.is_some());
        if rows.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) <= 1 + own) {
            rows.remove(&self.key);
        }
        drop(self.guard.take());
    }
}

impl WriteGates {
    /// Gates for a pool of `pool_size` connections.
    pub fn new(pool_size: u32, operation_time: Duration) -> Self {
        let writers = pool_size.saturating_sub(RESERVED_FOR_READS).max(1) as usize;
        Self { writers: Arc::new(Semaphore::new(writers)), rows: Arc::default(), operation_time }
    }

    /// Waits for a write's turn: on `row` (account id, customer id) if it
    /// writes an existing customer, and among all writes.
    pub async fn enter(&self, row: Option<(&str, &str)>) -> Result<WriteTurn, StoreError> {
        let start_by = deadline::store_deadline().map(|deadline| deadline.checked_sub(self.operation_time));
        let row = match row {
            Some((account_id, customer_id)) => Some(self.row_turn(account_id, customer_id, start_by).await?),
            None => None,
        };
        let writer = until(start_by, self.writers.clone().acquire_owned())
            .await?
            .map_err(|_| StoreError::Unavailable("the store is closing".into()))?;
        Ok(WriteTurn { _row: row, _writer: writer })
    }

    async fn row_turn(
        &self,
        account_id: &str,
        customer_id: &str,
        start_by: Option<Option<Instant>>,
    ) -> Result<RowTurn, StoreError> {
        let key = (account_id.to_owned(), customer_id.to_owned());
        let lock = {
            let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
            rows.entry(key.clone()).or_default().clone()
        };
        // Made before waiting, so a write that gives up still forgets the row if it was the last.
        let mut turn = RowTurn { key, rows: self.rows.clone(), guard: None };
        turn.guard = Some(until(start_by, lock.lock_owned()).await?);
        Ok(turn)
    }
}

/// `wait`, given up at `start_by` (`Some(None)`: already too late; `None`: no deadline).
async fn until<T>(start_by: Option<Option<Instant>>, wait: impl Future<Output = T>) -> Result<T, StoreError> {
    match start_by {
        None => Ok(wait.await),
        Some(None) => Err(busy()),
        Some(Some(start_by)) => tokio::time::timeout_at(start_by.into(), wait).await.map_err(|_| busy()),
    }
}

fn busy() -> StoreError {
    StoreError::Unavailable("other writes of the same data are still waiting for the database".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::{Budget, Deadlines, scope};

    #[tokio::test]
    async fn one_write_per_row_at_a_time_and_the_others_give_up_in_time() {
        let budget = Budget::new(Duration::from_secs(2));
        let gates = Arc::new(WriteGates::new(16, budget.operation_time()));
        let first = gates.enter(Some(("acct", "cus_1"))).await.unwrap();
        // Another row and an insert still get their turn.
        drop(gates.enter(Some(("acct", "cus_2"))).await.unwrap());
        drop(gates.enter(None).await.unwrap());
        let started = Instant::now();
        let second = scope(Deadlines::starting_now(budget), gates.enter(Some(("acct", "cus_1")))).await;
        assert!(matches!(second, Err(StoreError::Unavailable(_))));
        let waited = started.elapsed();
        let expected = budget.store() - budget.operation_time();
        assert!(waited >= expected && waited < expected + Duration::from_millis(300), "{waited:?}");
        drop(first);
        assert!(gates.rows.lock().unwrap().is_empty(), "rows are forgotten when nobody waits");
        drop(gates.enter(Some(("acct", "cus_1"))).await.unwrap());
    }

    #[tokio::test]
    async fn writes_leave_connections_to_reads() {
        let gates = WriteGates::new(6, Duration::from_millis(10));
        let held: Vec<_> = [gates.enter(None).await.unwrap(), gates.enter(None).await.unwrap()].into();
        let budget = Budget::new(Duration::from_secs(1));
        let third = scope(Deadlines::starting_now(budget), gates.enter(None)).await;
        assert!(matches!(third, Err(StoreError::Unavailable(_))), "6 connections, 4 kept for reads");
        drop(held);
    }
}
