//! Raw -> typed: every check, each error naming its key and line.

use super::raw::*;
use super::*;
use crate::core::target::VipTarget;

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
        let vips = self.vips(raw.vips, &keepalived, cloud.as_ref());
        let peer = raw.peer.map(|p| self.peer(p));
        Config {
            cloud,
            vips,
            peer,
            node,
            http: HttpConfig {
                listen: raw.http.listen,
                web_config_file: raw.http.web_config_file,
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
        }
    }

    /// What the VIP is in the cloud, from its kind's keys; `None` after an
    /// error (each named).
    fn target(&mut self, v: &RawVip, table: &Spanned<()>) -> Option<VipTarget> {
        let kind = *v.kind.get_ref();
        let wrong = |k: &str| {
            format!(
                "is not a key of kind = {:?}",
                match kind {
                    VipKind::Eip => "eip",
                    VipKind::Route => "route",
                }
            ) + &format!(" ({k})")
        };
        match kind {
            VipKind::Eip => {
                if let Some(d) = &v.destination {
                    self.err("vip.destination", d, wrong("a route VIP's destination"));
                }
                if let Some(t) = &v.route_tables {
                    self.err("vip.route_tables", t, wrong("a route VIP's route tables"));
                }
                let Some(alloc) = &v.allocation_id else {
                    self.err("vip.allocation_id", table, "missing: kind = \"eip\" needs the Elastic IP's allocation ID (eipalloc-...)");
                    return None;
                };
                if !alloc.get_ref().starts_with("eipalloc-") {
                    self.err(
                        "vip.allocation_id",
                        alloc,
                        "must be an allocation ID (eipalloc-...)",
                    );
                    return None;
                }
                let allocation_id = alloc.get_ref().clone();
                match (v.associate.as_ref().map(|a| *a.get_ref()), &v.private_ip) {
                    (None | Some(RawAssociate::Eni), Some(ip)) => Some(VipTarget::EipOnEni {
                        allocation_id,
                        private_ip: *ip.get_ref(),
                    }),
                    (None | Some(RawAssociate::Eni), None) => {
                        self.err("vip.private_ip", table, "missing: an EIP on the ENI needs the secondary private IP it is associated with (or associate = \"instance\" for a single-ENI instance)");
                        None
                    }
                    (Some(RawAssociate::Instance), Some(ip)) => {
                        self.err("vip.private_ip", ip, "not used with associate = \"instance\": EC2 associates the EIP with the instance's primary private IP");
                        None
                    }
                    (Some(RawAssociate::Instance), None) => {
                        Some(VipTarget::EipOnInstance { allocation_id })
                    }
                }
            }
            VipKind::Route => {
                for (key, set) in [
                    (
                        "vip.allocation_id",
                        v.allocation_id.as_ref().map(|s| s.span()),
                    ),
                    ("vip.private_ip", v.private_ip.as_ref().map(|s| s.span())),
                    ("vip.associate", v.associate.as_ref().map(|s| s.span())),
                ] {
                    if let Some(span) = set {
                        self.err(key, &Spanned::new(span, ()), wrong("an EIP's key"));
                    }
                }
                let Some(d) = &v.destination else {
                    self.err("vip.destination", table, "missing: kind = \"route\" needs the destination CIDR whose route follows the MASTER (e.g. \"192.168.100.10/32\")");
                    return None;
                };
                let Some((destination, host)) = crate::core::target::normalize_cidr(d.get_ref())
                else {
                    self.err(
                        "vip.destination",
                        d,
                        format!(
                            "{:?} is not a CIDR block (address/prefix, e.g. \"192.168.100.10/32\")",
                            d.get_ref()
                        ),
                    );
                    return None;
                };
                let Some(tables) = &v.route_tables else {
                    self.err("vip.route_tables", table, "missing: kind = \"route\" needs the route tables (rtb-...) whose route must target this node");
                    return None;
                };
                let route_tables = tables.get_ref().clone();
                if route_tables.is_empty() {
                    self.err(
                        "vip.route_tables",
                        tables,
                        "must list at least one route table (rtb-...)",
                    );
                    return None;
                }
                if let Some(bad) = route_tables.iter().find(|t| !t.starts_with("rtb-")) {
                    self.err(
                        "vip.route_tables",
                        tables,
                        format!("{bad:?} is not a route table ID (rtb-...)"),
                    );
                    return None;
                }
                let mut seen = std::collections::BTreeSet::new();
                if let Some(dup) = route_tables.iter().find(|t| !seen.insert(*t)) {
                    self.err(
                        "vip.route_tables",
                        tables,
                        format!("{dup:?} is listed twice"),
                    );
                    return None;
                }
                Some(VipTarget::Route {
                    destination,
                    host,
                    route_tables,
                })
            }
        }
    }

    /// `manage_address` and its keys; `None` when off (or after an error,
    /// each named).
    fn managed_address(
        &mut self,
        v: &RawVip,
        target: &VipTarget,
        table: &Spanned<()>,
    ) -> Option<crate::config::ManagedAddress> {
        let hold = v.address_hold.get_ref().0;
        if hold < Duration::from_secs(1) {
            self.err(
                "vip.address_hold",
                &v.address_hold,
                "must be at least 1s: the old MASTER keeps serving on the private IP until the cloud shows the VIP elsewhere, and a describe takes about that",
            );
        }
        let Some(manage) = v.manage_address.as_ref().filter(|m| *m.get_ref()) else {
            if let Some(i) = &v.interface {
                self.err(
                    "vip.interface",
                    i,
                    "is used only with manage_address = true (Keepalived's virtual_ipaddress names the interface otherwise)",
                );
            }
            return None;
        };
        let Some(ip) = target.host_address() else {
            self.err(
                "vip.manage_address",
                manage,
                "needs a private IP this host carries: kind = \"eip\" with private_ip, or kind = \"route\" with a single-address destination (/32, /128)",
            );
            return None;
        };
        let Some(interface) = &v.interface else {
            self.err(
                "vip.interface",
                table,
                "missing: manage_address = true needs the interface to add the private IP to (e.g. \"eth0\")",
            );
            return None;
        };
        let name = interface.get_ref();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            self.err(
                "vip.interface",
                interface,
                format!("{name:?} is not an interface name (1 to 15 characters, no '/' or space)"),
            );
            return None;
        }
        Some(crate::config::ManagedAddress {
            ip,
            interface: name.clone(),
            hold,
        })
    }

    fn vips(
        &mut self,
        raw: Vec<Spanned<RawVip>>,
        keepalived: &KeepalivedConfig,
        cloud: Option<&CloudConfig>,
    ) -> Vec<VipConfig> {
        let mut out: Vec<VipConfig> = vec![];
        for spanned in raw {
            let table = Spanned::new(spanned.span(), ());
            let v = spanned.into_inner();
            if cloud.is_none() {
                self.err("vip", &table, "a [[vip]] needs a [cloud] table");
            }
            let target = self.target(&v, &table);
            if !keepalived
                .instances
                .iter()
                .any(|i| &i.name == v.vrrp_instance.get_ref())
            {
                self.err(
                    "vip.vrrp_instance",
                    &v.vrrp_instance,
                    format!(
                        "{:?} is not a [[keepalived.instance]]: list it there so its state is tracked from the start",
                        v.vrrp_instance.get_ref()
                    ),
                );
            }
            let min_master_age = v.min_master_age.get_ref().0;
            if min_master_age < Duration::from_secs(1) {
                self.err(
                    "vip.min_master_age",
                    &v.min_master_age,
                    "must be at least 1s: a node that is MASTER for under a second at boot must never claim",
                );
            }
            let (base, max) = (v.backoff_base.get_ref().0, v.backoff_max.get_ref().0);
            if base.is_zero() || max < base {
                self.err(
                    "vip.backoff_max",
                    &v.backoff_max,
                    "must be at least vip.backoff_base, which must be more than 0",
                );
            }
            let Some(target) = target else { continue };
            let address = self.managed_address(&v, &target, &table);
            let name = match v.name {
                Some(n) => {
                    self.label("vip.name", &n);
                    n.into_inner()
                }
                None => match &target {
                    VipTarget::Route { destination, .. } => destination.clone(),
                    t => t.allocation_id().unwrap_or_default().to_owned(),
                },
            };
            let same = |o: &VipConfig| {
                o.name == name
                    || (o.target.allocation_id().is_some()
                        && o.target.allocation_id() == target.allocation_id())
                    || matches!((&o.target, &target), (
                        VipTarget::Route { destination: a, .. },
                        VipTarget::Route { destination: b, .. },
                    ) if a == b)
            };
            if out.iter().any(same) {
                self.err("vip", &table, format!("VIP {name:?} is listed twice"));
            }
            out.push(VipConfig {
                name,
                target,
                vrrp_instance: v.vrrp_instance.into_inner(),
                policy: crate::core::decide::VipPolicy {
                    mode: match v.mode {
                        RawMode::Heal => crate::core::words::Mode::Heal,
                        RawMode::Own => crate::core::words::Mode::Own,
                    },
                    grace: v.grace.get_ref().0,
                    min_master_age,
                    max_claims: v.max_claims.get(),
                    claim_window: v.claim_window.get_ref().0,
                    backoff_base: base,
                    backoff_max: max,
                    dry_run: cloud.is_some_and(|c| c.dry_run),
                },
                address,
            });
        }
        out
    }

    fn probe(&mut self, raw: Spanned<RawProbe>) -> ProbeConfig {
        let table = Spanned::new(raw.span(), ());
        let raw = raw.into_inner();
        let (interval, timeout) = (raw.interval.get_ref().0, raw.timeout.get_ref().0);
        if interval < Duration::from_millis(10) {
            self.err("probe.interval", &raw.interval, "must be at least 10ms");
        }
        if timeout.is_zero() || timeout > interval {
            self.err(
                "probe.timeout",
                &raw.timeout,
                format!(
                    "must be more than 0 and at most probe.interval ({})",
                    humantime::format_duration(interval)
                ),
            );
        }
        let check = RawCheck {
            kind: raw.kind,
            url: raw.url,
            expect_status: raw.expect_status,
            address: raw.address,
            command: raw.command,
            shell: raw.shell,
            dsn: raw.dsn,
        };
        let check = self.check("probe", check, &table);
        let also = raw
            .also
            .into_iter()
            .map(|c| {
                let t = Spanned::new(c.span(), ());
                self.check("probe.also", c.into_inner(), &t)
            })
            .collect();
        ProbeConfig {
            check,
            also,
            interval,
            timeout,
            rise: raw.rise,
            fall: raw.fall,
        }
    }

    /// One check of the probe; `prefix` names its table in errors.
    fn check(&mut self, prefix: &str, raw: RawCheck, table: &Spanned<()>) -> Check {
        // Keys that belong to another kind are mistakes, not noise.
        let kind = raw.kind;
        let foreign: [(&str, Option<std::ops::Range<usize>>, ProbeKind); 6] = [
            ("url", raw.url.as_ref().map(Spanned::span), ProbeKind::Http),
            (
                "expect_status",
                raw.expect_status.as_ref().map(Spanned::span),
                ProbeKind::Http,
            ),
            (
                "address",
                raw.address.as_ref().map(Spanned::span),
                ProbeKind::Tcp,
            ),
            (
                "command",
                raw.command.as_ref().map(Spanned::span),
                ProbeKind::Exec,
            ),
            (
                "shell",
                raw.shell.as_ref().map(Spanned::span),
                ProbeKind::Exec,
            ),
            (
                "dsn",
                raw.dsn.as_ref().map(Spanned::span),
                ProbeKind::Postgres,
            ),
        ];
        for (key, span, owner) in foreign {
            if let Some(span) = span
                && owner != kind
            {
                let s = Spanned::new(span, ());
                self.err(
                    &format!("{prefix}.{key}"),
                    &s,
                    format!("is not used by kind = \"{}\"", kind_name(kind)),
                );
            }
        }
        let key = |k: &str| format!("{prefix}.{k}");
        let placeholder = Check::Tcp {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        match kind {
            ProbeKind::Http => match raw.url {
                None => {
                    self.err(&key("url"), table, "is required for kind = \"http\"");
                    placeholder
                }
                Some(url) => {
                    let expect_status = match raw.expect_status {
                        Some(s) if !(100..=599).contains(s.get_ref()) => {
                            self.err(
                                &key("expect_status"),
                                &s,
                                "must be an HTTP status from 100 to 599",
                            );
                            200
                        }
                        Some(s) => s.into_inner(),
                        None => 200,
                    };
                    match reqwest::Url::parse(url.get_ref()) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => Check::Http {
                            url: u,
                            expect_status,
                        },
                        Ok(u) => {
                            self.err(
                                &key("url"),
                                &url,
                                format!("scheme {:?} is not http or https", u.scheme()),
                            );
                            placeholder
                        }
                        Err(e) => {
                            self.err(&key("url"), &url, format!("not a URL: {e}"));
                            placeholder
                        }
                    }
                }
            },
            ProbeKind::Tcp => match raw.address {
                None => {
                    self.err(&key("address"), table, "is required for kind = \"tcp\"");
                    placeholder
                }
                Some(a) => match a.get_ref().parse::<SocketAddr>() {
                    Ok(address) => Check::Tcp { address },
                    Err(_) => {
                        self.err(
                            &key("address"),
                            &a,
                            format!("{:?} is not IP:port (e.g. \"127.0.0.1:80\")", a.get_ref()),
                        );
                        placeholder
                    }
                },
            },
            ProbeKind::Exec => {
                let shell = raw.shell.as_ref().is_some_and(|s| *s.get_ref());
                match raw.command {
                    None => {
                        self.err(&key("command"), table, "is required for kind = \"exec\"");
                        placeholder
                    }
                    Some(c) if c.get_ref().is_empty() || c.get_ref()[0].is_empty() => {
                        self.err(&key("command"), &c, "must name a program");
                        placeholder
                    }
                    Some(c) if shell && c.get_ref().len() != 1 => {
                        self.err(
                            &key("command"),
                            &c,
                            "with shell = true, give the whole command as one string",
                        );
                        placeholder
                    }
                    Some(c) => Check::Exec {
                        command: c.into_inner(),
                        shell,
                    },
                }
            }
            ProbeKind::Postgres => match raw.dsn {
                None => {
                    self.err(
                        &key("dsn"),
                        table,
                        "is required for kind = \"postgres\" (e.g. \"host=/run/postgresql user=postgres dbname=postgres\")",
                    );
                    placeholder
                }
                Some(d) => match d.get_ref().parse::<tokio_postgres::Config>() {
                    Ok(_) => Check::Postgres {
                        dsn: d.into_inner(),
                    },
                    Err(e) => {
                        self.err(
                            &key("dsn"),
                            &d,
                            format!("not a PostgreSQL connection string: {e}"),
                        );
                        placeholder
                    }
                },
            },
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
