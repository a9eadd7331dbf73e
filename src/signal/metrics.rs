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
            counts: c,
            slow_peers_dropped,
        } = self.0.snapshot();
        let mut s = Scrape(encoder);
        s.gauge("peers", "Connected signalling peers", peers as i64)?;
        s.gauge("lobbies", "Open lobbies", lobbies as i64)?;
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
