//! The cluster's metrics, read when `/metrics` is scraped.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::Cluster;
use crate::metrics::Scrape;
use crate::signal::Signal;

/// The cluster, and the hub for who is attached across nodes.
struct ClusterCollector(Arc<Cluster>, Arc<Signal>);

impl std::fmt::Debug for ClusterCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish()
    }
}

pub fn register(registry: &mut Registry, cluster: Arc<Cluster>, signal: Arc<Signal>) {
    registry
        .sub_registry_with_prefix("cluster")
        .register_collector(Box::new(ClusterCollector(cluster, signal)));
}

impl Collector for ClusterCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let c = &self.0;
        let (nodes, redis_up) = c.figures();
        let mut s = Scrape(encoder);
        s.gauge(
            "nodes",
            "Live nodes this node knows of, itself included",
            nodes as i64,
        )?;
        s.gauges(
            "node_lobbies",
            "Lobbies of each live node, as last heard",
            "node",
            c.lobbies_per_node(),
        )?;
        s.gauge(
            "redis_up",
            "1 when the last renewal through Redis worked",
            redis_up as i64,
        )?;
        s.counter(
            "renew_failures",
            "Renewals of this node's record that failed (Redis unreachable or failing)",
            c.renew_failures.load(Ordering::Relaxed),
        )?;
        s.counters(
            "envelopes",
            "Signalling envelopes for players attached across nodes: sent, received, batches that could not be appended, and envelopes refused over cluster.max_outbound_bytes",
            "what",
            [
                ("sent", c.envelopes_sent.load(Ordering::Relaxed)),
                ("received", c.envelopes_received.load(Ordering::Relaxed)),
                ("failed", c.envelopes_failed.load(Ordering::Relaxed)),
                ("refused", c.envelopes_refused.load(Ordering::Relaxed)),
            ],
        )?;
        let (attached, guests) = self.1.remote_figures();
        s.gauge(
            "attached_players",
            "Players on this node in lobbies of other nodes",
            attached as i64,
        )?;
        s.gauge(
            "guest_players",
            "Players of other nodes in lobbies of this node",
            guests as i64,
        )?;
        s.histogram(
            "forward_latency_seconds",
            "Time from another node's append of a signalling envelope to this node's read",
            &c.forward_latency,
        )?;
        s.counter(
            "directory_conflicts",
            "Lobby names or codes another node held when this node claimed them",
            c.directory_conflicts.load(Ordering::Relaxed),
        )?;
        s.counters(
            "relay_assignments",
            "Players handed a relay by /api/ice: this node's own or another node's",
            "to",
            [
                ("self", c.to_self.load(Ordering::Relaxed)),
                ("other", c.to_others.load(Ordering::Relaxed)),
            ],
        )
    }
}
