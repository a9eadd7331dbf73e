//! The hub's metrics: a view of its [`Snapshot`], taken when `/metrics` is scraped. Labels are
//! message types and close reasons, never lobby names (unbounded).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::{Signal, Snapshot};
use crate::metrics::Scrape;

struct SignalCollector(Arc<Signal>);

impl std::fmt::Debug for SignalCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalCollector")
    }
}

pub fn register(registry: &mut Registry, signal: Arc<Signal>) {
    registry
        .sub_registry_with_prefix("signal")
        .register_collector(Box::new(SignalCollector(signal)));
}

impl Collector for SignalCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let Snapshot {
            peers,
            lobbies,
            public_lobbies,
            away_peers,
            counts: c,
            slow_peers_dropped,
            ..
        } = self.0.snapshot();
        let mut s = Scrape(encoder);
        s.gauge("peers", "Connected signalling peers", peers as i64)?;
        s.counter(
            "origins_refused",
            "WebSocket upgrades refused for their Origin (signal.allowed_origins)",
            self.0.origins_refused(),
        )?;
        s.gauge("lobbies", "Open lobbies", lobbies as i64)?;
        s.gauge(
            "public_lobbies",
            "Open lobbies shown in the lobby list (extension)",
            public_lobbies as i64,
        )?;
        s.gauge(
            "away_peers",
            "Peers whose socket dropped, their place kept for a resume (signal.resume_grace)",
            away_peers as i64,
        )?;
        s.counter(
            "joins_by_code",
            "Joins that named a lobby by its code",
            c.joins_by_code,
        )?;
        s.counters(
            "failed_joins",
            "Joins refused: unknown lobby or code, wrong password, or over signal.failed_joins_per_minute",
            "reason",
            c.failed_joins.iter().map(|(reason, n)| (*reason, *n)),
        )?;
        s.counter(
            "resumes",
            "Places taken back after a dropped socket",
            c.resumes,
        )?;
        s.counter(
            "resumes_expired",
            "Places given up: the grace ran out or the queue filled",
            c.resumes_expired,
        )?;
        s.counter("kicks", "Members removed by their host", c.kicks)?;
        s.counters(
            "operator_actions",
            "What the server's operator did from the dashboard: lobbies closed, players removed",
            "action",
            [
                ("close_lobby", c.operator_closes),
                ("remove_player", c.operator_removals),
            ],
        )?;
        s.counters(
            "quick_joins",
            "QUICK_JOINs (Play) that put the player in a lobby: an open one, or a new one none matching",
            "result",
            [
                ("joined", c.quick_joins.joined),
                ("created", c.quick_joins.created),
            ],
        )?;
        s.counters(
            "limited",
            "Requests refused by a limit that guards the server against one address, by its key \
             (signal.lobby_joins_per_second, signal.max_lobbies_per_address)",
            "limit",
            c.limited.iter().map(|(limit, n)| (*limit, *n)),
        )?;
        s.counters(
            "messages_relayed",
            "Offers, answers and candidates relayed, by type",
            "type",
            [
                ("offer", c.relayed_offer),
                ("answer", c.relayed_answer),
                ("candidate", c.relayed_candidate),
            ],
        )?;
        s.counter(
            "relays_dropped",
            "Relays to a member that had just left, dropped",
            c.dropped_late,
        )?;
        s.counter(
            "slow_peers_dropped",
            "Peers dropped because they stopped reading (signal.send_timeout, signal.max_queued_bytes)",
            slow_peers_dropped,
        )?;
        s.counters(
            "closes",
            "Connections closed by the hub, by reason",
            "reason",
            c.closes.iter().map(|(reason, n)| (*reason, *n)),
        )
    }
}
