//! The dashboard at `/_rallypoint/admin/`: the page (which holds no data), its state as JSON and
//! as a live event stream, and the operator's actions: close a lobby, remove a player, roll
//! back to a release. docs/operating.md describes it; the page is `dashboard.html`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{Admin, Operated, answer};
use crate::config::Config;
use crate::deploy;

pub const PAGE: &str = include_str!("dashboard.html");
/// How often the event stream sends the state.
const EVENT_PERIOD: Duration = Duration::from_secs(1);

/// Everything the page shows: this node's players and lobbies (with the relay's bytes for the
/// busiest), the relay, `/healthz`'s report (certificate, Redis and the cluster's nodes), the
/// kept releases, and the last hour's samples.
pub async fn state(config: &Config, admin: &Admin, view: &dyn Operated, relay_bps: u64) -> Value {
    let turn = view.turn();
    let overview = view.signal().overview().await;
    let lobbies: Vec<Value> = overview
        .lobbies
        .iter()
        .map(|l| {
            let scope = format!("{:016x}", l.scope);
            let relayed = turn.lobbies_running.iter().find(|r| r.lobby == scope);
            let mut v = serde_json::to_value(l).expect("a lobby serialises");
            v["relay_bytes"] = relayed.map_or(Value::Null, |r| r.bytes.into());
            v
        })
        .collect();
    let releases: Vec<Value> = deploy::list(&config.web.root)
        .into_iter()
        .map(|r| json!({"id": r.id, "live": r.live, "files": r.files, "bytes": r.bytes}))
        .collect();
    let health = view.health();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "node": config.cluster.as_ref().map(|c| c.node.clone()),
        "players": overview.players,
        "lobbies": lobbies,
        "relay": {"allocations": turn.allocations, "bandwidth_bps": relay_bps},
        "health": health,
        "certificate_expires": view.certificate_expiry()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        "releases": releases,
        "history": admin.history.samples(),
    })
}

/// Relayed bytes so far (both ways), for a bandwidth between two readings.
pub fn relayed_bytes(view: &dyn Operated) -> u64 {
    let t = view.turn().traffic;
    t.to_peer_bytes + t.to_client_bytes
}

/// The state every [`EVENT_PERIOD`] as server-sent events, for as long as the page is open.
pub fn events(
    config: std::sync::Arc<Config>,
    admin: std::sync::Arc<Admin>,
    view: std::sync::Arc<dyn Operated>,
) -> BoxStream<'static, Bytes> {
    let start = (relayed_bytes(&*view), tokio::time::Instant::now());
    let ticks = futures_util::stream::unfold((start, true), move |((bytes, at), first)| {
        let (config, admin, view) = (config.clone(), admin.clone(), view.clone());
        async move {
            if !first {
                tokio::time::sleep(EVENT_PERIOD).await;
            }
            let now = (relayed_bytes(&*view), tokio::time::Instant::now());
            let secs = now.1.duration_since(at).as_secs_f64().max(0.001);
            let bps = (now.0.saturating_sub(bytes) as f64 * 8.0 / secs) as u64;
            let state = state(&config, &admin, &*view, bps).await;
            // `retry`: reconnect after a second if the stream ends.
            let event = format!("retry: 1000\ndata: {state}\n\n");
            Some((Bytes::from(event), (now, false)))
        }
    });
    ticks.boxed()
}

/// The Unix time now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An action's answer: what was done, or 404 with what was not found.
pub fn done(found: bool, what: Value, missing: &str) -> Response<Bytes> {
    if found {
        answer(StatusCode::OK, what)
    } else {
        answer(StatusCode::NOT_FOUND, json!({"error": missing}))
    }
}
