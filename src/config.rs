//! The server's settings, as the HTTP layer needs them (parsed by [`crate::cli`]).

use std::time::Duration;

use std::fmt;
use std::str::FromStr;

use axum::http::{HeaderValue, Uri};
use ipnet::IpNet;

use crate::deadline::{Budget, DEFAULT_REQUEST_TIMEOUT};
use crate::lifecycle::Deprecation;
use crate::ratelimit::RateLimit;
use crate::webhooks::WebhookSettings;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Per token, unless the token has its own.
    pub default_rate_limit: RateLimit,
    /// Failed authentications per client address.
    pub auth_failure_limit: RateLimit,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// A request still running after this long is answered 503 (`--request-timeout`).
    pub request_deadline: Duration,
    /// `--public-url`: the one server a token's tailored OpenAPI document names (API.md §6).
    pub public_url: Option<String>,
    /// `--deprecate` / `--sunset`: versions marked deprecated (API.md §6).
    pub deprecations: Vec<Deprecation>,
    /// Origins whose browsers get CORS headers (`--cors-origin`); none: no CORS at all.
    pub cors_origins: Vec<CorsOrigin>,
    /// `--event-retention`: events are kept at least this long, then pruned in the background (API.md §8).
    pub event_retention: Duration,
    /// How webhooks are delivered (`--webhook-allow-insecure`, API.md §8).
    pub webhooks: WebhookSettings,
}

/// How long events are kept by default: 30 days (API.md §8).
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl ServerConfig {
    /// The time limits `request_deadline` implies (see [`crate::deadline`]).
    pub fn budget(&self) -> Budget {
        Budget::new(self.request_deadline)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            default_rate_limit: RateLimit { limit: 100, window_secs: 60 },
            auth_failure_limit: RateLimit { limit: 20, window_secs: 60 },
            trusted_proxies: Vec::new(),
            request_deadline: DEFAULT_REQUEST_TIMEOUT,
            public_url: None,
            deprecations: Vec::new(),
            cors_origins: Vec::new(),
            event_retention: DEFAULT_EVENT_RETENTION,
            webhooks: WebhookSettings::default(),
        }
    }
}

/// One `--cors-origin`: `*` (any origin) or an origin such as `https://app.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigin {
    Any,
    Origin(HeaderValue),
}

impl FromStr for CorsOrigin {
    type Err = String;

    /// `*`, or `scheme://host[:port]` with nothing after it (as browsers send `Origin`), case-insensitive.
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::Any);
        }
        let invalid = || {
            format!("invalid CORS origin '{raw}': expected * or scheme://host[:port], such as https://app.example.com")
        };
        let uri: Uri = raw.parse().map_err(|_| invalid())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else { return Err(invalid()) };
        if raw.len() != scheme.len() + 3 + authority.as_str().len() || authority.as_str().contains('@') {
            return Err(invalid());
        }
        let origin = format!("{scheme}://{authority}").to_ascii_lowercase();
        HeaderValue::from_str(&origin).map(Self::Origin).map_err(|_| invalid())
    }
}

impl fmt::Display for CorsOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Origin(origin) => f.write_str(origin.to_str().unwrap_or_default()),
        }
    }
}
