//! Basic authentication against the web config's bcrypt hashes, and its
//! extra response headers.
//!
//! Every path asks for a user when `basic_auth_users` is set, except one
//! that tells nothing and that this host's own commands must reach:
//! `/healthz` (a container's HEALTHCHECK, "ok" or how stale the owner is).
//! The notify wrapper's routes are on a Unix socket (local.rs).
//!
//! A bcrypt check costs tens of milliseconds by design, so:
//! - a password once verified is remembered (its SHA-256, one per user,
//!   for as long as this web config is in force): Prometheus scraping every
//!   15 s costs one bcrypt, not one per scrape;
//! - at most `MAX_CHECKS` bcrypt checks run at once, on the blocking pool;
//!   a request that would need another is answered 429 at once, so a flood
//!   of wrong passwords costs two cores' worth at most, never a queue;
//! - an unknown user is checked against a fixed hash, so that the answer
//!   takes as long as for a known one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::web::WebConfig;

/// Paths open without a user (the notify wrapper's are on its own socket,
/// local.rs, guarded by the socket's mode).
pub const OPEN_PATHS: [&str; 1] = ["/healthz"];

/// bcrypt checks allowed to run at once.
pub const MAX_CHECKS: usize = 2;

/// A hash of a password nobody has, checked for unknown users.
static DECOY: LazyLock<String> = LazyLock::new(|| {
    bcrypt::hash("no user has this password", bcrypt::DEFAULT_COST)
        .unwrap_or_else(|_| String::from("$2b$10$"))
});

/// The user and password of a `Basic` Authorization header.
pub fn credentials(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine as _;
    let v = value.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `user` with `password` is one of `users` (blocking: bcrypt).
pub fn allowed(users: &BTreeMap<String, String>, user: &str, password: &str) -> bool {
    match users.get(user) {
        Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        None => {
            let _ = bcrypt::verify(password, &DECOY);
            false
        }
    }
}

/// What a check of credentials found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Refused,
    /// `MAX_CHECKS` bcrypt checks are running: asked again later (429).
    Busy,
}

/// The web config's users, with the passwords verified so far.
pub struct Users {
    users: BTreeMap<String, String>,
    /// User to the SHA-256 of the password last verified for it.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    checks: Arc<Semaphore>,
    /// bcrypt checks run (for tests: a remembered password runs none).
    pub bcrypt_runs: AtomicU64,
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Users {
    pub fn new(users: BTreeMap<String, String>) -> Users {
        Users {
            users,
            verified: Mutex::new(HashMap::new()),
            checks: Arc::new(Semaphore::new(MAX_CHECKS)),
            bcrypt_runs: AtomicU64::new(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    fn remembered(&self, user: &str, password: &str) -> bool {
        let d = digest(password);
        self.verified
            .lock()
            .map(|v| v.get(user).is_some_and(|known| same(known, &d)))
            .unwrap_or(false)
    }

    /// Checks `user` with `password`: remembered, or by bcrypt when a
    /// check is free.
    pub async fn verify(self: &Arc<Self>, user: &str, password: &str) -> Verdict {
        if self.remembered(user, password) {
            return Verdict::Allowed;
        }
        let Ok(permit) = self.checks.clone().try_acquire_owned() else {
            return Verdict::Busy;
        };
        let (me, u, p) = (self.clone(), user.to_owned(), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || {
            me.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
            let ok = allowed(&me.users, &u, &p);
            drop(permit);
            if ok && let Ok(mut v) = me.verified.lock() {
                v.insert(u, digest(&p));
            }
            ok
        })
        .await
        .unwrap_or(false);
        if ok {
            Verdict::Allowed
        } else {
            Verdict::Refused
        }
    }
}

pub async fn basic_auth(State(users): State<Arc<Users>>, request: Request, next: Next) -> Response {
    if users.is_empty() || OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(credentials);
    let verdict = match &given {
        Some((user, password)) => users.verify(user, password).await,
        None => Verdict::Refused,
    };
    match verdict {
        Verdict::Allowed => next.run(request).await,
        Verdict::Busy => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "Too many password checks at once; ask again\n",
        )
            .into_response(),
        Verdict::Refused => {
            if let Some((user, _)) = &given {
                tracing::debug!(event = "http_auth_refused", user = %user, path = %request.uri().path(), "basic auth refused");
            }
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"vip-watchdog\"")],
                "Unauthorized\n",
            )
                .into_response()
        }
    }
}

pub async fn add_headers(
    State(web): State<Arc<WebConfig>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    for (name, value) in &web.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read() {
        let h = HeaderValue::from_static("Basic cHJvbTpzM2NyZXQ6eA==");
        assert_eq!(
            credentials(&h),
            Some(("prom".into(), "s3cret:x".into())),
            "the password may hold ':'"
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic cHJvbQ==", "Basic"] {
            assert_eq!(credentials(&HeaderValue::from_static(bad)), None, "{bad}");
        }
    }

    #[test]
    fn only_the_right_password_of_a_known_user_passes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = BTreeMap::from([("prom".to_owned(), hash)]);
        assert!(allowed(&users, "prom", "s3cret"));
        assert!(!allowed(&users, "prom", "s3cret "));
        assert!(!allowed(&users, "other", "s3cret"));
    }

    #[tokio::test]
    async fn a_verified_password_is_remembered_and_a_changed_one_is_not() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Arc::new(Users::new(BTreeMap::from([("prom".to_owned(), hash)])));
        let runs = || users.bcrypt_runs.load(Ordering::Relaxed);
        assert_eq!(users.verify("prom", "s3cret").await, Verdict::Allowed);
        assert_eq!(runs(), 1);
        assert_eq!(users.verify("prom", "s3cret").await, Verdict::Allowed);
        assert_eq!(runs(), 1, "the second check is remembered");
        assert_eq!(users.verify("prom", "wrong").await, Verdict::Refused);
        assert_eq!(users.verify("prom", "wrong").await, Verdict::Refused);
        assert_eq!(runs(), 3, "a refusal is never remembered");
        assert_eq!(users.verify("nobody", "s3cret").await, Verdict::Refused);
        assert_eq!(users.verify("prom", "s3cret").await, Verdict::Allowed);
        assert_eq!(runs(), 4);
    }

    #[tokio::test]
    async fn beyond_two_bcrypt_checks_at_once_the_answer_is_busy() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Arc::new(Users::new(BTreeMap::from([("prom".to_owned(), hash)])));
        let held: Vec<_> = (0..MAX_CHECKS)
            .map(|_| users.checks.clone().try_acquire_owned().unwrap())
            .collect();
        assert_eq!(users.verify("prom", "s3cret").await, Verdict::Busy);
        assert_eq!(users.verify("nobody", "x").await, Verdict::Busy);
        assert_eq!(users.bcrypt_runs.load(Ordering::Relaxed), 0);
        drop(held);
        assert_eq!(users.verify("prom", "s3cret").await, Verdict::Allowed);
        // Remembered: no check needed even with every check taken.
        let _held: Vec<_> = (0..MAX_CHECKS)
            .map(|_| users.checks.clone().try_acquire_owned().unwrap())
            .collect();
        assert_eq!(users.verify("prom", "s3cret").await, Verdict::Allowed);
    }
}
