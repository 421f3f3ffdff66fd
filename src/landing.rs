//! `/`: a page for a person at the box. The node's VRRP state, each VIP's
//! cloud view and verdict with its reason, the last decisions, and the
//! failover-latency distribution as a small chart, rendered on the server
//! (maud escapes every value) with links to `/metrics` and `/v1/status`.
//! Pure: a status snapshot and the histogram's buckets in, HTML out.

use maud::{DOCTYPE, Markup, html};

use crate::status::Status;

/// One failover-latency series: its buckets as (upper bound, cumulative
/// count), `+Inf` last, as Prometheus keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySeries {
    pub vip: String,
    pub moved_by: String,
    pub buckets: Vec<(f64, u64)>,
}

/// How many decisions the page shows.
const DECISIONS: usize = 15;

fn chart(s: &LatencySeries) -> Markup {
    // Per-bucket counts from the cumulative ones.
    let mut prev = 0;
    let bars: Vec<(String, u64)> = s
        .buckets
        .iter()
        .map(|(le, c)| {
            let n = c.saturating_sub(prev);
            prev = *c;
            let label = if le.is_infinite() {
                "more".to_owned()
            } else {
                format!("≤{le}s")
            };
            (label, n)
        })
        .collect();
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    // Bars `step` apart; the count sits above its bar, in `top`, and the
    // bucket's label below, in `bottom`.
    let (step, bar, h, top, bottom) = (44u64, 34u64, 120u64, 14u64, 18u64);
    let w = bars.len() as u64 * step;
    html! {
        figure {
            figcaption { "VIP " (s.vip) ", moved by " (s.moved_by) ": " (prev) (if prev == 1 { " failover" } else { " failovers" }) }
            svg xmlns="http://www.w3.org/2000/svg" width=(w) height=(top + h + bottom) role="img" {
                @for (i, (label, n)) in bars.iter().enumerate() {
                    @let height = (n * h / max).min(h);
                    @let x = i as u64 * step;
                    rect x=(x) y=(top + h - height) width=(bar) height=(height) fill="#3b6ea8" {
                        title { (label) ": " (n) }
                    }
                    text x=(x) y=(top + h + 13) font-size="10" { (label) }
                    @if *n > 0 {
                        text x=(x) y=(top + h - height - 3) font-size="10" { (n) }
                    }
                }
            }
        }
    }
}

pub fn render(status: &Status, latency: &[LatencySeries]) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "vip-watchdog on " (status.node) }
                style { "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;max-width:100%}td.when{white-space:nowrap}td.what{font-family:monospace;font-size:.85em;overflow-wrap:anywhere}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}.master{color:#070;font-weight:bold}.fault,.stop{color:#a00;font-weight:bold}figure{display:inline-block;margin:0 2em 1em 0}" }
            }
            body {
                h1 { "vip-watchdog on " (status.node) " (pair " (status.pair) ")" }
                p {
                    "Version " (status.version) ", started " (status.started_at) ". "
                    a href="/metrics" { "/metrics" } " · " a href="/v1/status" { "/v1/status" } " · " a href="/healthz" { "/healthz" }
                }
                h2 { "VRRP" }
                p {
                    "Keepalived: "
                    @match status.keepalived.running {
                        Some(true) => { "running (" (status.keepalived.detail) ")" }
                        _ => { strong { "not running" } " (" (status.keepalived.detail) ")" }
                    }
                    ". Probe: " (status.probe.health.as_str()) " (" (status.probe.detail) ")."
                }
                table {
                    tr { th { "instance" } th { "state" } th { "priority" } th { "since" } th { "why" } }
                    @for i in &status.instances {
                        tr {
                            td { (i.name) }
                            td class=(i.state.as_str()) { (i.state.as_str()) }
                            td { @if let Some(p) = i.priority { (p) } }
                            td { (i.since.as_deref().unwrap_or("")) }
                            td { (i.reason) " (" (i.source.as_str()) ")" }
                        }
                    }
                }
                @if !status.vips.is_empty() {
                    h2 { "VIPs" }
                    table {
                        tr { th { "VIP" } th { "follows" } th { "the cloud says" } th { "verdict" } th { "why" } }
                        @for v in &status.vips {
                            tr {
                                td { (v.name) " (" (v.kind) ")" }
                                td { (v.vrrp_instance) }
                                td {
                                    @match &v.cloud {
                                        Some(h) => { (h.to_string()) }
                                        None => { "not known yet" }
                                    }
                                    @for r in &v.routes {
                                        br; (r.route_table) ": " (r.state.as_str())
                                    }
                                    @if let Some(at) = &v.observed_at { br; small { "asked " (at) } }
                                }
                                td { (v.verdict.unwrap_or("")) }
                                td { (v.why.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                    h2 { "Failover latency" }
                    @if latency.iter().all(|s| s.buckets.last().is_none_or(|(_, c)| *c == 0)) {
                        p { "No failover measured by this process yet." }
                    } @else {
                        @for s in latency.iter().filter(|s| s.buckets.last().is_some_and(|(_, c)| *c > 0)) {
                            (chart(s))
                        }
                    }
                }
                h2 { "Last decisions" }
                table {
                    tr { th { "when" } th { "what" } }
                    @for d in status.decisions.iter().take(DECISIONS) {
                        tr {
                            td class="when" { (d.at) }
                            td class="what" { (serde_json::to_string(&d.change).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    };
    page.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::input::Event;
    use crate::core::model::Model;
    use crate::keepalived::line::parse;
    use std::time::SystemTime;

    fn status() -> Status {
        let mut m = Model::new(["VI_1"]);
        let now = crate::core::clock::Stamp {
            mono: crate::core::clock::Mono::default(),
            wall: SystemTime::now(),
        };
        m.observe(
            Event::Line {
                line: parse("INSTANCE \"VI_1\" MASTER 150").unwrap(),
                at: now,
            },
            now,
        );
        m.observe(
            Event::Probe {
                health: crate::core::words::Health::Down,
                detail: "<script>alert(1)</script>".into(),
            },
            now,
        );
        Status::build(&m, "lb-a", "edge", now.wall, now.wall)
    }

    #[test]
    fn the_page_shows_the_state_links_and_a_chart_and_escapes_what_it_shows() {
        let latency = [LatencySeries {
            vip: "web".into(),
            moved_by: "watchdog".into(),
            buckets: vec![(1.0, 0), (2.0, 3), (3.0, 4), (f64::INFINITY, 4)],
        }];
        let mut st = status();
        st.vips.clear();
        let page = render(&st, &latency);
        for want in [
            "vip-watchdog on lb-a (pair edge)",
            "<td class=\"master\">master</td>",
            "href=\"/metrics\"",
            "href=\"/v1/status\"",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ] {
            assert!(page.contains(want), "{want} in {page}");
        }
        assert!(!page.contains("<script>"), "escaped");
        assert!(!page.contains("<svg"), "no VIP, no chart");
    }

    #[test]
    fn the_chart_has_one_bar_per_bucket_sized_by_its_own_count() {
        let s = LatencySeries {
            vip: "web".into(),
            moved_by: "watchdog".into(),
            buckets: vec![(1.0, 0), (2.0, 3), (3.0, 4), (f64::INFINITY, 4)],
        };
        let svg = chart(&s).into_string();
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(
            svg.contains("height=\"120\""),
            "the fullest bucket is full height: {svg}"
        );
        assert!(
            svg.contains("height=\"40\""),
            "one of three is a third: {svg}"
        );
        assert!(svg.contains("4 failovers"), "{svg}");
    }
}
