//! One probe run: http, tcp or exec, bounded by a timeout.

use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::Command;

use crate::config::Check;
use crate::error_chain;

/// Why one probe run failed; also the `reason` label of the failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    Timeout,
    /// Could not connect, or the command could not be started.
    Unreachable,
    /// Connected, but the answer was wrong: HTTP status or exit status.
    BadAnswer,
}

impl FailReason {
    pub const ALL: [FailReason; 3] = [Self::Timeout, Self::Unreachable, Self::BadAnswer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::BadAnswer => "bad_answer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success(String),
    Failure(FailReason, String),
}

pub struct Prober {
    /// The probe's check, then the ones that must pass too, in order; each
    /// with the HTTP client it uses (its own for an http check with
    /// `ca_file`, which trusts that CA only).
    checks: Vec<(Check, reqwest::Client)>,
    timeout: Duration,
}

impl Prober {
    pub fn new(check: Check, also: Vec<Check>, timeout: Duration) -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(timeout)
        };
        let shared = builder().build()?;
        let checks = std::iter::once(check)
            .chain(also)
            .map(|c| {
                let client = match &c {
                    Check::Http { ca: Some(ca), .. } => {
                        builder().tls_certs_only(ca.certificates()).build()?
                    }
                    _ => shared.clone(),
                };
                Ok((c, client))
            })
            .collect::<Result<_, reqwest::Error>>()?;
        Ok(Self { checks, timeout })
    }

    pub async fn run_once(&self) -> Outcome {
        match tokio::time::timeout(self.timeout, self.attempt()).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failure(
                FailReason::Timeout,
                format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ),
            ),
        }
    }

    /// Every check in turn; the first failure is the run's.
    async fn attempt(&self) -> Outcome {
        let mut details = vec![];
        for (check, client) in &self.checks {
            match one(check, client).await {
                Outcome::Success(d) => details.push(d),
                failure => return failure,
            }
        }
        Outcome::Success(details.join("; "))
    }
}

/// One check, with `client` for an http one.
async fn one(check: &Check, client: &reqwest::Client) -> Outcome {
    match check {
        Check::Postgres { dsn } => postgres_primary(dsn).await,
        Check::Http {
            url, expect_status, ..
        } => match client.get(url.clone()).send().await {
            Ok(resp) if resp.status().as_u16() == *expect_status => {
                Outcome::Success(format!("HTTP {}", resp.status().as_u16()))
            }
            Ok(resp) => Outcome::Failure(
                FailReason::BadAnswer,
                format!("HTTP {}, expected {expect_status}", resp.status().as_u16()),
            ),
            Err(e) if e.is_timeout() => Outcome::Failure(FailReason::Timeout, error_chain(&e)),
            Err(e) => Outcome::Failure(FailReason::Unreachable, error_chain(&e)),
        },
        Check::Tcp { address } => match TcpStream::connect(address).await {
            Ok(_) => Outcome::Success(format!("connected to {address}")),
            Err(e) => Outcome::Failure(FailReason::Unreachable, format!("{address}: {e}")),
        },
        Check::Exec { command, shell } => {
            let mut cmd = if *shell {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(&command[0]);
                c
            } else {
                let mut c = Command::new(&command[0]);
                c.args(&command[1..]);
                c
            };
            // Dropped on timeout: the child is killed, not left behind.
            cmd.kill_on_drop(true)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            match cmd.output().await {
                Ok(out) if out.status.success() => Outcome::Success("exit status 0".into()),
                Ok(out) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let first = stderr.lines().next().unwrap_or("").trim();
                    let mut detail = format!("{}", out.status);
                    if !first.is_empty() {
                        detail.push_str(": ");
                        detail.push_str(&first.chars().take(200).collect::<String>());
                    }
                    Outcome::Failure(FailReason::BadAnswer, detail)
                }
                Err(e) => Outcome::Failure(
                    FailReason::Unreachable,
                    format!("cannot run {:?}: {e}", command[0]),
                ),
            }
        }
    }
}

