//! Whether an HTTP request may become a signalling WebSocket (RFC 6455 §4.2.1), and the answer
//! key if so. The Origin check stops other web sites from using this hub from their players'
//! browsers; clients that send no Origin (native Godot, tools) are not browsers and may connect.

use hyper::header::{
    CONNECTION, HOST, HeaderMap, ORIGIN, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Method, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::config::Config;

#[derive(Debug, PartialEq, Eq)]
pub struct UpgradeRefused {
    pub status: StatusCode,
    pub message: &'static str,
    /// Refused for this `Origin` (not this site, not in `signal.allowed_origins`).
    pub origin: Option<String>,
}

/// The `Sec-WebSocket-Accept` value for an acceptable upgrade request.
pub fn accept(
    method: &Method,
    headers: &HeaderMap,
    config: &Config,
) -> Result<String, UpgradeRefused> {
    let has = |name, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let refuse = |status, message| {
        Err(UpgradeRefused {
            status,
            message,
            origin: None,
        })
    };
    if method != Method::GET || !has(UPGRADE, "websocket") || !has(CONNECTION, "upgrade") {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this is the signalling WebSocket endpoint; connect with a WebSocket client\n",
        );
    }
    if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported WebSocket version; use 13\n",
        );
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return refuse(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    if let Some(origin) = headers.get(ORIGIN) {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, host, config) {
            return Err(UpgradeRefused {
                status: StatusCode::FORBIDDEN,
                message: "origin not allowed: not this site, nor in signal.allowed_origins\n",
                origin: Some(origin.chars().take(200).collect()),
            });
        }
    }
    Ok(derive_accept_key(key.as_bytes()))
}

/// The WebSocket subprotocol that asks for rallypoint's lobby extension (docs/protocol.md).
pub const SUBPROTOCOL: &str = "rallypoint.v1";

/// How a client asked for the lobby extension, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtensionAsk {
    No,
    /// Offered [`SUBPROTOCOL`]: the 101 names it back.
    Subprotocol,
    /// `ext=1` in the query, for clients that cannot set subprotocols.
    Query,
}

pub fn extension_asked(headers: &HeaderMap, query: Option<&str>) -> ExtensionAsk {
    let offered = headers.get_all(SEC_WEBSOCKET_PROTOCOL).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|p| p.trim() == SUBPROTOCOL))
    });
    if offered {
        ExtensionAsk::Subprotocol
    } else if query.is_some_and(|q| q.split('&').any(|kv| kv == "ext=1")) {
        ExtensionAsk::Query
    } else {
        ExtensionAsk::No
    }
}

/// The page's own site is always allowed: its host (the request's Host header) and
/// `server.domain`. `signal.allowed_origins` adds sites (exact origins), or "*" any.
pub fn origin_allowed(origin: &str, host: Option<&str>, config: &Config) -> bool {
    let allowed = &config.signal.allowed_origins;
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
        || own_site(origin, host, config)
}

/// Whether `origin` is the page's own host or `server.domain`.
fn own_site(origin: &str, host: Option<&str>, config: &Config) -> bool {
    let Some(origin_host) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let same_host = host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host));
    let domain = config.server.domain.as_deref().is_some_and(|d| {
        let name = origin_host.rsplit_once(':').map_or(origin_host, |(n, _)| n);
        name.eq_ignore_ascii_case(d)
    });
    same_host || domain
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn request(extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("host", "game.example.org:8443"),
        ]
        .iter()
        .chain(extra)
        {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn accepts_a_valid_upgrade_with_the_rfc_key() {
        let c = Config::default();
        // The example of RFC 6455 §1.3.
        assert_eq!(
            accept(&Method::GET, &request(&[]), &c).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn refuses_plain_requests_and_bad_versions() {
        let c = Config::default();
        let mut h = request(&[]);
        h.remove("upgrade");
        assert_eq!(
            accept(&Method::GET, &h, &c).unwrap_err().status,
            StatusCode::UPGRADE_REQUIRED
        );
        assert_eq!(
            accept(&Method::POST, &request(&[]), &c).unwrap_err().status,
            StatusCode::UPGRADE_REQUIRED
        );
        let h = request(&[("sec-websocket-version", "8")]);
        assert_eq!(
            accept(&Method::GET, &h, &c).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let mut h = request(&[]);
        h.remove("sec-websocket-key");
        assert_eq!(
            accept(&Method::GET, &h, &c).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn origin_rules() {
        let mut c = Config::default();
        let host = Some("game.example.org:8443");
        assert!(origin_allowed("https://game.example.org:8443", host, &c));
        assert!(!origin_allowed("https://evil.example", host, &c));
        assert!(!origin_allowed("null", host, &c));
        c.server.domain = Some("game.example.org".into());
        assert!(origin_allowed(
            "https://game.example.org",
            Some("10.0.0.1:8080"),
            &c
        ));
        c.signal.allowed_origins = vec!["https://itch.zone".into()];
        assert!(origin_allowed("https://itch.zone", host, &c));
        assert!(
            !origin_allowed("https://sub.itch.zone", host, &c),
            "the list is exact"
        );
        assert!(
            origin_allowed("https://game.example.org:8443", host, &c),
            "the list adds sites: the page's own stays allowed"
        );
        assert!(!origin_allowed("https://evil.example", host, &c));
        c.signal.allowed_origins = vec!["*".into()];
        assert!(origin_allowed("https://anywhere.example", host, &c));
        let h = request(&[("origin", "https://evil.example")]);
        c.signal.allowed_origins = vec![];
        assert_eq!(
            accept(&Method::GET, &h, &c).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn the_extension_is_asked_for_by_subprotocol_or_query() {
        let plain = request(&[]);
        assert_eq!(extension_asked(&plain, None), ExtensionAsk::No);
        assert_eq!(extension_asked(&plain, Some("ext=0&x=1")), ExtensionAsk::No);
        assert_eq!(
            extension_asked(&plain, Some("a=b&ext=1")),
            ExtensionAsk::Query
        );
        let offered = request(&[("sec-websocket-protocol", "chat, rallypoint.v1")]);
        assert_eq!(extension_asked(&offered, None), ExtensionAsk::Subprotocol);
        let other = request(&[("sec-websocket-protocol", "rallypoint.v2")]);
        assert_eq!(extension_asked(&other, None), ExtensionAsk::No);
    }
}
