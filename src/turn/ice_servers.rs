//! The relay as players are told of it: the `iceServers` list (a STUN URL and a TURN URL for
//! every listener players can reach, with a credential), what `/api/ice`, the hub's
//! ICE_SERVERS, the self-test page and `rallypoint credentials` hand out.

use std::net::SocketAddr;

use serde_json::json;

use super::addresses::{advertised_host, advertised_listeners};
use crate::config::Config;
use crate::credentials::Credential;

/// Where the listeners that take TURN clients are: as configured, or as bound (port 0 becomes
/// the real port). The web ones count as far as `web.accept_turn` says.
#[derive(Clone, Debug, Default)]
pub struct TurnAddresses {
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    pub web_listen: Vec<SocketAddr>,
    pub web_tls_listen: Vec<SocketAddr>,
}

impl From<&Config> for TurnAddresses {
    fn from(config: &Config) -> Self {
        TurnAddresses {
            listen: config.turn.listen.clone(),
            tls_listen: config.turn.tls_listen.clone(),
            web_listen: config.web.listen.clone(),
            web_tls_listen: config.web.tls_listen.clone(),
        }
    }
}

/// The `{"iceServers": [...]}` dictionary for `RTCPeerConnection` and Godot's
/// `WebRTCPeerConnection.initialize()`: [`turn_urls`] with a credential.
pub fn ice_servers(
    config: &Config,
    at: &TurnAddresses,
    credential: &Credential,
) -> serde_json::Value {
    ice_servers_at(turn_urls(config, at), credential)
}

/// The `{"iceServers": [...]}` dictionary for `urls` (this node's or another node's).
pub fn ice_servers_at(urls: Vec<String>, credential: &Credential) -> serde_json::Value {
    json!({
        "iceServers": [{
            "urls": urls,
            "username": credential.username,
            "credential": credential.password,
        }]
    })
}

/// A STUN URL and TURN URLs for every TURN listener players can reach, each once, cheapest
/// first: UDP, TCP, TLS on its own port, then the web ports (`web.accept_turn`), which only
/// matter where nothing else gets out.
pub fn turn_urls(config: &Config, at: &TurnAddresses) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    let mut add = |url: String| {
        if !urls.contains(&url) {
            urls.push(url)
        }
    };
    for addr in advertised_listeners(config, &at.listen) {
        let host = advertised_host(config, addr);
        let port = addr.port();
        add(format!("stun:{host}:{port}"));
        add(format!("turn:{host}:{port}?transport=udp"));
        add(format!("turn:{host}:{port}?transport=tcp"));
    }
    for addr in advertised_listeners(config, &at.tls_listen) {
        let host = advertised_host(config, addr);
        add(format!("turns:{host}:{}?transport=tcp", addr.port()));
    }
    let accept_turn = config.web.accept_turn;
    if accept_turn.on(true) {
        for addr in advertised_listeners(config, &at.web_tls_listen) {
            let host = advertised_host(config, addr);
            add(format!("turns:{host}:{}?transport=tcp", addr.port()));
        }
    }
    if accept_turn.on(false) {
        for addr in advertised_listeners(config, &at.web_listen) {
            let host = advertised_host(config, addr);
            add(format!("turn:{host}:{}?transport=tcp", addr.port()));
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayIp;
    use crate::credentials::mint;
    use crate::turn::addresses::advertised_ip;
    use std::time::{Duration, UNIX_EPOCH};

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
}
