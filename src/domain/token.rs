//! API tokens: `clt_` + 32 random alphanumerics (about 190 bits), stored only as a SHA-256 hash.

use std::fmt;
use std::str::FromStr;

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use super::ids::{AccountId, TokenId};
use crate::ratelimit::RateLimit;

pub const TOKEN_PREFIX: &str = "clt_";
const RANDOM_LEN: usize = 32;
/// How much of a secret is kept in clear to recognise it in listings: `clt_` + 4.
pub const DISPLAY_PREFIX_LEN: usize = 8;

/// A bearer token secret. It never prints itself: `Debug` shows only its prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    pub fn generate() -> Self {
        Self(format!("{TOKEN_PREFIX}{}", Alphanumeric.sample_string(&mut rand::rng(), RANDOM_LEN)))
    }

    /// Only for handing the secret to its owner, exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn display_prefix(&self) -> &str {
        &self.0[..DISPLAY_PREFIX_LEN]
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSecret({}…)", self.display_prefix())
    }
}

/// SHA-256 of a presented token. The secrets are long and random, so a fast
/// hash is enough: there is nothing to brute-force offline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// Whether a presented string has the shape of one of our tokens; anything
/// else is refused without a lookup.
pub fn looks_like_token(presented: &str) -> bool {
    PresentedToken::parse(presented.as_bytes()).is_some()
}

/// A presented string with the shape of one of our tokens (`clt_` and 32
/// ASCII letters and digits), borrowed from the request: the only kind the
/// server looks up. It never prints: no `Display`, and `Debug` hides it.
#[derive(Clone, Copy)]
pub struct PresentedToken<'a>(&'a [u8; RANDOM_LEN]);

impl<'a> PresentedToken<'a> {
    /// `presented` if it has the shape of a token, else `None` (refused without
    /// a lookup). Bytes, so a header value needs no UTF-8 check first.
    pub fn parse(presented: &'a [u8]) -> Option<Self> {
        let random: &[u8; RANDOM_LEN] = presented.strip_prefix(TOKEN_PREFIX.as_bytes())?.try_into().ok()?;
        // Every byte checked, no early exit: the compiler checks the 32 at once in vector registers.
        let alphanumeric = random.iter().fold(true, |all, byte| all & byte.is_ascii_alphanumeric());
        alphanumeric.then_some(Self(random))
    }

    /// The hash the store knows the token by, as [`TokenHash::of`] the whole
    /// token (SHA-256: some 3,500 instructions, which is why the auth cache is
    /// keyed by [`Self::random_part`] instead).
    pub fn hash(self) -> TokenHash {
        TokenHash(Sha256::new().chain_update(TOKEN_PREFIX).chain_update(self.0).finalize().into())
    }

    /// The 32 random characters after `clt_`: what tells one token from another.
    pub fn random_part(self) -> &'a [u8; RANDOM_LEN] {
        self.0
    }
}

impl fmt::Debug for PresentedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedToken(..)")
    }
}

/// What a token may do; `read` unless asked otherwise (API.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    Read,
    Write,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            other => Err(format!("unknown scope '{other}' (expected read or write)")),
        }
    }
}

/// A stored token: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub account_id: AccountId,
    pub account_name: String,
    pub prefix: String,
    pub hash: TokenHash,
    pub scope: Scope,
    /// `None`: the server's default limit applies.
    pub rate_limit: Option<RateLimit>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The operator's label (`tokens create --name`), if any.
    pub name: Option<String>,
    /// Unix seconds from which the token answers a 401 (the token has expired); `None`: never.
    pub expires_at: Option<i64>,
    /// The secret the last rotation replaced, still accepted during its grace period.
    pub previous: Option<PreviousSecret>,
}

/// A rotated-out secret (API.md §7, `tokens rotate --grace`): it works as the
/// same token until `until`, then answers a 401 (the token has expired). Only the last
/// rotation's is kept: rotating again ends the grace of the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousSecret {
    pub hash: TokenHash,
    /// Unix seconds: the end of the grace period.
    pub until: i64,
}

