//! The web config file (`--web.config.file`, or `http.web_config_file`):
//! the format of the Prometheus exporter-toolkit, so that one file serves
//! node_exporter and vip-watchdog alike.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths: to this file's folder
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: clients.crt                    # with the above
//!   min_version: TLS12                             # TLS12 (default), TLS13
//! http_server_config:
//!   headers: { X-Frame-Options: deny }
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt (`vip-watchdog hash-password`)
//! ```
//!
//! Read once, at start and at each SIGHUP; the certificate and key files
//! are also looked at again at each TLS handshake (tls.rs), so a renewed
//! certificate needs no reload. Every key is checked: one this server does not honour (a Go
//! cipher-suite list, `http2`) is an error naming it, never silently
//! ignored. The certificate, key and CA are read and parsed here, so a bad
//! file fails `check-config` and start-up, not the first scrape.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

/// The web config, validated; `WebConfig::default()` is plain HTTP without
/// authentication.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebConfig {
    pub tls: Option<TlsConfig>,
    /// User name to bcrypt hash; empty: no basic authentication.
    pub users: BTreeMap<String, String>,
    /// Extra response headers (http_server_config.headers).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Clone, PartialEq)]
pub struct TlsConfig {
    /// PEM: the server's certificate chain, and its private key, as read
    /// at load.
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// Where they were read (both None when given inline): looked at again
    /// at each handshake (tls.rs, `FileCert`).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &format_args!("(redacted)"))
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("client_auth", &self.client_auth)
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientAuth {
    /// `NoClientCert` (the default).
    None,
    /// `VerifyClientCertIfGiven`: a certificate is verified against the
    /// CA when one is sent.
    IfGiven { ca_pem: Vec<u8> },
    /// `RequireAndVerifyClientCert`: mutual TLS.
    Require { ca_pem: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// What is wrong with a web config file, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttpServer>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    // exporter-toolkit keys this server does not honour: read so that the
    // error names them rather than calling them unknown.
    cipher_suites: Option<serde_yaml_ng::Value>,
    curve_preferences: Option<serde_yaml_ng::Value>,
    prefer_server_cipher_suites: Option<serde_yaml_ng::Value>,
    client_allowed_sans: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpServer {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    http2: Option<bool>,
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, dir).map_err(|message| WebConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// `dir`: where relative file names are taken from.
    pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, String> {
        // An empty file is a valid, empty config (as in exporter-toolkit).
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
        };
        let tls = raw.tls_server_config.map(|t| tls(t, dir)).transpose()?;
        let mut users = BTreeMap::new();
        for (user, hash) in raw.basic_auth_users {
            if user.is_empty() || user.contains(':') {
                return Err(format!(
                    "basic_auth_users: {user:?}: a user name is not empty and has no ':'"
                ));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (make one with `vip-watchdog hash-password`)"
                ));
            }
            users.insert(user, hash);
        }
        let mut headers = vec![];
        if let Some(h) = raw.http_server_config {
            if h.http2.is_some() {
                return Err(
                    "http_server_config.http2: not supported (this server speaks HTTP/1.1 and, over TLS, HTTP/2 by ALPN)"
                        .into(),
                );
            }
            for (name, value) in h.headers {
                let key = format!("http_server_config.headers.{name}");
                let n = HeaderName::try_from(name.as_str())
                    .map_err(|e| format!("{key}: not a header name: {e}"))?;
                let v = HeaderValue::try_from(value.as_str())
                    .map_err(|e| format!("{key}: not a header value: {e}"))?;
                headers.push((n, v));
            }
        }
        let config = WebConfig {
            tls,
            users,
            headers,
        };
        if let Some(t) = &config.tls {
            // Parse the PEMs now: a bad certificate fails the load.
            certified_key(&t.cert_pem, &t.key_pem, &provider())?;
            if let ClientAuth::IfGiven { ca_pem } | ClientAuth::Require { ca_pem } = &t.client_auth
            {
                certificates("client_ca_file", ca_pem)?;
            }
        }
        Ok(config)
    }
}

