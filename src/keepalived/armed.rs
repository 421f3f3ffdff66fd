//! What a release may send: each instance's priority-0 advert, built from
//! keepalived.conf and checked against the running Keepalived while it
//! runs, never read at crash time. Keepalived 2.3.3 and later take a
//! priority-0 advert whatever its address list, so an advert from the
//! wrong file (another `-f`, an edit not yet reloaded) could fail over
//! another cluster: anything not shown to match refuses the release.
//!
//! Pure: command lines, config items and dump fields in, verdicts out
//! (`keepalived/release.rs` gathers them and acts). The rules, in order;
//! each refusal names what and where:
//!
//! A1. The running Keepalived reads `keepalived.config_file`: its command
//!     line's `-f`/`--use-file` (default `/etc/keepalived/keepalived.conf`)
//!     names the same file.
//! A2. The file is one this watchdog reproduces exactly: no `@` conditional
//!     lines (Keepalived's `--config-id` picks them), no `$` variables, no
//!     `net_namespace`.
//! A3. The instance's advert can be built from it (`vrrp.rs`).
//! A4. The running Keepalived's JSON dump has the instance with the same
//!     VRID, interface, virtual addresses (in order), VRRP version, advert
//!     interval and authentication.
//! A5. The snapshot holds for the Keepalived process it was checked
//!     against and for the files as they were then: a new main process, or
//!     any file changed since, disarms until checked again.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::keepalived::conf::Item;
use crate::keepalived::startup::Running;
use crate::keepalived::vrrp::{Advert, Auth, Version};

/// Keepalived's config file when no `-f` is given.
pub const DEFAULT_CONF: &str = "/etc/keepalived/keepalived.conf";

/// Rule A1: the config file a Keepalived command line reads (`-f X`,
/// `-fX`, `--use-file X`, `--use-file=X`; the last one wins, as getopt's).
pub fn config_file_of(cmdline: &[String]) -> PathBuf {
    let mut file = PathBuf::from(DEFAULT_CONF);
    let mut args = cmdline.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "-f" || arg == "--use-file" {
            if let Some(f) = args.next() {
                file = PathBuf::from(f);
            }
        } else if let Some(f) = arg.strip_prefix("--use-file=") {
            file = PathBuf::from(f);
        } else if let Some(rest) = arg.strip_prefix('-')
            && !rest.starts_with('-')
            && let Some(pos) = rest.find('f')
        {
            // Short options bundled (`-Df X`, `-fX`): what follows `f` in
            // the word, or the next word, is the file.
            let tail = &rest[pos + 1..];
            if tail.is_empty() {
                if let Some(f) = args.next() {
                    file = PathBuf::from(f);
                }
            } else {
                file = PathBuf::from(tail);
            }
        }
    }
    file
}

/// Rule A1: whether `running` (relative to Keepalived's working directory,
/// `cwd`) is `configured`: the same file on disk, or the same path.
pub fn same_file(running: &Path, cwd: Option<&Path>, configured: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let running = match cwd {
        Some(dir) if running.is_relative() => dir.join(running),
        _ => running.to_owned(),
    };
    match (std::fs::metadata(&running), std::fs::metadata(configured)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => running == configured,
    }
}

/// Rule A2: the first item this watchdog cannot reproduce, named with its
/// file and line.
pub fn unreproducible(items: &[Item]) -> Option<String> {
    for item in items {
        let first = item.words.first().map(String::as_str).unwrap_or_default();
        if first.starts_with('@') {
            return Some(format!(
                "{}: {first:?}: a conditional line (Keepalived's --config-id chooses it)",
                item.at
            ));
        }
        if let Some(w) = item.words.iter().find(|w| w.contains('$')) {
            return Some(format!(
                "{}: {w:?}: a $ variable (Keepalived substitutes it)",
                item.at
            ));
        }
        if first == "net_namespace" || first == "net_namespace_ipvs" {
            return Some(format!(
                "{}: {first}: Keepalived runs in another network namespace",
                item.at
            ));
        }
        if let Some(inner) = item.block.as_deref().and_then(unreproducible) {
            return Some(inner);
        }
    }
    None
}

