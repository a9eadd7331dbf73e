//! The web server's metrics: connections against `web.max_connections`, and on-the-fly
//! compressions, read when `/metrics` is scraped.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::{CompressionCache, IceQuota};
use crate::conn_cap::ConnCap;
use crate::metrics::Scrape;
use crate::tls::Certificates;

struct WebCollector {
    certificates: Arc<Certificates>,
    connections: Arc<ConnCap>,
    compression: Arc<CompressionCache>,
    ice_quota: Arc<IceQuota>,
}

impl std::fmt::Debug for WebCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebCollector")
    }
}

pub fn register(
    registry: &mut Registry,
    certificates: Arc<Certificates>,
    connections: Arc<ConnCap>,
    compression: Arc<CompressionCache>,
    ice_quota: Arc<IceQuota>,
) {
    registry
        .sub_registry_with_prefix("web")
        .register_collector(Box::new(WebCollector {
            certificates,
            connections,
            compression,
            ice_quota,
        }));
}

impl Collector for WebCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let (open, refused, refused_per_source) = self.connections.figures();
        let (compressed, skipped) = self.compression.figures();
        let mut s = Scrape(encoder);
        s.gauge("connections", "Open HTTP connections", open as i64)?;
        if let Some(not_after) = self.certificates.not_after() {
            let at = not_after
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            s.gauge(
                "certificate_expiry_timestamp_seconds",
                "When the certificate served on HTTPS and TURN over TLS expires (Unix time)",
                at as i64,
            )?;
        }
        s.counters(
            "connections_refused",
            "Connections refused over web.max_connections(_per_source)",
            "cap",
            [("total", refused), ("per_source", refused_per_source)],
        )?;
        s.counter(
            "compressions",
            "Files compressed on the fly (then cached)",
            compressed,
        )?;
        s.counter(
            "compressions_skipped",
            "Responses sent uncompressed because that file was being compressed already",
            skipped,
        )?;
        s.counter(
            "sendfile_bytes",
            "Bytes of cached files sent with sendfile on plain HTTP",
            super::sendfile::bytes_sent(),
        )?;
        s.counter(
            "ice_refused",
            "/api/ice requests refused over web.ice_api_per_minute",
            self.ice_quota.refused(),
        )
    }
}
