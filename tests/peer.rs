//! The peer channel on real parts: a Keepalived pair with HAProxy, the
//! patched EC2 emulator (moves counted there), and the two watchdogs in
//! `own` mode at the shipped defaults (min_master_age 3 s, peer heartbeat
//! 1 s, max_age 3 s), talking over `[peer]` on the VRRP link's addresses.

mod common;

use std::time::{Duration, SystemTime};

use common::{FAILOVER, Lab, SETTLE, Watchdog, is, metric};

/// How long VRRP stays blocked in the split-brain test.
const SPLIT_FOR: Duration = Duration::from_secs(60);

fn pair(lab: &mut Lab, same_secret: bool) -> (Watchdog, Watchdog) {
    lab.add_cloud();
    lab.set_vip("own", false);
    lab.set_notify("a", None);
    lab.set_notify("b", None);
    lab.add_peer_channel(same_secret);
    lab.start_pair()
}

/// The pair in heal mode at the shipped defaults (but for the lab's
/// overrides), each node's notify script "ok" through the wrapper, and the
/// peer channel.
fn wrapped_pair(lab: &mut Lab) -> (Watchdog, Watchdog) {
    lab.add_cloud();
    lab.set_vip("heal", false);
    lab.set_notify_wrapped("a", None, "ok");
    lab.set_notify_wrapped("b", None, "ok");
    lab.add_peer_channel(true);
    lab.start_pair()
}

/// Waits for the wrapper's report of a notify run, however it ended.
fn notify_run(w: &Watchdog, what: &str) -> serde_json::Value {
    w.wait_for(what, FAILOVER, |e| {
        ["notify_failed", "notify_skipped", "notify_succeeded"]
            .iter()
            .any(|n| is(e, n))
    })
}