/// The address of a virtual address as the dump formats it
/// ("10.0.0.5 dev eth0 scope global", "10.0.0.5/32 brd ...").
fn dumped_address(text: &str) -> Option<Ipv4Addr> {
    let first = text.split_whitespace().next()?;
    first.split('/').next()?.parse().ok()
}

/// Rule A4: whether the running Keepalived's instance (None: not in its
/// dump) matches `advert`; Err names the first field that differs.
pub fn check(advert: &Advert, running: Option<&Running>) -> Result<(), String> {
    let r = running.ok_or_else(|| {
        format!(
            "the running Keepalived has no vrrp_instance {:?}",
            advert.instance
        )
    })?;
    let differs = |field: &str, file: String, running: String| {
        Err(format!(
            "{field}: keepalived.conf has {file}, the running Keepalived {running}"
        ))
    };
    let shown = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    if r.vrid != Some(advert.vrid) {
        return differs(
            "virtual_router_id",
            advert.vrid.to_string(),
            shown(r.vrid.map(|v| v.to_string())),
        );
    }
    if r.interface.as_deref() != Some(advert.interface.as_str()) {
        return differs(
            "interface",
            advert.interface.clone(),
            shown(r.interface.clone()),
        );
    }
    let running_vips: Vec<Option<Ipv4Addr>> = r.vips.iter().map(|v| dumped_address(v)).collect();
    let file_vips: Vec<Option<Ipv4Addr>> = advert.addresses.iter().copied().map(Some).collect();
    if running_vips != file_vips {
        let list = |v: &[Option<Ipv4Addr>]| {
            let words: Vec<String> = v
                .iter()
                .map(|a| a.map_or("(not IPv4)".into(), |a| a.to_string()))
                .collect();
            format!("[{}]", words.join(", "))
        };
        return differs("virtual_ipaddress", list(&file_vips), list(&running_vips));
    }
    let (version, secs, auth) = match &advert.version {
        Version::V2 { advert_secs, auth } => (2u8, f64::from(*advert_secs), Some(auth)),
        Version::V3 { advert_centis } => (3u8, f64::from(*advert_centis) / 100.0, None),
    };
    if r.version != Some(version) {
        return differs(
            "version",
            version.to_string(),
            shown(r.version.map(|v| v.to_string())),
        );
    }
    if r.advert_int.is_none_or(|i| (i - secs).abs() > 0.005) {
        return differs(
            "advert_int",
            format!("{secs}"),
            shown(r.advert_int.map(|i| i.to_string())),
        );
    }
    if let Some(auth) = auth {
        let (file_type, file_pass) = match auth {
            Auth::None => (0u8, String::new()),
            Auth::Pass(data) => (
                1,
                String::from_utf8_lossy(data)
                    .trim_end_matches('\0')
                    .to_owned(),
            ),
        };
        let running_type = r.auth_type.unwrap_or(0);
        if running_type != file_type {
            return differs("auth_type", file_type.to_string(), running_type.to_string());
        }
        if file_type == 1 && r.auth_data.as_deref() != Some(file_pass.as_str()) {
            // The password itself is never written out.
            return Err(
                "auth_pass: keepalived.conf's differs from the running Keepalived's".into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::conf::parse_with;

    fn items(text: &str) -> Vec<Item> {
        let text = text.to_owned();
        parse_with(
            Path::new("/etc/keepalived/keepalived.conf"),
            &|_| Ok(text.clone()),
            &|_| Ok(vec![]),
        )
        .unwrap()
    }

    #[test]
    fn rule_a1_the_file_a_command_line_reads() {
        let rows: [(&[&str], &str); 9] = [
            (&["/usr/sbin/keepalived", "--dont-fork"], DEFAULT_CONF),
            (&["keepalived", "-f", "/etc/k/a.conf"], "/etc/k/a.conf"),
            (&["keepalived", "-f/etc/k/b.conf"], "/etc/k/b.conf"),
            (
                &["keepalived", "--use-file", "/etc/k/c.conf"],
                "/etc/k/c.conf",
            ),
            (&["keepalived", "--use-file=/etc/k/d.conf"], "/etc/k/d.conf"),
            (&["keepalived", "-Df", "/etc/k/e.conf"], "/etc/k/e.conf"),
            (&["keepalived", "-f", "x.conf", "-f", "y.conf"], "y.conf"),
            (&["keepalived", "-D", "-l"], DEFAULT_CONF),
            (
                &["keepalived", "-p", "/run/k.pid", "--", "-f", "z"],
                DEFAULT_CONF,
            ),
        ];
        for (args, want) in rows {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            assert_eq!(config_file_of(&args), PathBuf::from(want), "{args:?}");
        }
    }

    #[test]
    fn rule_a2_what_cannot_be_reproduced_is_named_with_its_line() {
        let rows = [
            ("vrrp_instance VI_1 {\n  virtual_router_id 51\n}\n", None),
            (
                "vrrp_instance VI_1 {\n  @node_a priority 150\n}\n",
                Some("keepalived.conf:2: \"@node_a\": a conditional line"),
            ),
            (
                "$IF=eth0\nvrrp_instance VI_1 {\n  interface $IF\n}\n",
                Some("keepalived.conf:1: \"$IF=eth0\": a $ variable"),
            ),
            (
                "global_defs {\n  net_namespace blue\n}\n",
                Some("keepalived.conf:2: net_namespace: Keepalived runs in another"),
            ),
        ];
        for (text, want) in rows {
            let got = unreproducible(&items(text));
            match want {
                None => assert_eq!(got, None, "{text}"),
                Some(w) => {
                    let g = got.unwrap_or_else(|| panic!("{text}: not refused"));
                    assert!(g.contains(w), "{text}: {g:?} does not contain {w:?}");
                }
            }
        }
    }

    const CONF: &str = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }\n  virtual_ipaddress {\n    10.0.0.100/32 dev eth0\n    10.0.0.101\n  }\n}\n";

    fn running() -> Running {
        Running {
            vrid: Some(51),
            interface: Some("eth0".into()),
            vips: vec![
                "10.0.0.100 dev eth0 scope global".into(),
                "10.0.0.101 dev eth0 scope global".into(),
            ],
            version: Some(2),
            advert_int: Some(1.0),
            auth_type: Some(1),
            auth_data: Some("s3cret".into()),
        }
    }

    #[test]
    fn rule_a4_the_dump_must_match_field_by_field() {
        let advert = Advert::from_items(&items(CONF), "VI_1").unwrap();
        type Edit = fn(&mut Running);
        let rows: [(&str, Edit, Option<&str>); 9] = [
            ("A4 all equal", |_| {}, None),
            (
                "A4 vrid",
                |r| r.vrid = Some(52),
                Some("virtual_router_id: keepalived.conf has 51, the running Keepalived 52"),
            ),
            (
                "A4 interface",
                |r| r.interface = Some("eth1".into()),
                Some("interface: keepalived.conf has eth0, the running Keepalived eth1"),
            ),
            (
                "A4 an address fewer",
                |r| {
                    r.vips.pop();
                },
                Some(
                    "virtual_ipaddress: keepalived.conf has [10.0.0.100, 10.0.0.101], the running Keepalived [10.0.0.100]",
                ),
            ),
            (
                "A4 addresses reordered",
                |r| r.vips.reverse(),
                Some("virtual_ipaddress"),
            ),
            (
                "A4 version",
                |r| r.version = Some(3),
                Some("version: keepalived.conf has 2"),
            ),
            (
                "A4 advert_int",
                |r| r.advert_int = Some(2.0),
                Some("advert_int: keepalived.conf has 1, the running Keepalived 2"),
            ),
            (
                "A4 auth_pass",
                |r| r.auth_data = Some("other".into()),
                Some("auth_pass: keepalived.conf's differs"),
            ),
            (
                "A4 auth_type",
                |r| r.auth_type = Some(0),
                Some("auth_type: keepalived.conf has 1"),
            ),
        ];
        for (case, edit, want) in rows {
            let mut r = running();
            edit(&mut r);
            let got = check(&advert, Some(&r));
            match want {
                None => assert_eq!(got, Ok(()), "{case}"),
                Some(w) => {
                    let e = got.expect_err(case);
                    assert!(e.contains(w), "{case}: {e:?} does not contain {w:?}");
                    assert!(!e.contains("s3cret"), "{case}: the password is shown: {e}");
                }
            }
        }
        let e = check(&advert, None).unwrap_err();
        assert!(e.contains("no vrrp_instance \"VI_1\""), "{e}");
    }
}
