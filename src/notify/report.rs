//! What the notify wrapper tells the running watchdog about one run of a
//! notify script: bytes in, a `Report` or a typed error out. Pure.

pub use crate::core::input::NotifyReport as Report;

/// The most bytes of a report the watchdog reads.
pub const MAX_REPORT: usize = 16 * 1024;
/// The most bytes of the script's output a report carries (its tail).
pub const MAX_OUTPUT: usize = 4096;
/// The longest instance name accepted (Keepalived's own limit is lower).
const MAX_NAME: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("the report is {0} bytes, more than {MAX_REPORT}")]
    TooLarge(usize),
    #[error("the report is not valid JSON of a notify run: {0}")]
    Json(String),
    #[error("instance: {0:?} is not a VRRP instance name (empty, too long or control characters)")]
    Instance(String),
    #[error("output: {0} bytes, more than {MAX_OUTPUT}")]
    Output(usize),
}

/// The last `MAX_OUTPUT` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str) -> &str {
    if text.len() <= MAX_OUTPUT {
        return text;
    }
    let mut start = text.len() - MAX_OUTPUT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

impl Report {
    pub fn parse(bytes: &[u8]) -> Result<Report, ReportError> {
        if bytes.len() > MAX_REPORT {
            return Err(ReportError::TooLarge(bytes.len()));
        }
        let r: Report =
            serde_json::from_slice(bytes).map_err(|e| ReportError::Json(e.to_string()))?;
        if let Some(i) = &r.instance
            && (i.is_empty() || i.len() > MAX_NAME || i.chars().any(char::is_control))
        {
            return Err(ReportError::Instance(i.clone()));
        }
        if r.output.len() > MAX_OUTPUT {
            return Err(ReportError::Output(r.output.len()));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::words::Outcome;

    #[test]
    fn reports_parse_or_name_what_is_wrong() {
        let ok = br#"{"instance":"VI_1","outcome":"timed_out","exit_code":null,"duration_ms":20000,"output":"x"}"#;
        assert_eq!(
            Report::parse(ok),
            Ok(Report {
                instance: Some("VI_1".into()),
                outcome: Outcome::TimedOut,
                exit_code: None,
                duration_ms: 20000,
                output: "x".into(),
            })
        );
        let long = format!(
            r#"{{"instance":null,"outcome":"failed","exit_code":1,"duration_ms":5,"output":"{}"}}"#,
            "a".repeat(MAX_OUTPUT + 1)
        );
        let rows: [(&[u8], &str); 6] = [
            (b"", "not valid JSON"),
            (b"{\"outcome\":\"exploded\"}", "unknown variant"),
            (
                br#"{"instance":"VI_1","outcome":"failed","exit_code":1,"duration_ms":5,"extra":1}"#,
                "unknown field",
            ),
            (
                br#"{"instance":"","outcome":"failed","exit_code":1,"duration_ms":5}"#,
                "instance: \"\"",
            ),
            (
                br#"{"instance":"VI\n1","outcome":"failed","exit_code":1,"duration_ms":5}"#,
                "instance:",
            ),
            (long.as_bytes(), "output: 4097 bytes"),
        ];
        for (bytes, want) in rows {
            let e = Report::parse(bytes).expect_err(want).to_string();
            assert!(e.contains(want), "{e} should name {want}");
        }
        let huge = vec![b' '; MAX_REPORT + 1];
        assert_eq!(
            Report::parse(&huge),
            Err(ReportError::TooLarge(MAX_REPORT + 1))
        );
    }

    #[test]
    fn the_tail_keeps_the_end_on_a_character_boundary() {
        assert_eq!(tail("short"), "short");
        let text = format!("{}é{}", "a".repeat(10), "b".repeat(MAX_OUTPUT - 1));
        let t = tail(&text);
        assert!(t.len() <= MAX_OUTPUT);
        assert!(t.ends_with('b') && t.starts_with('b'), "{}", &t[..4]);
    }
}
