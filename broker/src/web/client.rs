//! Who sent a request: the socket peer, or, when the peer is one of the hub's own proxies
//! (`connectors.trusted_proxies`), what that proxy says. A header from anyone else is a
//! forgery and is ignored. The certificate connector (a client certificate forwarded by the
//! TLS proxy) and the per-address limit of failing requests both decide here.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::config::Config;

/// The header a trusted proxy appends the address it saw to (nginx:
/// `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`).
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// Is `peer` one of the hub's own proxies, whose forwarded headers are believed?
pub fn is_trusted_proxy(config: &Config, peer: IpAddr) -> bool {
    config.connectors.trusted_proxies.contains(&canonical(peer))
}

/// The client's address: the socket peer, or, when the peer is a trusted proxy, the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy (the proxies append; what
/// the client wrote in front is not believed). `None` when there is no peer (an in-process
/// call) or a trusted proxy forwarded no usable address: then the proxy's own address would
/// stand for every client behind it, which must never be limited as one.
pub fn address(config: &Config, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = canonical(peer?.ip());
    if !is_trusted_proxy(config, peer) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all(FORWARDED_FOR) {
        let text = value.to_str().ok()?;
        for item in text.split(',') {
            hops.push(parse_hop(item.trim())?);
        }
    }
    hops.into_iter()
        .rev()
        .map(canonical)
        .find(|ip| !is_trusted_proxy(config, *ip))
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_hop(item: &str) -> Option<IpAddr> {
    item.parse::<IpAddr>()
        .ok()
        .or_else(|| item.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:1.2.3.4`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(proxies: &[&str]) -> Config {
        let mut c = Config::default();
        c.connectors.trusted_proxies = proxies.iter().map(|p| p.parse().unwrap()).collect();
        c
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy() {
        let c = config(&["10.0.0.5"]);
        let forged = headers(&["198.51.100.7"]);
        assert_eq!(
            address(&c, peer("203.0.113.9:4000"), &forged),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            address(&c, peer("10.0.0.5:4000"), &forged),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(address(&c, None, &forged), None);
    }

    #[test]
    fn what_the_client_wrote_in_front_is_not_believed() {
        let c = config(&["10.0.0.5", "10.0.0.6"]);
        // The client sent "1.1.1.1"; the outer proxy appended the client, the inner one the
        // outer proxy.
        let h = headers(&["1.1.1.1, 198.51.100.7", "10.0.0.6"]);
        assert_eq!(
            address(&c, peer("10.0.0.5:1"), &h),
            Some("198.51.100.7".parse().unwrap())
        );
        let h = headers(&["[2001:db8::1]:443"]);
        assert_eq!(
            address(&c, peer("[::ffff:10.0.0.5]:1"), &h),
            Some("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn a_proxy_forwarding_nothing_usable_is_not_one_client() {
        let c = config(&["10.0.0.5"]);
        assert_eq!(address(&c, peer("10.0.0.5:1"), &HeaderMap::new()), None);
        assert_eq!(
            address(&c, peer("10.0.0.5:1"), &headers(&["unknown"])),
            None
        );
        assert_eq!(
            address(&c, peer("10.0.0.5:1"), &headers(&["10.0.0.5"])),
            None
        );
    }
}
