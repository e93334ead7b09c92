//! Webhook endpoints and their signing secrets (API.md §8). No HTTP here:
//! what an endpoint is, not how it is called.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

use super::event::EventType;
use super::ids::{AccountId, WebhookEndpointId};

/// The most endpoints one account may have (API.md §8: the 17th is refused).
pub const MAX_ENDPOINTS_PER_ACCOUNT: u32 = 16;

/// The prefix of a signing secret (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";

/// A subscription of an account to some event types, POSTed to `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub account_id: AccountId,
    /// An absolute URL, checked when the endpoint was created.
    pub url: String,
    /// Non-empty, without duplicates, in the order given.
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// When the last delivery attempt ended, in Unix milliseconds; `None` before the first.
    pub last_delivery_at_ms: Option<i64>,
    /// The last attempt's HTTP status; 0 when no response came (timeout, refused).
    pub last_delivery_status: Option<u16>,
}

impl WebhookEndpoint {
    /// Whether events of `event_type` are sent to this endpoint.
    pub fn subscribes_to(&self, event_type: EventType) -> bool {
        self.event_types.contains(&event_type)
    }
}

/// An endpoint's signing secret: `whsec_` + the standard base64 (padded) of
/// 32 random bytes, as the Standard Webhooks specification describes. It never
/// prints itself: `Debug` shows `whsec_***`; it is shown to its owner once.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A new secret from the operating system's random source.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
    }

    /// A secret as stored; `None` unless it has the shape [`WebhookSecret::generate`] gives.
    pub fn from_stored(stored: String) -> Option<Self> {
        let secret = Self(stored);
        secret.key().is_some().then_some(secret)
    }

    /// The whole secret, `whsec_...`: only to store it, or show it once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the base64 after `whsec_`, decoded.
    pub fn key(&self) -> Option<Vec<u8>> {
        STANDARD.decode(self.0.strip_prefix(SECRET_PREFIX)?).ok()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({SECRET_PREFIX}***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_base64_of_32_bytes_and_never_print() {
        let secret = WebhookSecret::generate();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.expose().len(), 6 + 44);
        assert_eq!(secret.key().map(|key| key.len()), Some(32));
        assert_ne!(secret, WebhookSecret::generate());
        assert_eq!(format!("{secret:?}"), "WebhookSecret(whsec_***)");
        assert_eq!(WebhookSecret::from_stored(secret.expose().to_owned()), Some(secret));
        assert_eq!(WebhookSecret::from_stored("whsec_!!".into()), None);
        assert_eq!(WebhookSecret::from_stored("clt_x".into()), None);
    }
}
