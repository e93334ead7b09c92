//! An account's customer count on PostgreSQL: up to [`COUNT_SHARDS`] rows of
//! `account_counts(account_id, shard, n)` (migration 0005), summed on read.
//! Why no single row: see [`super::writer`].

/// Count rows per account (`account_counts.shard` is `0..COUNT_SHARDS`).
pub const COUNT_SHARDS: i16 = 16;

/// A shard of an account's count, at random, for one write.
pub(super) fn random_shard() -> i16 {
    rand::random_range(0..COUNT_SHARDS)
}

/// Adds `$3` to shard `$2` of account `$1`'s count.
pub(super) const ADD_TO_COUNT: &str = "INSERT INTO account_counts (account_id, shard, n) VALUES ($1, $2, $3) \
     ON CONFLICT (account_id, shard) DO UPDATE SET n = account_counts.n + excluded.n";

/// Account `$1`'s customers: the sum of its count rows (a primary-key range of
/// at most [`COUNT_SHARDS`] rows).
pub(super) const COUNT_CUSTOMERS: &str = "SELECT COALESCE(sum(n), 0)::BIGINT FROM account_counts WHERE account_id = $1";
