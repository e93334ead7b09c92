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
    presented.len() == TOKEN_PREFIX.len() + RANDOM_LEN
        && presented.starts_with(TOKEN_PREFIX)
        && presented[TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
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
    fn malformed_tokens_are_recognised() {
        assert!(!looks_like_token("clt_short"));
        assert!(!looks_like_token(&format!("xyz_{}", "a".repeat(32))));
        assert!(!looks_like_token(&format!("clt_{}!", "a".repeat(31))));
    }
}
