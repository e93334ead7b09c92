//! Blocks of counts reserved in Redis by one `INCRBY` and handed out here, one a request.
//!
//! A key that this instance counts fast (several of its requests in one
//! batch, or its last block used up quickly) has a block of counts reserved
//! beside its batch's own: Redis adds the block to the window's count, and the
//! counts it spans are this instance's to give, one per request, with no
//! round trip. Every count is still a distinct unit of the one counter in
//! Redis, so no more than N requests are admitted in a window, whichever
//! instances serve them (API.md §5).
//!
//! The other direction: counts reserved and never used (the key went quiet,
//! or its window ended) are lost; blocks are never given back, as returning
//! counts could admit more than N. So that this costs other instances little,
//! a block is only reserved while it keeps the window's count within half its
//! limit, decided atomically in Redis ([`SCRIPT`]); past half way every count
//! is exact, per batch. Counts above N/2 are thus all given to requests, and
//! those below it that blocks hold unused are at most the blocks outstanding,
//! one per instance and key, each at most [`MAX_BLOCK`]: with K instances, a
//! request is refused only once at least `N - min(N/2, K × MAX_BLOCK)` have
//! been admitted in its window.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// The most counts one block reserves.
pub(super) const MAX_BLOCK: u64 = 1024;

/// A block is sized to last about this long at the key's rate on this instance.
const BLOCK_SPAN: Duration = Duration::from_millis(50);

/// Counts `ARGV[1]` requests in `KEYS[1]` and reserves up to `ARGV[2]` more
/// counts, as far as the count stays within `ARGV[3]`; a new key lives
/// `ARGV[4]` ms. Answers `{count, reserved}`: the requests have the counts
/// `count - reserved - ARGV[1] + 1 ..= count - reserved`, the block the rest.
pub(super) const SCRIPT: &str = r"
local requests = tonumber(ARGV[1])
redis.call('SET', KEYS[1], 0, 'PX', ARGV[4], 'NX')
local before = tonumber(redis.call('GET', KEYS[1]))
local reserved = math.max(0, math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) - before - requests))
return {redis.call('INCRBY', KEYS[1], requests + reserved), reserved}
";

/// The count up to which blocks may be reserved for a limit of `limit`: half of it.
pub(super) fn reserve_up_to(limit: u32) -> u64 {
    u64::from(limit) / 2
}

/// The unused part of each key's last block, for one window of one limit.
#[derive(Default)]
pub(super) struct Reservations {
    blocks: DashMap<Box<str>, Block, ahash::RandomState>,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    window_secs: u32,
    window_index: u64,
    /// The next count to give; the block is used up once it is past `last`.
    next: u64,
    last: u64,
    size: u64,
    granted_at: Instant,
}

impl Block {
    fn is_for(&self, window_secs: u32, window_index: u64) -> bool {
        self.window_secs == window_secs && self.window_index == window_index
    }
}

impl Reservations {
    /// One count of `key`'s block for this window, if it has any left.
    pub fn take(&self, key: &str, window_secs: u32, window_index: u64) -> Option<u64> {
        let mut block = self.blocks.get_mut(key)?;
        if !block.is_for(window_secs, window_index) || block.next > block.last {
            return None;
        }
        block.next += 1;
        Some(block.next - 1)
    }

    /// How many counts of `key`'s block for this window are not given yet.
    pub fn unused(&self, key: &str, window_secs: u32, window_index: u64) -> u64 {
        self.blocks
            .get(key)
            .filter(|block| block.is_for(window_secs, window_index))
            .map_or(0, |block| (block.last + 1).saturating_sub(block.next))
    }

    /// How many counts to reserve for `key` beside the `requests` of it that a
    /// batch counts now (its block, if any, being used up).
    pub fn wanted(&self, key: &str, window_secs: u32, window_index: u64, requests: usize, now: Instant) -> u64 {
        let last_block = self
            .blocks
            .get(key)
            .filter(|block| block.is_for(window_secs, window_index))
            .map(|block| (block.size, now.saturating_duration_since(block.granted_at)));
        block_size(last_block, requests)
    }

