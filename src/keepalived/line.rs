//! Pure parser for the lines Keepalived writes to its notify FIFO.
//!
//! Format (keepalived 2.x, `vrrp_notify.c` and `check_notify.c`):
//!
//! ```text
//! INSTANCE "VI_1" MASTER 150
//! GROUP "G1" BACKUP 0
//! VS [192.168.201.15]:tcp:80 UP
//! RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN
//! ```
//!
//! No I/O here: bytes in, an enum or a typed error out.

use crate::core::words::{FifoLine, LineState, LvsKind, VrrpTarget};

/// Longest line accepted; Keepalived's own lines are far shorter.
pub const MAX_LINE_LEN: usize = 1024;

/// Why a line was rejected. The caller logs it together with the line text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("empty line")]
    Empty,
    #[error("line longer than {MAX_LINE_LEN} bytes")]
    TooLong,
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("unknown line type {0:?} (expected INSTANCE, GROUP, VS or RS)")]
    UnknownType(String),
    #[error("instance or group name must be in double quotes")]
    UnquotedName,
    #[error("empty instance or group name")]
    EmptyName,
    #[error("unknown VRRP state {0:?}")]
    UnknownState(String),
    #[error("priority {0:?} is not an integer from 0 to 255")]
    BadPriority(String),
    #[error("expected {expected} fields after the name, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("LVS status {0:?} is neither UP nor DOWN")]
    BadLvsStatus(String),
    #[error("malformed LVS service {0:?} (expected [address]:protocol:port)")]
    BadService(String),
}

impl LineError {
    /// A short, fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::NotUtf8 => "not_utf8",
            Self::UnknownType(_) => "unknown_type",
            Self::UnquotedName | Self::EmptyName => "bad_name",
            Self::UnknownState(_) => "unknown_state",
            Self::BadPriority(_) => "bad_priority",
            Self::FieldCount { .. } => "field_count",
            Self::BadLvsStatus(_) | Self::BadService(_) => "bad_lvs",
        }
    }

    pub const KINDS: [&'static str; 9] = [
        "empty",
        "too_long",
        "not_utf8",
        "unknown_type",
        "bad_name",
        "unknown_state",
        "bad_priority",
        "field_count",
        "bad_lvs",
    ];
}

/// Parse one line as read from the FIFO (with or without its trailing newline).
pub fn parse_bytes(raw: &[u8]) -> Result<FifoLine, LineError> {
    if raw.len() > MAX_LINE_LEN {
        return Err(LineError::TooLong);
    }
    let text = std::str::from_utf8(raw).map_err(|_| LineError::NotUtf8)?;
    parse(text)
}

/// Parse one line of text (with or without its trailing newline).
pub fn parse(line: &str) -> Result<FifoLine, LineError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.len() > MAX_LINE_LEN {
        return Err(LineError::TooLong);
    }
    if line.trim().is_empty() {
        return Err(LineError::Empty);
    }
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    match kind {
        "INSTANCE" => parse_vrrp(VrrpTarget::Instance, rest),
        "GROUP" => parse_vrrp(VrrpTarget::Group, rest),
        "VS" => parse_lvs(LvsKind::VirtualServer, rest, 1),
        "RS" => parse_lvs(LvsKind::RealServer, rest, 2),
        other => Err(LineError::UnknownType(other.to_owned())),
    }
}

fn parse_vrrp(target: VrrpTarget, rest: &str) -> Result<FifoLine, LineError> {
    // The name is quoted and not escaped: it runs to the last quote.
    let rest = rest.strip_prefix('"').ok_or(LineError::UnquotedName)?;
    let (name, tail) = rest.rsplit_once('"').ok_or(LineError::UnquotedName)?;
    if name.is_empty() {
        return Err(LineError::EmptyName);
    }
    let fields: Vec<&str> = tail.split_whitespace().collect();
    if !tail.is_empty() && !tail.starts_with(' ') {
        return Err(LineError::UnquotedName);
    }
    let [state, priority] = fields[..] else {
        return Err(LineError::FieldCount {
            expected: 2,
            found: fields.len(),
        });
    };
    let state = LineState::parse(state).ok_or_else(|| LineError::UnknownState(state.to_owned()))?;
    let priority = priority
        .parse::<u8>()
        .map_err(|_| LineError::BadPriority(priority.to_owned()))?;
    Ok(FifoLine::Vrrp {
        target,
        name: name.to_owned(),
        state,
        priority,
    })
}