fn peer_up(w: &Watchdog) -> Option<f64> {
    let m = w.metrics();
    m.lines()
        .find(|l| l.starts_with("vip_watchdog_peer_up{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn refused(w: &Watchdog, result: &str) -> f64 {
    metric(
        &w.metrics(),
        "vip_watchdog_peer_messages_total",
        &[("result", result)],
    )
    .unwrap_or(0.0)
}

fn split_brain(w: &Watchdog) -> Option<f64> {
    metric(
        &w.metrics(),
        "vip_watchdog_peer_split_brain",
        &[("vrrp_instance", "VI_1")],
    )
}

/// Rule 11: HAProxy stops on a, a's Keepalived goes FAULT, and a's
/// watchdog says so; b claims as soon as its own rules hold, before
/// min_master_age (without a peer it waits for it: tests/eip.rs).
#[test]
fn a_new_master_claims_at_once_when_its_peer_says_it_is_not_master() {
    let mut lab = Lab::new();
    let (wa, wb) = pair(&mut lab, true);
    wb.wait_status("b hears a", SETTLE, |_| peer_up(&wb) == Some(1.0));
    assert_eq!(peer_up(&wa), Some(1.0), "a hears b");
    let observer = lab.start_observer(60);
    assert_eq!(
        common::next_move(&observer, FAILOVER).1,
        lab.eni("a"),
        "where it starts"
    );
    wa.forget_past();
    wb.forget_past();
    let fault = SystemTime::now();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    let arrived = wb.wait_for("b sees the EIP here", FAILOVER, |e| is(e, "vip_arrived"));
    let (moved_at, to) = common::next_move(&observer, FAILOVER);
    assert_eq!(to, lab.eni("b"));
    let latency = arrived["latency_ms"].as_u64().expect("latency");
    let outside = (moved_at
        - fault
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64())
        * 1000.0;
    eprintln!(
        "fast path: MASTER line to EIP here {latency} ms (watchdog); fault to EIP moved {outside:.0} ms (observer)"
    );
    if std::env::var_os("VIP_WATCHDOG_SHOW_LOG").is_some() {
        eprintln!("{}", wb.log_text());
    }
    assert!(
        latency < 3_000,
        "claimed before min_master_age (3 s), on a's report: {arrived}"
    );
    assert_eq!(arrived["moved_by"], "watchdog", "{arrived}");
    assert_eq!(lab.eip_on(), "b");
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "a, in FAULT, never acts");
    // The peer channel's families, in docs/metrics.md and used by the alerts.
    let m = wb.metrics();
    for family in [
        "vip_watchdog_peer_up",
        "vip_watchdog_peer_messages_total",
        "vip_watchdog_peer_split_brain",
    ] {
        assert!(m.contains(&format!("# TYPE {family} ")), "{family}");
    }
    common::promtool_check_metrics(&m);
    common::metrics_doc_lists_exactly(&m);
    common::alerts_and_dashboards_use_only(&m);
}

/// Rule 10: VRRP blocked both ways for SPLIT_FOR with the channel open.
/// b becomes MASTER too; a, the incumbent the cloud shows, keeps the EIP,
/// and b does not claim. Both export the split brain while it lasts and
/// log it once; the emulator sees no move.
#[test]
fn a_split_brain_with_the_channel_open_moves_nothing() {
    let mut lab = Lab::new();
    let (wa, wb) = pair(&mut lab, true);
    wb.wait_status("b hears a", SETTLE, |_| peer_up(&wb) == Some(1.0));
    lab.reset_api_calls();
    wa.forget_past();
    wb.forget_past();
    lab.a.block_vrrp(true);
    lab.b.block_vrrp(true);
    wb.wait_state("master", FAILOVER);
    let verdict = wb.wait_status("b's split-brain verdict", FAILOVER, |s| {
        s["vips"][0]["verdict"] == "hold" && split_brain(&wb) == Some(1.0)
    });
    eprintln!("b: {}", verdict["vips"][0]);
    for w in [&wa, &wb] {
        w.wait_status("split brain on both sides", FAILOVER, |_| {
            split_brain(w) == Some(1.0)
        });
    }
    // Held for SPLIT_FOR, far past b's min_master_age: polled, bounded.
    let since = std::time::Instant::now();
    wb.wait_status("the split brain to last", SPLIT_FOR + SETTLE, |s| {
        since.elapsed() >= SPLIT_FOR && s["instances"][0]["state"] == "master"
    });
    assert_eq!(lab.eip_on(), "a", "the incumbent kept it");
    lab.a.block_vrrp(false);
    lab.b.block_vrrp(false);
    wb.wait_state("backup", FAILOVER);
    for w in [&wa, &wb] {
        w.wait_status("no split brain", FAILOVER, |_| split_brain(w) == Some(0.0));
        let log = w.log_text();
        let episodes = w.logged(|e| is(e, "split_brain")).len();
        assert_eq!(episodes, 1, "one line per episode: {log}");
        assert_eq!(w.logged(|e| is(e, "split_brain_over")).len(), 1, "{log}");
    }
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "{}", lab.mutating_calls());
    assert_eq!(lab.calls_by("watchdog", "b"), 0, "{}", lab.mutating_calls());
    assert_eq!(lab.eip_on(), "a");
}

/// A peer with another secret: every message refused as unauthenticated
/// and counted, the peer never fresh, and the rules as without a peer: b
/// waits min_master_age after a's failure.
#[test]
fn a_wrong_key_is_refused_counted_and_changes_nothing() {
    let mut lab = Lab::new();
    let (wa, wb) = pair(&mut lab, false);
    for w in [&wa, &wb] {
        w.wait_status("refusals counted", SETTLE, |_| {
            refused(w, "unauthenticated") >= 2.0
        });
        assert_eq!(peer_up(w), Some(0.0));
        assert_eq!(refused(w, "accepted"), 0.0);
    }
    wb.forget_past();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    let arrived = wb.wait_for("b sees the EIP here", FAILOVER, |e| is(e, "vip_arrived"));
    let latency = arrived["latency_ms"].as_u64().expect("latency");
    assert!(latency >= 3_000, "rule 4 as without a peer: {arrived}");
    assert_eq!(lab.eip_on(), "b");
}

