//! Reading values back: the text exposition, the landing page's latency
//! series, and single values for checks and tests.

use super::*;

impl Metrics {
    pub fn cloud_calls_count(&self, operation: &str, outcome: &str) -> u64 {
        self.cloud_calls
            .with_label_values(&[operation, outcome])
            .get()
    }

    pub fn cloud_backoff_level(&self) -> i64 {
        self.cloud_backoff.get()
    }

    pub fn permission_denied(&self, vip: &str, action: &str) -> i64 {
        self.cloud_permission_denied
            .with_label_values(&[vip, action])
            .get()
    }

    /// The failover-latency histogram, series by series, for the landing
    /// page.
    pub fn failover_series(&self) -> Vec<crate::landing::LatencySeries> {
        use prometheus::core::Collector;
        let mut out = vec![];
        for family in self.failover_latency.collect() {
            for m in family.get_metric() {
                let h = m.get_histogram();
                let mut buckets: Vec<(f64, u64)> = h
                    .get_bucket()
                    .iter()
                    .map(|b| (b.upper_bound(), b.cumulative_count()))
                    .collect();
                buckets.push((f64::INFINITY, h.get_sample_count()));
                out.push(crate::landing::LatencySeries {
                    vip: label(m, "vip"),
                    moved_by: label(m, "moved_by"),
                    buckets,
                });
            }
        }
        out
    }

    /// The value of the series `name` (full name) whose labels include all
    /// of `labels`, from the exposition: what a scraper would read.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        value(&self.render(), name, labels)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = vec![];
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(event = "metrics_encode_failed", error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The value of label `name` of a gathered series, or "".
pub(super) fn label(m: &prometheus::proto::Metric, name: &str) -> String {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map_or(String::new(), |l| l.value().to_owned())
}

/// The value of the series `name` whose labels include all of `labels`, in
/// a text exposition.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        let all = labels
            .iter()
            .all(|(k, val)| rest.contains(&format!("{k}=\"{val}\"")));
        (n == name && all).then(|| v.parse().ok())?
    })
}
