//! Who is calling, and may they: bearer tokens looked up by hash (cached for
//! [`CACHE_TTL`], the cached principal carrying its secret's expiry), and the
//! failed-authentication limit per client address (API.md §2, §5), global
//! with Redis. No HTTP here: [`crate::http::auth`] is the layer that uses it.

use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::time::now_unix;
use crate::domain::token::{PresentedToken, TokenHash, TokenRecord};
use crate::domain::{AccountId, Scope, TokenId};
use crate::ratelimit::{MemoryLimiter, RateLimit, RedisLimiter, now_ms};
use crate::storage::{SharedStore, StoreError};

/// How long a looked-up token is trusted without asking the store again; so a
/// revocation or rotation takes effect within this time (API.md §2 asks for
/// 5 s). An expiry needs no lookup: the cached principal carries it.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// How long a token unused is remembered at all (then forgotten, to bound memory).
const CACHE_IDLE_LIMIT: Duration = Duration::from_secs(600);
/// `last_used_at` is written at most this often per token, in seconds.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// Who is calling: what the handlers learn from the token. Its [`Identity`]
/// is shared (by the token cache, the request, the handler), so a clone only
/// counts a reference.
#[derive(Debug, Clone)]
pub struct Principal(Arc<Identity>);

impl Deref for Principal {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0
    }
}

/// What a token says of its caller, for the secret presented.
#[derive(Debug)]
pub struct Identity {
    pub token_id: TokenId,
    pub account_id: AccountId,
    /// The account's name, as `tokens list` shows it (for `GET /v2/token`).
    pub account_name: Arc<str>,
    pub scope: Scope,
    /// `None`: the server's default applies.
    pub rate_limit: Option<RateLimit>,
    /// When the token was issued, in Unix seconds.
    pub created_at: i64,
    /// Unix seconds from which the presented secret is refused as expired
    /// (the token's expiry, or a rotated-out secret's end of grace); `None`: never. Checked on every request, cached or not.
    pub expires_at: Option<i64>,
}

impl Principal {
    /// The principal of `record` for a presented secret with `hash`.
    fn of(record: &TokenRecord, hash: &TokenHash) -> Self {
        Self(Arc::new(Identity {
            token_id: record.id.clone(),
            account_id: record.account_id.clone(),
            account_name: record.account_name.as_str().into(),
            scope: record.scope,
            rate_limit: record.rate_limit,
            created_at: record.created_at,
            expires_at: record.secret_expires_at(hash),
        }))
    }
}

impl Identity {
    /// Whether the presented secret has expired at `now` (Unix seconds).
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// Why a presented token was refused (API.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown or revoked: a 401 (the token is not valid).
    Invalid,
    /// Past its expiry, or a rotated-out secret past its grace: a 401 (the token has expired).
    Expired,
}

/// What a presented token is worth: who is calling, or why not.
pub type Verdict = Result<Principal, Refusal>;

/// A presented token as the cache sees it.
pub enum Cached {
    /// Looked up less than [`CACHE_TTL`] ago (an expiry passed since is applied).
    Fresh(Verdict),
    /// Known to exist (or have existed), but due for another lookup.
    Stale,
    Unknown,
}

struct CacheEntry {
    verdict: Verdict,
    fetched: Instant,
}

/// What the token cache is keyed by: a presented token's random characters
/// XORed with a mask drawn once per [`Authenticator`]. Finding it costs no
/// SHA-256 (only a store lookup needs the [`TokenHash`]). XOR is one-to-one,
/// so two tokens never share an entry: there is no collision that could let
/// one token pass for another. Keys compare without stopping at the first
/// difference (no timing to learn a secret by), never print (no `Display`;
/// `Debug` shows nothing), and the mask keeps the secrets of the last ten
/// minutes from sitting in memory in clear, where a dump of it would hand
/// them to a secret scanner. It is not encryption: the mask is in the same memory.
#[derive(Clone, Copy, Eq)]
struct CacheKey([u64; 4]);

impl CacheKey {
    fn of(token: PresentedToken<'_>, mask: &[u64; 4]) -> Self {
        let random = token.random_part();
        Self(std::array::from_fn(|word| {
            let bytes = random[word * 8..][..8].try_into().expect("32 bytes are four words");
            u64::from_ne_bytes(bytes) ^ mask[word]
        }))
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.iter().zip(&other.0).fold(0, |differ, (a, b)| differ | (a ^ b)) == 0
    }
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

/// Turns a presented token into a [`Principal`], through a short-lived cache
/// keyed by the token itself (masked: see [`CacheKey`]); the store is asked by hash.
pub struct Authenticator {
    store: SharedStore,
    mask: [u64; 4],
    cache: DashMap<CacheKey, CacheEntry, ahash::RandomState>,
}

impl Authenticator {
    pub fn new(store: SharedStore) -> Self {
        Self { store, mask: rand::random(), cache: DashMap::default() }
    }

    /// What the cache knows of a presented token, from one lookup. A cached
    /// principal whose secret has expired since is refused at once.
    pub fn cached(&self, token: PresentedToken<'_>) -> Cached {
        match self.cache.get(&CacheKey::of(token, &self.mask)) {
            Some(entry) if entry.fetched.elapsed() < CACHE_TTL => Cached::Fresh(match &entry.verdict {
                // The clock is read only for a secret that expires at all.
                Ok(principal) if principal.expires_at.is_some() && principal.expired_at(now_unix()) => {
                    Err(Refusal::Expired)
                }
                verdict => verdict.clone(),
            }),
            Some(_) => Cached::Stale,
            None => Cached::Unknown,
        }
    }