/// Replayed and stale messages, sent by hand with the right key.
#[test]
fn replayed_and_stale_messages_are_refused() {
    use vip_watchdog::peer::message;
    let mut lab = Lab::new();
    let (wa, _wb) = pair(&mut lab, true);
    wa.wait_status("a hears b", SETTLE, |_| peer_up(&wa) == Some(1.0));
    let key = std::fs::read(lab.a.dir.join("peer.key")).unwrap();
    let key = &key[..key.len() - 1];
    let report = serde_json::json!({
        "node": "b", "pair": "lab", "boot_id": "by-hand", "seq": 1,
        "keepalived_running": true, "probe": "up",
        "instances": [{"name": "VI_1", "state": "backup", "priority": 100, "since": null}],
        "vips": [], "eni": null
    })
    .to_string();
    // Signed with `key`; the answer's body and status code.
    let post = |key: &[u8], ts: u64, nonce: &str| -> String {
        let sig = message::sign(key, ts, nonce, report.as_bytes());
        let out = common::in_ns(&lab.b.ns)
            .args([
                "curl",
                "-sS",
                "--max-time",
                "5",
                "-w",
                " %{http_code}",
                "-X",
                "POST",
            ])
            .args(["-H", &format!("{}: {ts}", message::TIMESTAMP)])
            .args(["-H", &format!("{}: {nonce}", message::NONCE)])
            .args(["-H", &format!("{}: {sig}", message::SIGNATURE)])
            .args(["--data-binary", &report])
            .arg(format!("http://{}:9843{}", lab.a.addr, message::PATH))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let before = refused(&wa, "accepted");
    assert!(
        post(key, now, "hand-1").ends_with("202"),
        "the first is taken"
    );
    assert!(
        post(key, now, "hand-1").contains("replayed"),
        "the same again"
    );
    assert!(
        post(key, now - 60_000, "hand-2").contains("stale"),
        "a minute old"
    );
    assert!(
        post(b"not the key at all, but 32 bytes", now, "hand-3").contains("unauthenticated"),
        "another key"
    );
    assert!(refused(&wa, "accepted") > before);
    for r in ["replayed", "stale", "unauthenticated"] {
        assert!(refused(&wa, r) >= 1.0, "{r} counted");
    }
    assert_eq!(lab.eip_on(), "a", "nothing moved");
}

/// Heal mode with the wrapped notify script: in a split brain the wrapper
/// on b asks its watchdog, which says the peer is a healthy MASTER the
/// cloud shows holding the EIP: the run is skipped and counted, nothing
/// moves. With b's watchdog stopped, the next split brain runs the script
/// as before (and it moves the EIP, as a notify script does).
#[test]
fn in_heal_mode_the_wrapper_skips_the_steal_and_runs_without_its_watchdog() {
    let mut lab = Lab::new();
    let (wa, wb) = wrapped_pair(&mut lab);
    wb.wait_status("b hears a, and sees the EIP on a", SETTLE, |s| {
        s["peer"]["fresh"] == true && s["vips"][0]["cloud"]["where"] == "elsewhere"
    });
    wb.forget_past();
    lab.a.block_vrrp(true);
    lab.b.block_vrrp(true);
    wb.wait_state("master", FAILOVER);
    let skipped = wb.wait_for("the wrapper's skip", FAILOVER, |e| is(e, "notify_skipped"));
    eprintln!("b: {skipped}");
    assert_eq!(
        metric(
            &wb.metrics(),
            "vip_watchdog_notify_runs_total",
            &[("outcome", "skipped")]
        ),
        Some(1.0)
    );
    assert_eq!(lab.eip_on(), "a", "no steal");
    lab.a.block_vrrp(false);
    lab.b.block_vrrp(false);
    wb.wait_state("backup", FAILOVER);
    assert_eq!(lab.eip_on(), "a");
    assert_eq!(
        lab.calls_by("watchdog", "a") + lab.calls_by("watchdog", "b"),
        0
    );

    // Without b's watchdog the wrapper gets no answer and runs the script.
    wb.stop();
    let observer = lab.start_observer(60);
    assert_eq!(
        common::next_move(&observer, FAILOVER).1,
        lab.eni("a"),
        "where it starts"
    );
    lab.a.block_vrrp(true);
    lab.b.block_vrrp(true);
    let (_, to) = common::next_move(&observer, FAILOVER);
    assert_eq!(to, lab.eni("b"), "the script ran as it always did");
    lab.a.block_vrrp(false);
    lab.b.block_vrrp(false);
    drop(wa);
}

/// keepalived #2231 with the channel: b boots deaf to VRRP and is MASTER
/// for a while, with min_master_age at its minimum (1 s), while a is a
/// healthy MASTER that the cloud shows holding the EIP and says so. b's
/// watchdog holds (rule 10): no call, no move. Its twin without a peer
/// (tests/eip.rs) has the EIP stolen by a notify script and taken back.
#[test]
fn a_backup_that_boots_master_for_a_moment_moves_nothing() {
    let mut lab = Lab::new();
    // The smallest min_master_age the config takes: the rule that would
    // otherwise catch a brief MASTER is at its weakest.
    lab.vip_overrides.push(("min_master_age", "\"1s\"".into()));
    let (wa, wb) = pair(&mut lab, true);
    boot_b_deaf(&mut lab, &wb);
    assert_eq!(lab.eip_on(), "a");
    let calls = lab.mutating_calls();
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "{calls}");
    assert_eq!(lab.calls_by("watchdog", "b"), 0, "{calls}");
    assert_eq!(wa.instance()["state"], "master", "a never left MASTER");
}

