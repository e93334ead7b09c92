//! In-memory fixed windows in a sharded map: no global lock on the hot path.

use dashmap::DashMap;

use super::{Decision, RateLimit};

#[derive(Debug, Clone, Copy)]
struct Window {
    index: u64,
    window_ms: u64,
    count: u64,
}

/// Counters for the keys seen in their current window; ended windows are pruned.
#[derive(Default)]
pub struct MemoryLimiter {
    windows: DashMap<Box<str>, Window, ahash::RandomState>,
}

impl MemoryLimiter {
    pub fn check(&self, key: &str, limit: RateLimit, now_ms: u64) -> Decision {
        let position = limit.position(now_ms);
        let count = match self.windows.get_mut(key) {
            Some(mut window) => bump(&mut window, limit, position.index, position.window_ms),
            None => {
                let mut window = self.windows.entry(key.into()).or_insert(Window {
                    index: position.index,
                    window_ms: position.window_ms,
                    count: 0,
                });
                bump(&mut window, limit, position.index, position.window_ms)
            }
        };
        limit.decide(count, position)
    }

    /// Raises `key`'s count in the current window to `count` (what Redis last
    /// said) if it is lower, without counting a request: counting here while
    /// Redis does not answer then goes on from it (API.md §5).
    pub fn seed(&self, key: &str, limit: RateLimit, count: u64, now_ms: u64) {
        let position = limit.position(now_ms);
        // As `bump` does, stop one past the limit.
        let count = count.min(u64::from(limit.limit) + 1);
        let empty = Window { index: position.index, window_ms: position.window_ms, count: 0 };
        let raise = |window: &mut Window| {
            if window.index != position.index || window.window_ms != position.window_ms {
                *window = empty;
            }
            window.count = window.count.max(count);
        };
        match self.windows.get_mut(key) {
            Some(mut window) => raise(&mut window),
            None => raise(&mut self.windows.entry(key.into()).or_insert(empty)),
        }
    }

    /// How many requests `key` has used in its current window, without counting one.
    pub fn used(&self, key: &str, limit: RateLimit, now_ms: u64) -> u64 {
        let position = limit.position(now_ms);
        self.windows
            .get(key)
            .filter(|window| window.index == position.index && window.window_ms == position.window_ms)
            .map_or(0, |window| window.count)
    }

    pub fn prune(&self, now_ms: u64) {
        self.windows.retain(|_, window| (window.index + 1) * window.window_ms > now_ms);
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

/// Counts one request; past the limit the counter stops, so it cannot grow without bound.
fn bump(window: &mut Window, limit: RateLimit, index: u64, window_ms: u64) -> u64 {
    if window.index != index || window.window_ms != window_ms {
        *window = Window { index, window_ms, count: 0 };
    }
    if window.count <= u64::from(limit.limit) {
        window.count += 1;
    }
    window.count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_then_refuses_then_resets_next_window() {
        let limiter = MemoryLimiter::default();
        let limit = RateLimit { limit: 3, window_secs: 2 };
        let remaining: Vec<_> = (0..5).map(|_| limiter.check("t", limit, 10_000)).collect();
        assert_eq!(remaining.iter().map(|d| d.remaining).collect::<Vec<_>>(), [2, 1, 0, 0, 0]);
        assert_eq!(remaining.iter().map(|d| d.allowed).collect::<Vec<_>>(), [true, true, true, false, false]);
        assert_eq!(remaining[0].reset_secs, 2);
        let next = limiter.check("t", limit, 12_000);
        assert!(next.allowed);
        assert_eq!(next.remaining, 2);
    }

    #[test]
    fn a_seeded_count_is_where_counting_goes_on_and_never_lowers_a_count() {
        let limiter = MemoryLimiter::default();
        let limit = RateLimit { limit: 10, window_secs: 60 };
        limiter.seed("t", limit, 8, 1_000);
        assert_eq!(limiter.used("t", limit, 1_000), 8);
        assert_eq!(limiter.check("t", limit, 1_000).remaining, 1, "the 9th");
        limiter.seed("t", limit, 3, 1_000);
        assert_eq!(limiter.used("t", limit, 1_000), 9, "a lower count is ignored");
        assert!(limiter.check("t", limit, 1_000).allowed, "the 10th");
        assert!(!limiter.check("t", limit, 1_000).allowed, "the 11th");
        limiter.seed("t", limit, 5, 60_000);
        assert_eq!(limiter.used("t", limit, 60_000), 5, "a new window starts from its own seed");
        limiter.seed("u", limit, u64::MAX, 60_000);
        assert_eq!(limiter.used("u", limit, 60_000), 11, "one past the limit at most");
    }

    #[test]
    fn keys_are_independent_and_pruned_after_their_window() {
        let limiter = MemoryLimiter::default();
        let limit = RateLimit { limit: 1, window_secs: 1 };
        assert!(limiter.check("a", limit, 0).allowed);
        assert!(limiter.check("b", limit, 0).allowed);
        assert!(!limiter.check("a", limit, 500).allowed);
        assert_eq!(limiter.used("a", limit, 500), 2);
        limiter.prune(999);
        assert_eq!(limiter.len(), 2);
        limiter.prune(1000);
        assert!(limiter.is_empty());
    }
}
