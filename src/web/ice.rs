//! The `iceServers` list clients get: `/api/ice` (a fresh credential and the URL of every TURN
//! listener, for `RTCPeerConnection` and Godot's `WebRTCPeerConnection.initialize()`) and the
//! `rallypoint credentials` command.

use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::Routes;
use super::response::{Body, page, plain};
use crate::config::{Config, IceApi};
use crate::conn_cap::Source;
use crate::credentials::{Credential, mint};
use crate::random;
use crate::signal::handshake;
use crate::turn::addresses::{advertised_host, advertised_listeners};

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
fn ice_servers_at(urls: Vec<String>, credential: &Credential) -> serde_json::Value {
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

/// A fresh TURN REST credential and the URLs of every TURN listener, as `RTCPeerConnection`
/// and Godot's `WebRTCPeerConnection.initialize()` take them; not bound to a lobby (the relay's
/// peer policy applies as it is). In a cluster, the URLs are those of the lobby's node for a
/// lobby named by `?lobby=` (its name or code) that exists, else of the node
/// `cluster::placement` chooses. 403 when `web.ice_api` is "off", 429 over
/// `web.ice_api_per_minute` from one address. An address that has spent its
/// `signal.failed_joins_per_minute` is not told where a lobby is.
pub async fn answer(
    config: &Config,
    routes: &Routes,
    client: IpAddr,
    req: &Request<Incoming>,
) -> Response<Body> {
    if config.web.ice_api == IceApi::Off {
        return plain(
            StatusCode::FORBIDDEN,
            "/api/ice is off (web.ice_api = \"off\"): players get relay credentials with their \
             lobby (the signalling extension's ICE_SERVERS)\n",
        );
    }
    let per_minute = config.web.ice_api_per_minute;
    if let Err(wait) = routes.ice_quota.take(client, per_minute, Instant::now()) {
        let mut r = plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too many credentials for this address (web.ice_api_per_minute)\n",
        );
        let seconds = wait.as_secs_f64().ceil() as u64;
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return r;
    }
    let at = &routes.turn_addresses;
    let Some(secret) = config.turn.secrets.first() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no turn.secrets configured: /api/ice mints credentials with one\n",
        );
    };
    // Each credential gets its own user part: the per-user allocation quota then applies to
    // one player's credential, not to everyone who fetched in the same second.
    let user = random::id();
    let credential = mint(
        secret,
        &user,
        config.turn.credential_ttl.0,
        SystemTime::now(),
    );
    // In a cluster: the relay of the lobby's node (the one its extension members get with
    // ICE_SERVERS), or the one placement chose; credentials are valid on every node.
    let lobby = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "lobby")
            .map(|(_, v)| v.into_owned())
    });
    let elsewhere = match &routes.cluster {
        Some(c) => {
            let per_minute = config.signal.failed_joins_per_minute;
            c.relay_for(lobby.as_deref(), Source::of(client), per_minute)
                .await
        }
        None => None,
    };
    let urls = elsewhere.unwrap_or_else(|| turn_urls(config, at));
    let body = ice_servers_at(urls, &credential).to_string();
    let mut response = page(StatusCode::OK, "application/json", body.into());
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|o| o.to_str().ok());
    if let Some(origin) = origin.filter(|o| handshake::origin_allowed(o, host, config))
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayIp;
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
