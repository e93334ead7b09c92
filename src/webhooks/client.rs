//! The HTTP client that POSTs webhooks (API.md §8): reqwest over rustls (no
//! OpenSSL), 10 s for the whole attempt, no redirect followed (a `3xx` is a
//! failure), no proxy, a bounded read of the response body, which is dropped.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::redirect::Policy;
use url::Url;

use super::resolver::GuardedResolver;
use super::signature::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, sign};
use super::url_policy::check_url_syntax;

/// An attempt answered `2xx` within this is a delivery (API.md §8); the time
/// covers connecting, sending and reading the response.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a response body read (to keep the connection for the next
/// attempt); a longer one is dropped with its connection.
const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// Idle connections kept per receiver, for the next deliveries.
const IDLE_CONNECTIONS_PER_HOST: usize = 8;

/// The `User-Agent` of every attempt: `Clientele-Webhooks/<version>`.
pub fn user_agent() -> String {
    format!("Clientele-Webhooks/{}", env!("CARGO_PKG_VERSION"))
}

/// One POST to make: the event's rendering, signed for its endpoint.
pub struct Attempt<'a> {
    pub url: &'a str,
    /// The event id: the `webhook-id` header and part of what is signed.
    pub message_id: &'a str,
    /// The decoded bytes of the endpoint's `whsec_` secret.
    pub key: &'a [u8],
    /// Unix seconds: the `webhook-timestamp` header.
    pub timestamp: i64,
    pub body: Vec<u8>,
}

/// What an attempt got: a status, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this HTTP status (a delivery if `2xx`).
    Status(u16),
    /// No response: refused by the address policy, not resolved, not
    /// connected, timed out, or cut. The reason is for the log; it holds no secret.
    NoResponse(String),
}

impl Answer {
    /// What the endpoint's `last_delivery_status` records: the status, 0 for none.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Status(status) => *status,
            Self::NoResponse(_) => 0,
        }
    }

    /// A `2xx`.
    pub fn delivered(&self) -> bool {
        matches!(self, Self::Status(200..=299))
    }
}

/// The client every delivery of a server goes through (cheap to clone).
#[derive(Clone)]
pub struct WebhookClient {
    client: reqwest::Client,
    allow_insecure: bool,
}

impl WebhookClient {
    /// A client that refuses forbidden destinations (see [`super::addresses`])
    /// at connect time, unless `allow_insecure` (`serve --webhook-allow-insecure`).
    pub fn new(allow_insecure: bool) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(Policy::none())
            .no_proxy()
            .user_agent(user_agent())
            .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST);
        if !allow_insecure {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self { client: builder.build()?, allow_insecure })
    }

    /// POSTs the attempt and reads at most 64 KiB of the answer's body.
    pub async fn send(&self, attempt: Attempt<'_>) -> Answer {
        let url = match Url::parse(attempt.url) {
            Ok(url) => url,
            Err(error) => return Answer::NoResponse(format!("invalid url: {error}")),
        };
        // Checked again at each attempt: a host written as an address is never
        // resolved, so the resolver cannot judge it.
        if let Err(refusal) = check_url_syntax(&url, self.allow_insecure) {
            return Answer::NoResponse(refusal.to_string());
        }
        let signature = match sign(attempt.key, attempt.message_id, attempt.timestamp, &attempt.body) {
            Ok(signature) => signature,
            Err(error) => return Answer::NoResponse(error.to_string()),
        };
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(WEBHOOK_ID, attempt.message_id)
            .header(WEBHOOK_TIMESTAMP, attempt.timestamp.to_string())
            .header(WEBHOOK_SIGNATURE, signature)
            .body(attempt.body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Answer::NoResponse(describe(error.without_url())),
        };
        let status = response.status().as_u16();
        let mut read = 0usize;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read > MAX_RESPONSE_BODY {
                        break;
                    }
                }
                Ok(None) => break,
                // The status came: the attempt has its answer, whatever became of the body.
                Err(_) => break,
            }
        }
        Answer::Status(status)
    }
}

/// A reqwest error with its causes (the resolver's refusal is one), without
/// the URL: some receivers keep a secret of their own in it (a path token).
fn describe(error: reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_the_version() {
        assert_eq!(user_agent(), format!("Clientele-Webhooks/{}", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn only_2xx_is_a_delivery_and_no_response_records_0() {
        assert!(Answer::Status(204).delivered());
        assert!(!Answer::Status(301).delivered());
        assert!(!Answer::Status(500).delivered());
        assert_eq!(Answer::NoResponse("timed out".into()).status_code(), 0);
        assert_eq!(Answer::Status(503).status_code(), 503);
    }
}
