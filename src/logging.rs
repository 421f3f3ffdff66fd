//! Log output: human-readable text or one JSON object a line, on stderr.
//! `RUST_LOG`, when set, overrides `log.level`.
//!
//! Lines are written by a worker thread (tracing-appender's non-blocking
//! writer), so that logging makes no system call in the owner task's turn;
//! when the worker lags, a logging task waits rather than a line being lost.
//! Keep the guard until the end: dropping it flushes what is queued.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat, level: &str) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log writer")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
    guard
}
