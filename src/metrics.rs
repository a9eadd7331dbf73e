//! Prometheus metrics: each service registers its own in one registry at start; the web server
//! renders it at `/metrics`.

use prometheus_client::registry::Registry;

/// Metric names all start with `rallypoint_`.
pub fn registry() -> Registry {
    Registry::with_prefix("rallypoint")
}

/// The registry in Prometheus's text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}
