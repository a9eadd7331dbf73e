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

/// The host name or address clients should use to reach the TURN listener `listen`: the domain
/// when set (TLS certificates name it), else the address the relay advertises.
pub fn advertised_host(config: &Config, listen: SocketAddr) -> String {
    if let Some(domain) = &config.server.domain {
        return domain.clone();
    }
    let ip = config
        .turn
        .external_ip
        .or(match config.turn.relay_ip {
            RelayIp::Fixed(ip) => Some(ip),
            RelayIp::Auto => None,
        })
        .unwrap_or_else(|| local_address_for(listen));
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
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
