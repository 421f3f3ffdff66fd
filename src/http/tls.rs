//! TLS for the HTTP server, with rustls (aws-lc-rs as the crypto provider),
//! and the client this host's own commands use to reach the server.
//!
//! The certificate and key files are looked at again at every handshake
//! (`FileCert`): a renewed pair is served from the next handshake on, with
//! no reload and no task restarted, as the exporter-toolkit does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::host::file::{FileId, identity};

use crate::config::web::{
    ClientAuth, TlsConfig, TlsVersion, WebConfig, certificates, certified_key, provider,
};

/// The server's certificate, from `cert_file` and `key_file` as they are
/// at each handshake. A pair that cannot be read or does not match is
/// logged once per change of the files, and the last good pair is served.
#[derive(Debug)]
pub struct FileCert {
    /// None: the web config gave the PEM inline.
    files: Option<(PathBuf, PathBuf)>,
    provider: Arc<CryptoProvider>,
    /// The files' stamps when last looked at, and the pair served.
    current: Mutex<(Option<[FileId; 2]>, Arc<CertifiedKey>)>,
}

impl FileCert {
    fn new(t: &TlsConfig, provider: Arc<CryptoProvider>) -> Result<FileCert, String> {
        let files = t.cert_file.clone().zip(t.key_file.clone());
        let stamps = files
            .as_ref()
            .and_then(|(c, k)| Some([identity(c)?, identity(k)?]));
        let key = certified_key(&t.cert_pem, &t.key_pem, &provider)?;
        Ok(FileCert {
            files,
            provider,
            current: Mutex::new((stamps, Arc::new(key))),
        })
    }

    /// The pair to serve now.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().ok()?;
        let Some((cert, key)) = &self.files else {
            return Some(current.1.clone());
        };
        let now = identity(cert).zip(identity(key)).map(|(c, k)| [c, k]);
        if now.is_some() && now != current.0 {
            current.0 = now;
            let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
            match read(cert)
                .and_then(|c| Ok((c, read(key)?)))
                .and_then(|(c, k)| certified_key(&c, &k, &self.provider))
            {
                Ok(pair) => {
                    current.1 = Arc::new(pair);
                    tracing::info!(event = "tls_reloaded", cert_file = %cert.display(), "tls: the certificate changed on disk; serving the new one");
                }
                Err(e) => {
                    tracing::warn!(event = "tls_reload_failed", cert_file = %cert.display(), error = %e, "tls: the certificate or key changed on disk but cannot be used; serving the previous pair");
                }
            }
        }
        Some(current.1.clone())
    }
}

impl ResolvesServerCert for FileCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// The rustls server config for `t`; every error names the key whose file
/// is wrong.
pub fn server_config(t: &TlsConfig) -> Result<rustls::ServerConfig, String> {
    let cert = Arc::new(FileCert::new(t, provider())?);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match &t.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::IfGiven { ca_pem } | ClientAuth::Require { ca_pem } => {
            let mut roots = RootCertStore::empty();
            for c in certificates("client_ca_file", ca_pem)? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let v = match t.client_auth {
                ClientAuth::IfGiven { .. } => v.allow_unauthenticated(),
                _ => v,
            };
            let verifier = v
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The rustls server config, when the web config turns TLS on.
pub fn server(web: &WebConfig) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    web.tls
        .as_ref()
        .map(|t| server_config(t).map(Arc::new))
        .transpose()
}

/// A client for this host's own commands (`health`, the notify wrapper),
/// which always ask on loopback. Over TLS it does not verify the server's
/// certificate: it is this host's own server, reached on loopback, and the
/// certificate names the host as others reach it, not 127.0.0.1. It has no
/// client certificate: with `RequireAndVerifyClientCert` these commands
/// cannot connect (docs/security.md).
pub fn local_client(web: &WebConfig, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder().timeout(timeout).no_proxy();
    let builder = if web.tls.is_some() {
        builder.tls_danger_accept_invalid_certs(true)
    } else {
        builder
    };
    builder.build()
}
