//! The webhook client's name resolver: it resolves as the system does, and
//! refuses a name when ANY of its addresses is forbidden
//! ([`super::addresses::is_forbidden`]). The client connects only to the
//! addresses it returns, so the check is made at connect time, on the very
//! addresses connected to: a name that resolves to a public address when
//! the endpoint is created and to `127.0.0.1` later (DNS rebinding) is
//! refused then.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::addresses::is_forbidden;

/// A [`Resolve`] that refuses names resolving to forbidden addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

/// A name refused because of one of its addresses.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, a loopback, private, link-local, multicast or reserved address")]
pub struct ForbiddenName {
    pub host: String,
    pub address: IpAddr,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // The port is the URL's: the client sets it on each address.
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(forbidden) = addresses.iter().find(|address| is_forbidden(address.ip())) {
                return Err(Box::new(ForbiddenName { host, address: forbidden.ip() }) as _);
            }
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[tokio::test]
    async fn a_name_of_this_machine_is_refused() {
        let refused = GuardedResolver.resolve(Name::from_str("localhost").unwrap()).await;
        let error = refused.err().expect("localhost is refused");
        assert!(error.to_string().starts_with("localhost resolves to "), "{error}");
    }
}
