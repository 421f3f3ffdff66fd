//! The log's event names, as docs/events.md lists them: what tests wait on
//! (`is`), never a message, so that rewording a log line breaks no test.

use std::sync::OnceLock;

use serde_json::Value;

use super::repo;

/// One row of docs/events.md's table.
#[derive(Clone, Debug)]
pub struct Row {
    pub event: String,
    pub level: String,
    /// The file under src/ that logs it.
    pub file: String,
}

/// The rows of docs/events.md's table; fails on a row it cannot read.
pub fn catalogue() -> Vec<Row> {
    let path = repo().join("docs/events.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            let code = |c: &str| c.trim_matches('`').to_string();
            match cells.as_slice() {
                [event, level, .., file] if cells.len() >= 4 => Row {
                    event: code(event),
                    level: level.to_string(),
                    file: code(file),
                },
                _ => panic!(
                    "{}: a row that is not | event | level | message | file |: {l}",
                    path.display()
                ),
            }
        })
        .collect();
    assert!(!rows.is_empty(), "{}: no event rows", path.display());
    rows
}

fn names() -> &'static Vec<String> {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| catalogue().into_iter().map(|r| r.event).collect())
}

/// Whether log line `e` is event `name`. Fails at once when docs/events.md
/// does not list `name`, rather than letting a misspelt wait time out.
pub fn is(e: &Value, name: &str) -> bool {
    assert!(
        names().iter().any(|n| n == name),
        "a test waits for event {name:?}, which docs/events.md does not list"
    );
    e["event"] == name
}