/// The same brief MASTER at boot in heal mode, with the notify script run
/// through the wrapper: the wrapper asks b's watchdog, the run is skipped,
/// and nothing at all moves the EIP.
#[test]
fn in_heal_mode_a_brief_master_at_boot_runs_no_script() {
    let mut lab = Lab::new();
    lab.vip_overrides.push(("min_master_age", "\"1s\"".into()));
    let (wa, wb) = wrapped_pair(&mut lab);
    // a's own notify run at its first MASTER (the EIP is already on a) must
    // be over before the calls are counted: on a loaded machine its
    // associate could land after boot_b_deaf resets the count.
    notify_run(&wa, "a's notify run at start");
    boot_b_deaf(&mut lab, &wb);
    assert!(
        !wb.logged(|e| is(e, "notify_skipped")).is_empty(),
        "{}",
        wb.log_text()
    );
    assert_eq!(lab.eip_on(), "a");
    let calls = lab.mutating_calls();
    assert_eq!(
        calls.as_object().map_or(0, |c| c
            .values()
            .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
            .count()),
        0,
        "no mutating call by anyone: {calls}"
    );
}

/// b's Keepalived restarted deaf to VRRP: MASTER for 3 s (past the 1 s
/// min_master_age) while a is a healthy MASTER holding the EIP; then VRRP
/// again and b BACKUP. Returns once b is BACKUP again.
fn boot_b_deaf(lab: &mut Lab, wb: &Watchdog) {
    wb.wait_status("b hears a, and sees the EIP on a", SETTLE, |s| {
        s["peer"]["fresh"] == true && s["vips"][0]["cloud"]["where"] == "elsewhere"
    });
    lab.reset_api_calls();
    lab.b.signal_keepalived(nix::sys::signal::Signal::SIGTERM);
    wb.wait_state("stop", FAILOVER);
    lab.b.reap_keepalived();
    lab.b.block_vrrp(true);
    wb.forget_past();
    lab.b.start_keepalived();
    wb.wait_state("master", SETTLE);
    wb.wait_status("b holds on a's report", FAILOVER, |s| {
        s["vips"][0]["verdict"] == "hold" && split_brain(wb) == Some(1.0)
    });
    let since = std::time::Instant::now();
    wb.wait_status("b MASTER for 3 s", FAILOVER, |s| {
        since.elapsed() >= Duration::from_secs(3) && s["instances"][0]["state"] == "master"
    });
    lab.b.block_vrrp(false);
    wb.wait_state("backup", FAILOVER);
}

