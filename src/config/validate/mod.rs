//! Raw -> typed: every check, each error naming its key and line.

use super::raw::*;
use super::*;
use crate::core::target::VipTarget;

mod probe;
mod vip;

// ---- validation --------------------------------------------------------------

pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
    pub(super) errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn err<T>(&mut self, key: &str, span: &Spanned<T>, message: impl Into<String>) {
        let line = (span.span() != (0..0)).then(|| line_of(self.text, span.span().start));
        self.errors.push(ConfigError {
            key: key.to_owned(),
            line,
            message: message.into(),
        });
    }

    pub(super) fn config(&mut self, raw: RawConfig) -> Config {
        let node = self.node(raw.node);
        let level = raw.log.level;
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(level.get_ref()) {
            self.err("log.level", &level, format!("not a log filter: {e}"));
        }
        let keepalived = self.keepalived(raw.keepalived);
        let probe = self.probe(raw.probe);
        let cloud = raw.cloud.map(|c| self.cloud(c));
        let peer = raw.peer.map(|p| self.peer(p));
        let vips = self.vips(raw.vips, &keepalived, cloud.as_ref(), peer.as_ref());
        let local_socket = &raw.http.local_socket;
        self.absolute("http.local_socket", local_socket);
        // sun_path holds 108 bytes with its terminating NUL.
        if local_socket.get_ref().as_os_str().len() > 107 {
            self.err(
                "http.local_socket",
                local_socket,
                format!(
                    "{} is longer than a Unix socket's path may be (107 bytes)",
                    local_socket.get_ref().display()
                ),
            );
        }
        Config {
            cloud,
            vips,
            peer,
            node,
            http: HttpConfig {
                listen: raw.http.listen,
                web_config_file: raw.http.web_config_file,
                local_socket: raw.http.local_socket.into_inner(),
                web: Default::default(),
            },
            log: LogConfig {
                format: raw.log.format,
                level: level.into_inner(),
            },
            keepalived,
            probe,
        }
    }

    fn label(&mut self, key: &str, value: &Spanned<String>) {
        let v = value.get_ref();
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.err(
                key,
                value,
                format!("{v:?} must be 1-64 characters of letters, digits, '-', '_', '.'"),
            );
        }
    }

    fn node(&mut self, raw: Spanned<RawNode>) -> NodeConfig {
        let raw = raw.into_inner();
        self.label("node.pair", &raw.pair);
        let name = match raw.name {
            Some(name) => {
                self.label("node.name", &name);
                name.into_inner()
            }
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".into()),
        };
        NodeConfig {
            name,
            pair: raw.pair.into_inner(),
        }
    }

    fn absolute(&mut self, key: &str, path: &Spanned<PathBuf>) {
        if !path.get_ref().is_absolute() {
            self.err(
                key,
                path,
                format!("{} must be an absolute path", path.get_ref().display()),
            );
        }
    }

    fn keepalived(&mut self, raw: Spanned<RawKeepalived>) -> KeepalivedConfig {
        let raw = raw.into_inner();
        self.absolute("keepalived.fifo", &raw.fifo);
        self.absolute("keepalived.pid_file", &raw.pid_file);
        self.absolute("keepalived.drain_file", &raw.drain_file);
        let vrrp_process = match raw.vrrp_pid_file {
            Some(p) if p.get_ref().as_os_str().is_empty() => VrrpProcess::Off,
            Some(p) => {
                self.absolute("keepalived.vrrp_pid_file", &p);
                VrrpProcess::PidFile(p.into_inner())
            }
            None => VrrpProcess::Child,
        };
        // The kernel keeps 15 bytes of a process name (/proc/PID/comm): a
        // longer name would never match, and Keepalived never be seen.
        if raw.process_name.get_ref().is_empty() || raw.process_name.get_ref().len() > 15 {
            self.err(
                "keepalived.process_name",
                &raw.process_name,
                format!(
                    "{:?} can never match: a process name (/proc/PID/comm) is 1 to 15 bytes",
                    raw.process_name.get_ref()
                ),
            );
        }
        let every = raw.process_check_interval.get_ref().0;
        if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&every) {
            self.err(
                "keepalived.process_check_interval",
                &raw.process_check_interval,
                "must be from 10ms to 10s: a crashed Keepalived must be noticed quickly",
            );
        }
        let json_dump = if raw.json_dump {
            self.absolute("keepalived.json_file", &raw.json_file);
            if let Some(sig) = &raw.json_signal
                && !(1..=64).contains(sig.get_ref())
            {
                self.err(
                    "keepalived.json_signal",
                    sig,
                    "must be a signal number from 1 to 64",
                );
            }
            Some(JsonDumpConfig {
                file: raw.json_file.into_inner(),
                signal: raw.json_signal.map(Spanned::into_inner),
                binary: raw.binary,
                timeout: raw.json_timeout.into_inner().0,
            })
        } else {
            None
        };
        let release_on_crash = if raw.release_on_crash {
            self.absolute("keepalived.config_file", &raw.config_file);
            Some(raw.config_file.into_inner())
        } else {
            None
        };
        let mut instances: Vec<InstanceConfig> = vec![];
        for inst in raw.instances {
            let inst = inst.into_inner();
            let name = inst.name.get_ref();
            if name.is_empty() || name.contains('"') {
                self.err(
                    "keepalived.instance.name",
                    &inst.name,
                    "must be a non-empty vrrp_instance name without '\"'",
                );
            } else if instances.iter().any(|i| &i.name == name) {
                self.err(
                    "keepalived.instance.name",
                    &inst.name,
                    format!("instance {name:?} is listed twice"),
                );
            }
            instances.push(InstanceConfig {
                name: inst.name.into_inner(),
                vips: inst.vips,
            });
        }
        KeepalivedConfig {
            fifo: raw.fifo.into_inner(),
            pid_file: raw.pid_file.into_inner(),
            vrrp_process,
            process_name: raw.process_name.into_inner(),
            process_check_interval: every,
            json_dump,
            release_on_crash,
            drain_file: raw.drain_file.into_inner(),
            instances,
        }
    }

    fn url(&mut self, key: &str, v: Option<Spanned<String>>) -> Option<String> {
        let v = v?;
        match reqwest::Url::parse(v.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(v.into_inner()),
            _ => {
                self.err(key, &v, format!("{:?} is not an http(s) URL", v.get_ref()));
                None
            }
        }
    }

    fn peer(&mut self, raw: Spanned<RawPeer>) -> PeerConfig {
        let raw = raw.into_inner();
        let heartbeat = raw.heartbeat.get_ref().0;
        if heartbeat < Duration::from_millis(100) || heartbeat > Duration::from_secs(10) {
            self.err(
                "peer.heartbeat",
                &raw.heartbeat,
                "must be from 100ms to 10s",
            );
        }
        let max_age = raw.max_age.get_ref().0;
        if max_age < heartbeat * 2 {
            self.err(
                "peer.max_age",
                &raw.max_age,
                "must be at least twice peer.heartbeat: one lost heartbeat must not make the peer unknown",
            );
        }
        let replay_window = raw.replay_window.get_ref().0;
        if replay_window < Duration::from_secs(1) || replay_window > Duration::from_secs(300) {
            self.err(
                "peer.replay_window",
                &raw.replay_window,
                "must be from 1s to 5m",
            );
        }
        if raw.listen.get_ref() == raw.address.get_ref() {
            self.err(
                "peer.address",
                &raw.address,
                "is peer.listen: the peer is the other node's watchdog",
            );
        }
        PeerConfig {
            listen: raw.listen.into_inner(),
            address: raw.address.into_inner(),
            secret_file: raw.secret_file.into_inner(),
            secret: Secret::default(),
            heartbeat,
            max_age,
            replay_window,
        }
    }

    fn cloud(&mut self, raw: Spanned<RawCloud>) -> CloudConfig {
        let raw = raw.into_inner();
        let endpoint = self.url("cloud.endpoint", raw.endpoint);
        let imds_endpoint = self.url("cloud.imds_endpoint", raw.imds_endpoint);
        if let Some(eni) = &raw.interface_id
            && !eni.get_ref().starts_with("eni-")
        {
            self.err("cloud.interface_id", eni, "must be an ENI ID (eni-...)");
        }
        let call_timeout = raw.call_timeout.get_ref().0;
        if call_timeout < Duration::from_millis(100) || call_timeout > Duration::from_secs(60) {
            self.err(
                "cloud.call_timeout",
                &raw.call_timeout,
                "must be from 100ms to 60s",
            );
        }
        let verify_interval = raw.verify_interval.get_ref().0;
        if verify_interval < Duration::from_secs(1) {
            self.err(
                "cloud.verify_interval",
                &raw.verify_interval,
                "must be at least 1s: every node of every pair shares the account's describe rate",
            );
        }
        let verify_jitter = raw.verify_jitter.get_ref().0;
        if verify_jitter > verify_interval {
            self.err(
                "cloud.verify_jitter",
                &raw.verify_jitter,
                "must be at most cloud.verify_interval",
            );
        }
        let fast_verify_interval = raw.fast_verify_interval.get_ref().0;
        if fast_verify_interval < crate::core::pace::MIN_GAP
            || fast_verify_interval > verify_interval
        {
            self.err(
                "cloud.fast_verify_interval",
                &raw.fast_verify_interval,
                "must be from 1s to cloud.verify_interval",
            );
        }
        let fast_verify_for = raw.fast_verify_for.get_ref().0;
        if fast_verify_for > Duration::from_secs(600) {
            self.err(
                "cloud.fast_verify_for",
                &raw.fast_verify_for,
                "must be at most 10m: the fast pace is for the moments after a transition",
            );
        }
        let permission_check_interval = raw.permission_check_interval.get_ref().0;
        if permission_check_interval < Duration::from_secs(10) {
            self.err(
                "cloud.permission_check_interval",
                &raw.permission_check_interval,
                "must be at least 10s",
            );
        }
        let state_tag_interval = raw.state_tag_interval.get_ref().0;
        if !(Duration::from_secs(10)..=Duration::from_secs(600)).contains(&state_tag_interval) {
            self.err(
                "cloud.state_tag_interval",
                &raw.state_tag_interval,
                "must be at least 10s (each write is a CreateTags call) and at most 10m (a tag counts for twice the interval)",
            );
        }
        CloudConfig {
            region: raw.region,
            endpoint,
            imds_endpoint,
            instance_id: raw.instance_id,
            interface_id: raw.interface_id.map(Spanned::into_inner),
            call_timeout,
            verify_interval,
            verify_jitter,
            fast_verify_interval,
            fast_verify_for,
            state_dir: (!raw.state_dir.is_empty()).then(|| raw.state_dir.into()),
            convergence_timeout: raw.convergence_timeout.get_ref().0,
            dry_run: raw.dry_run,
            permission_check: raw.permission_check,
            permission_check_interval,
            state_tag_interval: raw.state_tags.then_some(state_tag_interval),
        }
    }
}

fn kind_name(k: ProbeKind) -> &'static str {
    match k {
        ProbeKind::Http => "http",
        ProbeKind::Tcp => "tcp",
        ProbeKind::Exec => "exec",
        ProbeKind::Postgres => "postgres",
    }
}
