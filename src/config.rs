//! The server's settings, as the HTTP layer needs them (parsed by [`crate::cli`]).

use ipnet::IpNet;

use crate::http::cors::CorsOrigin;
use crate::ratelimit::RateLimit;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Per token, unless the token has its own.
    pub default_rate_limit: RateLimit,
    /// Failed authentications per client address.
    pub auth_failure_limit: RateLimit,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins whose browsers get CORS headers (`--cors-origin`); none: no CORS at all.
    pub cors_origins: Vec<CorsOrigin>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            default_rate_limit: RateLimit { limit: 100, window_secs: 60 },
            auth_failure_limit: RateLimit { limit: 20, window_secs: 60 },
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
        }
    }
}
