//! The client's address: the peer, or what a trusted proxy says in `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::Request;
use ipnet::IpNet;

/// Walks `X-Forwarded-For` from the nearest hop back, skipping trusted proxies;
/// the first address not trusted is the client. Without trusted proxies the
/// header is ignored, so a client cannot choose its own address.
pub fn client_ip<B>(request: &Request<B>, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip();
    if !is_trusted(peer, trusted_proxies) {
        return Some(peer);
    }
    let mut client = peer;
    for value in request.headers().get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = value.to_str() else { return Some(client) };
        for hop in text.rsplit(',') {
            let Ok(address) = hop.trim().parse::<IpAddr>() else { return Some(client) };
            client = address;
            if !is_trusted(address, trusted_proxies) {
                return Some(client);
            }
        }
    }
    Some(client)
}

fn is_trusted(address: IpAddr, trusted_proxies: &[IpNet]) -> bool {
    trusted_proxies.iter().any(|network| network.contains(&address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: Option<&str>) -> Request<()> {
        let mut builder = Request::builder();
        if let Some(forwarded) = forwarded {
            builder = builder.header("x-forwarded-for", forwarded);
        }
        let mut request = builder.body(()).unwrap();
        request.extensions_mut().insert(ConnectInfo(format!("{peer}:5000").parse::<SocketAddr>().unwrap()));
        request
    }

    #[test]
    fn forwarded_for_only_counts_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |peer, header| client_ip(&request(peer, header), &trusted).unwrap().to_string();
        assert_eq!(ip("203.0.113.9", Some("1.2.3.4")), "203.0.113.9");
        assert_eq!(ip("10.0.0.1", Some("1.2.3.4")), "1.2.3.4");
        assert_eq!(ip("10.0.0.1", Some("6.6.6.6, 1.2.3.4, 10.0.0.2")), "1.2.3.4");
        assert_eq!(ip("10.0.0.1", None), "10.0.0.1");
        assert_eq!(ip("10.0.0.1", Some("garbage")), "10.0.0.1");
        assert_eq!(client_ip(&request("10.0.0.1", Some("1.2.3.4")), &[]).unwrap().to_string(), "10.0.0.1");
    }
}
