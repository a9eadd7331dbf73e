//! Who a request is from when a reverse proxy (nginx, Caddy) stands in front: the proxy's
//! `X-Forwarded-For`, believed only from an address in `proxy_protocol.trusted`. Otherwise
//! every player would be the proxy's address to the per-address limits (one attacker's failed
//! joins would lock everyone out, the `/api/ice` quota would be shared by all), and `/metrics`,
//! allowed to loopback, would be served to the internet through a proxy on loopback.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use hyper::HeaderMap;

use crate::config::Config;

/// Where a request comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The client: the peer, or the address a trusted proxy forwarded it for.
    pub client: SocketAddr,
    pub via: Via,
}

/// How a request reached this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Straight from the client (no forwarding header).
    Direct,
    /// Through a proxy in `proxy_protocol.trusted`, which named the client.
    TrustedProxy,
    /// Naming a forwarded address, from a peer that is not trusted: who sent it is unknown.
    UntrustedProxy,
}

impl Origin {
    /// Whether `/metrics` may be served: to a client in `web.metrics_allow`, seen directly or
    /// named by a trusted proxy, and never to a loopback address through a proxy (whatever a
    /// proxy on this machine forwards would pass as this machine; scrape directly instead).
    pub fn may_read_metrics(&self, config: &Config) -> bool {
        let ip = self.client.ip().to_canonical();
        let allowed = config.web.metrics_allow.iter().any(|net| net.contains(&ip));
        allowed
            && match self.via {
                Via::Direct => true,
                Via::TrustedProxy => !ip.is_loopback(),
                Via::UntrustedProxy => false,
            }
    }
}

/// The first request through an untrusted proxy has been logged.
static TOLD: AtomicBool = AtomicBool::new(false);

/// The origin of a request from `peer` with `headers`. From a trusted proxy, the client is the
/// last address of `X-Forwarded-For` that is not itself a trusted proxy (the ones before it
/// are whatever the client wrote). `X-Forwarded-For`, `X-Real-IP` or `Forwarded` from any
/// other peer mark the request as proxied by someone not trusted.
pub fn origin(config: &Config, peer: SocketAddr, headers: &HeaderMap) -> Origin {
    let trusted = |ip: IpAddr| {
        let ip = ip.to_canonical();
        config
            .proxy_protocol
            .trusted
            .iter()
            .any(|net| net.contains(&ip))
    };
    let forwarded_for = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let proxied = !forwarded_for.is_empty()
        || headers.contains_key("x-real-ip")
        || headers.contains_key("forwarded");
    if !proxied {
        return Origin {
            client: peer,
            via: Via::Direct,
        };
    }
    if !trusted(peer.ip()) {
        if !TOLD.swap(true, Ordering::Relaxed) {
            log::warn!(
                "web: requests come through a proxy at {} that is not in proxy_protocol.trusted: \
                 every player behind it counts as that one address for the per-address limits, \
                 and /metrics is not served through it; add it to proxy_protocol.trusted",
                peer.ip()
            );
        }
        return Origin {
            client: peer,
            via: Via::UntrustedProxy,
        };
    }
    let client = forwarded_for
        .iter()
        .rev()
        .filter_map(|a| parse(a))
        .find(|ip| !trusted(*ip))
        .map_or(peer, |ip| SocketAddr::new(ip, 0));
    Origin {
        client,
        via: Via::TrustedProxy,
    }
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or
/// `203.0.113.7:443`.
fn parse(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    text.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(trusted: &[&str]) -> Config {
        let mut c = Config::default();
        c.proxy_protocol.trusted = trusted.iter().map(|t| t.parse().unwrap()).collect();
        c
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    const PROXY: &str = "127.0.0.1:40000";

    #[test]
    fn a_trusted_proxy_names_the_client_and_nobody_else_does() {
        let peer: SocketAddr = PROXY.parse().unwrap();
        let trusted = config(&["127.0.0.1/32", "10.0.0.0/8"]);
        // The client wrote the first one; the trusted chain ends with the real one.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.9, 10.1.2.3")]);
        let o = origin(&trusted, peer, &h);
        assert_eq!(o.client.ip(), "198.51.100.9".parse::<IpAddr>().unwrap());
        assert_eq!(o.via, Via::TrustedProxy);
        // Several header lines, ports and brackets.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "[2001:db8::7]:443"),
        ]);
        assert_eq!(
            origin(&trusted, peer, &h).client.ip(),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        // Nothing usable: the peer.
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(origin(&trusted, peer, &h).client, peer);
        // An untrusted peer names nobody, and is marked.
        let untrusted = config(&[]);
        let h = headers(&[("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(
            origin(&untrusted, peer, &h),
            Origin {
                client: peer,
                via: Via::UntrustedProxy
            }
        );
        let h = headers(&[("forwarded", "for=198.51.100.9")]);
        assert_eq!(origin(&untrusted, peer, &h).via, Via::UntrustedProxy);
        // No forwarding at all: the peer, plainly.
        assert_eq!(
            origin(&untrusted, peer, &HeaderMap::new()),
            Origin {
                client: peer,
                via: Via::Direct
            }
        );
    }

    #[test]
    fn metrics_go_to_allowed_addresses_and_never_to_loopback_through_a_proxy() {
        let peer: SocketAddr = PROXY.parse().unwrap();
        let mut c = config(&["127.0.0.1/32"]);
        c.web.metrics_allow.push("10.0.0.0/8".parse().unwrap());
        let from = |xff: Option<&str>| {
            let h = xff.map_or_else(HeaderMap::new, |a| headers(&[("x-forwarded-for", a)]));
            origin(&c, peer, &h).may_read_metrics(&c)
        };
        assert!(from(None), "this machine, directly");
        assert!(
            from(Some("10.1.2.3")),
            "an allowed scraper through the proxy"
        );
        assert!(!from(Some("198.51.100.9")), "a player through the proxy");
        assert!(!from(Some("127.0.0.1")), "loopback through the proxy");
        assert!(!from(Some("127.0.0.62")), "loopback through the proxy");
        assert!(
            !origin(
                &config(&[]),
                peer,
                &headers(&[("x-forwarded-for", "10.1.2.3")])
            )
            .may_read_metrics(&c)
        );
    }
}
