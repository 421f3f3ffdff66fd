//! A real Prometheus scraping the lab, and the checks of an exposition
//! against promtool, the alert rules, the dashboards and docs/metrics.md.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Lab, in_ns, ip, repo, run, spawn_until, venv_python};

/// Every metric that alerts/ and dashboards/ name exists in `exposition`
/// (a live /metrics), so that a rename cannot silently break them.
/// Metrics that an EIP lab's exposition lacks by design, each shown
/// elsewhere: manage_address's (tests/make_before_break.rs), the peer
/// channel's (tests/peer.rs), break before make's (tests/postgres.rs),
/// state tags' (tests/split_brain.rs), the
/// route VIP's
/// (tests/deployments.rs reads them from a route lab's /metrics), the
/// instance mismatch, absent while Keepalived and the config agree, and
/// LVS servers', absent without LVS (the metrics unit tests).
pub const ABSENT_IN_AN_EIP_LAB: [&str; 14] = [
    "vip_watchdog_address_changes_total",
    "vip_watchdog_address_kept",
    "vip_watchdog_handover_waiting",
    "vip_watchdog_split_brain_in_cloud",
    "vip_watchdog_vip_route_state",
    "vip_watchdog_eni_source_dest_check",
    "vip_watchdog_ip_forward",
    "vip_watchdog_vrrp_instance_mismatch",
    "vip_watchdog_lvs_up",
    "vip_watchdog_peer_up",
    "vip_watchdog_peer_last_report_timestamp_seconds",
    "vip_watchdog_peer_messages_total",
    "vip_watchdog_peer_sends_total",
    "vip_watchdog_peer_split_brain",
];

/// Families absent until their first reading, each shown present
/// elsewhere: the latest failover's (tests/prometheus.rs reads them after
/// one), and Keepalived's priorities, script status and read times, from
/// the first stats round a minute after start (tests/keepalived_stats.rs).
pub const ABSENT_BEFORE_A_READING: [&str; 7] = [
    "vip_watchdog_failover_last_latency_seconds",
    "vip_watchdog_failover_last_timestamp_seconds",
    "vip_watchdog_keepalived_vrrp_base_priority",
    "vip_watchdog_keepalived_vrrp_effective_priority",
    "vip_watchdog_keepalived_vrrp_script_status",
    "vip_watchdog_keepalived_stats_last_read_timestamp_seconds",
    "vip_watchdog_keepalived_scripts_last_read_timestamp_seconds",
];

pub fn alerts_and_dashboards_use_only(exposition: &str) {
    let exported: std::collections::BTreeSet<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .chain(ABSENT_IN_AN_EIP_LAB)
        .chain(ABSENT_BEFORE_A_READING)
        .collect();
    let root = repo();
    for dir in ["alerts", "dashboards"] {
        for entry in std::fs::read_dir(root.join(dir)).expect(dir) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let mut named = 0;
            for (i, _) in text.match_indices("vip_watchdog_") {
                let name: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| exported.contains(f)))
                    .unwrap_or(&name);
                assert!(
                    exported.contains(family),
                    "{} names {name}, which /metrics lacks",
                    path.display()
                );
                named += 1;
            }
            assert!(named > 0, "{} names no metric", path.display());
        }
    }
}

/// docs/metrics.md's table names every family of `exposition`, and names
/// nothing else but the families an EIP lab lacks by design.
pub fn metrics_doc_lists_exactly(exposition: &str) {
    let readme = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let listed: std::collections::BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `vip_watchdog_") || l.starts_with("| `process_"))
        .flat_map(|l| {
            let first = l.split(" | ").next().unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let exported: std::collections::BTreeSet<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let unlisted: Vec<&String> = exported.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "docs/metrics.md's table lacks {unlisted:?}"
    );
    let stale: Vec<&String> = listed
        .difference(&exported)
        .filter(|n| {
            !ABSENT_IN_AN_EIP_LAB.contains(&n.as_str())
                && !ABSENT_BEFORE_A_READING.contains(&n.as_str())
        })
        .collect();
    assert!(
        stale.is_empty(),
        "docs/metrics.md lists {stale:?}, which /metrics lacks"
    );
}

/// `promtool check metrics` must accept the exposition without a word.
pub fn promtool_check_metrics(exposition: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("promtool reads");
    let out = promtool.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{exposition}"
    );
}

