//! Who is calling, and may they: bearer tokens looked up by hash (cached for
//! [`CACHE_TTL`]), and the failed-authentication limit per client address
//! (API.md §2, §5), global with Redis. No HTTP here: [`crate::http::auth`] is the layer that uses it.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::time::now_unix;
use crate::domain::token::{TokenHash, TokenRecord};
use crate::domain::{AccountId, Scope, TokenId};
use crate::ratelimit::{MemoryLimiter, RateLimit, RedisLimiter, now_ms};
use crate::storage::{SharedStore, StoreError};

/// How long a looked-up token is trusted without asking the store again; so a
/// revoked token stops working within this time (API.md §2 asks for 5 s).
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// How long a token unused is remembered at all (then forgotten, to bound memory).
const CACHE_IDLE_LIMIT: Duration = Duration::from_secs(600);
/// `last_used_at` is written at most this often per token, in seconds.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// Who is calling: what the handlers learn from the token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: TokenId,
    pub account_id: AccountId,
    pub scope: Scope,
    /// `None`: the server's default applies.
    pub rate_limit: Option<RateLimit>,
}

impl From<&TokenRecord> for Principal {
    fn from(record: &TokenRecord) -> Self {
        Self {
            token_id: record.id.clone(),
            account_id: record.account_id.clone(),
            scope: record.scope,
            rate_limit: record.rate_limit,
        }
    }
}

/// A token hash as the cache sees it.
pub enum Cached {
    /// Looked up less than [`CACHE_TTL`] ago: `None` for a revoked token.
    Fresh(Option<Principal>),
    /// Known to exist (or have existed), but due for another lookup.
    Stale,
    Unknown,
}

struct CacheEntry {
    /// `None` for a revoked token.
    principal: Option<Principal>,
    fetched: Instant,
}

/// Turns a presented token's hash into a [`Principal`], through a short-lived cache.
pub struct Authenticator {
    store: SharedStore,
    cache: DashMap<TokenHash, CacheEntry, ahash::RandomState>,
}

impl Authenticator {
    pub fn new(store: SharedStore) -> Self {
        Self { store, cache: DashMap::default() }
    }

    /// What the cache knows of a token hash, from one lookup.
    pub fn cached(&self, hash: &TokenHash) -> Cached {
        match self.cache.get(hash) {
            Some(entry) if entry.fetched.elapsed() < CACHE_TTL => Cached::Fresh(entry.principal.clone()),
            Some(_) => Cached::Stale,
            None => Cached::Unknown,
        }
    }

    /// Looks the token up in the store and caches the answer; `None` for unknown and revoked tokens.
    pub async fn refresh(&self, hash: TokenHash) -> Result<Option<Principal>, StoreError> {
        let Some(record) = self.store.find_token(hash).await? else {
            self.cache.remove(&hash);
            return Ok(None);
        };
        let principal = record.revoked_at.is_none().then(|| Principal::from(&record));
        self.cache.insert(hash, CacheEntry { principal: principal.clone(), fetched: Instant::now() });
        if principal.is_some() {
            self.touch(&record);
        }
        Ok(principal)
    }

    /// Records `last_used_at` in the background, at most once a minute per token.
    fn touch(&self, record: &TokenRecord) {
        let now = now_unix();
        if record.last_used_at.is_some_and(|at| now - at < TOUCH_INTERVAL_SECS) {
            return;
        }
        let store = self.store.clone();
        let token_id = record.id.clone();
        tokio::spawn(async move {
            if let Err(error) = store.touch_token(&token_id, now).await {
                tracing::debug!(%error, "cannot record a token's last use");
            }
        });
    }

    /// Forgets tokens unused for a while.
    pub fn prune(&self) {
        self.cache.retain(|_, entry| entry.fetched.elapsed() < CACHE_IDLE_LIMIT);
    }
}

/// Counts failed authentications per client address (API.md §5). With Redis,
/// the count is shared by every instance (a failure is counted there, and an
/// address is checked there before its token is looked up); while Redis does
/// not answer, each instance counts on locally from the last count Redis gave it.
pub struct FailedAuthLimiter {
    limit: RateLimit,
    counters: MemoryLimiter,
    redis: Option<RedisLimiter>,
}

impl FailedAuthLimiter {
    /// Counts in this process only.
    pub fn new(limit: RateLimit) -> Self {
        Self::shared(limit, None)
    }

    /// Counts in `redis` when given (and answering), else in this process.
    pub fn shared(limit: RateLimit, redis: Option<RedisLimiter>) -> Self {
        Self { limit, counters: MemoryLimiter::default(), redis }
    }

    /// Seconds until the address may try again, if it has used up its failures.
    pub async fn blocked_for(&self, address: &str) -> Option<u64> {
        let now = now_ms();
        if let Some(redis) = &self.redis
            && let Some(count) = redis.peek(&self.redis_key(address), self.limit, self.limit.position(now)).await
        {
            self.counters.seed(address, self.limit, count, now);
        }
        (self.counters.used(address, self.limit, now) >= u64::from(self.limit.limit))
            .then(|| self.limit.position(now).reset_secs)
    }

    pub async fn record_failure(&self, address: &str) {
        let now = now_ms();
        if let Some(redis) = &self.redis
            && let Some(count) = redis.count(&self.redis_key(address), self.limit, self.limit.position(now)).await
        {
            self.counters.seed(address, self.limit, count, now);
            return;
        }
        self.counters.check(address, self.limit, now);
    }

    pub fn prune(&self) {
        self.counters.prune(now_ms());
    }

    /// The failures of `address` in Redis, apart from every token's counter
    /// (`tok_...`); instances configured with the same limit share it.
    fn redis_key(&self, address: &str) -> String {
        format!("auth-failure:{}:{address}", self.limit.limit)
    }
}
