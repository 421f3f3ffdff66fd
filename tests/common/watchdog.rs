//! A watchdog process and its JSON log stream, status and metrics.

use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{SETTLE, in_ns, is, metric, run};

/// A watchdog process with its JSON log stream.
pub struct Watchdog {
    pub child: Child,
    pub(super) events: Receiver<Value>,
    /// Events received but not yet matched by a `wait_for`, oldest first.
    pub(super) backlog: std::cell::RefCell<Vec<Value>>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub address: String,
    pub(super) ns: String,
}

impl Watchdog {
    /// Waits for a log event matching `pred`, oldest first; each event
    /// matches once. Panics with the log on timeout.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        {
            let mut backlog = self.backlog.borrow_mut();
            if let Some(i) = backlog.iter().position(&pred) {
                return backlog.remove(i);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) if pred(&ev) => return ev,
                Ok(ev) => self.backlog.borrow_mut().push(ev),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out after {timeout:?} waiting for {what}; log:\n{}",
                        self.log_text()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "watchdog exited while waiting for {what}; log:\n{}",
                        self.log_text()
                    )
                }
            }
        }
    }

    /// Drops every event received so far: later waits see only what happens
    /// after this call (call it right before injecting a fault).
    pub fn forget_past(&self) {
        let mut backlog = self.backlog.borrow_mut();
        backlog.clear();
        while let Ok(ev) = self.events.try_recv() {
            drop(ev);
        }
    }

    /// Polls `/v1/status` (every 100 ms, for at most `timeout`) until `pred`
    /// holds; returns that status. Panics with the log on timeout.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.poll(what, timeout, || self.status(), pred)
    }

    /// Polls `/metrics` (every 100 ms, for at most `timeout`) until `pred`
    /// holds; returns that text. Panics with the log on timeout.
    pub fn wait_metrics(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        self.poll(what, timeout, || self.metrics(), |m: &String| pred(m))
    }

    /// Asks `fetch` (every 100 ms, for at most `timeout`) until `pred` holds
    /// on its answer; returns it. Panics with the last answer and the log.
    fn poll<T: std::fmt::Display>(
        &self,
        what: &str,
        timeout: Duration,
        fetch: impl Fn() -> T,
        pred: impl Fn(&T) -> bool,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let got = fetch();
            if pred(&got) {
                return got;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last answer: {got}\nlog:\n{}",
                    self.log_text()
                );
            }
            // Bounded polling of an HTTP endpoint, not a wait for time to pass.
            let _ = self.events_ready(Duration::from_millis(100));
        }
    }

    /// Waits up to `d` for a log event (kept for later `wait_for`s).
    fn events_ready(&self, d: Duration) -> bool {
        match self.events.recv_timeout(d) {
            Ok(ev) => {
                self.backlog.borrow_mut().push(ev);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits for `vrrp state changed` of VI_1 to `to`; returns the event.
    pub fn wait_state(&self, to: &str, timeout: Duration) -> Value {
        self.wait_for(&format!("VI_1 -> {to} in {}", self.ns), timeout, |e| {
            is(e, "vrrp_changed") && e["vrrp_instance"] == "VI_1" && e["to"] == to
        })
    }

    /// Waits for the start-up report of VI_1 and checks its state and source.
    pub fn wait_learned(&self, state: &str, source: &str) -> Value {
        let ev = self.wait_for(&format!("VI_1 learned in {}", self.ns), SETTLE, |e| {
            is(e, "vrrp_learned")
        });
        assert_eq!(
            (ev["state"].as_str(), ev["source"].as_str()),
            (Some(state), Some(source)),
            "{ev}"
        );
        ev
    }

    /// `vip_watchdog_vrrp_releases_total` for VI_1 and `outcome`.
    pub fn releases(&self, outcome: &str) -> Option<f64> {
        metric(
            &self.metrics(),
            "vip_watchdog_vrrp_releases_total",
            &[("vrrp_instance", "VI_1"), ("outcome", outcome)],
        )
    }

    /// Every log line so far that `pred` accepts (e.g. `|e| is(e, "...")`),
    /// oldest first; waits for nothing.
    pub fn logged(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let lines = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter_map(|l| l.split_once("] ").map(|(_, json)| json))
            .filter_map(|json| serde_json::from_str::<Value>(json).ok())
            .filter(|e| pred(e))
            .collect()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> String {
        run(in_ns(&self.ns).args([
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{}{path}", self.address),
        ]))
    }

    /// The HTTP status `http.listen` answers a GET of `path` with.
    pub fn http_code(&self, path: &str) -> String {
        run(in_ns(&self.ns).args([
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            &format!("http://{}{path}", self.address),
        ]))
    }

    /// The page at `/`.
    pub fn landing(&self) -> String {
        self.get("/")
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.get("/v1/status")).expect("/v1/status is JSON")
    }

    pub fn instance(&self) -> Value {
        let status = self.status();
        status["instances"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == "VI_1").cloned())
            .unwrap_or_else(|| panic!("no VI_1 in {status}"))
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics")
    }

    pub fn healthz(&self) -> String {
        self.get("/healthz")
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().expect("watchdog exit status")
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
