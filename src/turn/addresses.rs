//! Which addresses the relay uses and which it tells clients: relay addresses per family, and
//! for each TURN listener the host name or address a client can reach it on.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use crate::config::{Config, RelayIp};

/// The relay's addresses per family: `turn.relay_ip`, or for "auto" each listener's own
/// address (the default route's interface for a wildcard listener).
pub fn relay_addresses(config: &Config) -> (Option<IpAddr>, Option<IpAddr>) {
    let mut v4 = None;
    let mut v6 = None;
    if let RelayIp::Fixed(ip) = config.turn.relay_ip {
        if ip.is_ipv4() {
            v4 = Some(ip)
        } else {
            v6 = Some(ip)
        }
    }
    for listen in &config.turn.listen {
        let slot = if listen.is_ipv4() { &mut v4 } else { &mut v6 };
        slot.get_or_insert_with(|| local_address_for(*listen));
    }
    (v4, v6)
}

/// Which family the relay addresses players are handed are in, whichever URL (and family)
/// they reach TURN by. Browsers never ask for a family: they get an IPv4 relay where the server
/// has one (RFC 6156's default, which also lets a player who reaches TURN only over IPv6 meet
/// one who reaches it only over IPv4), else an IPv6 one. A client may ask for the other family
/// by name (REQUESTED-ADDRESS-FAMILY) where the server has it.
pub fn relay_family(config: &Config) -> String {
    let (v4, v6) = relay_addresses(config);
    let shown = |ip: IpAddr| match config.turn.external_ip {
        Some(external) if external.is_ipv4() == ip.is_ipv4() => external,
        _ => ip,
    };
    match (v4, v6) {
        (Some(v4), Some(v6)) => format!(
            "every TURN URL relays in IPv4 ({}) for browsers, which ask for no family; in IPv6 \
             ({}) for clients that ask for it",
            shown(v4),
            shown(v6)
        ),
        (Some(v4), None) => format!("every TURN URL relays in IPv4 ({})", shown(v4)),
        (None, Some(v6)) => format!(
            "every TURN URL relays in IPv6 ({}): players whose network has no IPv6 cannot be \
             relayed",
            shown(v6)
        ),
        (None, None) => "no TURN listener: nothing is relayed".into(),
    }
}

