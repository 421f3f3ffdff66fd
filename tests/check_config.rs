//! `vip-watchdog check-config --keepalived-config FILE`: the real binary on
//! keepalived.conf files with each mistake, golden-tested. The files are in
//! tests/golden/keepalived/; each FILE.conf's expected output (the part
//! after the watchdog's own config) and exit status are in FILE.out. Set
//! VIP_WATCHDOG_UPDATE_GOLDEN=1 to rewrite them after a deliberate change.

use std::path::Path;
use std::process::Command;

const CASES: [(&str, i32); 7] = [
    ("agrees", 0),
    ("conditional", 0),
    ("fifo-differs", 1),
    ("no-fifo", 1),
    ("instance-missing", 1),
    ("addresses-missing", 1),
    ("broken", 1),
];

#[test]
fn keepalived_conf_mistakes_are_named_one_line_each() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/keepalived");
    for (case, code) in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_vip-watchdog"))
            .current_dir(&dir)
            .args([
                "check-config",
                "--config",
                "watchdog.toml",
                "--keepalived-config",
            ])
            .arg(format!("{case}.conf"))
            .env_remove("VIP_WATCHDOG_CONFIG")
            .output()
            .expect("vip-watchdog runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (_, keepalived) = stdout
            .split_once("watchdog.toml: OK\n")
            .unwrap_or_else(|| panic!("{case}: the watchdog's config is valid: {stdout}"));
        let got = format!("exit {}\n{keepalived}", out.status.code().unwrap_or(-1));
        let golden = dir.join(format!("{case}.out"));
        if std::env::var_os("VIP_WATCHDOG_UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &got).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (VIP_WATCHDOG_UPDATE_GOLDEN=1 writes it)",
                golden.display()
            )
        });
        assert_eq!(got, want, "{case}");
        assert_eq!(out.status.code(), Some(code), "{case}: {got}");
    }
}
