//! Requests per token and UTC day, by status class (API.md §7, `tokens
//! usage`). Counted in memory on the request path (a sharded map of atomic
//! counters: no I/O), and added to the database by [`crate::app::maintain`]
//! every [`FLUSH_INTERVAL`] and once more at graceful shutdown: never one
//! write per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use crate::domain::TokenId;
use crate::domain::time::now_unix;

/// How often each instance adds its counts to the database (API.md §7: at least once a minute).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// Seconds in a UTC day: days are numbered from the Unix epoch.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// The status classes counted, in this order: 2xx, 3xx, 4xx other than 429, 429, 5xx.
pub const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "429", "5xx"];

/// Requests of one token on one day, by status class ([`CLASSES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub token_id: TokenId,
    /// Days since 1970-01-01, UTC.
    pub day: i64,
    pub counts: [u64; 5],
}

impl UsageRow {
    /// Every request of the row, whatever its status.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The index in [`CLASSES`] of an HTTP status; `None` for 1xx and anything odd.
pub fn class_of(status: u16) -> Option<usize> {
    match status {
        200..=299 => Some(0),
        300..=399 => Some(1),
        429 => Some(3),
        400..=499 => Some(2),
        500..=599 => Some(4),
        _ => None,
    }
}

/// This process's counts since the last flush.
#[derive(Default)]
pub struct UsageCounter {
    counts: DashMap<(TokenId, i64), [AtomicU64; 5], ahash::RandomState>,
}

impl UsageCounter {
    /// Counts one request of `token_id` answered with `status`, today (UTC).
    pub fn record(&self, token_id: &TokenId, status: u16) {
        let Some(class) = class_of(status) else { return };
        let day = now_unix().div_euclid(SECONDS_PER_DAY);
        let key = (token_id.clone(), day);
        if let Some(counts) = self.counts.get(&key) {
            counts[class].fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counts.entry(key).or_default()[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the counts so far (zeroing them); days that are over are forgotten.
    pub fn take(&self) -> Vec<UsageRow> {
        let today = now_unix().div_euclid(SECONDS_PER_DAY);
        let mut rows = Vec::new();
        for entry in self.counts.iter() {
            let counts = entry.value().each_ref().map(|count| count.swap(0, Ordering::Relaxed));
            if counts.iter().any(|&count| count > 0) {
                rows.push(UsageRow { token_id: entry.key().0.clone(), day: entry.key().1, counts });
            }
        }
        self.counts.retain(|(_, day), counts| *day >= today || counts.iter().any(|c| c.load(Ordering::Relaxed) > 0));
        rows
    }

    /// Puts back counts a flush could not write, for the next one.
    pub fn restore(&self, rows: Vec<UsageRow>) {
        for row in rows {
            let entry = self.counts.entry((row.token_id, row.day)).or_default();
            for (count, add) in entry.iter().zip(row.counts) {
                count.fetch_add(add, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids;

    #[test]
    fn classes() {
        assert_eq!(
            [200, 204, 304, 404, 403, 429, 500, 503, 101].map(class_of),
            [Some(0), Some(0), Some(1), Some(2), Some(2), Some(3), Some(4), Some(4), None]
        );
    }

    #[test]
    fn counts_are_taken_once_and_restored_when_unwritten() {
        let counter = UsageCounter::default();
        let (a, b) = (ids::token_id(), ids::token_id());
        for status in [200, 200, 404, 429, 503, 301] {
            counter.record(&a, status);
        }
        counter.record(&b, 201);
        let mut rows = counter.take();
        rows.sort_by(|x, y| x.token_id.cmp(&y.token_id));
        let today = now_unix() / SECONDS_PER_DAY;
        assert_eq!(
            rows,
            vec![
                UsageRow { token_id: a.clone(), day: today, counts: [2, 1, 1, 1, 1] },
                UsageRow { token_id: b, day: today, counts: [1, 0, 0, 0, 0] },
            ]
        );
        assert_eq!(rows[0].total(), 6);
        assert!(counter.take().is_empty(), "taken once");
        counter.restore(rows.clone());
        counter.record(&a, 200);
        let again: u64 = counter.take().iter().map(UsageRow::total).sum();
        assert_eq!(again, 8, "restored counts are added to the new ones");
    }
}