/// The value of the series `name` whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    vip_watchdog::metrics::value(text, name, labels)
}

/// A real Prometheus (see `Lab::start_prometheus`).
pub struct Prometheus {
    pub(super) ns: String,
    pub(super) alerts: Receiver<String>,
    pub(super) backlog: std::cell::RefCell<Vec<Value>>,
}

impl Prometheus {
    /// GET `path` of Prometheus's HTTP API with one URL-encoded parameter;
    /// returns `data`, failing on any API error.
    fn api_get(&self, path: &str, param: &str) -> Value {
        let out = run(in_ns(&self.ns)
            .args(["curl", "-sS", "--max-time", "10", "-G"])
            .arg(format!("http://127.0.0.1:9090{path}"))
            .args(["--data-urlencode", param]));
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{param}: {e}: {out}"));
        assert_eq!(v["status"], "success", "{param}: {v}");
        v["data"].clone()
    }

    /// The active targets, as `/api/v1/targets` gives them.
    pub fn targets(&self) -> Vec<Value> {
        let out = run(in_ns(&self.ns).args([
            "curl",
            "-sS",
            "--max-time",
            "10",
            "http://127.0.0.1:9090/api/v1/targets?state=active",
        ]));
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("targets: {e}: {out}"));
        v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Returns once `n` targets have each been scraped at least once.
    pub fn wait_scraped(&self, n: usize, timeout: Duration) -> Vec<Value> {
        poll_api(
            &format!("all {n} targets scraped"),
            timeout,
            || self.targets(),
            |t| t.len() == n && t.iter().all(|t| t["health"] != "unknown"),
        )
    }

    /// An instant query; returns `data.result`.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api_get("/api/v1/query", &format!("query={promql}"));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Returns an instant query's `data.result` once it has a series.
    pub fn wait_query(&self, what: &str, promql: &str, timeout: Duration) -> Vec<Value> {
        poll_api(
            &format!("{what} ({promql} returning a series)"),
            timeout,
            || self.query(promql),
            |result| !result.is_empty(),
        )
    }

    /// Values of `label` on the series that `matcher` selects.
    pub fn label_values(&self, label: &str, matcher: &str) -> Vec<String> {
        let data = self.api_get(
            &format!("/api/v1/label/{label}/values"),
            &format!("match[]={matcher}"),
        );
        data.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits for a notification of alert `name` whose labels include
    /// `labels`, firing (`endsAt` in the future) or resolved (in the past).
    pub fn wait_alert(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        firing: bool,
        timeout: Duration,
    ) -> Value {
        let matches = |a: &Value| {
            let ends = a["endsAt"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
            let is_firing = ends.is_some_and(|e| e > std::time::SystemTime::now());
            a["labels"]["alertname"] == name
                && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
                && is_firing == firing
        };
        if let Some(i) = self.backlog.borrow().iter().position(&matches) {
            return self.backlog.borrow_mut().remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.alerts.recv_timeout(left) {
                Ok(line) => {
                    let Ok(a) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if matches(&a) {
                        return a;
                    }
                    self.backlog.borrow_mut().push(a);
                }
                Err(_) => panic!(
                    "no {} notification of {name} {labels:?} within {timeout:?}; seen: {:?}",
                    if firing { "firing" } else { "resolved" },
                    self.backlog
                        .borrow()
                        .iter()
                        .map(|a| a["labels"]["alertname"].to_string())
                        .collect::<Vec<_>>()
                ),
            }
        }
    }
}

/// Polls Prometheus's API with `fetch` (bounded: every 200 ms until
/// `timeout`) until `done` holds; returns that answer.
fn poll_api<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    fetch: impl Fn() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = fetch();
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {timeout:?}; last answer: {answer:?}"
        );
        std::thread::park_timeout(Duration::from_millis(200));
    }
}

