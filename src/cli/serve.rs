//! `clientele serve`: open the store, bootstrap an empty one, listen, drain on a signal.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use tokio::net::TcpListener;

use super::duration::{parse_duration, parse_positive_duration};
use super::output;
use crate::admin;
use crate::app::AppState;
use crate::config::CorsOrigin;
use crate::config::ServerConfig;
use crate::deadline::Budget;
use crate::domain::Scope;
use crate::lifecycle::{Deprecation, VersionDate};
use crate::logging;
use crate::ratelimit::{RateLimit, RateLimiter, RedisLimiter};
use crate::secrets::{SecretUrl, redact, redact_quoting};
use crate::server::{self, ConnectionSettings};
use crate::storage::sqlite::Synchronous;
use crate::storage::{self, OpenOptions, SharedStore};
use crate::webhooks::WebhookSettings;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CLIENTELE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Share rate-limit counters between instances through this Redis.
    #[arg(long, env = "CLIENTELE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<SecretUrl>,

    /// Requests per window for tokens without their own limit.
    #[arg(long, env = "CLIENTELE_DEFAULT_RATE_LIMIT", default_value = "100/60s")]
    default_rate_limit: RateLimit,

    /// Failed authentications per client address per window.
    #[arg(long, env = "CLIENTELE_AUTH_FAILURE_LIMIT", default_value = "20/60s")]
    auth_failure_limit: RateLimit,

    /// A proxy (CIDR) whose X-Forwarded-For names the client; repeatable.
    #[arg(long = "trusted-proxy", env = "CLIENTELE_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<IpNet>,

    /// Answer 503 to a request still running this long after its body arrived (N followed by s,
    /// m, h or d); its database work is stopped first, so a write answered 503 is never applied.
    #[arg(long = "request-timeout", env = "CLIENTELE_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    request_deadline: Duration,

    /// Do not create the `default` account and token on an empty database.
    #[arg(long, env = "CLIENTELE_NO_BOOTSTRAP")]
    no_bootstrap: bool,

    /// Log lines for people or for machines.
    #[arg(long, env = "CLIENTELE_LOG_FORMAT", value_enum, default_value = "pretty")]
    log_format: LogFormat,

    /// The URL integrators reach this server at: the one server of token-tailored OpenAPI documents.
    #[arg(long, env = "CLIENTELE_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,

    /// Mark an API version deprecated from a date, VERSION=YYYY-MM-DD (v1=2027-06-30); repeatable.
    #[arg(long, env = "CLIENTELE_DEPRECATE", value_delimiter = ',')]
    deprecate: Vec<VersionDate>,

    /// Announce the end of a deprecated version, VERSION=YYYY-MM-DD (v1=2027-12-31); repeatable.
    #[arg(long, env = "CLIENTELE_SUNSET", value_delimiter = ',')]
    sunset: Vec<VersionDate>,

    /// Send CORS headers to browsers from this origin (https://app.example.com); repeatable, or * for any.
    #[arg(long = "cors-origin", env = "CLIENTELE_CORS_ORIGIN", value_delimiter = ',')]
    cors_origins: Vec<CorsOrigin>,

    /// A client must send its whole request head within this (10s, 2m, ...), or the connection is closed.
    #[arg(long, env = "CLIENTELE_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    header_timeout: Duration,

    /// A client must send its whole request body within this, or gets 408.
    #[arg(long, env = "CLIENTELE_BODY_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    body_timeout: Duration,

    /// A keep-alive connection idle this long is closed.
    #[arg(long, env = "CLIENTELE_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    idle_timeout: Duration,

    /// On SIGTERM/SIGINT, requests in flight get this long to finish; then the rest are cut.
    #[arg(long, env = "CLIENTELE_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    shutdown_timeout: Duration,

    /// Connections served at once; further ones wait to be accepted.
    #[arg(long, env = "CLIENTELE_MAX_CONNECTIONS", default_value = "10000")]
    max_connections: NonZeroUsize,

    /// SQLite: `full` flushes each commit to disk before answering, so an acknowledged write
    /// survives a power cut; `normal` may lose the last ones then, for speed (API.md §7).
    #[arg(long, env = "CLIENTELE_SQLITE_SYNCHRONOUS", value_enum, default_value = "full")]
    sqlite_synchronous: SqliteSynchronous,

    /// Keep events at least this long (N followed by s, m, h or d); older ones, and their
    /// deliveries, are deleted in the background (API.md §8).
    #[arg(long, env = "CLIENTELE_EVENT_RETENTION", default_value = "30d", value_parser = parse_positive_duration)]
    event_retention: Duration,

    /// Accept http webhook URLs and deliver to any address, loopback and private networks
    /// included (for tests and private networks; API.md §8). Without it: https only, and no
    /// loopback, private, link-local or multicast destination.
    #[arg(long, env = "CLIENTELE_WEBHOOK_ALLOW_INSECURE")]
    webhook_allow_insecure: bool,

    /// For tests only: multiplies the webhook retry schedule (0.01 retries after 50 ms, 600 ms, ...).
    #[arg(long, env = "CLIENTELE_WEBHOOK_RETRY_SCALE", default_value = "1", hide = true, value_parser = parse_scale)]
    webhook_retry_scale: f64,
}

