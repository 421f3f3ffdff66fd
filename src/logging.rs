//! Log output: human-readable text or one JSON object a line, on stderr.
//! `RUST_LOG`, when set, overrides `log.level`.
//!
//! Lines are written by a worker thread (tracing-appender's non-blocking
//! writer), so that logging makes no system call in the owner task's turn;
//! when the worker lags, a logging task waits rather than a line being lost.
//! Keep the guard until the end: dropping it flushes what is queued.
//!
//! When stderr is the journal (systemd sets `JOURNAL_STREAM` to its device
//! and inode), each line starts with its syslog priority, `<3>` for an
//! error down to `<7>` for debug (sd-daemon(3)): journald takes it as the
//! line's PRIORITY and strips it, so `journalctl -p err -u vip-watchdog`
//! shows the errors. Anywhere else lines are written as they are.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, format::JsonFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat, level: &str) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log writer")
        .finish(std::io::stderr());
    let priority = Priority {
        on: stderr_is_journal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal() && !priority.on);
    match format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(
                priority.wrap(
                    tracing_subscriber::fmt::format()
                        .json()
                        .flatten_event(true)
                        .with_current_span(false),
                ),
            )
            .init(),
        LogFormat::Text => builder
            .event_format(priority.wrap(tracing_subscriber::fmt::format()))
            .init(),
    }
    guard
}

/// Whether stderr is the stream `JOURNAL_STREAM` names ("DEVICE:INODE").
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    names_stream(&stream, stat.st_dev, stat.st_ino)
}

fn names_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// The syslog priority of a level, as journald reads it.
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

#[derive(Clone, Copy)]
struct Priority {
    on: bool,
}

impl Priority {
    fn wrap<F>(self, inner: F) -> Prefixed<F> {
        Prefixed { on: self.on, inner }
    }
}

/// A formatter that writes `<N>` before what `inner` writes, when `on`.
struct Prefixed<F> {
    on: bool,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.on {
            write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(json: bool, on: bool) -> Vec<String> {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let builder = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .with_max_level(Level::DEBUG);
        let log = || {
            tracing::error!(event = "e", "an error");
            tracing::warn!(event = "w", "a warning");
            tracing::info!(event = "i", "news");
            tracing::debug!(event = "d", "detail");
        };
        let p = Priority { on };
        if json {
            let s = builder
                .fmt_fields(JsonFields::new())
                .event_format(p.wrap(tracing_subscriber::fmt::format().json().flatten_event(true)))
                .finish();
            tracing::subscriber::with_default(s, log);
        } else {
            let s = builder
                .event_format(p.wrap(tracing_subscriber::fmt::format()))
                .finish();
            tracing::subscriber::with_default(s, log);
        }
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn lines_to_the_journal_start_with_their_priority() {
        for json in [false, true] {
            let l = lines(json, true);
            assert_eq!(l.len(), 4, "{l:?}");
            for (line, p) in l.iter().zip(["<3>", "<4>", "<6>", "<7>"]) {
                assert!(
                    line.starts_with(p),
                    "json {json}: {line:?} should start with {p}"
                );
            }
            if json {
                let v: serde_json::Value =
                    serde_json::from_str(&l[0][3..]).expect("JSON after <3>");
                assert_eq!(v["event"], "e");
            }
        }
    }

    #[test]
    fn lines_elsewhere_are_unchanged() {
        for json in [false, true] {
            let l = lines(json, false);
            assert_eq!(l.len(), 4, "{l:?}");
            assert!(l.iter().all(|x| !x.starts_with('<')), "{l:?}");
        }
        let v: serde_json::Value = serde_json::from_str(&lines(true, false)[1]).expect("JSON");
        assert_eq!(v["level"], "WARN");
    }

    #[test]
    fn journal_stream_names_device_and_inode() {
        assert!(names_stream("8:1234", 8, 1234));
        assert!(!names_stream("8:1234", 8, 1235));
        assert!(!names_stream("9:1234", 8, 1234));
        assert!(!names_stream("", 8, 1234));
        assert!(!names_stream("8-1234", 8, 1234));
        assert!(!names_stream("x:1234", 8, 1234));
    }
}