/// VRRP and the channel both blocked for SPLIT_FOR: each watchdog's peer
/// goes silent, and the rules apply as without a peer: the EIP may move,
/// but only as damping allows (per node: the first take-back of a
/// mastership is free, then at most max_claims (3) counted claims per
/// claim_window, with back-off), and the peer_up gauge says the peer is
/// silent.
#[test]
fn a_split_brain_with_the_channel_blocked_too_moves_within_the_damping_bound() {
    let mut lab = Lab::new();
    let (wa, wb) = pair(&mut lab, true);
    wb.wait_status("b hears a", SETTLE, |_| peer_up(&wb) == Some(1.0));
    let observer = lab.start_observer(SPLIT_FOR.as_secs() as u32 + 120);
    assert_eq!(common::next_move(&observer, FAILOVER).1, lab.eni("a"));
    for n in [&lab.a, &lab.b] {
        n.block_vrrp(true);
        n.block_peer(true);
    }
    wb.wait_state("master", FAILOVER);
    for w in [&wa, &wb] {
        w.wait_status("the peer silent", FAILOVER, |_| peer_up(w) == Some(0.0));
    }
    let since = std::time::Instant::now();
    wb.wait_status("the cut to last", SPLIT_FOR + SETTLE, |_| {
        since.elapsed() >= SPLIT_FOR
    });
    for n in [&lab.a, &lab.b] {
        n.block_vrrp(false);
        n.block_peer(false);
    }
    wb.wait_state("backup", FAILOVER);
    let mut moves = vec![];
    while let Ok(line) = observer.recv_timeout(Duration::from_millis(10)) {
        moves.push(line);
    }
    eprintln!("moves during the cut: {moves:?}");
    // Per node: one free take-back (rule 8) plus max_claims counted ones.
    let bound = 2 * (1 + 3);
    assert!(
        moves.len() <= bound,
        "{} moves > {bound}: {moves:?}",
        moves.len()
    );
    for w in [&wa, &wb] {
        w.wait_status("the peer back", FAILOVER, |_| peer_up(w) == Some(1.0));
    }
}

/// The channel cut, then HAProxy stopped on a: b becomes MASTER while it
/// still holds a's last report, fresh but sent before (a healthy MASTER
/// holding the EIP). That report came before b's MASTER line, so it is no
/// evidence of a split brain: b's notify gate waits a moment for a newer
/// one, none comes, and b's script runs at once (not after grace, as when
/// the old report decided). In heal mode at the shipped defaults.
#[test]
fn a_peer_report_older_than_this_mastership_does_not_skip_the_script() {
    let mut lab = Lab::new();
    let (wa, wb) = wrapped_pair(&mut lab);
    notify_run(&wa, "a's notify run at start");
    wb.wait_status("b hears a, a healthy MASTER", SETTLE, |s| {
        s["peer"]["fresh"] == true && s["vips"][0]["cloud"]["where"] == "elsewhere"
    });
    let observer = lab.start_observer(300);
    assert_eq!(common::next_move(&observer, FAILOVER).1, lab.eni("a"));
    wb.forget_past();
    lab.a.block_peer(true);
    lab.b.block_peer(true);
    lab.a.kill_haproxy();
    let master = wb.wait_state("master", FAILOVER);
    let run = notify_run(&wb, "b's notify run");
    assert!(is(&run, "notify_succeeded"), "b's script ran: {run}");
    let (moved_at, eni) = common::next_move(&observer, FAILOVER);
    assert_eq!(eni, lab.eni("b"));
    let after = moved_at - common::unix(master["timestamp"].as_str().expect("timestamp"));
    println!("the EIP moved {after:.2} s after b's MASTER line");
    assert!(
        after < 10.0,
        "moved by b's script {after:.2} s after its MASTER line, not after grace (10 s)"
    );
    assert_eq!(lab.calls_by("watchdog", "b"), 0, "{}", lab.mutating_calls());
}

/// Rule 11 for a private IP VIP (`kind = "private_ip"`): the same fast
/// path as for the EIP. HAProxy stops on a, a's watchdog reports FAULT,
/// and b assigns the private IP to its ENI before min_master_age, once.
#[test]
fn a_private_ip_vip_takes_the_fast_path_on_its_peer_s_word() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_private_ip_vip("own");
    lab.set_notify("a", None);
    lab.set_notify("b", None);
    lab.add_peer_channel(true);
    let (wa, wb) = lab.start_pair();
    wb.wait_status("b hears a", SETTLE, |_| peer_up(&wb) == Some(1.0));
    assert_eq!(lab.private_ip_on(), "a", "where it starts");
    wa.forget_past();
    wb.forget_past();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    let arrived = wb.wait_for("b sees the private IP here", FAILOVER, |e| {
        is(e, "vip_arrived")
    });
    let latency = arrived["latency_ms"].as_u64().expect("latency");
    assert!(
        latency < 3_000,
        "claimed before min_master_age (3 s), on a's report: {arrived}"
    );
    assert_eq!(arrived["moved_by"], "watchdog", "{arrived}");
    assert_eq!(lab.private_ip_on(), "b");
    let calls = lab.api_calls();
    assert_eq!(
        calls["watchdog b"]["AssignPrivateIpAddresses"], 1,
        "{calls}"
    );
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "a, in FAULT, never acts");
}
