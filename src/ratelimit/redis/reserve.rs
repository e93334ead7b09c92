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
//! only counts below it can be lost: a request is refused only once at least
//! N/2 have been admitted in its window. What is lost is the unused part of
//! blocks: at most one outstanding per instance and key, each at most
//! [`MAX_BLOCK`] (about 50 ms of the key's traffic on that instance), given
//! from for at most [`MAX_BLOCK_AGE`], and dropped when Redis stops or starts
//! answering again. While a key's traffic is steady, that is a block's worth
//! per instance; bursts separated by quiet spells, or Redis outages, can lose
//! more, never more than N/2 in a window.
//!
//! A count given from a block is at most [`MAX_BLOCK_AGE`] old, so the
//! `X-RateLimit-Remaining` made of it may not yet show what other instances
//! admitted in that time (a batch's count shows it at once).

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// The most counts one block reserves.
pub(super) const MAX_BLOCK: u64 = 1024;

/// A block is sized to last about this long at the key's rate on this instance.
const BLOCK_SPAN: Duration = Duration::from_millis(50);

/// A block is given from for at most this long after Redis granted it; then its
/// unused counts are left (lost), and the key's next request asks Redis again.
/// So a count given from a block, and the `X-RateLimit-Remaining` made of it,
/// is never older than this: another instance's use of the key since shows in
/// the answers here within this time, as a batch's round trip shows it at once.
const MAX_BLOCK_AGE: Duration = Duration::from_millis(100);

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

    /// For this window, with counts left, and not older than [`MAX_BLOCK_AGE`].
    fn is_usable(&self, window_secs: u32, window_index: u64) -> bool {
        self.is_for(window_secs, window_index) && self.next <= self.last && self.granted_at.elapsed() <= MAX_BLOCK_AGE
    }
}

impl Reservations {
    /// One count of `key`'s block for this window, if it has any left and is
    /// younger than [`MAX_BLOCK_AGE`].
    pub fn take(&self, key: &str, window_secs: u32, window_index: u64) -> Option<u64> {
        let mut block = self.blocks.get_mut(key)?;
        if !block.is_usable(window_secs, window_index) {
            return None;
        }
        block.next += 1;
        Some(block.next - 1)
    }

    /// How many counts of `key`'s block for this window are not given yet.
    pub fn unused(&self, key: &str, window_secs: u32, window_index: u64) -> u64 {
        self.blocks
            .get(key)
            .filter(|block| block.is_usable(window_secs, window_index))
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
            // Only this window's block: a late request of the window before must not drop the next one's.
            self.blocks.remove_if(key, |_, block| block.is_for(window_secs, window_index));
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
    fn an_old_block_is_not_given_from() {
        let reservations = Reservations::default();
        let long_ago = Instant::now().checked_sub(MAX_BLOCK_AGE * 2).expect("the clock is past its start");
        reservations.grant("t", 60, 7, 11, 3, long_ago);
        assert_eq!(reservations.take("t", 60, 7), None, "older than MAX_BLOCK_AGE");
        assert_eq!(reservations.unused("t", 60, 7), 0, "its counts are lost, not the instance's to give");
    }

    #[test]
    fn no_block_for_one_window_leaves_the_next_windows_block() {
        let reservations = Reservations::default();
        let now = Instant::now();
        reservations.grant("t", 60, 8, 1, 5, now);
        reservations.grant("t", 60, 7, 900, 0, now);
        assert_eq!(reservations.take("t", 60, 8), Some(1), "a late answer for window 7 keeps window 8's block");
        reservations.grant("t", 60, 8, 20, 0, now);
        assert_eq!(reservations.take("t", 60, 8), None, "window 8's own answer without a block ends it");
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
