//! Which peer addresses the relay may send to. Without this a TURN server is an open proxy into
//! the network it sits in: its own loopback, the provider's private network, the cloud metadata
//! service.
//!
//! Order of the checks: `turn.allow_peers` wins, then the built-in list plus `turn.deny_peers`
//! refuse, and anything else is allowed. Addresses are canonicalised first, so the IPv4-mapped
//! (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) forms of an IPv4 address get the IPv4
//! verdict. The server's own relay addresses are allowed by the caller (relay-to-relay calls),
//! exactly by address and port, never a whole IP.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// Refused unless `turn.allow_peers` says otherwise.
const BUILT_IN_DENY: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    // NAT64: the IPv4 address inside could be anything, including the above.
    "64:ff9b::/96",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

#[derive(Clone, Debug)]
pub struct PeerPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl PeerPolicy {
    pub fn new(allow: &[IpNet], deny: &[IpNet]) -> PeerPolicy {
        let mut all_deny: Vec<IpNet> = BUILT_IN_DENY
            .iter()
            .map(|n| n.parse().expect("built-in CIDR"))
            .collect();
        all_deny.extend_from_slice(deny);
        PeerPolicy {
            allow: allow.to_vec(),
            deny: all_deny,
        }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        !self.deny.iter().any(|n| n.contains(&ip))
    }
}

/// The IPv4 address an IPv6 address stands for, when it is a mapped or compatible form.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            // IPv4-compatible (::a.b.c.d, deprecated) but not :: or ::1 themselves.
            let s = v6.segments();
            if s[..6] == [0; 6] && v6 != Ipv6Addr::UNSPECIFIED && v6 != Ipv6Addr::LOCALHOST {
                return IpAddr::V4(v6.to_ipv4().expect("compatible form"));
            }
            ip
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_refuses_internal_addresses_in_every_form() {
        let p = PeerPolicy::new(&[], &[]);
        for denied in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.1.1",
            "172.31.255.255",
            "192.168.1.1",
            "224.0.0.251",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "::a00:1",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!p.allows(ip(denied)), "{denied} must be refused");
        }
        for allowed in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(p.allows(ip(allowed)), "{allowed} must be allowed");
        }
    }

    #[test]
    fn config_lists_extend_and_override() {
        let allow = ["127.0.0.0/8".parse().unwrap()];
        let deny = ["8.8.8.0/24".parse().unwrap()];
        let p = PeerPolicy::new(&allow, &deny);
        assert!(p.allows(ip("127.0.0.5")));
        assert!(
            p.allows(ip("::ffff:127.0.0.5")),
            "allow applies to mapped forms too"
        );
        assert!(!p.allows(ip("8.8.8.8")));
        assert!(!p.allows(ip("10.0.0.1")));
    }
}
