//! A planned switchover: `vip-watchdog switchover` (or `POST
//! /v1/switchover`) drains this node, `switchover --undo` gives it back.
//!
//! Draining writes `1` to `keepalived.drain_file`, which keepalived.conf
//! tracks with `vrrp_track_file ... { weight 0 }` in every instance: a
//! non-zero value puts the instance in FAULT, and a MASTER entering FAULT
//! sends a priority-0 advert, so the peer takes over after its skew time,
//! as at a graceful stop, while HAProxy keeps serving here. The VIP then
//! moves as at any failover (with `manage_address`, make before break: this
//! node serves on the private IP until the cloud shows the VIP on the
//! peer). `--undo` writes `0`: the instance leaves FAULT, and Keepalived's
//! preemption decides who is MASTER (the higher priority takes it back,
//! one more move; `nopreempt` leaves it with the peer).
//!
//! The rules, on the status (`/v1/status`'s JSON), pure and table-tested:
//!
//! 1. Undo is always allowed.
//! 2. With a `[peer]`, draining needs the peer's fresh report, its
//!    Keepalived running, its probe up, and each of its instances BACKUP:
//!    a drain must never leave the VIP to a node that cannot serve it.
//! 3. Without a `[peer]`, the peer's readiness is not known: draining is
//!    allowed, and the answer says so.
//! 4. The CLI's wait for a drain ends when no instance here is MASTER and
//!    the cloud shows every VIP elsewhere; for an undo, when no instance
//!    here is in FAULT.
//!
//! The request is taken from loopback, or from anywhere once the web
//! config has basic-auth users (`basic_auth` then asks for one): a drain
//! moves the VIP, which an unauthenticated remote must never do.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Rules 1-3: why the drain must not be done now, if it must not.
pub fn refusal(status: &Value, undo: bool) -> Result<Option<String>, String> {
    // Rule 1.
    if undo {
        return Ok(None);
    }
    let peer = &status["peer"];
    // Rule 3.
    if peer.is_null() {
        return Ok(Some(
            "no [peer]: the other node's readiness is not known; make sure it is a healthy BACKUP"
                .into(),
        ));
    }
    // Rule 2.
    if peer["fresh"] != true {
        return Err(format!(
            "the peer's last report is not fresh (last at {}): it may be down, and a drain would leave the VIP to nobody",
            peer["last_report_at"].as_str().unwrap_or("never")
        ));
    }
    let report = &peer["report"];
    if report["keepalived_running"] != true {
        return Err("the peer's Keepalived is not running".into());
    }
    if report["probe"] != "up" {
        return Err(format!(
            "the peer's probe is {}: it would not serve the VIP",
            report["probe"].as_str().unwrap_or("unknown")
        ));
    }
    let theirs = report["instances"].as_array().cloned().unwrap_or_default();
    for mine in status["instances"].as_array().into_iter().flatten() {
        let name = mine["name"].as_str().unwrap_or_default();
        let state = theirs
            .iter()
            .find(|i| i["name"] == name)
            .map(|i| i["state"].as_str().unwrap_or("unknown"))
            .unwrap_or("absent from its report");
        if state != "backup" {
            return Err(format!(
                "the peer's {name} is {state}, not BACKUP: it could not take over"
            ));
        }
    }
    Ok(None)
}

/// Rule 4: whether the switchover is done, and if not, what it waits for.
pub fn waiting_for(status: &Value, undo: bool) -> Option<String> {
    let instances = status["instances"].as_array().cloned().unwrap_or_default();
    if undo {
        return instances
            .iter()
            .find(|i| matches!(i["state"].as_str(), Some("fault") | Some("unknown") | None))
            .map(|i| format!("{} to leave FAULT (now {})", i["name"], i["state"]));
    }
    if let Some(i) = instances.iter().find(|i| i["state"] == "master") {
        return Some(format!("{} to leave MASTER", i["name"]));
    }
    status["vips"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["cloud"]["where"] != "elsewhere")
        .map(|v| {
            format!(
                "the cloud to show VIP {} on the peer (now {})",
                v["name"],
                v["cloud"]["where"].as_str().unwrap_or("not known")
            )
        })
}

/// Writes `1` (drain) or `0` to the drain file, replacing it in one rename
/// (Keepalived's inotify sees the new file whole).
pub fn write_drain(path: &Path, drain: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, if drain { "1\n" } else { "0\n" })?;
    std::fs::rename(&tmp, path)
}

/// What `POST /v1/switchover` answers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    pub drained: bool,
    pub file: String,
    /// Rule 3's warning, when there is one.
    pub note: Option<String>,
}

