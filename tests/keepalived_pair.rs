//! The watchdog against a real Keepalived pair with real HAProxy.
//! See `common/mod.rs` for the lab. Needs root; `./scripts/test.sh` installs
//! the rest.

mod common;

use common::{FAILOVER, Lab, SETTLE, is, metric};
use nix::sys::signal::Signal;

/// Watchdogs first (they create the FIFOs), then HAProxy and Keepalived;
/// returns once `a` is MASTER and `b` BACKUP as seen by their watchdogs.
fn settled_pair(lab: &mut Lab) -> (common::Watchdog, common::Watchdog) {
    let wa = lab.a.start_watchdog(true);
    let wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", SETTLE);
    wb.wait_state("backup", SETTLE);
    (wa, wb)
}

#[test]
fn initial_roles_then_haproxy_failure_swaps_them() {
    let mut lab = Lab::new();
    let (wa, wb) = settled_pair(&mut lab);

    let a = wa.instance();
    assert_eq!(
        (a["state"].as_str(), a["source"].as_str()),
        (Some("master"), Some("fifo")),
        "{a}"
    );
    assert_eq!(a["priority"], 150);
    assert!(a["since"].is_string(), "{a}");
    let b = wb.instance();
    assert_eq!(
        (b["state"].as_str(), b["source"].as_str()),
        (Some("backup"), Some("fifo")),
        "{b}"
    );
    let status = wa.status();
    assert_eq!(status["keepalived"]["running"], true, "{status}");
    assert_eq!(status["node"], "a");
    assert_eq!(status["pair"], "lab");
    wa.wait_for("a's probe up", SETTLE, |e| {
        is(e, "probe_changed") && e["to"] == "up"
    });
    assert_eq!(wa.healthz().trim(), "ok");

    // HAProxy dies on the MASTER: Keepalived's vrrp_script faults it, the
    // watchdog's own probe sees it too, and the peer takes over.
    wa.forget_past();
    wb.forget_past();
    // b may have been MASTER for a moment at start-up (a's check fails
    // until its HAProxy listens): count the failover's own transition.
    let masters = |m: &str| {
        metric(
            m,
            "vip_watchdog_vrrp_transitions_total",
            &[("vrrp_instance", "VI_1"), ("state", "master")],
        )
        .expect("transition counter")
    };
    let before = masters(&wb.metrics());
    lab.a.kill_haproxy();
    wa.wait_for("a's probe down", FAILOVER, |e| {
        is(e, "probe_changed") && e["to"] == "down"
    });
    wa.wait_state("fault", FAILOVER);
    wb.wait_state("master", FAILOVER);

    let m = wb.metrics();
    let state = |s: &str| {
        metric(
            &m,
            "vip_watchdog_vrrp_state",
            &[
                ("vrrp_instance", "VI_1"),
                ("state", s),
                ("node", "b"),
                ("pair", "lab"),
            ],
        )
    };
    assert_eq!(
        (state("master"), state("backup")),
        (Some(1.0), Some(0.0)),
        "{m}"
    );
    assert_eq!(
        masters(&m),
        before + 1.0,
        "one MASTER transition for the failover"
    );
    let ma = wa.metrics();
    assert_eq!(metric(&ma, "vip_watchdog_probe_up", &[]), Some(0.0));
    assert!(
        metric(
            &ma,
            "vip_watchdog_probe_failures_total",
            &[("reason", "unreachable")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        metric(
            &ma,
            "vip_watchdog_vrrp_state",
            &[("vrrp_instance", "VI_1"), ("state", "fault")]
        ),
        Some(1.0)
    );
    let decisions = wa.status()["decisions"].to_string();
    assert!(decisions.contains("keepalived wrote FAULT"), "{decisions}");
}

#[test]
fn live_metrics_pass_promtool_and_garbage_lines_are_counted_and_ignored() {
    let mut lab = Lab::new();
    let (wa, _wb) = settled_pair(&mut lab);

    wa.forget_past();
    lab.a.write_fifo("garbage\nINSTANCE \"VI_1\" BACKUP 999\n");
    let first = wa.wait_for("a rejected line", FAILOVER, |e| is(e, "fifo_line_rejected"));
    assert_eq!(first["line"], "garbage");
    let second = wa.wait_for("a second rejected line", FAILOVER, |e| {
        is(e, "fifo_line_rejected")
    });
    assert_eq!(second["line"], "INSTANCE \"VI_1\" BACKUP 999");
    let m = wa.metrics();
    assert_eq!(
        metric(
            &m,
            "vip_watchdog_fifo_lines_rejected_total",
            &[("reason", "unknown_type")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "vip_watchdog_fifo_lines_rejected_total",
            &[("reason", "bad_priority")]
        ),
        Some(1.0)
    );
    // The malformed BACKUP line changed nothing.
    assert_eq!(wa.instance()["state"], "master");

    common::promtool_check_metrics(&m);
}

#[test]
fn sigterm_to_keepalived_on_the_master_is_seen_on_both_nodes() {
    let mut lab = Lab::new();
    let (wa, wb) = settled_pair(&mut lab);

    wa.forget_past();
    wb.forget_past();
    lab.a.signal_keepalived(Signal::SIGTERM);
    let stop = wa.wait_state("stop", FAILOVER);
    assert_eq!(
        stop["source"], "fifo",
        "Keepalived says STOP itself: {stop}"
    );
    wb.wait_state("master", FAILOVER);
    wa.wait_for("a's keepalived gone", FAILOVER, |e| {
        is(e, "keepalived_gone")
    });
    lab.a.reap_keepalived();
    let status = wa.status();
    assert_eq!(status["keepalived"]["running"], false, "{status}");
    // Keepalived sent its own priority-0 advert; the watchdog sent none
    // (the instance was STOP, not MASTER, when the process went).
    assert_eq!(wa.releases("sent"), Some(0.0));
    assert_eq!(
        lab.b.keepalived_stat("pri_zero_rcvd"),
        1,
        "Keepalived's own"
    );
}

#[test]
fn crashed_keepalived_on_the_master_is_noticed_although_its_vip_stays() {
    let mut lab = Lab::new();
    let (wa, wb) = settled_pair(&mut lab);
    assert!(lab.a.has_vip(), "the MASTER holds the VIP");

    // A real crash: the VRRP process first, then the parent. Nothing is
    // written to the FIFO.
    wa.forget_past();
    wb.forget_past();
    let vrrp = nix::unistd::Pid::from_raw(lab.a.vrrp_pid());
    nix::sys::signal::kill(vrrp, Signal::SIGKILL).expect("kill the VRRP child");
    lab.a.signal_keepalived(Signal::SIGKILL);
    lab.a.reap_keepalived();

    let stop = wa.wait_state("stop", FAILOVER);
    assert_eq!(stop["source"], "process_watch", "{stop}");
    wb.wait_state("master", FAILOVER);
    let a = wa.instance();
    assert_eq!(
        (a["state"].as_str(), a["source"].as_str()),
        (Some("stop"), Some("process_watch")),
        "{a}"
    );
    assert!(
        a["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not running") || r.contains("VRRP process")),
        "{a}"
    );
    assert_eq!(wa.status()["keepalived"]["running"], false);
    let m = wa.metrics();
    assert_eq!(metric(&m, "vip_watchdog_keepalived_up", &[]), Some(0.0));
    assert_eq!(
        metric(&m, "vip_watchdog_keepalived_start_time_seconds", &[]),
        None,
        "absent, not 0, while Keepalived is down"
    );
    // Why the addresses alone cannot be trusted: the dead MASTER's VIP stays.
    assert!(
        lab.a.has_vip(),
        "a crashed keepalived leaves its VIP on the interface"
    );
    // release_on_crash (on by default): a's watchdog sent the priority-0
    // advert the crashed Keepalived could not, and b's Keepalived accepted
    // it (it counts a priority-0 advert only after checking its version,
    // VRID, interval, authentication and address list).
    let released = wa.wait_for("a's release", FAILOVER, |e| {
        is(e, "release_sent") || is(e, "release_failed")
    });
    assert_eq!(
        released["advert"],
        format!(
            "VRRPv2 VRID 51 on eth0 to {} from {}",
            lab.b.addr, lab.a.addr
        ),
        "{released}"
    );
    assert_eq!(
        (wa.releases("sent"), wa.releases("failed")),
        (Some(1.0), Some(0.0))
    );
    assert_eq!(lab.b.keepalived_stat("pri_zero_rcvd"), 1);
}

#[test]
fn a_restarted_watchdog_knows_the_present_state_and_ignores_buffered_lines() {
    let mut lab = Lab::new();
    let (wa, wb) = settled_pair(&mut lab);

    // Clean shutdown on SIGTERM.
    let code = wa.stop();
    assert!(
        code.success(),
        "SIGTERM ends the watchdog cleanly: {code:?}"
    );
    let _ = wb.stop();

    // While no watchdog reads, lines pile up in the FIFO. They are the past.
    lab.a
        .write_fifo("INSTANCE \"VI_1\" BACKUP 150\nINSTANCE \"VI_1\" FAULT 150\n");

    let wa = lab.a.start_watchdog(true);
    wa.wait_learned("master", "json_dump");
    let a = wa.instance();
    assert_eq!(
        (a["state"].as_str(), a["source"].as_str()),
        (Some("master"), Some("json_dump")),
        "{a}"
    );
    assert_eq!(a["priority"], 150);
    assert!(a["since"].is_string(), "the dump's last_transition: {a}");
    assert_eq!(
        metric(&wa.metrics(), "vip_watchdog_fifo_lines_stale_total", &[]),
        Some(2.0)
    );

    let wb = lab.b.start_watchdog(true);
    wb.wait_learned("backup", "json_dump");

    // Without the JSON dump, the VIP's presence settles MASTER; its absence
    // settles nothing (BACKUP and FAULT look alike) and stays unknown.
    drop((wa, wb));
    let wa = lab.a.start_watchdog(false);
    wa.wait_learned("master", "addresses");
    let wb = lab.b.start_watchdog(false);
    wb.wait_learned("unknown", "addresses");

    // Then the FIFO takes over as events arrive: a failover is seen at once.
    wa.forget_past();
    wb.forget_past();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    wa.wait_state("fault", FAILOVER);
}

/// The watchdog as `nobody`: it creates its FIFO in a directory it was given,
/// Keepalived (root) writes to it, and where it may not signal Keepalived it
/// says so and settles the start-up state from the addresses instead.
#[test]
fn an_unprivileged_watchdog_follows_keepalived() {
    const NOBODY: u32 = 65534;
    let mut lab = Lab::new();
    lab.a.give_fifo_dir_to(NOBODY);
    let wa = lab.a.start_watchdog_as(true, Some(NOBODY));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", wa.child.id())).expect("status");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("65534")),
        "{status}"
    );
    let fifo = std::fs::metadata(lab.a.fifo()).expect("the watchdog created the FIFO");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&fifo), NOBODY);
    let wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", SETTLE);
    wb.wait_state("backup", SETTLE);

    // Restarted while Keepalived runs: no right to signal it.
    drop(wa);
    let wa = lab.a.start_watchdog_as(true, Some(NOBODY));
    let why = wa.wait_for("the JSON dump refusal", SETTLE, |e| {
        is(e, "startup_state_not_from_dump")
    });
    assert!(
        why["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not permitted to signal")),
        "{why}"
    );
    wa.wait_learned("master", "addresses");

    wa.forget_past();
    lab.a.kill_haproxy();
    wa.wait_state("fault", FAILOVER);
    wb.wait_state("master", FAILOVER);
}

