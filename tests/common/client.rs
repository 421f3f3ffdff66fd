//! A client outside the pair, for the client-visible outage of a failover.
//!
//! It runs in the lab's cloud namespace and asks, every 10 ms, the node the
//! emulator says holds the EIP, on the private IP (`VIP:8000/service`,
//! which HAProxy answers with its node's name): the cloud namespace's route
//! to the private IP follows the observer (DescribeAddresses every 10 ms),
//! as EC2 sends the EIP's traffic to the ENI that holds it. A request fails
//! when the node does not carry the private IP (no answer: the client gives
//! up after 100 ms to connect, 300 ms to read), when HAProxy is down
//! (refused), or when the EIP is nowhere.
//!
//! Bounded: the loop ends when the client is dropped, or after `max`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::VIP;

/// The client's pace.
pub const EVERY: Duration = Duration::from_millis(10);

/// One request: when it was sent, and which node answered (None: failed).
#[derive(Debug, Clone)]
pub struct Request {
    pub at: SystemTime,
    pub served_by: Option<String>,
}

pub struct Client {
    stop: Arc<AtomicBool>,
    /// The requests so far, and a signal at each one recorded.
    requests: Arc<(Mutex<Vec<Request>>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

/// What clients felt in a stretch of requests.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outage {
    /// Requests that failed.
    pub lost: usize,
    /// From the last answered request before a failure to the first
    /// answered after it, summed over the stretch (zero when none failed).
    pub outage: Duration,
}

/// The outage in `requests` (in the order sent).
pub fn outage(requests: &[Request]) -> Outage {
    let mut out = Outage::default();
    let mut last_ok: Option<SystemTime> = None;
    let mut failing_since: Option<SystemTime> = None;
    for r in requests {
        match (&r.served_by, failing_since) {
            (None, None) => {
                out.lost += 1;
                failing_since = Some(last_ok.unwrap_or(r.at));
            }
            (None, Some(_)) => out.lost += 1,
            (Some(_), Some(since)) => {
                out.outage += r.at.duration_since(since).unwrap_or_default();
                failing_since = None;
                last_ok = Some(r.at);
            }
            (Some(_), None) => last_ok = Some(r.at),
        }
    }
    if let (Some(since), Some(end)) = (failing_since, requests.last()) {
        out.outage += end.at.duration_since(since).unwrap_or_default();
    }
    out
}

fn ask(to: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(100)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    s.set_write_timeout(Some(Duration::from_millis(300))).ok()?;
    write!(s, "GET /service HTTP/1.0\r\nHost: client\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    // HAProxy answers an HTTP/1.0 request with an HTTP/1.1 status line.
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.trim().to_owned())
}

impl Client {
    /// Starts the client in namespace `ns`. `observer` is the lab's
    /// observer (`Lab::start_observer`); its lines are passed on to the
    /// returned receiver. `gateways` maps each ENI to the node's address on
    /// the cloud namespace's link.
    pub fn start(
        ns: &str,
        observer: Receiver<String>,
        gateways: Vec<(String, String)>,
        max: Duration,
    ) -> (Client, Receiver<String>) {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let holder = Arc::new(Mutex::new(String::new()));
        let (tx, rx): (Sender<String>, Receiver<String>) = std::sync::mpsc::channel();
        let mut threads = vec![];
        {
            let (holder, stop) = (holder.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match observer.recv_timeout(Duration::from_millis(200)) {
                        Ok(line) => {
                            if let Some((_, eni)) = line.split_once(' ') {
                                *holder.lock().unwrap() = eni.to_owned();
                            }
                            let _ = tx.send(line);
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(_) => return,
                    }
                }
            }));
        }
        {
            let (ns, stop, requests) = (ns.to_owned(), stop.clone(), requests.clone());
            threads.push(std::thread::spawn(move || {
                let f =
                    std::fs::File::open(format!("/run/netns/{ns}")).expect("the cloud namespace");
                nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter it");
                let to: SocketAddr = format!("{VIP}:8000").parse().unwrap();
                let mut routed = String::new();
                let started = Instant::now();
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < max {
                    let on = holder.lock().unwrap().clone();
                    if on != routed {
                        let via = gateways.iter().find(|(e, _)| *e == on).map(|(_, g)| g);
                        let mut ip = Command::new("ip");
                        ip.args(["-n", &ns, "route", "replace"]);
                        match via {
                            Some(g) => ip.args([&format!("{VIP}/32"), "via", g]),
                            None => ip.args(["blackhole", &format!("{VIP}/32")]),
                        };
                        let status = ip.status().expect("ip runs");
                        assert!(status.success(), "ip route replace for {on:?}: {status}");
                        routed = on;
                    }
                    let at = SystemTime::now();
                    let served_by = if routed.is_empty() { None } else { ask(to) };
                    requests
                        .0
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Request { at, served_by });
                    requests.1.notify_all();
                    next += EVERY;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
            }));
        }
        (
            Client {
                stop,
                requests,
                threads,
            },
            rx,
        )
    }

    /// The requests sent since `since`.
    pub fn since(&self, since: SystemTime) -> Vec<Request> {
        self.requests
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.at >= since)
            .cloned()
            .collect()
    }

    /// Drops what was recorded (the requests are kept in memory).
    pub fn forget_past(&self) {
        self.requests.0.lock().unwrap().clear();
    }

    /// Waits up to `timeout` for a request answered by node `node`, sent
    /// after `since`; returns when it was sent.
    pub fn wait_served(&self, node: &str, since: SystemTime, timeout: Duration) -> SystemTime {
        let deadline = Instant::now() + timeout;
        let (lock, recorded) = &*self.requests;
        let mut requests = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = requests
                .iter()
                .find(|r| r.at >= since && r.served_by.as_deref() == Some(node))
            {
                return r.at;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no request was answered by node {node} within {timeout:?}"
            );
            requests = recorded
                .wait_timeout(requests, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