/// `vip-watchdog switchover [--undo]`: asks the running watchdog, then
/// waits (rule 4) up to `timeout`, printing what it waits for.
pub async fn main(
    http: &crate::config::HttpConfig,
    undo: bool,
    timeout: Duration,
    user: Option<(String, String)>,
) -> Result<String, String> {
    let client = crate::http::tls::local_client(&http.web, Duration::from_secs(5))
        .map_err(|e| crate::error_chain(&e))?;
    let url = |path: &str| crate::http::local_url(http.listen, http.web.tls.is_some(), path);
    let auth = |r: reqwest::RequestBuilder| match &user {
        Some((u, p)) => r.basic_auth(u, Some(p)),
        None => r,
    };
    let started = std::time::Instant::now();
    let resp = auth(client.post(url(&format!("/v1/switchover?undo={undo}"))))
        .send()
        .await
        .map_err(|e| crate::error_chain(&e))?;
    let code = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !code.is_success() {
        return Err(format!("refused ({code}): {}", body.trim()));
    }
    let answer: Answer = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if let Some(n) = &answer.note {
        eprintln!("note: {n}");
    }
    eprintln!(
        "{} {}; waiting up to {}",
        if undo { "undrained:" } else { "drained:" },
        answer.file,
        humantime::format_duration(timeout)
    );
    let mut last = String::new();
    loop {
        let body = auth(client.get(url("/v1/status")))
            .send()
            .await
            .map_err(|e| crate::error_chain(&e))?
            .bytes()
            .await
            .map_err(|e| crate::error_chain(&e))?;
        let status: Value =
            serde_json::from_slice(&body).map_err(|e| format!("/v1/status: {e}"))?;
        match waiting_for(&status, undo) {
            None => {
                return Ok(format!(
                    "{} after {:.1} s",
                    if undo {
                        "this node is back: no instance in FAULT"
                    } else {
                        "switched over: this node is not MASTER and the cloud shows every VIP on the peer"
                    },
                    started.elapsed().as_secs_f64()
                ));
            }
            Some(w) if started.elapsed() >= timeout => {
                return Err(format!(
                    "not done within {}: waiting for {w}. Check that keepalived.conf tracks {} (vrrp_track_file, weight 0) in every instance",
                    humantime::format_duration(timeout),
                    answer.file
                ));
            }
            Some(w) => {
                if w != last {
                    eprintln!("waiting for {w}");
                    last = w;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(mine: &str, peer: Value, where_: &str) -> Value {
        json!({
            "instances": [{"name": "VI_1", "state": mine}],
            "peer": peer,
            "vips": [{"name": "web", "cloud": {"where": where_}}],
        })
    }

    fn peer(fresh: bool, running: bool, probe: &str, state: &str) -> Value {
        json!({
            "fresh": fresh,
            "last_report_at": "2026-12-03T10:00:00Z",
            "report": {"keepalived_running": running, "probe": probe,
                       "instances": [{"name": "VI_1", "state": state}]}
        })
    }

    #[test]
    fn refusal_table() {
        let ok = |r: Result<Option<String>, String>| r.expect("allowed");
        let no = |r: Result<Option<String>, String>| r.expect_err("refused");
        let healthy = peer(true, true, "up", "backup");
        // Rule 1: undo always.
        assert_eq!(
            ok(refusal(
                &status("fault", peer(false, false, "down", "fault"), "here"),
                true
            )),
            None
        );
        // Rule 2: a healthy BACKUP peer.
        assert_eq!(ok(refusal(&status("master", healthy, "here"), false)), None);
        assert!(
            no(refusal(
                &status("master", peer(false, true, "up", "backup"), "here"),
                false
            ))
            .contains("not fresh")
        );
        assert!(
            no(refusal(
                &status("master", peer(true, false, "up", "backup"), "here"),
                false
            ))
            .contains("Keepalived is not running")
        );
        assert!(
            no(refusal(
                &status("master", peer(true, true, "down", "backup"), "here"),
                false
            ))
            .contains("probe is down")
        );
        assert!(
            no(refusal(
                &status("master", peer(true, true, "up", "fault"), "here"),
                false
            ))
            .contains("VI_1 is fault")
        );
        assert!(
            no(refusal(
                &status("master", peer(true, true, "up", "master"), "here"),
                false
            ))
            .contains("not BACKUP")
        );
        let other = json!({"fresh": true, "report": {"keepalived_running": true, "probe": "up",
            "instances": [{"name": "VI_9", "state": "backup"}]}});
        assert!(
            no(refusal(&status("master", other, "here"), false)).contains("absent from its report")
        );
        // Rule 3: no peer, allowed with a note.
        assert!(
            ok(refusal(&status("master", Value::Null, "here"), false))
                .is_some_and(|n| n.contains("no [peer]"))
        );
    }

    #[test]
    fn waiting_for_table() {
        let p = Value::Null;
        // Rule 4, drain.
        assert!(
            waiting_for(&status("master", p.clone(), "here"), false)
                .is_some_and(|w| w.contains("leave MASTER"))
        );
        assert!(
            waiting_for(&status("fault", p.clone(), "here"), false)
                .is_some_and(|w| w.contains("on the peer (now here)"))
        );
        assert_eq!(
            waiting_for(&status("fault", p.clone(), "elsewhere"), false),
            None
        );
        // A node without a cloud side: the instances alone.
        assert_eq!(
            waiting_for(
                &json!({"instances": [{"name": "VI_1", "state": "fault"}], "vips": []}),
                false
            ),
            None
        );
        // Rule 4, undo.
        assert!(
            waiting_for(&status("fault", p.clone(), "elsewhere"), true)
                .is_some_and(|w| w.contains("leave FAULT"))
        );
        assert!(waiting_for(&status("unknown", p.clone(), "elsewhere"), true).is_some());
        assert_eq!(
            waiting_for(&status("backup", p.clone(), "elsewhere"), true),
            None
        );
        assert_eq!(waiting_for(&status("master", p, "here"), true), None);
    }

    #[test]
    fn the_drain_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("vw-drain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("drain");
        write_drain(&f, true).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "1\n");
        write_drain(&f, false).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "0\n");
        assert!(!f.with_extension("new").exists());
        let e = write_drain(&dir.join("missing/drain"), true).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
