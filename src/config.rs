//! The server's settings, as the HTTP layer needs them (parsed by [`crate::cli`]).

use std::time::Duration;

use ipnet::IpNet;

use crate::deadline::{Budget, DEFAULT_REQUEST_TIMEOUT};
use crate::lifecycle::Deprecation;
use crate::ratelimit::RateLimit;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Per token, unless the token has its own.
    pub default_rate_limit: RateLimit,
    /// Failed authentications per client address.
    pub auth_failure_limit: RateLimit,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// A request still running after this long is answered 503 (`--request-timeout`).
    pub request_timeout: Duration,
    /// `--public-url`: the one server a token's tailored OpenAPI document names (API.md §6).
    pub public_url: Option<String>,
    /// `--deprecate` / `--sunset`: versions marked deprecated (API.md §6).
    pub deprecations: Vec<Deprecation>,
}

impl ServerConfig {
    /// The time limits `request_timeout` implies (see [`crate::deadline`]).
    pub fn budget(&self) -> Budget {
        Budget::new(self.request_timeout)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            default_rate_limit: RateLimit { limit: 100, window_secs: 60 },
            auth_failure_limit: RateLimit { limit: 20, window_secs: 60 },
            trusted_proxies: Vec::new(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            public_url: None,
            deprecations: Vec::new(),
        }
    }
}
