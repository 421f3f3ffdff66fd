//! Basic authentication against the web config's bcrypt hashes, and its
//! extra response headers.
//!
//! Every path asks for a user when `basic_auth_users` is set, except two
//! that tell nothing and that this host's own commands must reach:
//! `/healthz` (a container's HEALTHCHECK, "ok" or how stale the owner is)
//! and `POST /v1/notify` (the notify wrapper; loopback only, see mod.rs).
//! A bcrypt check costs tens of milliseconds by design, so it runs on the
//! blocking pool; an unknown user is checked against a fixed hash so that
//! the answer takes as long as for a known one.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::web_config::WebConfig;

/// Paths open without a user (the notify ones: loopback only).
pub const OPEN_PATHS: [&str; 3] = ["/healthz", "/v1/notify", "/v1/notify/gate"];

pub type Users = Arc<BTreeMap<String, String>>;

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

pub async fn basic_auth(State(users): State<Users>, request: Request, next: Next) -> Response {
    if users.is_empty() || OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(credentials);
    let ok = match given {
        Some((user, password)) => {
            let users = users.clone();
            let u = user.clone();
            let ok = tokio::task::spawn_blocking(move || allowed(&users, &u, &password))
                .await
                .unwrap_or(false);
            if !ok {
                tracing::debug!(user = %user, path = %request.uri().path(), "basic auth refused");
            }
            ok
        }
        None => false,
    };
    if ok {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"vip-watchdog\"")],
            "Unauthorized\n",
        )
            .into_response()
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
}
