//! The relay's metrics: a view of [`Snapshot`], taken when `/metrics` is scraped.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::{Snapshot, Status};
use crate::metrics::Scrape;

#[derive(Debug)]
struct TurnCollector(Status);

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("turn::Status")
    }
}

pub fn register(registry: &mut Registry, status: Status) {
    registry
        .sub_registry_with_prefix("turn")
        .register_collector(Box::new(TurnCollector(status)));
}

impl Collector for TurnCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let Snapshot {
            allocations,
            allocations_created,
            traffic: t,
            errors,
            stream_connections,
            streams_refused_total,
            streams_refused_per_source,
            unanswered,
            lobbies_running: _,
            lobby_bytes,
            lobby_seconds,
        } = self.0.snapshot();
        let mut s = Scrape(encoder);
        s.gauge("allocations", "Live allocations", allocations as i64)?;
        s.counter(
            "allocations_created",
            "Allocations created",
            allocations_created,
        )?;
        s.counters(
            "relayed_packets",
            "Datagrams relayed, by direction",
            "direction",
            [
                ("to_peer", t.to_peer_packets),
                ("to_client", t.to_client_packets),
            ],
        )?;
        s.counters(
            "relayed_bytes",
            "Payload bytes relayed, by direction",
            "direction",
            [
                ("to_peer", t.to_peer_bytes),
                ("to_client", t.to_client_bytes),
            ],
        )?;
        s.counter(
            "relayed_in_memory_packets",
            "Of the datagrams relayed to peers, those that went to another allocation of this \
             server in memory (client to client), not through the kernel",
            t.in_memory_packets,
        )?;
        s.counter(
            "dropped_packets",
            "Datagrams dropped: no permission, over bandwidth, full buffers",
            t.dropped,
        )?;
        s.counter(
            "bandwidth_dropped_packets",
            "Of the dropped datagrams, those over turn.max_bandwidth_per_allocation",
            t.over_bandwidth,
        )?;
        s.gauge(
            "stream_connections",
            "TURN over TCP and TLS connections open",
            stream_connections as i64,
        )?;
        s.counters(
            "stream_connections_refused",
            "TCP and TLS connections refused over turn.max_stream_connections(_per_source)",
            "cap",
            [
                ("total", streams_refused_total),
                ("per_source", streams_refused_per_source),
            ],
        )?;
        s.counter(
            "unanswered_requests",
            "Unauthenticated requests left unanswered over the answer budget",
            unanswered,
        )?;
        s.counters(
            "error_responses",
            "Error responses sent, by code",
            "code",
            errors.iter().map(|(code, n)| (code.to_string(), *n)),
        )?;
        if let Some(h) = &lobby_bytes {
            s.histogram(
                "lobby_relayed_bytes",
                "Bytes relayed per finished lobby (lobby-bound credentials)",
                h,
            )?;
        }
        if let Some(h) = &lobby_seconds {
            s.histogram(
                "lobby_relay_seconds",
                "Seconds from a lobby's first allocation to its last one's end",
                h,
            )?;
        }
        Ok(())
    }
}
