//! Which IP addresses a webhook may be delivered to (API.md §8): none that
//! reaches this machine, its private networks or a range with no single public
//! host behind it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// IPv4 ranges no webhook goes to, from the IANA special-purpose address
/// registry (RFC 6890 and its updates).
const FORBIDDEN_V4: [&str; 15] = [
    "0.0.0.0/8",       // "this network", unspecified (RFC 791, RFC 1122)
    "10.0.0.0/8",      // private (RFC 1918)
    "100.64.0.0/10",   // carrier-grade NAT, shared address space (RFC 6598)
    "127.0.0.0/8",     // loopback (RFC 1122)
    "169.254.0.0/16",  // link-local, where cloud metadata services answer (RFC 3927)
    "172.16.0.0/12",   // private (RFC 1918)
    "192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",    // documentation, TEST-NET-1 (RFC 5737)
    "192.88.99.0/24",  // 6to4 relay anycast (RFC 7526)
    "192.168.0.0/16",  // private (RFC 1918)
    "198.18.0.0/15",   // benchmarking (RFC 2544)
    "198.51.100.0/24", // documentation, TEST-NET-2 (RFC 5737)
    "203.0.113.0/24",  // documentation, TEST-NET-3 (RFC 5737)
    "224.0.0.0/4",     // multicast (RFC 5771)
    "240.0.0.0/4",     // reserved, and the limited broadcast 255.255.255.255 (RFC 1112, RFC 919)
];

/// IPv6 ranges no webhook goes to (IANA IPv6 special-purpose registry).
/// IPv4-mapped addresses (`::ffff:0:0/96`) and NAT64's well-known prefix
/// (`64:ff9b::/96`) are judged by the IPv4 address they carry instead.
const FORBIDDEN_V6: [&str; 13] = [
    "::/96",          // unspecified, loopback and the deprecated IPv4-compatible form (RFC 4291)
    "64:ff9b:1::/48", // local-use IPv4/IPv6 translation (RFC 8215)
    "100::/64",       // discard-only (RFC 6666)
    "2001::/32",      // Teredo tunnels, which reach any IPv4 host (RFC 4380)
    "2001:2::/48",    // benchmarking (RFC 5180)
    "2001:10::/28",   // ORCHID, not routable (RFC 4843)
    "2001:db8::/32",  // documentation (RFC 3849)
    "2002::/16",      // 6to4 tunnels, which reach any IPv4 host (RFC 3056)
    "3fff::/20",      // documentation (RFC 9637)
    "fc00::/7",       // unique local, the private networks of IPv6 (RFC 4193)
    "fe80::/10",      // link-local (RFC 4291)
    "fec0::/10",      // site-local, deprecated (RFC 3879)
    "ff00::/8",       // multicast (RFC 4291)
];

static FORBIDDEN: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    let v4 = FORBIDDEN_V4.iter().map(|net| IpNet::V4(net.parse::<Ipv4Net>().expect("a valid IPv4 range")));
    let v6 = FORBIDDEN_V6.iter().map(|net| IpNet::V6(net.parse::<Ipv6Net>().expect("a valid IPv6 range")));
    v4.chain(v6).collect()
});

/// Whether a webhook may not be sent to `address`: loopback, private (RFC
/// 1918, unique local `fc00::/7`), link-local, multicast, unspecified,
/// carrier-grade NAT (`100.64.0.0/10`), documentation and benchmarking
/// ranges, tunnels and the other special-purpose ranges above, including the
/// IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) forms of any
/// forbidden IPv4 address.
pub fn is_forbidden(address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    FORBIDDEN.iter().any(|range| range.contains(&address))
}

/// The IPv4 address an IPv4-mapped (`::ffff:0:0/96`) or NAT64 well-known
/// prefix (`64:ff9b::/96`, RFC 6052) address stands for.
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(mapped) = address.to_ipv4_mapped() {
        return Some(mapped);
    }
    if address.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = address.octets();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(text: &str) -> bool {
        is_forbidden(text.parse().expect("an IP address"))
    }

    #[test]
    fn local_private_and_special_addresses_are_forbidden() {
        for address in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "::127.0.0.1",
            "2002:7f00:1::1",
            "2001::1",
        ] {
            assert!(forbidden(address), "{address} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for address in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!forbidden(address), "{address} must be allowed");
        }
    }
}
