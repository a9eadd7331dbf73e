//! The self-test page at `/_rallypoint/` (`web.selftest`): opened in any browser, it checks this
//! deployment from the visitor's side — secure context and cross-origin isolation, the
//! signalling WebSocket, STUN, TURN over UDP, TCP and TLS, a relayed data-channel round trip — and
//! shows live figures from `/_rallypoint/status`. The page is plain HTML and JavaScript built into
//! the binary; the checks run in the browser, because only the browser sees what players see.

use hyper::StatusCode;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};

use hyper::Request;
use hyper::body::Incoming;

use super::Routes;
use super::response::{Body, page, plain, redirect};
use crate::config::Config;
use crate::signal::handshake;
use crate::turn;

const PAGE: &str = include_str!("selftest.html");
pub const PREFIX: &str = "/_rallypoint";

/// The answer for a path under [`PREFIX`], or `None` when the page is off (the path is then an
/// ordinary file path).
pub fn route(config: &Config, routes: &Routes, req: &Request<Incoming>) -> Option<Response> {
    let path = req.uri().path();
    if !config.web.selftest {
        return None;
    }
    let rest = path.strip_prefix(PREFIX)?;
    Some(match rest {
        "" => redirect("/_rallypoint/"),
        "/" => {
            let mut r = page(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(PAGE.as_bytes()),
            );
            // Isolated like a threaded Godot export, so the page can tell whether one would be.
            let h = r.headers_mut();
            h.insert(
                "cross-origin-opener-policy",
                HeaderValue::from_static("same-origin"),
            );
            h.insert(
                "cross-origin-embedder-policy",
                HeaderValue::from_static("require-corp"),
            );
            r
        }
        "/status" => {
            let signal = routes.signal.snapshot();
            let turn = routes.turn.snapshot();
            let mut body = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "signal_path": config.signal.path,
                "peers": signal.peers,
                "lobbies": signal.lobbies,
                "allocations": turn.allocations,
                "relayed_bytes": turn.traffic.to_peer_bytes + turn.traffic.to_client_bytes,
                // The busiest lobbies relaying with lobby-bound credentials.
                "lobbies_relaying": turn.lobbies_running,
            });
            // `?origin=`: whether the signalling WebSocket takes a page of that origin, as
            // this request's Host header names the site (a browser cannot read a refused
            // upgrade's status).
            let origin = req.uri().query().and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "origin")
                    .map(|(_, v)| v.into_owned())
            });
            if let Some(origin) = origin {
                let host = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok());
                body["origin_allowed"] = handshake::origin_allowed(&origin, host, config).into();
            }
            let mut r = page(StatusCode::OK, "application/json", body.to_string().into());
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        // What players are handed and what the server warns about, fetched once by the page.
        "/addresses" => {
            let (v4, v6) = turn::addresses::relay_addresses(config);
            let relay: Vec<String> = match config.turn.external_ip {
                Some(ip) => vec![ip.to_string()],
                None => [v4, v6].iter().flatten().map(|ip| ip.to_string()).collect(),
            };
            let body = serde_json::json!({
                "turn_urls": turn::turn_urls(config, &routes.turn_addresses),
                "relay_addresses": relay,
                "relay_family": turn::addresses::relay_family(config),
                "warnings": turn::addresses::advertised_address_warnings(config),
            });
            let mut r = page(StatusCode::OK, "application/json", body.to_string().into());
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        // "/_rallypointer" and the like are file paths, not ours.
        _ if !rest.starts_with('/') => return None,
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    })
}

type Response = hyper::Response<Body>;
