//! `vip_watchdog_ip_forward`: whether this host forwards IPv4, read at
//! each scrape, exported only while a route VIP is configured (a NAT or
//! firewall appliance, the route's next hop, forwards nothing without it).
//! Absent with no route VIP and while it cannot be read (the log says why
//! at start-up). The reading itself is `host/forwarding.rs`'s, handed in
//! by `watch`.

use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, Metric, MetricFamily, MetricType};

const NAME: &str = "ip_forward";
const HELP: &str = "1 while net.ipv4.ip_forward is on in the watchdog's network namespace, 0 while off; exported only with a route VIP, whose traffic this node must forward as MASTER.";

/// Reads forwarding: on, off, or unknown.
pub type Reader = Box<dyn Fn() -> Option<bool> + Send + Sync>;

#[derive(Clone)]
pub struct IpForward {
    reader: Arc<Mutex<Option<Reader>>>,
    desc: Desc,
}

impl IpForward {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(IpForward {
            reader: Arc::new(Mutex::new(None)),
            desc: Desc::new(NAME.into(), HELP.into(), vec![], Default::default())?,
        })
    }

    /// Exported from now on with `reader` (a config with a route VIP), or
    /// not at all (`None`).
    pub fn watch(&self, reader: Option<Reader>) {
        *self.reader.lock().unwrap_or_else(|e| e.into_inner()) = reader;
    }
}

impl Collector for IpForward {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let Some(on) = reader.as_ref().and_then(|read| read()) else {
            return vec![];
        };
        let mut g = Gauge::default();
        g.set_value(if on { 1.0 } else { 0.0 });
        let mut m = Metric::default();
        m.set_gauge(g);
        let mut f = MetricFamily::default();
        f.set_name(NAME.into());
        f.set_help(HELP.into());
        f.set_field_type(MetricType::GAUGE);
        f.set_metric(vec![m]);
        vec![f]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(c: &IpForward) -> Option<f64> {
        let f = c.collect();
        assert!(f.len() <= 1);
        f.first().map(|f| f.get_metric()[0].get_gauge().get_value())
    }

    /// (case, reading or no route VIP, exported value)
    type Row = (&'static str, Option<Option<bool>>, Option<f64>);

    #[test]
    fn the_gauge_follows_the_reading_only_while_a_route_vip_is_configured() {
        let rows: [Row; 4] = [
            ("no route VIP: absent", None, None),
            ("on", Some(Some(true)), Some(1.0)),
            ("off", Some(Some(false)), Some(0.0)),
            ("unreadable: absent", Some(None), None),
        ];
        for (case, reading, want) in rows {
            let c = IpForward::new().unwrap();
            c.watch(reading.map(|r| Box::new(move || r) as Reader));
            assert_eq!(exported(&c), want, "{case}");
        }
    }

    #[test]
    fn each_scrape_reads_again() {
        let c = IpForward::new().unwrap();
        let on = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = on.clone();
        c.watch(Some(Box::new(move || {
            Some(flag.load(std::sync::atomic::Ordering::Relaxed))
        })));
        assert_eq!(exported(&c), Some(0.0));
        on.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(exported(&c), Some(1.0));
    }
}
