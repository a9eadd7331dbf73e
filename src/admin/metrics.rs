//! The operator API's metrics, read when `/metrics` is scraped: bytes received by publishes,
//! and requests refused, by reason.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::Admin;
use crate::metrics::Scrape;

struct AdminCollector(Arc<Admin>);

impl std::fmt::Debug for AdminCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminCollector")
    }
}

pub fn register(registry: &mut Registry, admin: Arc<Admin>) {
    registry.register_collector(Box::new(AdminCollector(admin)));
}

impl Collector for AdminCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut s = Scrape(encoder);
        s.counter(
            "publish_received_bytes",
            "Bytes of release contents received by publishes (those a kept release had are not sent)",
            self.0.received.load(Ordering::Relaxed),
        )?;
        s.counters(
            "admin_refused",
            "Operator API requests refused: no_tokens, plain_http, no_token, wrong_token, \
             rate_limited (admin.failed_tokens_per_minute)",
            "reason",
            self.0.auth.refused(),
        )
    }
}