    /// Records the block `first ..= first + size - 1` granted to `key`, or,
    /// with `size` 0, that it has none.
    pub fn grant(&self, key: &str, window_secs: u32, window_index: u64, first: u64, size: u64, now: Instant) {
        if size == 0 {
            self.blocks.remove(key);
            return;
        }
        let block = Block { window_secs, window_index, next: first, last: first + size - 1, size, granted_at: now };
        self.blocks.insert(key.into(), block);
    }

    /// Forgets every block: while Redis does not answer, and when it answers again
    /// (it may have restarted and lost the counts the blocks are part of).
    pub fn clear(&self) {
        self.blocks.clear();
    }

    /// Forgets the blocks of windows that have ended at `now_ms`.
    pub fn prune(&self, now_ms: u64) {
        self.blocks.retain(|_, block| (block.window_index + 1) * u64::from(block.window_secs) * 1000 > now_ms);
    }
}

/// The block to reserve next: as many counts as the key's last block of this
/// window lasted for at its rate over [`BLOCK_SPAN`], or, without one, as many
/// as the requests a batch counts at once (that many came in one round trip);
/// none for a single request or a slow key, at most [`MAX_BLOCK`].
fn block_size(last_block: Option<(u64, Duration)>, requests: usize) -> u64 {
    let concurrent = if requests >= 2 { requests as u64 } else { 0 };
    let by_rate = last_block.map_or(0, |(size, lasted)| {
        let lasted_us = lasted.as_micros().max(1);
        (u128::from(size) * BLOCK_SPAN.as_micros() / lasted_us).min(u128::from(MAX_BLOCK)) as u64
    });
    match concurrent.max(by_rate) {
        size if size < 2 => 0,
        size => size.min(MAX_BLOCK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_at_a_time_reserves_nothing() {
        assert_eq!(block_size(None, 1), 0);
        assert_eq!(block_size(Some((10, Duration::from_secs(1))), 1), 0, "10 counts lasted 1 s: slow");
    }

    #[test]
    fn blocks_follow_the_rate_and_are_capped() {
        assert_eq!(block_size(None, 5), 5, "five in one batch: five more");
        assert_eq!(block_size(Some((10, Duration::from_millis(5))), 1), 100, "2,000/s for 50 ms");
        assert_eq!(block_size(Some((10, Duration::from_micros(1))), 1), MAX_BLOCK);
        assert_eq!(block_size(None, 5000), MAX_BLOCK);
        assert_eq!(block_size(Some((100, Duration::from_millis(500))), 8), 10, "200/s: 10, above the batch's 8");
    }

    #[test]
    fn counts_are_given_once_in_their_window_only() {
        let reservations = Reservations::default();
        let now = Instant::now();
        reservations.grant("t", 60, 7, 11, 3, now);
        assert_eq!(reservations.take("t", 60, 8), None, "another window");
        assert_eq!(reservations.take("t", 30, 7), None, "another limit");
        assert_eq!(reservations.unused("t", 60, 7), 3);
        let taken: Vec<_> = (0..4).map(|_| reservations.take("t", 60, 7)).collect();
        assert_eq!(taken, [Some(11), Some(12), Some(13), None]);
        assert_eq!(reservations.unused("t", 60, 7), 0);
        reservations.grant("t", 60, 7, 20, 0, now);
        assert_eq!(reservations.take("t", 60, 7), None);
    }

    #[test]
    fn ended_windows_are_pruned() {
        let reservations = Reservations::default();
        reservations.grant("t", 1, 5, 1, 2, Instant::now());
        reservations.prune(5_999);
        assert_eq!(reservations.unused("t", 1, 5), 2);
        reservations.prune(6_000);
        assert_eq!(reservations.unused("t", 1, 5), 0);
    }
}
