//! Webhook delivery (API.md §8). STUB from the `events` branch: only the URL
//! check the endpoint routes call, accepting `https` alone. The `webhooks`
//! branch (signing, SSRF checks, the HTTP client, the delivery worker)
//! replaces this file; keep that one when merging.

use url::Url;

/// Why an endpoint URL is refused; its message names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("url must use https")]
    NotHttps,
    #[error("url must name a host")]
    NoHost,
}

/// Whether `url` may be a webhook endpoint, from its text alone (no DNS):
/// `https` with a host; with `allow_insecure`, `http` too.
pub fn check_url_syntax(url: &Url, allow_insecure: bool) -> Result<(), UrlRefusal> {
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        _ => return Err(UrlRefusal::NotHttps),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlRefusal::NoHost);
    }
    Ok(())
}
