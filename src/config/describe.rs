//! `Config::describe`: what was understood, every default filled in.

use std::fmt::Write as _;
use std::time::Duration;

use super::*;

impl Config {
    /// What was understood, every default filled in, one key a line.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        let _ = writeln!(w, "node.name = {:?}", self.node.name);
        let _ = writeln!(w, "node.pair = {:?}", self.node.pair);
        let _ = writeln!(w, "http.listen = {}", self.http.listen);
        let _ = writeln!(
            w,
            "http.local_socket = {}",
            self.http.local_socket.display()
        );
        let web = &self.http.web;
        match &self.http.web_config_file {
            None => writeln!(w, "http.web_config_file = (none: plain HTTP, no authentication)"),
            Some(p) => writeln!(
                w,
                "http.web_config_file = {} (tls: {}, client certificates: {}, basic auth users: {})",
                p.display(),
                if web.tls.is_some() { "on" } else { "off" },
                match web.tls.as_ref().map(|t| &t.client_auth) {
                    Some(crate::config::web::ClientAuth::Require { .. }) => "required",
                    Some(crate::config::web::ClientAuth::IfGiven { .. }) => "verified if given",
                    _ => "not asked",
                },
                web.users.len(),
            ),
        }
        .ok();
        let format = match self.log.format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let _ = writeln!(w, "log.format = {format:?}");
        let _ = writeln!(w, "log.level = {:?}", self.log.level);
        let k = &self.keepalived;
        let _ = writeln!(w, "keepalived.fifo = {}", k.fifo.display());
        let _ = writeln!(w, "keepalived.pid_file = {}", k.pid_file.display());
        match &k.vrrp_process {
            VrrpProcess::PidFile(p) => writeln!(w, "keepalived.vrrp_pid_file = {}", p.display()),
            VrrpProcess::Child => writeln!(
                w,
                "keepalived.vrrp_pid_file = (unset: the VRRP process is found as the main process's child)"
            ),
            VrrpProcess::Off => writeln!(w, "keepalived.vrrp_pid_file = (not watched)"),
        }
        .ok();
        let _ = writeln!(w, "keepalived.process_name = {:?}", k.process_name);
        let _ = writeln!(
            w,
            "keepalived.drain_file = {} (written by `vip-watchdog switchover`; keepalived.conf tracks it with vrrp_track_file, weight 0)",
            k.drain_file.display()
        );
        let _ = writeln!(
            w,
            "keepalived.process_check_interval = {}",
            d(&k.process_check_interval)
        );
        match &k.release_on_crash {
            Some(conf) => writeln!(
                w,
                "keepalived.release_on_crash = true (adverts from {})",
                conf.display()
            ),
            None => writeln!(w, "keepalived.release_on_crash = false"),
        }
        .ok();
        match &k.json_dump {
            None => {
                let _ = writeln!(w, "keepalived.json_dump = false");
            }
            Some(j) => {
                let _ = writeln!(w, "keepalived.json_dump = true");
                let _ = writeln!(w, "keepalived.json_file = {}", j.file.display());
                match j.signal {
                    Some(s) => writeln!(w, "keepalived.json_signal = {s}"),
                    None => writeln!(
                        w,
                        "keepalived.json_signal = (asked of `{} --signum=JSON`)",
                        j.binary.display()
                    ),
                }
                .ok();
                let _ = writeln!(w, "keepalived.json_timeout = {}", d(&j.timeout));
            }
        }
        for i in &k.instances {
            let vips: Vec<String> = i.vips.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                w,
                "keepalived.instance {:?}: vips = [{}]",
                i.name,
                vips.join(", ")
            );
        }
        let p = &self.probe;
        let _ = writeln!(w, "probe = {}", p.check.describe());
        for c in &p.also {
            let _ = writeln!(w, "probe.also = {} (must pass too)", c.describe());
        }
        let _ = writeln!(
            w,
            "probe.interval = {}, probe.timeout = {}, probe.rise = {}, probe.fall = {}",
            d(&p.interval),
            d(&p.timeout),
            p.rise,
            p.fall
        );
        if let Some(c) = &self.cloud {
            let or = |v: &Option<String>, what: &str| {
                v.clone().unwrap_or_else(|| format!("(from IMDS: {what})"))
            };
            let _ = writeln!(w, "cloud.region = {}", or(&c.region, "placement/region"));
            let _ = writeln!(
                w,
                "cloud.instance_id = {}",
                or(&c.instance_id, "instance-id")
            );
            let _ = writeln!(
                w,
                "cloud.interface_id = {}",
                or(&c.interface_id, "the primary MAC's interface-id")
            );
            let _ = writeln!(
                w,
                "cloud.endpoint = {}",
                c.endpoint
                    .clone()
                    .unwrap_or_else(|| "(SDK default, or AWS_ENDPOINT_URL)".into())
            );
            let _ = writeln!(
                w,
                "cloud.imds_endpoint = {}",
                c.imds_endpoint
                    .clone()
                    .unwrap_or_else(|| "http://169.254.169.254".into())
            );
            let _ = writeln!(
                w,
                "cloud.call_timeout = {}, cloud.verify_interval = {} (jitter {}), cloud.convergence_timeout = {}, cloud.dry_run = {}",
                d(&c.call_timeout),
                d(&c.verify_interval),
                d(&c.verify_jitter),
                d(&c.convergence_timeout),
                c.dry_run
            );
            let _ = writeln!(
                w,
                "cloud.fast_verify_interval = {} for cloud.fast_verify_for = {} after a transition, cloud.state_dir = {}",
                d(&c.fast_verify_interval),
                d(&c.fast_verify_for),
                c.state_dir
                    .as_ref()
                    .map_or("(none: damping in memory only)".into(), |p| p
                        .display()
                        .to_string())
            );
            let _ = writeln!(
                w,
                "cloud.permission_check = {}",
                if c.permission_check {
                    format!(
                        "DryRun at start-up and every {}",
                        d(&c.permission_check_interval)
                    )
                } else {
                    "off".into()
                }
            );
            let _ = writeln!(
                w,
                "cloud.state_tags = {}",
                c.state_tag_interval.map_or("off".into(), |i| format!(
                    "written every {}, each counting for {}",
                    d(&i),
                    d(&(i * 2))
                ))
            );
        }
        for v in &self.vips {
            let p = &v.policy;
            let _ = writeln!(
                w,
                "vip {:?}: {} while {} is MASTER; mode {:?}, grace {}, min_master_age {}, at most {} claims per {}, back-off {} to {}",
                v.name,
                v.target.describe(),
                v.vrrp_instance,
                p.mode.as_str(),
                d(&p.grace),
                d(&p.min_master_age),
                p.max_claims,
                d(&p.claim_window),
                d(&p.backoff_base),
                d(&p.backoff_max)
            );
            match (&v.address, v.handover) {
                (Some(a), crate::core::handover::Handover::BreakBeforeMake { fence_wait }) => {
                    let _ = writeln!(
                        w,
                        "  manage_address, break before make: this watchdog adds {} to {} on a healthy MASTER only once the peer let go (its watchdog reports the address removed and its probe down, or it is silent for fence_wait {}), then claims; off MASTER it removes the address at once; needs CAP_NET_ADMIN",
                        a.ip,
                        a.interface,
                        d(&fence_wait)
                    );
                }
                (Some(a), _) => {
                    let _ = writeln!(
                        w,
                        "  manage_address: this watchdog adds {} to {} on a healthy MASTER before it claims, and removes it once the cloud shows the VIP elsewhere (at most {} after this node stops being MASTER); needs CAP_NET_ADMIN",
                        a.ip,
                        a.interface,
                        d(&a.hold)
                    );
                }
                (None, _) => {}
            }
        }
        match &self.peer {
            None => writeln!(w, "peer = (none: no channel to the other watchdog)"),
            Some(p) => writeln!(
                w,
                "peer: listen {}, address {}, secret_file {} ({} bytes), heartbeat {}, max_age {}, replay_window {}",
                p.listen,
                p.address,
                p.secret_file.display(),
                p.secret.0.len(),
                d(&p.heartbeat),
                d(&p.max_age),
                d(&p.replay_window)
            ),
        }
        .ok();
        out
    }
}
