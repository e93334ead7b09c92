//! `clientele openapi`: prints a version's OpenAPI document on stdout, tailored
//! like `GET /vN/openapi.json` with a token (API.md §6), for the operator to
//! send to an integrator.

use anyhow::{Context, bail};
use clap::Args;

use super::serve::parse_public_url;
use crate::api_version::ApiVersion;
use crate::domain::Scope;
use crate::http::documents::{Tailoring, document, render, tailored};
use crate::lifecycle::{Deprecation, VersionDate};
use crate::ratelimit::RateLimit;
use crate::storage::SharedStore;

#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// The API version whose document to print: v1 or v2.
    #[arg(long = "version", value_parser = parse_version)]
    api_version: ApiVersion,

    /// Tailor it to this token (tok_...): its scope's operations and its rate limit. Reads the database.
    #[arg(long)]
    token_id: Option<String>,

    /// Only the operations this scope allows (read: GET only). With --token-id, must be the token's.
    #[arg(long, value_parser = parse_scope)]
    scope: Option<Scope>,

    /// The URL integrators reach the server at: the document's one server.
    #[arg(long, env = "CLIENTELE_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,

    /// The server's limit for tokens without their own, as `serve --default-rate-limit` has it.
    #[arg(long, env = "CLIENTELE_DEFAULT_RATE_LIMIT", default_value = "100/60s")]
    default_rate_limit: RateLimit,

    /// As `serve --deprecate`: VERSION=YYYY-MM-DD; repeatable.
    #[arg(long, env = "CLIENTELE_DEPRECATE", value_delimiter = ',')]
    deprecate: Vec<VersionDate>,

    /// As `serve --sunset`: VERSION=YYYY-MM-DD; repeatable.
    #[arg(long, env = "CLIENTELE_SUNSET", value_delimiter = ',')]
    sunset: Vec<VersionDate>,
}

impl OpenapiArgs {
    /// Whether printing needs the database (only to look a token up).
    pub fn needs_store(&self) -> bool {
        self.token_id.is_some()
    }
}

fn parse_version(text: &str) -> Result<ApiVersion, String> {
    ApiVersion::ALL
        .into_iter()
        .find(|version| version.as_str() == text)
        .ok_or_else(|| format!("unknown API version '{text}': expected v1 or v2"))
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    text.parse()
}

/// Prints the document; `store` is given when [`OpenapiArgs::needs_store`].
pub async fn run(store: Option<&SharedStore>, args: OpenapiArgs) -> anyhow::Result<()> {
    let deprecation = Deprecation::combine(&args.deprecate, &args.sunset)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .find(|deprecation| deprecation.version == args.api_version);
    let mut tailoring =
        Tailoring { scope: args.scope, public_url: args.public_url, deprecation, ..Tailoring::default() };
    if let (Some(token_id), Some(store)) = (&args.token_id, store) {
        let tokens = store.list_tokens(None).await.context("cannot read tokens")?;
        let Some(token) = tokens.into_iter().find(|token| token.id.as_str() == token_id) else {
            bail!("no token with id {token_id}");
        };
        if token.revoked_at.is_some() {
            bail!("token {token_id} is revoked");
        }
        if let Some(scope) = args.scope.filter(|scope| *scope != token.scope) {
            bail!("token {token_id} has the {} scope, not {}", token.scope.as_str(), scope.as_str());
        }
        tailoring.scope = Some(token.scope);
        tailoring.token_id = Some(token.id.to_string());
        tailoring.rate_limit = Some(token.rate_limit.unwrap_or(args.default_rate_limit));
    }
    let text = if tailoring.is_default() {
        document(args.api_version).to_owned()
    } else {
        render(&tailored(args.api_version, &tailoring))
    };
    print!("{text}");
    Ok(())
}