    /// Looks the token up in the store (by its hash) and caches the verdict.
    pub async fn refresh(&self, token: PresentedToken<'_>) -> Result<Verdict, StoreError> {
        let (key, hash) = (CacheKey::of(token, &self.mask), token.hash());
        let Some(record) = self.store.find_token(hash).await? else {
            self.cache.remove(&key);
            return Ok(Err(Refusal::Invalid));
        };
        let verdict = verdict_of(&record, &hash, now_unix());
        self.cache.insert(key, CacheEntry { verdict: verdict.clone(), fetched: Instant::now() });
        if verdict.is_ok() {
            self.touch(&record);
        }
        Ok(verdict)
    }

    /// Records `last_used_at` in the background, at most once a minute per token.
    fn touch(&self, record: &TokenRecord) {
        let now = now_unix();
        if record.last_used_at.is_some_and(|at| now - at < TOUCH_INTERVAL_SECS) {
            return;
        }
        let store = self.store.clone();
        let token_id = record.id.clone();
        // In the current request: a line it logs carries the id of the request that caused it.
        let touch = async move {
            if let Err(error) = store.touch_token(&token_id, now).await {
                tracing::debug!(%error, "cannot record a token's last use");
            }
        };
        tokio::spawn(crate::logging::in_current_request(touch));
    }

    /// Forgets tokens unused for a while.
    pub fn prune(&self) {
        self.cache.retain(|_, entry| entry.fetched.elapsed() < CACHE_IDLE_LIMIT);
    }
}

/// What the secret with `hash` of `record` is worth at `now` (Unix seconds):
/// revoked is invalid; past its expiry (or its grace, for a rotated-out
/// secret) is expired.
fn verdict_of(record: &TokenRecord, hash: &TokenHash, now: i64) -> Verdict {
    if record.revoked_at.is_some() {
        return Err(Refusal::Invalid);
    }
    let principal = Principal::of(record, hash);
    if principal.expired_at(now) { Err(Refusal::Expired) } else { Ok(principal) }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token::PreviousSecret;
    use crate::domain::{TokenSecret, ids};

    fn record(secret: &TokenSecret) -> TokenRecord {
        TokenRecord {
            id: ids::token_id(),
            account_id: ids::account_id(),
            account_name: "acme".into(),
            prefix: secret.display_prefix().to_owned(),
            hash: secret.hash(),
            scope: Scope::Write,
            rate_limit: None,
            created_at: 1,
            last_used_at: None,
            revoked_at: None,
            name: None,
            expires_at: None,
            previous: None,
        }
    }

    #[test]
    fn cache_keys_tell_every_token_apart_and_never_print() {
        let mask = rand::random();
        let key = |token: &str| CacheKey::of(PresentedToken::parse(token.as_bytes()).expect("a token"), &mask);
        let secret = TokenSecret::generate();
        let token = secret.expose();
        assert_eq!(key(token), key(token));
        assert_ne!(key(token), key(TokenSecret::generate().expose()));
        // One character changed, in each of the key's four words.
        for position in [4, 12, 20, 35] {
            let mut other = token.as_bytes().to_vec();
            other[position] = if other[position] == b'a' { b'b' } else { b'a' };
            assert_ne!(key(token), key(std::str::from_utf8(&other).expect("ASCII")), "position {position}");
        }
        let key = key(token);
        assert_eq!(format!("{key:?}"), "CacheKey(..)");
        let held: Vec<u8> = key.0.iter().flat_map(|word| word.to_ne_bytes()).collect();
        assert_ne!(held, &token.as_bytes()[4..], "masked, not in clear");
    }

    #[test]
    fn verdicts() {
        let (old, new) = (TokenSecret::generate(), TokenSecret::generate());
        let mut token = record(&new);
        assert_eq!(verdict_of(&token, &new.hash(), 100).map(|p| p.expires_at), Ok(None));
        token.expires_at = Some(200);
        assert_eq!(verdict_of(&token, &new.hash(), 199).map(|p| p.expires_at), Ok(Some(200)));
        assert_eq!(verdict_of(&token, &new.hash(), 200).map(|p| p.expires_at), Err(Refusal::Expired));
        token.previous = Some(PreviousSecret { hash: old.hash(), until: 150 });
        assert_eq!(verdict_of(&token, &old.hash(), 149).map(|p| p.expires_at), Ok(Some(150)), "in its grace");
        assert_eq!(verdict_of(&token, &old.hash(), 150).map(|p| p.expires_at), Err(Refusal::Expired));
        assert!(verdict_of(&token, &new.hash(), 150).is_ok(), "the new secret is not affected");
        token.revoked_at = Some(120);
        assert_eq!(verdict_of(&token, &new.hash(), 130).map(|p| p.expires_at), Err(Refusal::Invalid));
        assert_eq!(verdict_of(&token, &old.hash(), 130).map(|p| p.expires_at), Err(Refusal::Invalid));
        assert_eq!(verdict_of(&token, &new.hash(), 300).map(|p| p.expires_at), Err(Refusal::Invalid), "revoked wins");
    }
}
