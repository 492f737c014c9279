//! Who is on the other end of a request: the client address that policies see
//! (`context.request.client`), that audit records carry and that authentication failures
//! are limited by.
//!
//! It is the TCP peer's address. Only when that peer is a reverse proxy the operator
//! listed in `server.trusted_proxies` is `X-Forwarded-For` believed, and then only as far
//! as it is written by trusted proxies: reading the list from the right, the first address
//! that is not a trusted proxy is the client. Anyone can write the header, so an entry
//! left of an untrusted hop is never taken.

use std::net::{IpAddr, SocketAddr};

use axum::{extract::ConnectInfo, http::HeaderMap};
use ipnet::IpNet;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address of a request, in its extensions (set by the authentication layer);
/// `None` when the request did not come through a listener that knows its peer (a host
/// application serving [`crate::Proxy::into_router`] without connect info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// As policies and records see it: the address in text, or `""` when unknown.
    pub fn text(&self) -> String {
        self.0.map(|ip| ip.to_string()).unwrap_or_default()
    }
}

/// The client address of a request from `peer` with `headers`.
pub fn client_addr(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> ClientAddr {
    let Some(peer) = peer.map(|ip| ip.to_canonical()) else {
        return ClientAddr(None);
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return ClientAddr(Some(peer));
    }
    let mut client = peer;
    // Every X-Forwarded-For line, in order, as one list; walked from the right.
    let hops: Vec<&str> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop.trim()) else {
            // Not an address: nothing to its left can be trusted either.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    ClientAddr(Some(client))
}

/// The peer of a request served by [`super::serve`] (or by axum with connect info).
pub fn peer_of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or `203.0.113.7:5000`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The bucket a client's authentication failures are counted in: the address itself for
/// IPv4, its /64 for IPv6 (one host usually holds a whole /64).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(FORWARDED_FOR, line.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() {
        let h = headers(&["198.51.100.9"]);
        assert_eq!(client_addr(ip("203.0.113.7"), &h, &[]).0, ip("203.0.113.7"));
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_addr(ip("203.0.113.7"), &h, &trusted).0,
            ip("203.0.113.7"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_addr(ip("10.1.2.3"), &h, &trusted).0,
            ip("198.51.100.9")
        );
        assert_eq!(client_addr(None, &h, &trusted).0, None);
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_and_stops_at_the_first_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client forged the leftmost entry; the first proxy appended the real one.
        let h = headers(&["1.1.1.1, 198.51.100.9", "10.0.0.5"]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &trusted).0,
            ip("198.51.100.9")
        );
        // Garbage stops the walk at the last trusted hop.
        let h = headers(&["198.51.100.9, not-an-ip"]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &trusted).0, ip("10.0.0.1"));
        // Only trusted hops: the leftmost one.
        let h = headers(&["10.0.0.7, 10.0.0.5"]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &trusted).0, ip("10.0.0.7"));
        // Ports and IPv6 brackets.
        let h = headers(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &trusted).0,
            ip("2001:db8::1")
        );
        // An IPv4 peer seen on an IPv6 socket.
        assert_eq!(
            client_addr(ip("::ffff:127.0.0.1"), &HeaderMap::new(), &[]).text(),
            "127.0.0.1"
        );
    }

    #[test]
    fn ipv6_failures_are_counted_per_64() {
        assert_eq!(
            limit_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            limit_key("192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