fn parse_lvs(kind: LvsKind, rest: &str, services: usize) -> Result<FifoLine, LineError> {
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.len() != services + 1 {
        return Err(LineError::FieldCount {
            expected: services + 1,
            found: fields.len(),
        });
    }
    for service in &fields[..services] {
        check_service(service)?;
    }
    let up = match fields[services] {
        "UP" => true,
        "DOWN" => false,
        other => return Err(LineError::BadLvsStatus(other.to_owned())),
    };
    Ok(FifoLine::Lvs {
        kind,
        service: fields[..services].join(" "),
        up,
    })
}

/// `[address]:protocol:port`; keepalived also writes `FWM:n` for firewall marks.
fn check_service(s: &str) -> Result<(), LineError> {
    let bad = || LineError::BadService(s.to_owned());
    if let Some(mark) = s.strip_prefix("FWM:") {
        return mark.parse::<u32>().map(|_| ()).map_err(|_| bad());
    }
    let rest = s.strip_prefix('[').ok_or_else(bad)?;
    let (addr, rest) = rest.split_once(']').ok_or_else(bad)?;
    let rest = rest.strip_prefix(':').ok_or_else(bad)?;
    let (proto, port) = rest.split_once(':').ok_or_else(bad)?;
    if addr.is_empty() || proto.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(name: &str, state: LineState, priority: u8) -> FifoLine {
        FifoLine::Vrrp {
            target: VrrpTarget::Instance,
            name: name.into(),
            state,
            priority,
        }
    }

    #[test]
    fn every_line_kind_keepalived_writes() {
        use LineState::*;
        let cases: Vec<(&str, FifoLine)> = vec![
            ("INSTANCE \"VI_1\" MASTER 150\n", inst("VI_1", Master, 150)),
            ("INSTANCE \"VI_1\" BACKUP 90", inst("VI_1", Backup, 90)),
            ("INSTANCE \"VI_1\" FAULT 150\n", inst("VI_1", Fault, 150)),
            ("INSTANCE \"VI_1\" STOP 150\n", inst("VI_1", Stop, 150)),
            (
                "INSTANCE \"VI_1\" DELETED 150\n",
                inst("VI_1", Deleted, 150),
            ),
            (
                "INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 150\n",
                inst("VI_1", MasterRxLowerPri, 150),
            ),
            (
                "INSTANCE \"VI_1\" MASTER_PRIORITY 90\n",
                inst("VI_1", MasterPriority, 90),
            ),
            (
                "INSTANCE \"VI_1\" BACKUP_PRIORITY 150\n",
                inst("VI_1", BackupPriority, 150),
            ),
            ("INSTANCE \"v\" MASTER 0\r\n", inst("v", Master, 0)),
            ("INSTANCE \"v\" MASTER 255", inst("v", Master, 255)),
            // Names are not escaped: spaces and quotes run to the last quote.
            (
                "INSTANCE \"web vip\" BACKUP 100",
                inst("web vip", Backup, 100),
            ),
            ("INSTANCE \"a\"b\" BACKUP 100", inst("a\"b", Backup, 100)),
            (
                "GROUP \"G1\" MASTER 0\n",
                FifoLine::Vrrp {
                    target: VrrpTarget::Group,
                    name: "G1".into(),
                    state: Master,
                    priority: 0,
                },
            ),
            (
                "VS [192.168.201.15]:tcp:80 UP\n",
                FifoLine::Lvs {
                    kind: LvsKind::VirtualServer,
                    service: "[192.168.201.15]:tcp:80".into(),
                    up: true,
                },
            ),
            (
                "VS FWM:7 DOWN",
                FifoLine::Lvs {
                    kind: LvsKind::VirtualServer,
                    service: "FWM:7".into(),
                    up: false,
                },
            ),
            (
                "RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN\n",
                FifoLine::Lvs {
                    kind: LvsKind::RealServer,
                    service: "[1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80".into(),
                    up: false,
                },
            ),
            (
                "RS [2001:db8::1]:udp:53 [2001:db8::53]:udp:53 UP",
                FifoLine::Lvs {
                    kind: LvsKind::RealServer,
                    service: "[2001:db8::1]:udp:53 [2001:db8::53]:udp:53".into(),
                    up: true,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want.clone()), "line {text:?}");
            // Display writes the line back in Keepalived's own format.
            assert_eq!(parse(&want.to_string()), Ok(want), "round trip of {text:?}");
        }
    }

    #[test]
    fn every_malformed_shape_is_a_typed_error() {
        let long = format!("INSTANCE \"{}\" MASTER 1", "x".repeat(MAX_LINE_LEN));
        let cases: Vec<(&str, LineError)> = vec![
            ("", LineError::Empty),
            ("\n", LineError::Empty),
            ("   ", LineError::Empty),
            (&long, LineError::TooLong),
            ("garbage", LineError::UnknownType("garbage".into())),
            (
                "instance \"VI_1\" MASTER 1",
                LineError::UnknownType("instance".into()),
            ),
            ("INSTANCE VI_1 MASTER 150", LineError::UnquotedName),
            ("INSTANCE \"VI_1 MASTER 150", LineError::UnquotedName),
            ("INSTANCE \"VI_1\"MASTER 150", LineError::UnquotedName),
            ("INSTANCE \"\" MASTER 150", LineError::EmptyName),
            (
                "INSTANCE \"VI_1\" MASTER",
                LineError::FieldCount {
                    expected: 2,
                    found: 1,
                },
            ),
            (
                "INSTANCE \"VI_1\"",
                LineError::FieldCount {
                    expected: 2,
                    found: 0,
                },
            ),
            (
                "INSTANCE \"VI_1\" MASTER 150 extra",
                LineError::FieldCount {
                    expected: 2,
                    found: 3,
                },
            ),
            (
                "INSTANCE \"VI_1\" LEADER 150",
                LineError::UnknownState("LEADER".into()),
            ),
            (
                "INSTANCE \"VI_1\" master 150",
                LineError::UnknownState("master".into()),
            ),
            (
                "INSTANCE \"VI_1\" MASTER 256",
                LineError::BadPriority("256".into()),
            ),
            (
                "INSTANCE \"VI_1\" MASTER -1",
                LineError::BadPriority("-1".into()),
            ),
            (
                "INSTANCE \"VI_1\" MASTER high",
                LineError::BadPriority("high".into()),
            ),
            (
                "VS [10.0.0.1]:tcp:80",
                LineError::FieldCount {
                    expected: 2,
                    found: 1,
                },
            ),
            (
                "VS [10.0.0.1]:tcp:80 MAYBE",
                LineError::BadLvsStatus("MAYBE".into()),
            ),
            (
                "VS 10.0.0.1:tcp:80 UP",
                LineError::BadService("10.0.0.1:tcp:80".into()),
            ),
            (
                "VS [10.0.0.1]:tcp:http UP",
                LineError::BadService("[10.0.0.1]:tcp:http".into()),
            ),
            ("VS []:tcp:80 UP", LineError::BadService("[]:tcp:80".into())),
            ("VS FWM:x UP", LineError::BadService("FWM:x".into())),
            (
                "RS [1.2.3.4]:tcp:80 UP",
                LineError::FieldCount {
                    expected: 3,
                    found: 2,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Err(want), "line {text:?}");
        }
    }

    #[test]
    fn bytes_are_checked_for_length_and_utf8() {
        assert_eq!(
            parse_bytes(b"INSTANCE \"\xff\" MASTER 1\n"),
            Err(LineError::NotUtf8)
        );
        assert_eq!(
            parse_bytes(&vec![b'x'; MAX_LINE_LEN + 1]),
            Err(LineError::TooLong)
        );
        assert_eq!(
            parse_bytes(b"INSTANCE \"VI_1\" BACKUP 100\n"),
            Ok(inst("VI_1", LineState::Backup, 100))
        );
    }

    #[test]
    fn every_error_kind_is_a_declared_metric_label() {
        let errors = [
            parse("").unwrap_err(),
            parse_bytes(&vec![b'x'; MAX_LINE_LEN + 1]).unwrap_err(),
            parse_bytes(b"\xff").unwrap_err(),
            parse("x").unwrap_err(),
            parse("INSTANCE x").unwrap_err(),
            parse("INSTANCE \"a\" X 1").unwrap_err(),
            parse("INSTANCE \"a\" MASTER x").unwrap_err(),
            parse("INSTANCE \"a\" MASTER").unwrap_err(),
            parse("VS [a]:tcp:1 X").unwrap_err(),
        ];
        let kinds: std::collections::BTreeSet<_> = errors.iter().map(LineError::kind).collect();
        let declared: std::collections::BTreeSet<_> = LineError::KINDS.into_iter().collect();
        assert_eq!(kinds, declared);
    }
}
