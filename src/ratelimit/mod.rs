//! Fixed-window rate limits: N requests per W seconds per key.
//!
//! Windows are aligned to the Unix epoch (`floor(now / W)`), so every instance
//! agrees on where a window starts without talking to the others. Counters live
//! in memory ([`memory`]) or, shared by every instance, in Redis ([`redis`]),
//! which falls back to memory while Redis does not answer, counting on from
//! the last count Redis gave for that key and window (API.md §5).

pub mod memory;
pub mod redis;

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

pub use self::memory::MemoryLimiter;
pub use self::redis::RedisLimiter;

/// `N` requests per `window_secs` seconds, written `N/Ws` (also `N/Wm`, `N/Wh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub limit: u32,
    pub window_secs: u32,
}

const MAX_WINDOW_SECS: u32 = 86_400;

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("invalid rate limit '{s}': expected N/Ws, such as 100/60s");
        let (count, window) = s.split_once('/').ok_or_else(usage)?;
        let limit: u32 = count.parse().map_err(|_| usage())?;
        let (digits, unit) = window.split_at(window.len().saturating_sub(1));
        let multiplier = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(usage()),
        };
        let window_secs = digits.parse::<u32>().map_err(|_| usage())?.checked_mul(multiplier).ok_or_else(usage)?;
        if limit == 0 || window_secs == 0 || window_secs > MAX_WINDOW_SECS {
            return Err(format!("invalid rate limit '{s}': N must be at least 1 and the window 1s to 24h"));
        }
        Ok(Self { limit, window_secs })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.limit, self.window_secs)
    }
}

/// The outcome of counting one request, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Whole seconds until the current window ends, at least 1.
    pub reset_secs: u64,
}

/// Where a moment falls among the windows of one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPosition {
    pub index: u64,
    pub reset_secs: u64,
    pub window_ms: u64,
}

impl RateLimit {
    pub fn position(&self, now_ms: u64) -> WindowPosition {
        let window_ms = u64::from(self.window_secs) * 1000;
        let index = now_ms / window_ms;
        let left_ms = (index + 1) * window_ms - now_ms;
        WindowPosition { index, reset_secs: left_ms.div_ceil(1000).max(1), window_ms }
    }

    /// The decision once `count` requests (this one included) have been seen in the window.
    pub fn decide(&self, count: u64, position: WindowPosition) -> Decision {
        let limit = u64::from(self.limit);
        Decision {
            allowed: count <= limit,
            limit: self.limit,
            remaining: limit.saturating_sub(count) as u32,
            reset_secs: position.reset_secs,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Which backend is counting right now, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimiterState {
    Memory,
    Redis,
    /// Redis is configured but does not answer: counting locally until it does.
    RedisDegraded,
}

impl LimiterState {
    pub fn as_str(self) -> &'static str {
        match self {
            LimiterState::Memory => "memory",
            LimiterState::Redis => "redis",
            LimiterState::RedisDegraded => "degraded",
        }
    }
}

/// The per-token limiter: Redis when configured and healthy, memory otherwise.
pub struct RateLimiter {
    memory: MemoryLimiter,
    redis: Option<RedisLimiter>,
    counting: bool,
}

impl RateLimiter {
    pub fn in_memory() -> Self {
        Self { memory: MemoryLimiter::default(), redis: None, counting: true }
    }

    pub fn with_redis(redis: RedisLimiter) -> Self {
        Self { memory: MemoryLimiter::default(), redis: Some(redis), counting: true }
    }

    /// Admits everything and counts nothing: only for measuring what counting costs.
    pub fn unlimited() -> Self {
        Self { memory: MemoryLimiter::default(), redis: None, counting: false }
    }

    pub async fn check(&self, key: &str, limit: RateLimit) -> Decision {
        self.check_counted(key, limit).await.0
    }

    /// [`Self::check`], also saying which backend counted: `RedisDegraded`
    /// when Redis is configured but memory counted.
    pub async fn check_counted(&self, key: &str, limit: RateLimit) -> (Decision, LimiterState) {
        if !self.counting {
            return (limit.decide(0, limit.position(now_ms())), LimiterState::Memory);
        }
        if let Some(redis) = &self.redis {
            let now = now_ms();
            let position = limit.position(now);
            if let Some(count) = redis.count(key, limit, position).await {
                // Kept, so that counting here while Redis does not answer goes on from it (API.md §5).
                self.memory.seed(key, limit, count, now);
                return (limit.decide(count, position), LimiterState::Redis);
            }
            return (self.memory.check(key, limit, now_ms()), LimiterState::RedisDegraded);
        }
        (self.memory.check(key, limit, now_ms()), LimiterState::Memory)
    }

    /// Where `key` stands in its current window, without counting a request
    /// (for `GET /v2/token`, API.md §2, which does not count toward the limit).
    pub async fn peek(&self, key: &str, limit: RateLimit) -> Decision {
        let position = limit.position(now_ms());
        if !self.counting {
            return limit.decide(0, position);
        }
        let used = match &self.redis {
            Some(redis) => match redis.used(key, limit).await {
                Some(used) => used,
                None => self.memory.used(key, limit, now_ms()),
            },
            None => self.memory.used(key, limit, now_ms()),
        };
        limit.decide(used, position)
    }

    /// Asks Redis, if configured, whether it answers, so [`Self::state`] is current.
    pub async fn check_health(&self) {
        if let Some(redis) = &self.redis {
            redis.check_health().await;
        }
    }

    /// The shared Redis counters, when configured (the failed-authentication limit counts there too).
    pub fn redis(&self) -> Option<&RedisLimiter> {
        self.redis.as_ref()
    }

    pub fn state(&self) -> LimiterState {
        match &self.redis {
            None => LimiterState::Memory,
            Some(redis) if redis.is_degraded() => LimiterState::RedisDegraded,
            Some(_) => LimiterState::Redis,
        }
    }

    /// Forgets windows that have ended; called now and then by a background task.
    pub fn prune(&self) {
        let now = now_ms();
        self.memory.prune(now);
        if let Some(redis) = &self.redis {
            redis.prune(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits() {
        assert_eq!("100/60s".parse(), Ok(RateLimit { limit: 100, window_secs: 60 }));
        assert_eq!("5/2m".parse(), Ok(RateLimit { limit: 5, window_secs: 120 }));
        assert_eq!("1/1h".parse(), Ok(RateLimit { limit: 1, window_secs: 3600 }));
        for bad in ["", "100", "100/", "100/60", "0/60s", "10/0s", "x/60s", "10/60d", "10/25h", "-1/60s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
        assert_eq!(RateLimit { limit: 100, window_secs: 60 }.to_string(), "100/60s");
    }

    #[test]
    fn reset_is_whole_seconds_to_the_window_end_and_at_least_one() {
        let limit = RateLimit { limit: 10, window_secs: 60 };
        assert_eq!(limit.position(60_000).reset_secs, 60);
        assert_eq!(limit.position(60_001).reset_secs, 60);
        assert_eq!(limit.position(119_000).reset_secs, 1);
        assert_eq!(limit.position(119_999).reset_secs, 1);
        assert_eq!(limit.position(119_999).index, 1);
    }

    #[test]
    fn decisions_never_go_negative() {
        let limit = RateLimit { limit: 2, window_secs: 1 };
        let position = limit.position(0);
        assert_eq!(limit.decide(2, position), Decision { allowed: true, limit: 2, remaining: 0, reset_secs: 1 });
        assert_eq!(limit.decide(3, position).remaining, 0);
        assert!(!limit.decide(3, position).allowed);
    }
}