fn armed(w: &common::Watchdog) -> Option<f64> {
    metric(
        &w.metrics(),
        "vip_watchdog_vrrp_release_armed",
        &[("vrrp_instance", "VI_1")],
    )
}

/// keepalived.conf edited but Keepalived not reloaded (armed.rs, rule A4):
/// the running Keepalived's dump no longer matches the file, so the
/// release disarms, and a crash while MASTER sends no advert (b's
/// Keepalived counts none) and says why; b still takes over on
/// Keepalived's own detection.
#[test]
fn a_crash_after_an_edit_not_reloaded_sends_no_release() {
    let mut lab = Lab::new();
    let (wa, wb) = settled_pair(&mut lab);
    wa.wait_status("a's release armed", SETTLE, |_| armed(&wa) == Some(1.0));

    let conf = lab.a.dir.join("keepalived.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("virtual_router_id 51"), "{text}");
    std::fs::write(
        &conf,
        text.replace("virtual_router_id 51", "virtual_router_id 52"),
    )
    .unwrap();
    wa.wait_status("a's release disarmed", SETTLE, |_| armed(&wa) == Some(0.0));

    let vrrp = nix::unistd::Pid::from_raw(lab.a.vrrp_pid());
    nix::sys::signal::kill(vrrp, Signal::SIGKILL).expect("kill the VRRP child");
    lab.a.signal_keepalived(Signal::SIGKILL);
    lab.a.reap_keepalived();
    wb.wait_state("master", FAILOVER);
    wa.wait_status("a's release refused", FAILOVER, |_| {
        wa.releases("failed") == Some(1.0)
    });
    assert_eq!(wa.releases("sent"), Some(0.0));
    assert_eq!(lab.b.keepalived_stat("pri_zero_rcvd"), 0);
    let refused = wa.logged(|e| {
        is(e, "release_failed")
            && e["error"].as_str().is_some_and(|x| {
                x.contains("virtual_router_id: keepalived.conf has 52, the running Keepalived 51")
            })
    });
    assert_eq!(
        refused.len(),
        1,
        "the refusal names the field: {}",
        wa.log_text()
    );
}

/// `check-config --host` on the lab's node a (as root): Keepalived runs
/// and reads the config_file, its FIFO is the watchdog's, the capabilities
/// are held, and the dump answers with the present state. Pointed at
/// another copy of keepalived.conf, it names the mismatch and exits 1.
#[test]
fn check_config_host_checks_the_running_keepalived() {
    let mut lab = Lab::new();
    let (wa, _wb) = settled_pair(&mut lab);
    let config = lab.a.watchdog_config(true);
    let run = |config: &std::path::Path| {
        let out = common::in_ns(&lab.a.ns)
            .arg(common::watchdog_bin())
            .args(["check-config", "--host", "--config"])
            .arg(config)
            .arg("--keepalived-config")
            .arg(lab.a.dir.join("keepalived.conf"))
            .output()
            .expect("check-config runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run(&config);
    assert_eq!(code, Some(0), "{text}");
    for want in [
        "host: ok: Keepalived runs: main pid",
        "host: ok: the running Keepalived's notify FIFO is",
        "host: ok: CAP_NET_RAW held",
        "host: ok: the JSON dump",
        "VI_1 master",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains("PROBLEM"), "{text}");

    let copy = lab.a.dir.join("copy.conf");
    std::fs::copy(lab.a.dir.join("keepalived.conf"), &copy).unwrap();
    let wrong = lab.a.dir.join("wrong-config-file.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    let original = lab.a.dir.join("keepalived.conf").display().to_string();
    assert!(toml.contains(&original), "{toml}");
    std::fs::write(&wrong, toml.replace(&original, &copy.display().to_string())).unwrap();
    let (code, text) = run(&wrong);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("host: PROBLEM: Keepalived reads") && text.contains("copy.conf"),
        "{text}"
    );
    drop(wa);
}