impl TokenRecord {
    /// From when the secret with `hash` stops working (Unix seconds; `None`:
    /// never): the token's expiry, and for the rotated-out secret also the end
    /// of its grace. Says nothing of revocation.
    pub fn secret_expires_at(&self, hash: &TokenHash) -> Option<i64> {
        match self.previous {
            Some(previous) if previous.hash == *hash && self.hash != *hash => {
                Some(self.expires_at.map_or(previous.until, |at| at.min(previous.until)))
            }
            _ => self.expires_at,
        }
    }
}

/// The longest token label, in characters.
pub const NAME_MAX_CHARS: usize = 64;

/// Checks a token label: 1 to [`NAME_MAX_CHARS`] characters, no control
/// characters and no whitespace (so listings stay one word a column).
pub fn parse_token_name(raw: &str) -> Result<String, String> {
    let count = raw.chars().count();
    if count == 0 || count > NAME_MAX_CHARS {
        return Err(format!("a token name has 1 to {NAME_MAX_CHARS} characters"));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a token name has no spaces or control characters (use '-' or '_')".to_owned());
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_prefix_and_shape() {
        let secret = TokenSecret::generate();
        assert!(secret.expose().starts_with("clt_"));
        assert!(looks_like_token(secret.expose()));
        assert_ne!(secret, TokenSecret::generate());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = TokenSecret::generate();
        let printed = format!("{secret:?}");
        assert!(!printed.contains(secret.expose()));
        assert!(printed.contains(secret.display_prefix()));
    }

    #[test]
    fn names() {
        assert_eq!(parse_token_name("ci-deploy_2"), Ok("ci-deploy_2".to_owned()));
        assert!(parse_token_name("").is_err());
        assert!(parse_token_name("has space").is_err());
        assert!(parse_token_name("tab\t").is_err());
        assert!(parse_token_name(&"é".repeat(64)).is_ok());
        assert!(parse_token_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn a_rotated_out_secret_expires_at_its_grace_end_or_the_token_expiry() {
        let (old, new) = (TokenHash::of("old"), TokenHash::of("new"));
        let mut record = TokenRecord {
            id: crate::domain::ids::token_id(),
            account_id: crate::domain::ids::account_id(),
            account_name: "acme".into(),
            prefix: "clt_abcd".into(),
            hash: new,
            scope: Scope::Read,
            rate_limit: None,
            created_at: 1,
            last_used_at: None,
            revoked_at: None,
            name: None,
            expires_at: None,
            previous: Some(PreviousSecret { hash: old, until: 100 }),
        };
        assert_eq!(record.secret_expires_at(&new), None);
        assert_eq!(record.secret_expires_at(&old), Some(100));
        record.expires_at = Some(50);
        assert_eq!(record.secret_expires_at(&new), Some(50));
        assert_eq!(record.secret_expires_at(&old), Some(50), "never beyond the token's own expiry");
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(!looks_like_token("clt_short"));
        assert!(!looks_like_token(&format!("xyz_{}", "a".repeat(32))));
        assert!(!looks_like_token(&format!("clt_{}!", "a".repeat(31))));
        assert!(!looks_like_token(&format!("clt_{}", "a".repeat(33))));
        assert!(!looks_like_token(&format!("clt_{}é", "a".repeat(30))), "32 bytes, not 32 characters");
    }

    #[test]
    fn a_presented_token_hashes_as_its_secret_and_never_prints() {
        let secret = TokenSecret::generate();
        let presented = PresentedToken::parse(secret.expose().as_bytes()).expect("a generated token has the shape");
        assert_eq!(presented.hash(), secret.hash());
        assert_eq!(presented.random_part(), &secret.expose().as_bytes()[4..]);
        assert!(!format!("{presented:?}").contains(&secret.expose()[4..]));
    }
}