/// The host name or address clients should use to reach the TURN listener `listen`: one it
/// answers on. The domain when set (TLS certificates name it), else `turn.external_ip` (a 1:1
/// NAT forwards it to us), else the listener's own address; only a wildcard listener, which
/// answers on every address, advertises the relay address.
pub fn advertised_host(config: &Config, listen: SocketAddr) -> String {
    if let Some(domain) = &config.server.domain {
        return domain.clone();
    }
    match advertised_ip(config, listen) {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The address [`advertised_host`] uses when there is no domain.
pub fn advertised_ip(config: &Config, listen: SocketAddr) -> IpAddr {
    if let Some(ip) = config.turn.external_ip {
        return ip;
    }
    if !listen.ip().is_unspecified() {
        return listen.ip();
    }
    match config.turn.relay_ip {
        RelayIp::Fixed(ip) if ip.is_ipv4() == listen.is_ipv4() => ip,
        _ => local_address_for(listen),
    }
}

/// Why players elsewhere could not reach the addresses this server hands out, each with the
/// fix: a TURN URL or relay address on loopback (a wildcard listener on a machine without a
/// default route), a link-local or private one without `turn.external_ip` (a cloud VPS behind
/// 1:1 NAT), or TURN on IPv6 only. None when every TURN listener is a loopback address: that
/// is a development setup on purpose.
pub fn advertised_address_warnings(config: &Config) -> Vec<String> {
    let listeners: Vec<SocketAddr> = config
        .turn
        .listen
        .iter()
        .chain(&config.turn.tls_listen)
        .copied()
        .collect();
    if listeners.is_empty() || listeners.iter().all(|l| l.ip().is_loopback()) {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    if listeners.iter().all(|l| l.is_ipv6()) {
        warnings.push(
            "turn.listen: TURN listens on IPv6 only, and most players reach the internet over \
             IPv4; add an IPv4 listener such as \"0.0.0.0:3478\""
                .to_string(),
        );
    }
    // Each address players are handed, once, with what it is used for.
    let mut handed_out: Vec<(IpAddr, Vec<String>)> = Vec::new();
    let mut note = |ip: IpAddr, role: String| match handed_out.iter_mut().find(|(a, _)| *a == ip) {
        Some((_, roles)) => roles.push(role),
        None => handed_out.push((ip, vec![role])),
    };
    let advertised = advertised_listeners(config, &listeners);
    if let Some(ip) = config.turn.external_ip {
        note(ip, "turn.external_ip".into());
    } else {
        // Only the families players are sent to: an IPv6 relay on `::1` serves nobody else.
        let (v4, v6) = relay_addresses(config);
        let relays = [v4, v6].into_iter().flatten();
        for ip in relays.filter(|ip| advertised.iter().any(|l| l.is_ipv4() == ip.is_ipv4())) {
            note(ip, "the relay address".into());
        }
        if config.server.domain.is_none() {
            for l in advertised {
                note(advertised_ip(config, l), format!("the TURN URLs of {l}"));
            }
        }
    }
    // Firefox gathers no relay candidate from a `turns:` URL naming an IP address (it checks
    // the certificate against a host name only).
    let tls_turn = !config.turn.tls_listen.is_empty()
        || (config.web.accept_turn.on(true) && !config.web.tls_listen.is_empty());
    if tls_turn && config.server.domain.is_none() {
        warnings.push(
            "turn: without server.domain the turns: URLs players get name an IP address, and \
             Firefox uses no turns: URL that does (Chromium does): set server.domain to the \
             name the certificate is for"
                .to_string(),
        );
    }
    for (ip, roles) in handed_out {
        let Some(kind) = unreachable_kind(ip) else {
            continue;
        };
        // A domain names the TURN URLs, never the relay address.
        let fix = if roles.iter().any(|r| r.starts_with("the TURN URLs")) {
            "server.domain or turn.external_ip"
        } else {
            "turn.external_ip"
        };
        let roles = roles.join(" and ");
        warnings.push(match kind {
            Unreachable::Loopback | Unreachable::LinkLocal => format!(
                "turn: {roles} would be {ip}, {kind}, which players on other machines cannot \
                 reach; set {fix} to the address players use"
            ),
            Unreachable::Private => format!(
                "turn: {roles} would be {ip}, {kind}: players outside this network cannot reach \
                 it. On a cloud server whose public address is forwarded to this one (AWS, \
                 Google Cloud, Azure, Oracle and others do this), set turn.external_ip to the \
                 public address; for a game on this network only, this is right as it is"
            ),
            Unreachable::Documentation => format!(
                "turn: {roles} would be {ip}, {kind} (an example, which no one can reach); set \
                 turn.external_ip to this machine's public address"
            ),
        });
    }
    warnings
}

/// The TURN listeners whose URLs clients get: all, except a wildcard IPv6 listener on a
/// machine without an IPv6 route (it would advertise `::1`) when an IPv4 listener exists.
pub fn advertised_listeners(config: &Config, listeners: &[SocketAddr]) -> Vec<SocketAddr> {
    let has_ipv4 = listeners.iter().any(|l| l.is_ipv4());
    listeners
        .iter()
        .copied()
        .filter(|l| {
            !(has_ipv4
                && l.is_ipv6()
                && l.ip().is_unspecified()
                && advertised_ip(config, *l).is_loopback())
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unreachable {
    Loopback,
    LinkLocal,
    Private,
    /// RFC 5737 and RFC 3849: addresses for examples, routed nowhere.
    Documentation,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unreachable::Loopback => "a loopback address",
            Unreachable::LinkLocal => "a link-local address",
            Unreachable::Private => "a private address",
            Unreachable::Documentation => "a documentation address",
        })
    }
}

/// Whether `ip` can only be reached from this machine or its own network, or by no one.
fn unreachable_kind(ip: IpAddr) -> Option<Unreachable> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() || v4.is_unspecified() {
                Some(Unreachable::Loopback)
            } else if [[192, 0, 2], [198, 51, 100], [203, 0, 113]].contains(&[a, b, v4.octets()[2]])
            {
                Some(Unreachable::Documentation)
            } else if v4.is_link_local() {
                Some(Unreachable::LinkLocal)
            // 100.64.0.0/10 is carrier-grade NAT space: private to the provider's network.
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Some(Unreachable::Private)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return unreachable_kind(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() || v6.is_unspecified() {
                Some(Unreachable::Loopback)
            } else if first & 0xffc0 == 0xfe80 {
                Some(Unreachable::LinkLocal)
            } else if first & 0xfe00 == 0xfc00 {
                Some(Unreachable::Private)
            } else if first == 0x2001 && v6.segments()[1] == 0x0db8 {
                Some(Unreachable::Documentation)
            } else {
                None
            }
        }
    }
}

/// `listen`'s own address when it is a specific one; for a wildcard, the address of the interface
/// that holds the default route (found by a UDP connect, which sends nothing), else loopback.
pub fn local_address_for(listen: SocketAddr) -> IpAddr {
    if !listen.ip().is_unspecified() {
        return listen.ip();
    }
    let (bind, probe): (SocketAddr, SocketAddr) = if listen.is_ipv4() {
        ("0.0.0.0:0".parse().unwrap(), "192.0.2.1:9".parse().unwrap())
    } else {
        (
            "[::]:0".parse().unwrap(),
            "[2001:db8::1]:9".parse().unwrap(),
        )
    };
    UdpSocket::bind(bind)
        .and_then(|s| s.connect(probe).and_then(|_| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(if listen.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_that_would_advertise_loopback_is_warned_about() {
        let mut config = Config::default();
        config.turn.listen = vec!["127.0.0.1:3478".parse().unwrap()];
        config.turn.tls_listen = vec![];
        assert!(
            advertised_address_warnings(&config).is_empty(),
            "loopback on purpose"
        );
        config.turn.listen = vec!["0.0.0.0:3478".parse().unwrap()];
        config.turn.relay_ip = RelayIp::Fixed("127.0.0.1".parse().unwrap());
        let warnings = advertised_address_warnings(&config);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("0.0.0.0:3478 would be 127.0.0.1, a loopback address")
                && warnings[0].contains("turn.external_ip"),
            "{warnings:?}"
        );
        // With a domain, only the relay address is left to fix, and a domain would not fix it.
        config.server.domain = Some("game.example.org".into());
        let warnings = advertised_address_warnings(&config);
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with("turn: the relay address would be 127.0.0.1")
                && warnings[0].contains("set turn.external_ip to")
                && !warnings[0].contains("server.domain"),
            "{warnings:?}"
        );
        config.turn.external_ip = Some("93.184.216.34".parse().unwrap());
        assert!(advertised_address_warnings(&config).is_empty());
    }

    #[test]
    fn addresses_only_this_network_reaches() {
        let kind = |ip: &str| unreachable_kind(ip.parse().unwrap());
        for (ip, expected) in [
            ("127.0.0.1", Some(Unreachable::Loopback)),
            ("::1", Some(Unreachable::Loopback)),
            ("::ffff:127.0.0.1", Some(Unreachable::Loopback)),
            ("169.254.1.1", Some(Unreachable::LinkLocal)),
            ("fe80::1", Some(Unreachable::LinkLocal)),
            ("10.1.2.3", Some(Unreachable::Private)),
            ("172.31.255.1", Some(Unreachable::Private)),
            ("192.168.0.9", Some(Unreachable::Private)),
            ("100.64.0.1", Some(Unreachable::Private)),
            ("100.127.255.254", Some(Unreachable::Private)),
            ("fd12:3456::1", Some(Unreachable::Private)),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("203.0.113.7", Some(Unreachable::Documentation)),
            ("192.0.2.255", Some(Unreachable::Documentation)),
            ("198.51.100.1", Some(Unreachable::Documentation)),
            ("2001:db8::1", Some(Unreachable::Documentation)),
            ("198.51.101.1", None),
            ("203.0.114.1", None),
            ("2001:db9::1", None),
            ("93.184.216.34", None),
        ] {
            assert_eq!(kind(ip), expected, "{ip}");
        }
    }

    #[test]
    fn an_ipv6_wildcard_without_an_ipv6_route_is_not_advertised_beside_ipv4() {
        let mut config = Config::default();
        let v4: SocketAddr = "0.0.0.0:3478".parse().unwrap();
        let v6: SocketAddr = "[::]:3478".parse().unwrap();
        config.turn.relay_ip = RelayIp::Fixed("198.51.100.4".parse().unwrap());
        config.turn.listen = vec![v4, v6];
        let ipv6_routed = !local_address_for(v6).is_loopback();
        let expected = if ipv6_routed { vec![v4, v6] } else { vec![v4] };
        assert_eq!(advertised_listeners(&config, &config.turn.listen), expected);
        // Alone, it is advertised whatever it resolves to.
        assert_eq!(advertised_listeners(&config, &[v6]), [v6]);
    }

    #[test]
    fn without_a_domain_the_listen_or_external_address_is_used() {
        let mut config = Config::default();
        config.turn.listen = vec!["[::1]:3478".parse().unwrap()];
        assert_eq!(advertised_host(&config, config.turn.listen[0]), "[::1]");
        config.turn.external_ip = Some("203.0.113.7".parse().unwrap());
        assert_eq!(
            advertised_host(&config, config.turn.listen[0]),
            "203.0.113.7"
        );
    }
}
