//! The source's shape, measured from its own imports: no import circle, the
//! pure core importing nothing outside `core/`, its vocabulary a leaf, few
//! imports that run from a lower layer up to a higher one, and no file
//! longer than `MAX_LINES` lines of code before its tests.
//!
//! Layers, lowest first (a module may import its own layer and below):
//! 0 `core`; 1 `clock`, `config`; 2 `metrics`, `status`, `landing`,
//! `logging`, `systemd`; 3 the sources and actors (`keepalived`, `probe`,
//! `host`, `notify`, `peer`, `cloud`, `http`); 4 `owner`; 5 `lib`, `reload`,
//! `cli`, `main`.
//!
//! `cargo test --test layout -- --nocapture` prints the numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lines of code (not blank, not comments) before `#[cfg(test)]`.
const MAX_LINES: usize = 500;

/// At most this many imports from a lower layer to a higher one.
const MAX_UPWARD: usize = 16;

fn rank(module: &str) -> usize {
    match module.split('/').next().unwrap_or_default() {
        "core" => 0,
        "clock" | "config" => 1,
        "metrics" | "status" | "landing" | "logging" | "systemd" => 2,
        "keepalived" | "probe" | "host" | "notify" | "peer" | "cloud" | "http" => 3,
        "owner" => 4,
        "lib" | "reload" | "cli" | "main" => 5,
        other => panic!("src/{other}: no layer; add it to rank() and to the module doc"),
    }
}

/// Every module under src/ (`core/model`, `metrics` for metrics/mod.rs) and
/// its code before `#[cfg(test)]`, comment lines dropped.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                let code: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect();
                let name = path
                    .strip_prefix("src")
                    .expect("under src")
                    .with_extension("")
                    .to_string_lossy()
                    .into_owned();
                let name = name.strip_suffix("/mod").unwrap_or(&name).to_owned();
                out.insert(name, code.join("\n"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new("src"), &mut out);
    out
}

/// The longest module name that `path` (`a::b::C`) starts with.
fn resolve(path: &str, known: &BTreeMap<String, String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").filter(|p| *p != "self").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("/"))
        .find(|c| known.contains_key(c))
}

/// The paths a module's code names with `crate::` (a `{..}` group expanded
/// one level) and `super::`.
fn imports(name: &str, code: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // `super` of `core/model/line` is `core/model`; of `core/model` (its
    // mod.rs) is `core`.
    let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
    for (prefix, base) in [
        ("crate::", String::new()),
        ("super::", parent.replace('/', "::")),
    ] {
        for (i, _) in code.match_indices(prefix) {
            let before = code[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[i + prefix.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = path.trim_end_matches(':');
            let full = |p: &str| {
                if base.is_empty() {
                    p.to_owned()
                } else {
                    format!("{base}::{p}")
                }
            };
            let group = rest[path.len()..]
                .strip_prefix("::{")
                .and_then(|g| g.split('}').next());
            let mut targets = vec![full(path)];
            if let Some(g) = group {
                targets.extend(
                    g.split(',')
                        .map(|t| t.trim().split(' ').next().unwrap_or_default())
                        .filter(|t| !t.is_empty())
                        .map(|t| full(&format!("{path}::{t}"))),
                );
            }
            for t in targets {
                if let Some(m) = resolve(&t, known)
                    && m != name
                {
                    out.insert(m);
                }
            }
        }
    }
    out
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let lw = self.low[w.as_str()];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w.as_str()) {
                    let iw = self.index[w.as_str()];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = vec![];
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        out: vec![],
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn the_source_has_no_circle_a_pure_core_and_short_files() {
    let known = modules();
    assert!(
        known.contains_key("core/words") && known.contains_key("owner"),
        "run from the crate's root: src/ was not found as expected"
    );
    let edges: BTreeMap<String, BTreeSet<String>> = known
        .iter()
        .map(|(name, code)| (name.clone(), imports(name, code, &known)))
        .collect();

    let found = circles(&edges);
    let upward: Vec<String> = edges
        .iter()
        .flat_map(|(a, bs)| bs.iter().map(move |b| (a, b)))
        .filter(|(a, b)| rank(b) > rank(a))
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect();
    let outside_core: Vec<String> = edges
        .iter()
        .filter(|(a, _)| a.starts_with("core"))
        .flat_map(|(a, bs)| bs.iter().map(move |b| (a, b)))
        .filter(|(_, b)| !b.starts_with("core"))
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect();
    let lines: BTreeMap<&str, usize> = known
        .iter()
        .map(|(n, code)| {
            (
                n.as_str(),
                code.lines().filter(|l| !l.trim().is_empty()).count(),
            )
        })
        .collect();
    let long: Vec<(&str, usize)> = lines
        .iter()
        .filter(|(_, n)| **n > MAX_LINES)
        .map(|(m, n)| (*m, *n))
        .collect();
    println!("modules: {}", known.len());
    println!("import circles: {}", found.len());
    println!("upward imports: {} {upward:?}", upward.len());
    println!("files over {MAX_LINES} lines of code: {long:?}");
    println!("owner/mod.rs: {} lines of code", lines["owner"]);

    assert!(found.is_empty(), "import circles: {found:?}");
    assert!(
        outside_core.is_empty(),
        "the pure core imports outside core/: {outside_core:?}"
    );
    assert!(
        edges["core/words"].is_empty(),
        "core/words is the shared vocabulary and imports nothing: {:?}",
        edges["core/words"]
    );
    assert!(
        upward.len() <= MAX_UPWARD,
        "{} upward imports, more than {MAX_UPWARD}: {upward:?}",
        upward.len()
    );
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines of code (split them by concern): {long:?}"
    );
    // The measure itself: a circle and an upward import are seen.
    let mut probe = BTreeMap::new();
    probe.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    probe.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(circles(&probe).len(), 1);
    let fake: BTreeMap<String, String> = [("core/x", ""), ("metrics", "")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    assert_eq!(
        imports("core/x", "use crate::metrics::{Metrics, value};", &fake),
        BTreeSet::from(["metrics".to_owned()])
    );
}

/// docs/layout.md is the real tree: every file under src/ (a directory
/// module by its directory) is named in it.
#[test]
fn the_documented_layout_names_every_source_file() {
    let doc = std::fs::read_to_string("docs/layout.md").expect("docs/layout.md");
    let section = doc
        .split("\n```")
        .nth(1)
        .expect("docs/layout.md has a code block");
    let mut missing = vec![];
    for name in modules().keys() {
        let file = name.rsplit('/').next().unwrap_or(name);
        let as_file = format!("{file}.rs");
        let as_dir = format!("{file}/");
        if !section.contains(&as_file) && !section.contains(&as_dir) {
            missing.push(name.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/layout.md does not name src/{missing:?}"
    );
}
