//! keepalived.conf, read for `check-config` and `release_on_crash`: the
//! notify FIFO, each vrrp_instance's virtual addresses and routes (and
//! `keepalived/vrrp.rs` the advert's fields), following `include`.
//! Parsing is pure (text in, blocks out); only `read` touches files.
//!
//! Keepalived's syntax: one keyword and its arguments a line, `{ ... }`
//! opens a block (on the keyword's line or at the start of a later one),
//! `#` and `!` start comments, `"..."` quotes, and
//! `include PATTERN` (a glob, relative to the including file's directory)
//! splices other files in at any level.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::core::target::normalize_cidr;

/// Where a line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A keyword with its arguments, and its block when it opens one.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub words: Vec<String>,
    pub block: Option<Vec<Item>>,
    pub at: At,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    #[error("{0}: cannot read: {1}")]
    Read(PathBuf, String),
    #[error("{0}: a '}}' closes no block")]
    Unopened(At),
    #[error("{0}: a block opened here is never closed")]
    Unclosed(At),
    #[error("{0}: include {1:?}: {2}")]
    Include(At, String, String),
    #[error("{0}: includes nest deeper than {MAX_DEPTH} (a loop?)")]
    TooDeep(At),
}

const MAX_DEPTH: usize = 8;

/// A line's words: quotes kept together, comments dropped, braces apart.
fn words(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                if !quoted {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ if quoted => cur.push(ch),
            '#' | '!' => break,
            '{' | '}' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(ch.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Reads `path` and every file it includes into items. `load` reads a
/// file; `expand` resolves an include pattern to paths (sorted).
pub fn parse_with(
    path: &Path,
    load: &dyn Fn(&Path) -> Result<String, String>,
    expand: &dyn Fn(&str) -> Result<Vec<PathBuf>, String>,
) -> Result<Vec<Item>, ConfError> {
    // (the block being filled, where it was opened)
    let mut stack: Vec<(Vec<Item>, Option<At>)> = vec![(vec![], None)];
    splice(path, load, expand, &mut stack, 0)?;
    let (items, opened) = stack.pop().expect("the top level");
    if let Some(at) = opened {
        return Err(ConfError::Unclosed(at));
    }
    Ok(items)
}

fn splice(
    path: &Path,
    load: &dyn Fn(&Path) -> Result<String, String>,
    expand: &dyn Fn(&str) -> Result<Vec<PathBuf>, String>,
    stack: &mut Vec<(Vec<Item>, Option<At>)>,
    depth: usize,
) -> Result<(), ConfError> {
    let text = load(path).map_err(|e| ConfError::Read(path.to_owned(), e))?;
    for (i, line) in text.lines().enumerate() {
        let at = At {
            file: path.to_owned(),
            line: i + 1,
        };
        let mut ws = words(line);
        if ws.first().map(String::as_str) == Some("include") {
            if depth >= MAX_DEPTH {
                return Err(ConfError::TooDeep(at));
            }
            let pattern = ws.get(1).cloned().unwrap_or_default();
            let full = if Path::new(&pattern).is_absolute() {
                pattern.clone()
            } else {
                let dir = path.parent().unwrap_or(Path::new("."));
                dir.join(&pattern).display().to_string()
            };
            let files =
                expand(&full).map_err(|e| ConfError::Include(at.clone(), pattern.clone(), e))?;
            for f in files {
                splice(&f, load, expand, stack, depth + 1)?;
            }
            continue;
        }
        while !ws.is_empty() {
            if ws[0] == "}" {
                ws.remove(0);
                if stack.len() == 1 {
                    return Err(ConfError::Unopened(at));
                }
                let (items, _) = stack.pop().expect("an open block");
                let parent = &mut stack.last_mut().expect("a parent").0;
                if let Some(last) = parent.last_mut() {
                    last.block = Some(items);
                }
                continue;
            }
            let end = ws
                .iter()
                .position(|w| w == "{" || w == "}")
                .unwrap_or(ws.len());
            let rest = ws.split_off(end);
            let opens = rest.first().map(String::as_str) == Some("{");
            let item = Item {
                words: std::mem::take(&mut ws),
                block: None,
                at: at.clone(),
            };
            let level = &mut stack.last_mut().expect("a level").0;
            // A `{` that starts its line opens the block of the keyword
            // before it (Keepalived reads `vrrp_instance VI_1` then `{` on
            // the next line as one block, blank lines between or not).
            let continues = item.words.is_empty()
                && opens
                && level.last().is_some_and(|last| last.block.is_none());
            if !continues && (!item.words.is_empty() || opens) {
                level.push(item);
            }
            ws = rest;
            if opens {
                ws.remove(0);
                stack.push((vec![], Some(at.clone())));
            }
        }
    }
    Ok(())
}

/// Reads keepalived.conf from disk, following includes (glob patterns).
pub fn read(path: &Path) -> Result<Vec<Item>, ConfError> {
    read_noting(path, &mut |_| {})
}

/// `read`, and what must not change for the items to stay true: every file
/// read, and the directory of each glob include (a file added there).
pub fn read_with_files(path: &Path) -> Result<(Vec<Item>, Vec<PathBuf>), ConfError> {
    let mut files = std::collections::BTreeSet::new();
    let items = read_noting(path, &mut |p| {
        files.insert(p.to_owned());
    })?;
    Ok((items, files.into_iter().collect()))
}

fn read_noting(path: &Path, note: &mut dyn FnMut(&Path)) -> Result<Vec<Item>, ConfError> {
    let note = std::cell::RefCell::new(note);
    parse_with(
        path,
        &|p| {
            (note.borrow_mut())(p);
            std::fs::read_to_string(p).map_err(|e| e.to_string())
        },
        &|pattern| {
            let globbed = pattern.contains(['*', '?', '[']);
            if globbed && let Some(dir) = Path::new(pattern).parent() {
                (note.borrow_mut())(dir);
            }
            let mut out = vec![];
            for entry in glob::glob(pattern).map_err(|e| e.to_string())? {
                out.push(entry.map_err(|e| e.to_string())?);
            }
            out.sort();
            if out.is_empty() && !globbed {
                return Err("no such file".into());
            }
            Ok(out)
        },
    )
}

/// What the watchdog needs from keepalived.conf.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keepalived {
    /// `vrrp_notify_fifo` (or else `notify_fifo`) of global_defs.
    pub fifo: Option<(PathBuf, At)>,
    pub instances: BTreeMap<String, InstanceConf>,
    /// `vrrp_track_file NAME { file PATH; weight W }`: (path, weight; 1
    /// when not given, as Keepalived's default).
    pub track_files: BTreeMap<String, (PathBuf, i32)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceConf {
    pub at: Option<At>,
    /// `virtual_ipaddress` and `virtual_ipaddress_excluded`: each address.
    pub addresses: Vec<IpAddr>,
    /// `virtual_routes`: each destination, normalised.
    pub routes: Vec<String>,
    /// `priority` and `advert_int` (seconds), when written.
    pub priority: Option<u8>,
    pub advert_int: Option<f64>,
    /// The names in its `track_file` block.
    pub track_files: Vec<String>,
}

impl Keepalived {
    pub fn from_items(items: &[Item]) -> Keepalived {
        let mut k = Keepalived::default();
        let mut notify_fifo = None;
        for item in items {
            let key = item.words.first().map(String::as_str);
            let block = item.block.as_deref().unwrap_or_default();
            match key {
                Some("global_defs") => {
                    for g in block {
                        let path = g.words.get(1).map(PathBuf::from);
                        match (g.words.first().map(String::as_str), path) {
                            (Some("vrrp_notify_fifo"), Some(p)) => k.fifo = Some((p, g.at.clone())),
                            (Some("notify_fifo"), Some(p)) => notify_fifo = Some((p, g.at.clone())),
                            _ => {}
                        }
                    }
                }
                Some("vrrp_track_file") => {
                    let name = item.words.get(1).cloned().unwrap_or_default();
                    let (mut file, mut weight) = (None, 1);
                    for sub in block {
                        match (sub.words.first().map(String::as_str), sub.words.get(1)) {
                            (Some("file"), Some(p)) => file = Some(PathBuf::from(p)),
                            (Some("weight"), Some(w)) => weight = w.parse().unwrap_or(weight),
                            _ => {}
                        }
                    }
                    if let Some(f) = file {
                        k.track_files.insert(name, (f, weight));
                    }
                }
                Some("vrrp_instance") => {
                    let name = item.words.get(1).cloned().unwrap_or_default();
                    let inst = k.instances.entry(name).or_default();
                    inst.at = Some(item.at.clone());
                    for sub in block {
                        let lines = sub.block.as_deref().unwrap_or_default();
                        let value = sub.words.get(1);
                        match sub.words.first().map(String::as_str) {
                            Some("priority") => inst.priority = value.and_then(|v| v.parse().ok()),
                            Some("advert_int") => {
                                inst.advert_int = value.and_then(|v| v.parse().ok())
                            }
                            Some("track_file") => inst
                                .track_files
                                .extend(lines.iter().filter_map(|l| l.words.first().cloned())),
                            Some("virtual_ipaddress" | "virtual_ipaddress_excluded") => {
                                inst.addresses.extend(lines.iter().filter_map(|l| {
                                    let w = l.words.first()?;
                                    w.split('/').next()?.parse::<IpAddr>().ok()
                                }));
                            }
                            Some("virtual_routes") => {
                                inst.routes.extend(lines.iter().filter_map(|l| {
                                    // [src ADDR] DEST ...: the first CIDR or
                                    // address after an optional src.
                                    let mut ws = l.words.iter();
                                    let mut w = ws.next()?;
                                    if w == "src" {
                                        ws.next()?;
                                        w = ws.next()?;
                                    }
                                    let cidr = if w.contains('/') {
                                        w.clone()
                                    } else {
                                        let bits = if w.contains(':') { 128 } else { 32 };
                                        format!("{w}/{bits}")
                                    };
                                    normalize_cidr(&cidr).map(|(c, _)| c)
                                }));
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if k.fifo.is_none() {
            k.fifo = notify_fifo;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(files: &[(&str, &str)]) -> Result<Vec<Item>, ConfError> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        let first = PathBuf::from(&files[0].0);
        parse_with(
            &first,
            &|p| {
                files
                    .iter()
                    .find(|(n, _)| Path::new(n) == p)
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| "No such file or directory".to_owned())
            },
            &|pattern| {
                let prefix = pattern.trim_end_matches('*');
                let mut out: Vec<PathBuf> = files
                    .iter()
                    .filter(|(n, _)| {
                        if pattern.ends_with('*') {
                            n.starts_with(prefix)
                        } else {
                            n == pattern
                        }
                    })
                    .map(|(n, _)| PathBuf::from(n))
                    .collect();
                out.sort();
                if out.is_empty() && !pattern.contains('*') {
                    return Err("no such file".into());
                }
                Ok(out)
            },
        )
    }

    /// What both layouts below say: the FIFO, and VI_1 (opened at `at`)
    /// with two addresses and one route.
    fn expect_fifo_and_vi_1(k: &Keepalived, at: &str) {
        assert_eq!(
            k.fifo.as_ref().map(|f| f.0.clone()),
            Some(PathBuf::from("/run/w/k.fifo"))
        );
        let vi = &k.instances["VI_1"];
        assert_eq!(
            vi.addresses,
            [
                "10.0.0.100".parse::<IpAddr>().unwrap(),
                "10.0.0.101".parse().unwrap()
            ]
        );
        assert_eq!(vi.routes, ["192.168.100.10/32"]);
        assert_eq!(vi.at.as_ref().map(|a| a.to_string()).as_deref(), Some(at));
    }

    #[test]
    fn blocks_comments_quotes_and_includes() {
        let items = parse(&[
            (
                "/k/keepalived.conf",
                "global_defs {\n  vrrp_notify_fifo \"/run/w/k.fifo\" # comment\n}\n! old style comment\ninclude conf.d/*\n",
            ),
            (
                "/k/conf.d/a.conf",
                "vrrp_instance VI_1 {\n  virtual_ipaddress {\n    10.0.0.100/32 dev eth0\n    10.0.0.101\n  }\n  virtual_routes { src 10.0.0.1 192.168.100.10/32 dev eth0 }\n}\n",
            ),
        ])
        .expect("parses");
        let k = Keepalived::from_items(&items);
        expect_fifo_and_vi_1(&k, "/k/conf.d/a.conf:1");
    }

    /// Keepalived takes a `{` at the start of a later line as the block of
    /// the keyword before it (checked with `keepalived -t`: an invalid
    /// address in such a block is reported, so it was read as one).
    #[test]
    fn a_brace_on_its_own_line_opens_the_keyword_before_it() {
        let text = "global_defs\n{\n  vrrp_notify_fifo /run/w/k.fifo\n}\nvrrp_instance VI_1\n\n  {\n  virtual_ipaddress\n  { 10.0.0.100/32\n    10.0.0.101\n  }\n  virtual_routes\n  {\n    src 10.0.0.1 192.168.100.10/32 dev eth0\n  }\n}\n";
        let k = Keepalived::from_items(&parse(&[("/k.conf", text)]).expect("parses"));
        expect_fifo_and_vi_1(&k, "/k.conf:5");
        // A block after a block keeps its own (nameless) item: nothing to
        // attach it to.
        let items = parse(&[("/k.conf", "a {\n}\n{\n  b\n}\n")]).expect("parses");
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(items[1].words.is_empty() && items[1].block.is_some());
    }

    #[test]
    fn broken_files_are_errors_naming_file_and_line() {
        let rows: [(&[(&str, &str)], &str); 4] = [
            (
                &[("/k.conf", "vrrp_instance VI_1 {\n")],
                "/k.conf:1: a block opened here is never closed",
            ),
            (&[("/k.conf", "}\n")], "/k.conf:1: a '}' closes no block"),
            (
                &[("/k.conf", "include /nope.conf\n")],
                "/k.conf:1: include \"/nope.conf\": no such file",
            ),
            (
                &[("/k.conf", "include /k.conf\n")],
                "includes nest deeper than 8",
            ),
        ];
        for (files, want) in rows {
            let e = parse(files).expect_err(want).to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }
    #[test]
    fn a_managed_private_ip_must_be_left_out_of_virtual_ipaddress() {
        use crate::keepalived::check::cross_check;
        let config = |extra: &str| {
            crate::config::Config::parse(&format!(
                "[node]\nname = \"a\"\npair = \"p\"\n[probe]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n[keepalived]\nfifo = \"/run/w/k.fifo\"\n[[keepalived.instance]]\nname = \"VI_1\"\n[cloud]\nregion = \"eu-west-1\"\n[[vip]]\nkind = \"eip\"\nname = \"web\"\nallocation_id = \"eipalloc-1\"\nprivate_ip = \"10.0.0.100\"\nvrrp_instance = \"VI_1\"\n{extra}"
            ))
            .expect("valid")
        };
        let conf = |addresses: &str| {
            let text = format!(
                "global_defs {{\n  vrrp_notify_fifo /run/w/k.fifo\n}}\nvrrp_instance VI_1 {{\n  virtual_ipaddress {{\n{addresses}  }}\n}}\n"
            );
            Keepalived::from_items(&parse(&[("/k.conf", text.as_str())]).expect("parses"))
        };
        let managed = config("manage_address = true\ninterface = \"eth0\"\n");
        let listed = conf("    10.0.0.100/32 dev eth0\n");
        let left_out = conf("    10.0.0.7/32 dev eth0\n");
        // (config, keepalived.conf, the problem expected, if any)
        let rows = [
            (&managed, &listed, Some("manage_address = true")),
            (&managed, &left_out, None),
            (&config(""), &listed, None),
            (
                &config(""),
                &left_out,
                Some("is not in vrrp_instance VI_1's virtual_ipaddress"),
            ),
        ];
        for (i, (c, k, want)) in rows.into_iter().enumerate() {
            let (problems, _) = cross_check(c, k);
            match want {
                Some(w) => assert!(
                    problems.len() == 1 && problems[0].contains(w),
                    "row {i}: {problems:?} lacks {w:?}"
                ),
                None => assert!(problems.is_empty(), "row {i}: {problems:?}"),
            }
        }
    }

    /// check-config's two timing and switchover checks: peer.max_age
    /// against the instance's master-down time, and the drain file
    /// tracked with weight 0.
    #[test]
    fn max_age_is_checked_against_master_down_and_the_drain_file_against_track_file() {
        use crate::keepalived::check::cross_check;
        let config = |peer: bool| {
            let peer = if peer {
                "[peer]\nlisten = \"10.0.0.1:9843\"\naddress = \"10.0.0.2:9843\"\nsecret_file = \"/k\"\n"
            } else {
                ""
            };
            crate::config::Config::parse(&format!(
                "[node]\nname = \"a\"\npair = \"p\"\n[probe]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n[keepalived]\nfifo = \"/run/w/k.fifo\"\n[[keepalived.instance]]\nname = \"VI_1\"\n{peer}"
            ))
            .expect("valid")
        };
        let conf = |advert: &str, track: &str| {
            let text = format!(
                "global_defs {{\n  vrrp_notify_fifo /run/w/k.fifo\n}}\nvrrp_track_file drain {{\n  file /run/vip-watchdog/drain\n  weight 0\n}}\nvrrp_track_file other {{\n  file /run/vip-watchdog/drain\n}}\nvrrp_instance VI_1 {{\n  priority 100\n  {advert}\n  track_file {{\n    {track}\n  }}\n}}\n"
            );
            Keepalived::from_items(&parse(&[("/k.conf", text.as_str())]).expect("parses"))
        };
        // (peer, advert_int line, tracked file, a problem, a switchover note)
        let rows = [
            (true, "advert_int 1", "drain", None, false),
            (true, "", "drain", None, false),
            (
                true,
                "advert_int 0.5",
                "drain",
                Some("master-down time (1.80 s"),
                false,
            ),
            (false, "advert_int 0.5", "drain", None, false),
            (false, "advert_int 1", "other", None, true),
            (false, "advert_int 1", "nothing", None, true),
        ];
        for (i, (peer, advert, track, problem, note)) in rows.into_iter().enumerate() {
            let (problems, notes) = cross_check(&config(peer), &conf(advert, track));
            match problem {
                Some(w) => assert!(
                    problems.len() == 1 && problems[0].contains(w),
                    "row {i}: {problems:?} lacks {w:?}"
                ),
                None => assert!(problems.is_empty(), "row {i}: {problems:?}"),
            }
            assert_eq!(
                notes.iter().any(|n| n.contains("switchover` cannot drain")),
                note,
                "row {i}: {notes:?}"
            );
        }
    }
}
