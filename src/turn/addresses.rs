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

/// Why players elsewhere could not reach a TURN listener at the address handed out, if so:
/// a wildcard listener with nothing to say which of the machine's addresses is theirs, on a
/// machine without a default route, would advertise loopback.
pub fn advertised_address_warnings(config: &Config) -> Vec<String> {
    if config.server.domain.is_some() || config.turn.external_ip.is_some() {
        return Vec::new();
    }
    let listeners = config.turn.listen.iter().chain(&config.turn.tls_listen);
    listeners
        .filter(|l| l.ip().is_unspecified() && advertised_ip(config, **l).is_loopback())
        .map(|l| {
            let ip = advertised_ip(config, *l);
            format!(
                "turn.listen: the listener {l} listens on every address and would be \
                 advertised to clients as {ip}, which players on other machines cannot reach; \
                 set server.domain or turn.external_ip to the address players use"
            )
        })
        .collect()
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
        assert!(warnings[0].contains("0.0.0.0:3478") && warnings[0].contains("turn.external_ip"));
        config.turn.external_ip = Some("203.0.113.7".parse().unwrap());
        assert!(advertised_address_warnings(&config).is_empty());
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
