//! The log's event catalogue (docs/events.md) against the code: every log
//! line carries an `event` name, and the table lists exactly the events the
//! code logs, each at its level and from its file. The integration tests
//! wait on these names (`common::is`), so a reworded message breaks none.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

/// One tracing macro call in the source: where, at which level, the event
/// it names (None: it names none).
#[derive(Debug)]
struct Site {
    file: String,
    line: usize,
    level: String,
    event: Option<String>,
}

/// The body of the macro call whose `(` ends at `open`: up to its matching
/// `)`, string literals skipped. None when the call is not closed.
fn call_body(text: &str, open: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    let (mut depth, mut in_str, mut escaped) = (1usize, false, false);
    let mut i = open;
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&text[open..i]);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

fn sites_in(file: &str, text: &str) -> Vec<Site> {
    let mut sites = Vec::new();
    for level in ["trace", "debug", "info", "warn", "error"] {
        let needle = format!("{level}!(");
        for (at, _) in text.match_indices(&needle) {
            // A whole word: `info!(`, not `log_info!(`.
            if text[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let line = text[..at].matches('\n').count() + 1;
            let body = call_body(text, at + needle.len())
                .unwrap_or_else(|| panic!("{file}:{line}: an unclosed {level}!( call"));
            let event = body
                .trim_start()
                .strip_prefix("event = \"")
                .and_then(|rest| rest.split('"').next())
                .map(str::to_string);
            sites.push(Site {
                file: file.to_string(),
                line,
                level: level.to_string(),
                event,
            });
        }
    }
    sites
}

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(common::repo().join("src"))
                .expect("under src/")
                .display()
                .to_string();
            let text = std::fs::read_to_string(&path).expect("readable");
            // A file's unit tests log to their own subscriber, not the
            // product's log: the catalogue ends where they begin.
            let product = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            out.push((rel, product));
        }
    }
}

fn all_sites() -> Vec<Site> {
    let mut files = Vec::new();
    sources(&common::repo().join("src"), &mut files);
    files.iter().flat_map(|(f, t)| sites_in(f, t)).collect()
}

#[test]
fn every_log_line_names_its_event() {
    let sites = all_sites();
    assert!(sites.len() > 50, "the source scan found only {sites:?}");
    let unnamed: Vec<String> = sites
        .iter()
        .filter(|s| s.event.is_none())
        .map(|s| format!("{}:{} ({})", s.file, s.line, s.level))
        .collect();
    assert!(
        unnamed.is_empty(),
        "log calls without `event = \"...\"` as their first field: {unnamed:?}"
    );
    for s in &sites {
        let name = s.event.as_deref().unwrap_or_default();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{}:{}: event {name:?} is not snake_case",
            s.file,
            s.line
        );
    }
}

#[test]
fn the_catalogue_lists_exactly_the_events_logged() {
    let logged: BTreeSet<(String, String, String)> = all_sites()
        .into_iter()
        .filter_map(|s| Some((s.event?, s.level, s.file)))
        .collect();
    let listed: BTreeSet<(String, String, String)> = common::events::catalogue()
        .into_iter()
        .map(|row| (row.event, row.level, row.file))
        .collect();
    let missing: Vec<_> = logged.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&logged).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/events.md against the code (event, level, file):\n\
         logged but not listed (add a row): {missing:?}\n\
         listed but not logged (remove or fix the row): {stale:?}"
    );
}

#[test]
fn the_scan_sees_a_call_without_an_event() {
    let sites = sites_in(
        "x.rs",
        "fn f() {\n    info!(a = %b(\"(\"), \"one\");\n    warn!(event = \"two\", \"x\");\n}\n",
    );
    assert_eq!(sites.len(), 2, "{sites:?}");
    let info = sites.iter().find(|s| s.level == "info").expect("info");
    assert_eq!((info.line, info.event.as_deref()), (2, None));
    let warn = sites.iter().find(|s| s.level == "warn").expect("warn");
    assert_eq!(warn.event.as_deref(), Some("two"));
}

/// The tests and benchmarks wait on event names, never on a log line's
/// message: none of them reads `message`.
#[test]
fn no_test_reads_a_log_message() {
    let mut files = vec![];
    for dir in ["tests", "tests/common", "benches", "benches/support"] {
        let Ok(entries) = std::fs::read_dir(common::repo().join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 20, "the scan found only {files:?}");
    let needle = ["[\"", "message", "\"]"].concat();
    let readers: Vec<String> = files
        .iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .expect("readable")
                .contains(&needle)
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        readers.is_empty(),
        "these read a log line's message; wait on its event (common::is): {readers:?}"
    );
}
