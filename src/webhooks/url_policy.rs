//! Which endpoint URLs are accepted (API.md §8): checked when an endpoint is
//! created, and again before each delivery (the resolved addresses are
//! checked at connect time by [`super::resolver`]).

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

use super::addresses::is_forbidden;

/// Why an endpoint URL is refused; its `Display` is the message an
/// integrator reads (it names no secret: a URL holds none the server made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlRefusal {
    /// Not `https` (nor `http` with `--webhook-allow-insecure`).
    Scheme(String),
    /// No host to deliver to.
    NoHost,
    /// An IP address that is loopback, private, link-local, multicast or
    /// otherwise special ([`super::addresses::is_forbidden`]).
    ForbiddenAddress(IpAddr),
    /// A host name that resolves (among others, perhaps) to such an address.
    ForbiddenName { host: String, address: IpAddr },
}

impl fmt::Display for UrlRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scheme(scheme) => write!(f, "url must use https, not {scheme}"),
            Self::NoHost => f.write_str("url must name a host"),
            Self::ForbiddenAddress(address) => write!(
                f,
                "url must not point at a loopback, private, link-local, multicast or reserved address ({address})"
            ),
            Self::ForbiddenName { host, address } => write!(
                f,
                "url must not resolve to a loopback, private, link-local, multicast or reserved address \
                 ({host} resolves to {address})"
            ),
        }
    }
}

impl std::error::Error for UrlRefusal {}

/// Checks what can be checked of `url` without resolving it (API.md §8):
/// the scheme is `https` and there is a host, and a host written as an IP
/// address is not forbidden. With `allow_insecure` (`serve
/// --webhook-allow-insecure`), `http` is accepted too, and any address.
///
/// A host name is judged at delivery, on every address it resolves to.
pub fn check_url_syntax(url: &Url, allow_insecure: bool) -> Result<(), UrlRefusal> {
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        other => return Err(UrlRefusal::Scheme(other.to_owned())),
    }
    let address = match url.host() {
        None => return Err(UrlRefusal::NoHost),
        Some(Host::Domain("")) => return Err(UrlRefusal::NoHost),
        Some(Host::Domain(_)) => return Ok(()),
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    if !allow_insecure && is_forbidden(address) {
        return Err(UrlRefusal::ForbiddenAddress(address));
    }
    Ok(())
}

/// How long [`check_url`] waits for a host name to resolve.
pub const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// [`check_url_syntax`], then, for a host name, every address it resolves to
/// now (API.md §8: an endpoint URL must not resolve to a forbidden address),
/// unless `allow_insecure`. A name that does not resolve (yet), or not within
/// [`RESOLVE_TIMEOUT`], is accepted: it is judged again at every delivery, at
/// connect time ([`super::resolver`]).
pub async fn check_url(url: &Url, allow_insecure: bool) -> Result<(), UrlRefusal> {
    check_url_syntax(url, allow_insecure)?;
    let Some(Host::Domain(host)) = url.host() else { return Ok(()) };
    if allow_insecure {
        return Ok(());
    }
    let lookup = tokio::net::lookup_host((host, url.port_or_known_default().unwrap_or(443)));
    let Ok(Ok(addresses)) = tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await else { return Ok(()) };
    for address in addresses {
        if is_forbidden(address.ip()) {
            return Err(UrlRefusal::ForbiddenName { host: host.to_owned(), address: address.ip() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, allow_insecure: bool) -> Result<(), UrlRefusal> {
        check_url_syntax(&Url::parse(url).expect("a URL"), allow_insecure)
    }

    #[test]
    fn https_to_a_name_or_a_public_address_is_accepted() {
        assert_eq!(check("https://hooks.example.com/clientele", false), Ok(()));
        assert_eq!(check("https://93.184.215.14:8443/x", false), Ok(()));
        assert_eq!(check("https://[2606:4700:4700::1111]/x", false), Ok(()));
        // A name that may resolve to loopback is judged at delivery.
        assert_eq!(check("https://localhost/x", false), Ok(()));
    }

    #[test]
    fn other_schemes_and_forbidden_addresses_are_refused() {
        assert_eq!(check("http://hooks.example.com/", false), Err(UrlRefusal::Scheme("http".into())));
        assert_eq!(check("ftp://hooks.example.com/", true), Err(UrlRefusal::Scheme("ftp".into())));
        assert!(matches!(check("https://127.0.0.1/", false), Err(UrlRefusal::ForbiddenAddress(_))));
        assert!(matches!(check("https://10.0.0.1/", false), Err(UrlRefusal::ForbiddenAddress(_))));
        assert!(matches!(check("https://[::1]/", false), Err(UrlRefusal::ForbiddenAddress(_))));
        assert!(matches!(check("https://[::ffff:192.168.0.1]/", false), Err(UrlRefusal::ForbiddenAddress(_))));
        // The URL parser reads the shorthand and decimal forms as the address they mean.
        assert!(matches!(check("https://2130706433/", false), Err(UrlRefusal::ForbiddenAddress(_))));
        assert!(matches!(check("https://127.1/", false), Err(UrlRefusal::ForbiddenAddress(_))));
    }

    #[test]
    fn allow_insecure_accepts_http_and_any_address() {
        assert_eq!(check("http://127.0.0.1:8080/hook", true), Ok(()));
        assert_eq!(check("https://10.0.0.1/", true), Ok(()));
    }

    #[test]
    fn messages_name_the_field() {
        assert!(UrlRefusal::NoHost.to_string().starts_with("url "));
        assert!(UrlRefusal::Scheme("http".into()).to_string().contains("https"));
    }
}
