//! The notify FIFO reader.
//!
//! - The watchdog creates the FIFO (mode 0600, its own user) when it is
//!   absent, so that Keepalived reuses it instead of creating one that a
//!   reload would replace.
//! - It opens the FIFO read-write and non-blocking: Keepalived's restarts
//!   never give EOF.
//! - Lines already buffered when the watchdog starts are discarded (counted
//!   as stale): they describe the past, not the present.
//! - Each line is stamped when read; Keepalived writes no time.
//! - Once a second it checks that the path still names the FIFO it holds;
//!   when the path was removed or replaced it reads what is left in the old
//!   one, then opens (or recreates) the new one.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::stat::Mode;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::core::input::Event;
use crate::keepalived::line::{self, MAX_LINE_LEN};
use crate::metrics::Metrics;

const REPLACED_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum FifoError {
    #[error("{path}: exists but is not a FIFO")]
    NotAFifo { path: PathBuf },
    #[error("cannot create FIFO {path}: {source}")]
    Create { path: PathBuf, source: nix::Error },
    #[error("cannot create directory for FIFO {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open FIFO {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading FIFO {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Creates the FIFO when the path is free; fails when it is something else.
pub fn ensure(path: &Path) -> Result<bool, FifoError> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() => Ok(false),
        Ok(_) => Err(FifoError::NotAFifo { path: path.into() }),
        Err(_) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| FifoError::CreateDir {
                    path: path.into(),
                    source,
                })?;
            }
            match nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR) {
                Ok(()) | Err(nix::Error::EEXIST) => Ok(true),
                Err(source) => Err(FifoError::Create {
                    path: path.into(),
                    source,
                }),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Read {
    Direct,
    Reactor,
}

pub struct Fifo {
    path: PathBuf,
    rx: pipe::Receiver,
    inode: u64,
    splitter: LineSplitter,
}

impl Fifo {
    /// Creates the FIFO if needed and opens it read-write, non-blocking.
    pub fn open(path: &Path) -> Result<Fifo, FifoError> {
        if ensure(path)? {
            info!(event = "fifo_created", path = %path.display(), "created the notify FIFO");
        }
        let open_err = |source| FifoError::Open {
            path: path.into(),
            source,
        };
        let rx = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(path)
            .map_err(open_err)?;
        let inode = std::fs::metadata(path).map_err(open_err)?.ino();
        Ok(Fifo {
            path: path.into(),
            rx,
            inode,
            splitter: LineSplitter::default(),
        })
    }

    /// Reads and drops what is buffered now; returns the number of lines.
    pub fn discard_buffered(&mut self) -> Result<usize, FifoError> {
        let mut lines = 0;
        for chunk in self.read_available(Read::Direct)? {
            lines += self.splitter.push(&chunk).len();
        }
        self.splitter = LineSplitter::default();
        Ok(lines)
    }

    /// Reads until the pipe is empty. `Direct` asks the kernel even when the
    /// reactor has not yet reported the pipe readable (right after opening);
    /// `Reactor` keeps tokio's readiness in step for the read loop.
    /// What the FIFO holds now, at most `READS_PER_TURN` reads: a writer
    /// that never stops must not grow one turn's buffer without bound (what
    /// is left is read at the next turn; the FIFO stays readable).
    fn read_available(&mut self, how: Read) -> Result<Vec<Vec<u8>>, FifoError> {
        let mut out = vec![];
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..READS_PER_TURN {
            let read = match how {
                Read::Direct => nix::unistd::read(&self.rx, &mut buf).map_err(std::io::Error::from),
                Read::Reactor => self.rx.try_read(&mut buf),
            };
            match read {
                Ok(0) => return Ok(out),
                Ok(n) => out.push(buf[..n].to_vec()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(out),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(FifoError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Whether the path now names another file than the one held open.
    fn replaced(&self) -> Option<&'static str> {
        match std::fs::metadata(&self.path) {
            Err(_) => Some("removed"),
            Ok(m) if m.ino() != self.inode => Some("replaced"),
            Ok(_) => None,
        }
    }
}

/// How many 64 KiB reads one turn of the reader makes at most (1 MiB).
pub const READS_PER_TURN: usize = 16;

/// Reads lines until cancelled; sends each valid one, stamped, to the owner.
pub async fn run(
    mut fifo: Fifo,
    events: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<(), FifoError> {
    let span = info_span!("fifo", path = %fifo.path.display());
    async move {
        let mut check = tokio::time::interval(REPLACED_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = check.tick() => {
                    if let Some(how) = fifo.replaced() {
                        // What the old FIFO still holds was written before the swap.
                        let rest = fifo.read_available(Read::Direct)?;
                        if !deliver(&mut fifo, rest, &events, &metrics).await {
                            return Ok(());
                        }
                        let path = fifo.path.clone();
                        match Fifo::open(&path) {
                            Ok(new) => {
                                warn!(event = "fifo_reopened", how, "the FIFO path was {how}; reopened it");
                                metrics.fifo_reopened();
                                fifo = new;
                            }
                            Err(e) => warn!(event = "fifo_reopen_failed", error = %e, "the FIFO path was {how}; cannot reopen it, retrying"),
                        }
                    }
                }
                ready = fifo.rx.readable() => {
                    ready.map_err(|source| FifoError::Read { path: fifo.path.clone(), source })?;
                    let chunks = fifo.read_available(Read::Reactor)?;
                    if !deliver(&mut fifo, chunks, &events, &metrics).await {
                        return Ok(());
                    }
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Parses and sends; returns false when the owner is gone.
async fn deliver(
    fifo: &mut Fifo,
    chunks: Vec<Vec<u8>>,
    events: &mpsc::Sender<Event>,
    metrics: &Metrics,
) -> bool {
    let at = crate::clock::now();
    for chunk in chunks {
        for raw in fifo.splitter.push(&chunk) {
            let parsed = raw
                .as_deref()
                .map_err(|e| e.clone())
                .and_then(line::parse_bytes);
            metrics.line_read(at.wall, parsed.is_ok());
            match parsed {
                Ok(line) => {
                    if events.send(Event::Line { line, at }).await.is_err() {
                        return false;
                    }
                }
                Err(error) => {
                    metrics.line_rejected(error.kind());
                    let text = match &raw {
                        Ok(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        Err(_) => String::from("(longer than the limit; dropped)"),
                    };
                    warn!(event = "fifo_line_rejected", line = %text.trim_end(), error = %error, "rejected a FIFO line");
                }
            }
        }
    }
    true
}

/// Splits a byte stream into lines of at most `MAX_LINE_LEN` bytes. A longer
/// line is reported once as `TooLong` and its bytes dropped up to the newline.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
    overflow: bool,
}

impl LineSplitter {
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Result<Vec<u8>, line::LineError>> {
        let mut out = vec![];
        while !bytes.is_empty() {
            let (part, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            if !self.overflow {
                self.pending.extend_from_slice(part);
                if self.pending.len() > MAX_LINE_LEN {
                    self.pending.clear();
                    self.overflow = true;
                }
            }
            if complete {
                if self.overflow {
                    out.push(Err(line::LineError::TooLong));
                } else {
                    out.push(Ok(std::mem::take(&mut self.pending)));
                }
                self.overflow = false;
            }
            bytes = rest;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_joins_partial_reads_and_bounds_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"INSTANCE \"VI"), vec![]);
        assert_eq!(
            s.push(b"_1\" MASTER 1\nGROUP"),
            vec![Ok(b"INSTANCE \"VI_1\" MASTER 1".to_vec())]
        );
        assert_eq!(s.push(b" x\n\n"), vec![Ok(b"GROUP x".to_vec()), Ok(vec![])]);
        let long = vec![b'a'; MAX_LINE_LEN + 5];
        assert_eq!(s.push(&long), vec![]);
        assert_eq!(s.push(&long), vec![]);
        assert_eq!(
            s.push(b"tail\nok\n"),
            vec![Err(line::LineError::TooLong), Ok(b"ok".to_vec())]
        );
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "vip-watchdog-fifo-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn stale_lines_are_discarded_then_new_lines_flow_and_replacement_is_followed() {
        let dir = temp_dir();
        let path = dir.join("sub/keepalived.fifo");
        let mut fifo = Fifo::open(&path).expect("creates and opens the FIFO");
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.mode() & 0o777, 0o600);

        let write = |p: &Path, text: &str| {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            w.write_all(text.as_bytes()).unwrap();
        };
        write(
            &path,
            "INSTANCE \"VI_1\" BACKUP 1\nINSTANCE \"VI_1\" MASTER 1\n",
        );
        assert_eq!(fifo.discard_buffered().unwrap(), 2);

        let metrics = Arc::new(Metrics::new("p", "n").unwrap());
        let (tx, mut rx) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(fifo, tx, metrics.clone(), cancel.clone()));

        write(&path, "garbage\nINSTANCE \"VI_1\" FAULT 1\n");
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a line within 5 s")
            .expect("channel open");
        let Event::Line { line, .. } = got else {
            panic!("a FIFO line event");
        };
        assert_eq!(line.to_string(), "INSTANCE \"VI_1\" FAULT 1");
        assert_eq!(
            metrics.value("vip_watchdog_fifo_lines_read_total", &[]),
            Some(2.0)
        );
        assert_eq!(
            metrics.value(
                "vip_watchdog_fifo_lines_rejected_total",
                &[("reason", "unknown_type")]
            ),
            Some(1.0)
        );

        // Replace the FIFO under the reader: it must follow the new one. The
        // writer holds the new FIFO open read-write (so opening does not
        // block and the line stays buffered) until the reader has reopened.
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        let mut holder = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut holder, b"INSTANCE \"VI_1\" BACKUP 1\n").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a line from the new FIFO within 10 s")
            .expect("channel open");
        drop(holder);
        assert_eq!(
            metrics.value("vip_watchdog_fifo_reopens_total", &[]),
            Some(1.0)
        );
        assert!(matches!(got, Event::Line { .. }));
        cancel.cancel();
        task.await.unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
