//! `clientele serve`: open the store, bootstrap an empty one, listen, drain on a signal.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use tokio::net::TcpListener;

use super::output;
use crate::admin;
use crate::app::AppState;
use crate::config::ServerConfig;
use crate::deadline::{Budget, parse_request_timeout};
use crate::domain::Scope;
use crate::logging;
use crate::ratelimit::{RateLimit, RateLimiter, RedisLimiter};
use crate::secrets::{SecretUrl, redact, redact_quoting};
use crate::server;
use crate::storage::sqlite::Synchronous;
use crate::storage::{self, OpenOptions, SharedStore};

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

    /// Answer 503 to a request still running after this long (N followed by s, m, h or d); its
    /// database work is stopped first, so a write answered 503 is never applied.
    #[arg(long, env = "CLIENTELE_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_request_timeout)]
    request_timeout: Duration,

    /// Do not create the `default` account and token on an empty database.
    #[arg(long, env = "CLIENTELE_NO_BOOTSTRAP")]
    no_bootstrap: bool,

    /// Log lines for people or for machines.
    #[arg(long, env = "CLIENTELE_LOG_FORMAT", value_enum, default_value = "pretty")]
    log_format: LogFormat,

    /// SQLite: `full` flushes each commit to disk before answering, so an acknowledged write
    /// survives a power cut; `normal` may lose the last ones then, for speed (API.md §7).
    #[arg(long, env = "CLIENTELE_SQLITE_SYNCHRONOUS", value_enum, default_value = "full")]
    sqlite_synchronous: SqliteSynchronous,
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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

pub async fn run(database_url: &str, args: ServeArgs) -> anyhow::Result<()> {
    // Dropped when `run` returns, after the graceful shutdown: the queued lines are written then.
    let _log = init_logging(args.log_format);
    let options =
        OpenOptions { budget: Budget::new(args.request_timeout), sqlite_synchronous: args.sqlite_synchronous.into() };
    let store = storage::open_with_options(database_url, options).await?;
    // Bind before bootstrapping, so a start that cannot listen prints no token and creates nothing.
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    if !args.no_bootstrap {
        bootstrap(&store).await?;
    }
    let limiter = match &args.redis_url {
        Some(url) => RateLimiter::with_redis(RedisLimiter::connect(url.expose()).map_err(|error| {
            anyhow::anyhow!("invalid Redis URL '{url}': {}", redact_quoting(&error.to_string(), url.expose()))
        })?),
        None => RateLimiter::in_memory(),
    };
    let config = ServerConfig {
        default_rate_limit: args.default_rate_limit,
        auth_failure_limit: args.auth_failure_limit,
        trusted_proxies: args.trusted_proxies,
        request_timeout: args.request_timeout,
    };
    limiter.check_health().await;
    let address = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    announce(&[format!("Clientele listening on http://{address}")]);
    tracing::info!(%address, database = %redact(database_url), rate_limiter = limiter.state().as_str(), "serving");
    let state = AppState::new(config, store, limiter);
    server::serve(listener, state, shutdown).await.context("the server stopped")?;
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
