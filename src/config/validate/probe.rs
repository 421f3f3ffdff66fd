//! The [probe] table and its checks.

use super::*;

impl Validator<'_> {
    pub(super) fn probe(&mut self, raw: Spanned<RawProbe>) -> ProbeConfig {
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
            ca_file: raw.ca_file,
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
        let foreign: [(&str, Option<std::ops::Range<usize>>, ProbeKind); 7] = [
            ("url", raw.url.as_ref().map(Spanned::span), ProbeKind::Http),
            (
                "ca_file",
                raw.ca_file.as_ref().map(Spanned::span),
                ProbeKind::Http,
            ),
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
                    let ca = raw.ca_file.and_then(|f| {
                        if !url.get_ref().starts_with("https://") {
                            self.err(&key("ca_file"), &f, "is used only with an https:// url");
                            return None;
                        }
                        CaFile::read(Path::new(f.get_ref()))
                            .map_err(|e| self.err(&key("ca_file"), &f, e))
                            .ok()
                    });
                    match reqwest::Url::parse(url.get_ref()) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => Check::Http {
                            url: u,
                            expect_status,
                            ca,
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
