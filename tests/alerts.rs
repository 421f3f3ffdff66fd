//! Every alert rule is covered: `alerts/tests/` has a case that fires it
//! and one that keeps it silent (promtool runs them, `scripts/test.sh`),
//! and docs/runbook.md has its section, which its runbook_url names, and
//! docs/dashboards.md's table of alerts its row.

mod common;

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(common::repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The names after `key: ` on lines of `text`.
fn values<'a>(text: &'a str, key: &str) -> impl Iterator<Item = &'a str> {
    text.lines()
        .filter_map(move |l| l.trim_start().trim_start_matches("- ").strip_prefix(key))
        .map(str::trim)
}

#[test]
fn every_alert_has_a_firing_and_a_silent_case_and_a_runbook_section() {
    let rules = read("alerts/vip-watchdog.rules.yml");
    let alerts: Vec<&str> = values(&rules, "alert:").collect();
    assert!(alerts.len() >= 30, "only {} alerts read", alerts.len());

    let mut tests = String::new();
    for entry in std::fs::read_dir(common::repo().join("alerts/tests")).expect("alerts/tests") {
        let path = entry.expect("entry").path();
        tests += &std::fs::read_to_string(&path).expect("test file");
    }
    // Each `alertname:` line, then its `exp_alerts:` line: `[]` is silent,
    // anything else lists alerts that fire.
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    let mut name = None;
    for line in tests.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("alertname:") {
            name = Some(n.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("exp_alerts:") {
            let n = name.take().expect("exp_alerts without an alertname");
            if rest.trim() == "[]" {
                silent.insert(n);
            } else {
                fires.insert(n);
            }
        }
    }

    let runbook = read("docs/runbook.md");
    let sections: BTreeSet<&str> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .collect();

    let tables = read("docs/dashboards.md");
    let mut missing = Vec::new();
    for a in &alerts {
        if !fires.contains(*a) {
            missing.push(format!("{a}: no promtool case that fires it"));
        }
        if !silent.contains(*a) {
            missing.push(format!("{a}: no promtool case that keeps it silent"));
        }
        if !sections.contains(a) {
            missing.push(format!("{a}: no `## {a}` in docs/runbook.md"));
        }
        if !tables.contains(&format!("| {a} |")) {
            missing.push(format!(
                "{a}: no row in docs/dashboards.md's table of alerts"
            ));
        }
        let anchor = format!("#{}'", a.to_lowercase());
        if !rules.contains(&anchor) {
            missing.push(format!("{a}: no runbook_url ending in {anchor}"));
        }
    }
    for t in fires.union(&silent) {
        if !alerts.contains(&t.as_str()) {
            missing.push(format!("alerts/tests names {t}, which no rule defines"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