/// A finite, non-negative factor.
fn parse_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale >= 0.0 => Ok(scale),
        _ => Err(format!("'{text}' is not a non-negative number")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SqliteSynchronous {
    Full,
    Normal,
}

impl From<SqliteSynchronous> for Synchronous {
    fn from(value: SqliteSynchronous) -> Self {
        match value {
            SqliteSynchronous::Full => Synchronous::Full,
            SqliteSynchronous::Normal => Synchronous::Normal,
        }
    }
}

/// An absolute `http` or `https` URL, without a trailing slash.
pub(crate) fn parse_public_url(text: &str) -> Result<String, String> {
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !text.contains(char::is_whitespace) => {
            Ok(text.trim_end_matches('/').to_owned())
        }
        _ => Err(format!("'{text}' is not an absolute http(s) URL")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

pub async fn run(database_url: &str, args: ServeArgs) -> anyhow::Result<()> {
    // Dropped when `run` returns, after the graceful shutdown: the queued lines are written then.
    let _log = init_logging(args.log_format);
    let deprecations = Deprecation::combine(&args.deprecate, &args.sunset).map_err(anyhow::Error::msg)?;
    let options =
        OpenOptions { budget: Budget::new(args.request_deadline), sqlite_synchronous: args.sqlite_synchronous.into() };
    let store = storage::open_with_options(database_url, options).await?;
    // Every setting is checked, and the listener bound, before bootstrapping: a start
    // that fails prints no token and creates nothing.
    let limiter = match &args.redis_url {
        Some(url) => RateLimiter::with_redis(RedisLimiter::connect(url.expose()).map_err(|error| {
            anyhow::anyhow!("invalid Redis URL '{url}': {}", redact_quoting(&error.to_string(), url.expose()))
        })?),
        None => RateLimiter::in_memory(),
    };
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    if !args.no_bootstrap {
        bootstrap(&store).await?;
    }
    let config = ServerConfig {
        default_rate_limit: args.default_rate_limit,
        auth_failure_limit: args.auth_failure_limit,
        trusted_proxies: args.trusted_proxies,
        request_deadline: args.request_deadline,
        public_url: args.public_url,
        deprecations,
        cors_origins: args.cors_origins,
        event_retention: args.event_retention,
        webhooks: WebhookSettings {
            allow_insecure: args.webhook_allow_insecure,
            retry_scale: args.webhook_retry_scale,
        },
    };
    let connections = ConnectionSettings {
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        idle_timeout: args.idle_timeout,
        shutdown_timeout: args.shutdown_timeout,
        max_connections: args.max_connections.get(),
    };
    server::warn_if_above_open_file_limit(connections.max_connections);
    limiter.check_health().await;
    let address = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    announce(&[format!("Clientele listening on http://{address}")]);
    tracing::info!(%address, database = %redact(database_url), rate_limiter = limiter.state().as_str(), "serving");
    let state = AppState::new(config, store, limiter);
    server::serve_with(listener, state, connections, shutdown).await.context("the server stopped")?;
    tracing::info!("stopped after finishing the requests in flight");
    Ok(())
}

/// On an empty database: account `default` and a write token, printed once.
async fn bootstrap(store: &SharedStore) -> anyhow::Result<()> {
    if !store.list_accounts().await.context("cannot read accounts")?.is_empty() {
        return Ok(());
    }
    if let Err(error) = admin::create_account(store, "default").await {
        // Several instances starting at once on an empty database: another one bootstrapped first.
        if matches!(store.find_account("default").await, Ok(Some(_))) {
            return Ok(());
        }
        return Err(error);
    }
    let (secret, _) = admin::issue_token(store, "default", Scope::Write, None).await?;
    announce(&[
        "Created account 'default' and a write token. It is shown only this once:".to_owned(),
        String::new(),
        format!("    {}", secret.expose()),
        String::new(),
    ]);
    Ok(())
}

/// Prints lines on stdout for whoever started the server. The server keeps
/// serving if nobody reads them (stdout closed, `serve | head -1`): its logs
/// go to stderr, and a lost banner is no reason to stop.
fn announce(lines: &[String]) {
    if let Err(error) = output::print_lines(lines) {
        tracing::debug!(error = %format!("{error:#}"), "cannot print on stdout");
    }
}

/// Logs to stderr off the request path (see [`crate::logging`]); colours only
/// for a person at a terminal, not in a file or a collector.
fn init_logging(format: LogFormat) -> logging::LogGuard {
    logging::init_stderr(match format {
        LogFormat::Pretty => logging::Format::Pretty,
        LogFormat::Json => logging::Format::Json,
    })
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed
/// now, before the server says it listens: a signal sent as soon as the
/// listening line appears still drains instead of killing the process.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: finishing the requests in flight");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing the requests in flight");
    })
}