/// Whether the PostgreSQL server at `dsn` answers and is a primary.
async fn postgres_primary(dsn: &str) -> Outcome {
    let (client, connection) = match tokio_postgres::connect(dsn, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => return Outcome::Failure(FailReason::Unreachable, error_chain(&e)),
    };
    // Drives the connection; ends when the client is dropped.
    let driver = tokio::spawn(connection);
    let outcome = match client.query_one("SELECT pg_is_in_recovery()", &[]).await {
        Ok(row) => match row.try_get::<_, bool>(0) {
            Ok(false) => Outcome::Success("a primary (pg_is_in_recovery() is false)".into()),
            Ok(true) => Outcome::Failure(
                FailReason::BadAnswer,
                "a replica (pg_is_in_recovery() is true): only a primary is healthy".into(),
            ),
            Err(e) => Outcome::Failure(FailReason::BadAnswer, error_chain(&e)),
        },
        Err(e) => Outcome::Failure(FailReason::BadAnswer, error_chain(&e)),
    };
    drop(client);
    driver.abort();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    fn exec(cmd: &[&str], shell: bool) -> Check {
        Check::Exec {
            command: cmd.iter().map(|s| s.to_string()).collect(),
            shell,
        }
    }

    async fn run(check: Check) -> Outcome {
        Prober::new(check, vec![], Duration::from_secs(5))
            .expect("client builds")
            .run_once()
            .await
    }

    #[tokio::test]
    async fn exec_success_failure_and_missing_program() {
        assert!(matches!(
            run(exec(&["true"], false)).await,
            Outcome::Success(_)
        ));
        assert!(matches!(
            run(exec(&["false"], false)).await,
            Outcome::Failure(FailReason::BadAnswer, _)
        ));
        assert!(matches!(
            run(exec(&["/nonexistent/probe"], false)).await,
            Outcome::Failure(FailReason::Unreachable, _)
        ));
    }

    #[tokio::test]
    async fn exec_uses_no_shell_unless_asked() {
        // Without a shell, "exit 3" is a program name that does not exist.
        assert!(matches!(
            run(exec(&["exit 3"], false)).await,
            Outcome::Failure(FailReason::Unreachable, _)
        ));
        let Outcome::Failure(FailReason::BadAnswer, detail) =
            run(exec(&["echo broken >&2; exit 3"], true)).await
        else {
            panic!("a shell command exiting 3 is a bad answer");
        };
        assert!(
            detail.contains("3") && detail.contains("broken"),
            "{detail}"
        );
    }

    /// (checks, outcome): every check must pass; the first failure is the
    /// run's, and the checks after it are not run.
    #[tokio::test]
    async fn combined_checks_all_must_pass() {
        let dir = std::env::temp_dir().join(format!("vip-watchdog-also-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("ran");
        let touch = exec(&[&format!("touch {}", marker.display())], true);
        let rows: [(Check, Vec<Check>, &str, bool); 3] = [
            (
                exec(&["true"], false),
                vec![exec(&["true"], false)],
                "success",
                false,
            ),
            (
                exec(&["true"], false),
                vec![exec(&["false"], false), touch.clone()],
                "bad_answer",
                false,
            ),
            (
                exec(&["/nonexistent/probe"], false),
                vec![touch.clone()],
                "unreachable",
                false,
            ),
        ];
        for (check, also, want, ran) in rows {
            let _ = std::fs::remove_file(&marker);
            let got = Prober::new(check, also, Duration::from_secs(5))
                .unwrap()
                .run_once()
                .await;
            let kind = match &got {
                Outcome::Success(_) => "success",
                Outcome::Failure(r, _) => r.as_str(),
            };
            assert_eq!((kind, marker.exists()), (want, ran), "{got:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_postgres_check_that_cannot_connect_is_unreachable() {
        let dsn = "host=/nonexistent/socket-dir user=postgres connect_timeout=1".to_owned();
        let Outcome::Failure(reason, detail) = run(Check::Postgres { dsn }).await else {
            panic!("no server there");
        };
        assert_eq!(reason, FailReason::Unreachable, "{detail}");
    }

    #[tokio::test]
    async fn exec_timeout_kills_the_command() {
        let p = Prober::new(
            exec(&["sleep", "30"], false),
            vec![],
            Duration::from_millis(50),
        )
        .unwrap();
        assert!(matches!(
            p.run_once().await,
            Outcome::Failure(FailReason::Timeout, _)
        ));
    }

    #[tokio::test]
    async fn tcp_connect_and_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        assert!(matches!(
            run(Check::Tcp { address }).await,
            Outcome::Success(_)
        ));
        drop(listener);
        assert!(matches!(
            run(Check::Tcp { address }).await,
            Outcome::Failure(FailReason::Unreachable, _)
        ));
    }

    /// A one-shot HTTP server answering each connection with `status`.
    async fn http_server(status: u16) -> reqwest::Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        format!("http://{addr}/health").parse().unwrap()
    }

    #[tokio::test]
    async fn http_expected_and_unexpected_status() {
        let url = http_server(200).await;
        let ok = run(Check::Http {
            url: url.clone(),
            expect_status: 200,
            ca: None,
        })
        .await;
        assert_eq!(ok, Outcome::Success("HTTP 200".into()));
        let Outcome::Failure(FailReason::BadAnswer, d) = run(Check::Http {
            url,
            expect_status: 204,
            ca: None,
        })
        .await
        else {
            panic!("200 when 204 is expected is a bad answer");
        };
        assert_eq!(d, "HTTP 200, expected 204");
        let url = http_server(503).await;
        assert!(matches!(
            run(Check::Http {
                url,
                expect_status: 200,
                ca: None,
            })
            .await,
            Outcome::Failure(FailReason::BadAnswer, _)
        ));
    }
}
