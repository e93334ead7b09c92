//! Webhook delivery (API.md §8): each event is POSTed, signed as the Standard
//! Webhooks specification says, to every endpoint subscribed to its type.
//!
//! * [`url_policy`] says which endpoint URLs are accepted (https, no forbidden
//!   address literal), at creation and again at each attempt; [`addresses`]
//!   lists the forbidden ranges; [`resolver`] refuses, at connect time, a name
//!   that resolves to any of them, so DNS rebinding cannot slip through.
//!   `serve --webhook-allow-insecure` lifts all three.
//! * [`signature`] signs; [`client`] sends (reqwest and rustls, 10 s, no
//!   redirects, a bounded read of the answer).
//! * [`worker`] leases due deliveries from the store, sends them with bounded
//!   concurrency, in order per endpoint, and records each outcome with the
//!   retry [`schedule`].
//!
//! No HTTP server here: [`crate::http`] may use this module, not the reverse.

pub mod addresses;
pub mod client;
pub mod resolver;
pub mod schedule;
pub mod signature;
pub mod url_policy;
pub mod worker;

pub use self::url_policy::{UrlRefusal, check_url, check_url_syntax};
pub use self::worker::{RenderEvent, spawn};

/// How a server delivers webhooks (`clientele serve`, API.md §8).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// `--webhook-allow-insecure`: accept `http` endpoint URLs and deliver to
    /// any address, loopback and private networks included (tests, private networks).
    pub allow_insecure: bool,
    /// Multiplies the retry schedule ([`schedule::RETRY_SCHEDULE`]). 1.0 in
    /// production; for tests only, which shrink it to see retries within
    /// seconds (`CLIENTELE_WEBHOOK_RETRY_SCALE`, hidden from `--help`).
    pub retry_scale: f64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self { allow_insecure: false, retry_scale: 1.0 }
    }
}
