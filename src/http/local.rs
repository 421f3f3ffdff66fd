//! The notify wrapper's socket, `http.local_socket`: `POST /v1/notify` and
//! `GET /v1/notify/gate`, HTTP on a Unix socket, mode 0600.
//!
//! On TCP any local process could bind the port while the watchdog
//! restarts and answer the gate ("skip the script") or swallow reports. The
//! socket's directory (`/run/vip-watchdog`, the unit's RuntimeDirectory) is
//! writable by the service user and root only, the socket itself by its
//! owner (and root: Keepalived runs notify scripts as root). Outside the
//! unit the directory is created when missing (as the FIFO's is). A stale
//! socket left by a crash is replaced at start; a socket that another process
//! still answers on (a second watchdog with the same config) is not, and
//! neither is anything else at the path: each is an error naming it.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::notify::report::MAX_REPORT;

/// The socket's mode: its owner (the service user) and root.
pub const MODE: u32 = 0o600;

/// Binds `path`: a stale socket there is removed first, a live one or
/// anything else is left and named.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "http.local_socket = {}: cannot create its directory",
                path.display()
            )
        })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!(
                    "http.local_socket = {}: another process is listening on it (a second vip-watchdog with this config?); stop it or choose another path",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?
        }
        Ok(_) => anyhow::bail!(
            "http.local_socket = {}: the path exists and is not a socket; remove it or choose another path",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("http.local_socket = {}", path.display()));
        }
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on http.local_socket = {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(MODE))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

pub(super) fn router(state: super::AppState) -> Router {
    Router::new()
        .route(
            "/v1/notify",
            post(super::notify_handler).layer(DefaultBodyLimit::max(MAX_REPORT)),
        )
        .route("/v1/notify/gate", get(super::gate_handler))
        .with_state(state)
}

/// Serves the wrapper's routes until `cancel`; the socket is removed then.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    app: Router,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    let _ = std::fs::remove_file(&path);
    served.context("the notify socket")
}

/// A client of the socket at `path`: `http://localhost/...` goes there.
pub fn client(path: &Path, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .unix_socket(path)
        .timeout(timeout)
        .build()
}

/// The URL of `path_and_query` on the socket, for `client`.
pub fn url(path_and_query: &str) -> String {
    format!("http://localhost{path_and_query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("local-sock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_socket_is_owner_only_and_a_stale_one_is_replaced() {
        let dir = temp("stale");
        let path = dir.join("local.sock");
        let first = bind(&path).unwrap();
        drop(first);
        // The file stays behind, as after a crash.
        assert!(path.exists());
        let _second = bind(&path).expect("a stale socket is replaced");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, MODE);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_live_socket_is_left_and_named_and_a_missing_directory_is_created() {
        let dir = temp("live");
        let path = dir.join("run").join("local.sock");
        let _first = bind(&path).expect("the directory is created");
        let e = bind(&path).unwrap_err().to_string();
        assert!(e.contains("another process is listening on it"), "{e}");
        assert!(
            std::os::unix::net::UnixStream::connect(&path).is_ok(),
            "the first listener keeps its socket"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_socket_is_left_and_named() {
        let dir = temp("file");
        let path = dir.join("local.sock");
        std::fs::write(&path, "keep me").unwrap();
        let e = bind(&path).unwrap_err().to_string();
        assert!(e.contains("exists and is not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_request_on_the_socket_reaches_its_route_and_the_socket_goes_at_the_end() {
        let dir = temp("routes");
        let path = dir.join("local.sock");
        let listener = bind(&path).unwrap();
        let app = Router::new().route("/v1/notify/gate", get(|| async { "gate" }));
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve(listener, path.clone(), app, cancel.clone()));
        let c = client(&path, Duration::from_secs(2)).unwrap();
        let body = c
            .get(url("/v1/notify/gate"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "gate");
        cancel.cancel();
        server.await.unwrap().unwrap();
        assert!(!path.exists(), "removed at the end");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
