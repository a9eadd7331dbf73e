//! Prometheus metrics. Services keep their figures in plain structs of their own; each registers
//! a collector that turns a snapshot of them into metrics when `/metrics` is scraped, so the
//! numbers Prometheus, `/healthz` and the self-test page show come from one place.

pub mod process;

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Metric names all start with `rallypoint_`.
pub fn registry() -> Registry {
    Registry::with_prefix("rallypoint")
}

/// The registry in Prometheus's text exposition format, with the process's own figures
/// (`process_*`, [`process`]).
pub fn render(registry: &Registry) -> String {
    use prometheus_client::encoding::text;
    let mut out = String::new();
    text::encode_registry(&mut out, registry)
        .and_then(|()| text::encode_registry(&mut out, &process::registry()))
        .and_then(|()| text::encode_eof(&mut out))
        .expect("writing to a String cannot fail");
    out
}

/// Writes plain values as metrics, inside a collector's `encode`.
pub struct Scrape<'a>(pub DescriptorEncoder<'a>);

impl Scrape<'_> {
    pub fn gauge(&mut self, name: &str, help: &str, value: i64) -> fmt::Result {
        let gauge = ConstGauge::new(value);
        let metric = self
            .0
            .encode_descriptor(name, &sentence(help), None, gauge.metric_type())?;
        gauge.encode(metric)
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let counter = ConstCounter::new(value);
        let metric =
            self.0
                .encode_descriptor(name, &sentence(help), None, counter.metric_type())?;
        counter.encode(metric)
    }

    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) -> fmt::Result {
        let metric =
            self.0
                .encode_descriptor(name, &sentence(help), None, histogram.metric_type())?;
        histogram.encode(metric)
    }

    /// One counter per value of `label`. Labels come from a small fixed set (directions,
    /// message types, close reasons, error codes, node names), never from clients.
    pub fn counters<V: AsRef<str>>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (V, u64)>,
    ) -> fmt::Result {
        let kind = ConstCounter::new(0u64).metric_type();
        let values = values.into_iter().map(|(v, n)| (v, ConstCounter::new(n)));
        self.family(name, help, label, kind, values)
    }

    /// One gauge per value of `label`, as [`Scrape::counters`].
    pub fn gauges<V: AsRef<str>>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (V, i64)>,
    ) -> fmt::Result {
        let kind = ConstGauge::new(0i64).metric_type();
        let values = values.into_iter().map(|(v, n)| (v, ConstGauge::new(n)));
        self.family(name, help, label, kind, values)
    }

    fn family<V: AsRef<str>, M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        kind: MetricType,
        values: impl IntoIterator<Item = (V, M)>,
    ) -> fmt::Result {
        let mut family = self
            .0
            .encode_descriptor(name, &sentence(help), None, kind)?;
        for (value, metric) in values {
            let labels = vec![(label, value.as_ref())];
            metric.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Help texts end with a full stop, as `Registry::register` writes them.
fn sentence(help: &str) -> String {
    format!("{help}.")
}
