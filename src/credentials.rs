//! TURN REST credentials ("A REST API for access to TURN services", the draft coturn and most
//! WebRTC stacks implement): username `<unix-expiry>:<user>`, password
//! `base64(HMAC-SHA1(secret, username))`. The signalling hub, `/api/ice` and the command line
//! mint them; the relay recomputes the password from the username to verify.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;

use crate::config::{Config, RelayIp};

/// A username and password a WebRTC client hands to the TURN server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// Seconds since the Unix epoch after which the relay refuses the credential.
    pub expires: u64,
}

/// Mints a credential for `user` (may be empty) valid for `ttl` from `now`.
pub fn mint(secret: &str, user: &str, ttl: Duration, now: SystemTime) -> Credential {
    let expires = unix_seconds(now).saturating_add(ttl.as_secs());
    let username = if user.is_empty() {
        expires.to_string()
    } else {
        format!("{expires}:{user}")
    };
    Credential {
        password: rest_password(secret, &username),
        username,
        expires,
    }
}

/// The password the TURN REST scheme derives from `username` with `secret`.
pub fn rest_password(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The expiry a REST username carries (`expiry:user` or just `expiry`), if it has that form.
pub fn rest_expiry(username: &str) -> Option<u64> {
    let stamp = username.split_once(':').map_or(username, |(t, _)| t);
    stamp.parse().ok()
}

pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A fresh random secret, hex encoded, for a server started without one.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS provides randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the TURN listeners are: as configured, or as bound (port 0 becomes the real port).
#[derive(Clone, Debug, Default)]
pub struct TurnAddresses {
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
}

impl From<&Config> for TurnAddresses {
    fn from(config: &Config) -> Self {
        TurnAddresses {
            listen: config.turn.listen.clone(),
            tls_listen: config.turn.tls_listen.clone(),
        }
    }
}

/// The `{"iceServers": [...]}` dictionary for `RTCPeerConnection` and Godot's
/// `WebRTCPeerConnection.initialize()`: a STUN URL and TURN URLs for every TURN listener.
pub fn ice_servers(
    config: &Config,
    at: &TurnAddresses,
    credential: &Credential,
) -> serde_json::Value {
    let mut urls = Vec::new();
    for addr in &at.listen {
        let host = advertised_host(config, *addr);
        let port = addr.port();
        urls.push(format!("stun:{host}:{port}"));
        urls.push(format!("turn:{host}:{port}?transport=udp"));
        urls.push(format!("turn:{host}:{port}?transport=tcp"));
    }
    for addr in &at.tls_listen {
        let host = advertised_host(config, *addr);
        urls.push(format!("turns:{host}:{}?transport=tcp", addr.port()));
    }
    urls.dedup();
    json!({
        "iceServers": [{
            "urls": urls,
            "username": credential.username,
            "credential": credential.password,
        }]
    })
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
    fn password_matches_the_rest_draft_formula() {
        // Reference value computed with: printf %s '1700000000:alice' |
        //   openssl dgst -sha1 -hmac 'sixteen-byte-key' -binary | base64
        assert_eq!(
            rest_password("sixteen-byte-key", "1700000000:alice"),
            "oWWyLK9oHEWtZ0a9mWYia+irkts="
        );
    }

    #[test]
    fn minted_username_carries_the_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = mint("sixteen-byte-key", "alice", Duration::from_secs(3600), now);
        assert_eq!(c.username, "1700003600:alice");
        assert_eq!(c.expires, 1_700_003_600);
        assert_eq!(rest_expiry(&c.username), Some(1_700_003_600));
        assert_eq!(mint("k", "", Duration::ZERO, now).username, "1700000000");
        assert_eq!(rest_expiry("alice"), None);
        assert_eq!(rest_expiry("x:1700000000"), None);
    }

    #[test]
    fn ice_servers_list_every_listener_with_the_domain() {
        let mut config = Config::default();
        config.server.domain = Some("game.example.org".into());
        config.turn.tls_listen = vec!["0.0.0.0:5349".parse().unwrap()];
        let c = mint("sixteen-byte-key", "", Duration::from_secs(60), UNIX_EPOCH);
        let v = ice_servers(&config, &TurnAddresses::from(&config), &c);
        assert_eq!(
            v["iceServers"][0]["urls"],
            json!([
                "stun:game.example.org:3478",
                "turn:game.example.org:3478?transport=udp",
                "turn:game.example.org:3478?transport=tcp",
                "turns:game.example.org:5349?transport=tcp"
            ])
        );
        assert_eq!(v["iceServers"][0]["credential"], c.password);
    }

    #[test]
    fn the_advertised_address_is_one_the_listener_answers_on() {
        // A specific listener is advertised as itself, not as the relay address.
        let mut config = Config::default();
        config.turn.listen = vec!["127.0.0.1:13878".parse().unwrap()];
        config.turn.relay_ip = RelayIp::Fixed("127.0.0.2".parse().unwrap());
        let at = TurnAddresses::from(&config);
        let c = mint("k", "", Duration::from_secs(60), UNIX_EPOCH);
        assert_eq!(
            ice_servers(&config, &at, &c)["iceServers"][0]["urls"][1],
            "turn:127.0.0.1:13878?transport=udp"
        );
        // A wildcard listener answers on the relay address, so that is advertised.
        config.turn.listen = vec!["0.0.0.0:3478".parse().unwrap()];
        assert_eq!(advertised_host(&config, config.turn.listen[0]), "127.0.0.2");
        // A relay address of the other family says nothing about this listener.
        config.turn.listen = vec!["[::]:3478".parse().unwrap()];
        assert!(advertised_ip(&config, config.turn.listen[0]).is_ipv6());
        // external_ip and the domain come first.
        config.turn.external_ip = Some("203.0.113.7".parse().unwrap());
        assert_eq!(
            advertised_host(&config, config.turn.listen[0]),
            "203.0.113.7"
        );
        config.server.domain = Some("game.example.org".into());
        assert_eq!(
            advertised_host(&config, config.turn.listen[0]),
            "game.example.org"
        );
    }

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