fn tls(raw: RawTls, dir: &Path) -> Result<TlsConfig, String> {
    for (key, set) in [
        ("cipher_suites", raw.cipher_suites.is_some()),
        ("curve_preferences", raw.curve_preferences.is_some()),
        (
            "prefer_server_cipher_suites",
            raw.prefer_server_cipher_suites.is_some(),
        ),
        ("client_allowed_sans", raw.client_allowed_sans.is_some()),
    ] {
        if set {
            return Err(format!(
                "tls_server_config.{key}: not supported by vip-watchdog (rustls chooses safe suites and curves); remove it"
            ));
        }
    }
    let read = |key: &str, file: &Path| -> Result<Vec<u8>, String> {
        let path = dir.join(file);
        std::fs::read(&path).map_err(|e| {
            format!(
                "tls_server_config.{key}: cannot read {}: {e}",
                path.display()
            )
        })
    };
    let cert_file = raw.cert_file.as_ref().map(|f| dir.join(f));
    let key_file = raw.key_file.as_ref().map(|f| dir.join(f));
    let cert_pem = match (raw.cert_file, raw.cert) {
        (Some(f), None) => read("cert_file", &f)?,
        (None, Some(inline)) => inline.into_bytes(),
        (None, None) => return Err("tls_server_config: cert_file (or cert) is required".into()),
        (Some(_), Some(_)) => {
            return Err("tls_server_config: cert_file and cert: give one, not both".into());
        }
    };
    let key_pem = match (raw.key_file, raw.key) {
        (Some(f), None) => read("key_file", &f)?,
        (None, Some(inline)) => inline.into_bytes(),
        (None, None) => return Err("tls_server_config: key_file (or key) is required".into()),
        (Some(_), Some(_)) => {
            return Err("tls_server_config: key_file and key: give one, not both".into());
        }
    };
    let ca = raw
        .client_ca_file
        .map(|f| read("client_ca_file", &f))
        .transpose()?;
    let client_auth = match (raw.client_auth_type.as_deref(), ca) {
        (None | Some("NoClientCert"), None) => ClientAuth::None,
        (None | Some("NoClientCert"), Some(_)) => {
            return Err(
                "tls_server_config.client_ca_file: set, but client_auth_type does not verify client certificates (RequireAndVerifyClientCert or VerifyClientCertIfGiven)"
                    .into(),
            );
        }
        (Some("VerifyClientCertIfGiven"), Some(ca_pem)) => ClientAuth::IfGiven { ca_pem },
        (Some("RequireAndVerifyClientCert"), Some(ca_pem)) => ClientAuth::Require { ca_pem },
        (Some(t @ ("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert")), None) => {
            return Err(format!(
                "tls_server_config.client_ca_file: required with client_auth_type {t}"
            ));
        }
        (Some(t @ ("RequestClientCert" | "RequireAnyClientCert")), _) => {
            return Err(format!(
                "tls_server_config.client_auth_type: {t} is not supported: a client certificate that is not verified authenticates nothing (use RequireAndVerifyClientCert)"
            ));
        }
        (Some(other), _) => {
            return Err(format!(
                "tls_server_config.client_auth_type: {other:?} is not one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            ));
        }
    };
    let version = |key: &str, v: Option<String>, default| match v.as_deref() {
        None => Ok(default),
        Some("TLS12") => Ok(TlsVersion::Tls12),
        Some("TLS13") => Ok(TlsVersion::Tls13),
        Some(v @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config.{key}: {v} is not supported (TLS12 or TLS13)"
        )),
        Some(v) => Err(format!(
            "tls_server_config.{key}: {v:?} is not TLS12 or TLS13"
        )),
    };
    let min_version = version("min_version", raw.min_version, TlsVersion::Tls12)?;
    let max_version = version("max_version", raw.max_version, TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    Ok(TlsConfig {
        cert_pem,
        key_pem,
        cert_file,
        key_file,
        client_auth,
        min_version,
        max_version,
    })
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub fn certificates(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config.{key}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("tls_server_config.{key}: no PEM certificate in it"));
    }
    Ok(certs)
}

/// A certificate chain and its key from PEM, checked to make a pair.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = certificates("cert_file", cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("tls_server_config.key_file: no PEM private key in it: {e}"))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        format!("tls_server_config: the certificate and the key do not make a pair: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> String {
        bcrypt::hash("s3cret", 4).unwrap()
    }

    fn err(text: &str) -> String {
        WebConfig::parse(text, Path::new("/nonexistent")).unwrap_err()
    }

    #[test]
    fn empty_is_plain_http_without_auth() {
        assert_eq!(
            WebConfig::parse("", Path::new(".")).unwrap(),
            WebConfig::default()
        );
    }

    #[test]
    fn users_and_headers_are_read() {
        let c = WebConfig::parse(
            &format!(
                "basic_auth_users:\n  prom: '{}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
                hash()
            ),
            Path::new("."),
        )
        .unwrap();
        assert!(c.users.contains_key("prom"));
        assert_eq!(c.headers.len(), 1);
        assert_eq!(c.headers[0].0, "x-frame-options");
        assert!(c.tls.is_none());
    }

    /// Each bad input is refused with an error naming the key.
    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("unknown: 1\n", "unknown field `unknown`"),
            (
                "basic_auth_users:\n  prom: plain\n",
                "basic_auth_users.prom: not a bcrypt hash",
            ),
            (
                &format!("basic_auth_users:\n  'a:b': '{}'\n", hash()),
                "a user name is not empty and has no ':'",
            ),
            (
                "http_server_config:\n  http2: true\n",
                "http_server_config.http2",
            ),
            (
                "http_server_config:\n  headers:\n    'bad name': x\n",
                "http_server_config.headers.bad name: not a header name",
            ),
            (
                "tls_server_config:\n  key_file: k\n",
                "cert_file (or cert) is required",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n",
                "tls_server_config.cert_file: cannot read /nonexistent/c",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "tls_server_config.cipher_suites: not supported",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  client_auth_type: RequireAnyClientCert\n",
                "RequireAnyClientCert is not supported",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file: required with client_auth_type RequireAndVerifyClientCert",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  client_auth_type: Sometimes\n",
                "\"Sometimes\" is not one of",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  min_version: TLS10\n",
                "min_version: TLS10 is not supported",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  min_version: TLS13\n  max_version: TLS12\n",
                "min_version is above max_version",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n",
                "tls_server_config.cert",
            ),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(
                e.contains(want),
                "{text:?}: {e:?} does not contain {want:?}"
            );
        }
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let t = TlsConfig {
            cert_pem: b"CERT".to_vec(),
            key_pem: b"SECRET KEY".to_vec(),
            cert_file: None,
            key_file: None,
            client_auth: ClientAuth::None,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
