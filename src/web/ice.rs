//! `GET /api/ice`: a fresh credential and the relay's `iceServers` list
//! ([`crate::turn::ice_servers`]), for `RTCPeerConnection` and Godot's
//! `WebRTCPeerConnection.initialize()`.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::Routes;
use super::response::{Body, page, plain};
use crate::config::{Config, IceApi};
use crate::conn_cap::Source;
use crate::credentials::mint;
use crate::random;
use crate::signal::handshake;
use crate::turn::{ice_servers_at, turn_urls};

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