impl Lab {
    /// A real Prometheus in the cloud namespace, scraping both watchdogs
    /// (and, as job `label-clash`, node a's build_info with a target label
    /// `node`, to show what that does)
    /// every second (they must listen on 0.0.0.0:9842: set `listen` before
    /// starting them) with the repo's alert rules evaluated every second, and
    /// sending its alerts to a receiver whose notifications the test awaits.
    /// `others`: more watchdogs in the same job (`Lab::reach`'s targets).
    pub fn start_prometheus(&mut self, others: &[String]) -> Prometheus {
        let mut targets = vec!["10.213.1.1:9842".to_owned(), "10.213.2.1:9842".to_owned()];
        targets.extend(others.iter().cloned());
        let targets = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        self.start_prometheus_scraping(&format!("  - job_name: vip-watchdog\n    static_configs:\n      - targets: [{targets}]\n  - job_name: label-clash\n    static_configs:\n      - targets: ['10.213.1.1:9842']\n        labels:\n          node: from-the-target\n    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: vip_watchdog_build_info\n        action: keep\n"))
    }

    /// Lets this lab's cloud namespace (where Prometheus runs) reach the
    /// watchdogs of `other`, a second lab whose addresses are the same as
    /// this one's: a veth between the two cloud namespaces (10.214.0.1
    /// here, 10.214.0.2 there) and, in `other`'s, a destination NAT of
    /// 10.214.0.2:9801 and :9802 to its nodes a's and b's 10.213.x.1:9842
    /// (masqueraded, so the nodes answer their own cloud namespace).
    /// Returns the two targets. Deleting either namespace removes it all.
    pub fn reach(&self, other: &Lab) -> [String; 2] {
        let here = &self.cloud().ns;
        let there = &other.cloud().ns;
        ip(&[
            "link", "add", "px0", "netns", here, "type", "veth", "peer", "name", "px0", "netns",
            there,
        ]);
        for (ns, addr) in [(here, "10.214.0.1/30"), (there, "10.214.0.2/30")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", "px0"]);
            ip(&["-n", ns, "link", "set", "px0", "up"]);
        }
        run(in_ns(there).args(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]));
        let nft = |rule: &str| run(in_ns(there).arg("nft").arg(rule));
        nft("add table ip reach");
        nft("add chain ip reach pre { type nat hook prerouting priority -100; }");
        nft("add chain ip reach post { type nat hook postrouting priority 100; }");
        for (port, node) in [(9801, 1), (9802, 2)] {
            nft(&format!(
                "add rule ip reach pre ip daddr 10.214.0.2 tcp dport {port} dnat to 10.213.{node}.1:9842"
            ));
        }
        nft("add rule ip reach post ip saddr 10.214.0.1 masquerade");
        ["10.214.0.2:9801".to_owned(), "10.214.0.2:9802".to_owned()]
    }

    /// Prometheus in the cloud namespace, which reaches both nodes
    /// (10.213.1.1 and 10.213.2.1), with the alert rules, scraping every
    /// second with `scrape_configs` (YAML list items, indented 2).
    pub fn start_prometheus_scraping(&mut self, scrape_configs: &str) -> Prometheus {
        let python = venv_python();
        let ns = self.cloud().ns.clone();
        let root = repo();
        let dir = self.dir.join("prometheus");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    runbook_base: https://runbook.lab/vip-watchdog\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:9093']\nscrape_configs:\n{scrape_configs}",
                root.join("alerts/vip-watchdog.rules.yml").display()
            ),
        )
        .unwrap();
        let mut receiver = in_ns(&ns);
        receiver
            .arg(&python)
            .arg(root.join("tests/prom/alert_receiver.py"))
            .args(["127.0.0.1", "9093"]);
        let (receiver, alerts) = spawn_until(
            receiver,
            "ready",
            "the alert receiver",
            dir.join("alerts.log"),
        );
        let mut prom = in_ns(&ns);
        prom.args(["prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .args([
                "--web.listen-address=127.0.0.1:9090",
                "--rules.alert.resend-delay=1s",
            ]);
        let (prom, _) = spawn_until(
            prom,
            "Server is ready to receive web requests",
            "prometheus",
            dir.join("prometheus.log"),
        );
        let cloud = self.cloud.as_mut().expect("cloud");
        cloud.children.push(receiver);
        cloud.children.push(prom);
        Prometheus {
            ns,
            alerts,
            backlog: Default::default(),
        }
    }
}
