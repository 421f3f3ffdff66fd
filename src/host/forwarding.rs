//! `net.ipv4.ip_forward`: a NAT or firewall appliance, the next hop of a
//! route VIP, forwards the traffic routed to it only while this is on.
//! Read from /proc/sys, which shows the reader's network namespace (the
//! watchdog's, which is the appliance's).

use std::path::Path;

use tracing::{error, info, warn};

pub const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardingError {
    #[error("cannot read {path}: {error}")]
    Unreadable { path: String, error: String },
    #[error("{path} holds {text:?}, not 0 or 1")]
    Malformed { path: String, text: String },
}

/// Whether forwarding is on, from the file's text ("0" or "1" and a
/// newline, as the kernel writes it).
pub fn parse(path: &Path, text: &str) -> Result<bool, ForwardingError> {
    match text.trim() {
        "1" => Ok(true),
        "0" => Ok(false),
        other => Err(ForwardingError::Malformed {
            path: path.display().to_string(),
            text: other.to_owned(),
        }),
    }
}

pub fn read(path: &Path) -> Result<bool, ForwardingError> {
    let text = std::fs::read_to_string(path).map_err(|e| ForwardingError::Unreadable {
        path: path.display().to_string(),
        error: e.to_string(),
    })?;
    parse(path, &text)
}

/// The start-up look, for a config with route VIPs (`routed`, their
/// names): logged, an error while forwarding is off.
pub fn report(routed: &[String]) {
    if routed.is_empty() {
        return;
    }
    let vips = routed.join(", ");
    match read(Path::new(IP_FORWARD)) {
        Ok(true) => {
            info!(event = "ip_forward_on", vips = %vips, "net.ipv4.ip_forward is on: this node forwards the route VIPs' traffic as MASTER")
        }
        Ok(false) => {
            error!(event = "ip_forward_off", vips = %vips, fix = "sysctl -w net.ipv4.ip_forward=1, and net.ipv4.ip_forward = 1 in /etc/sysctl.d/", "net.ipv4.ip_forward is off: as MASTER this node would drop the traffic routed to it for the route VIPs; turn it on")
        }
        Err(e) => {
            warn!(event = "ip_forward_unreadable", vips = %vips, error = %e, "cannot tell whether this node forwards the route VIPs' traffic")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_files_text_is_read_and_anything_else_is_named() {
        let p = Path::new(IP_FORWARD);
        let rows: [(&str, Result<bool, &str>); 5] = [
            ("1\n", Ok(true)),
            ("0\n", Ok(false)),
            ("1", Ok(true)),
            (
                "2\n",
                Err("/proc/sys/net/ipv4/ip_forward holds \"2\", not 0 or 1"),
            ),
            (
                "",
                Err("/proc/sys/net/ipv4/ip_forward holds \"\", not 0 or 1"),
            ),
        ];
        for (text, want) in rows {
            let got = parse(p, text).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "{text:?}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let e = read(Path::new("/nonexistent/ip_forward")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/ip_forward: "),
            "{e}"
        );
    }
}
