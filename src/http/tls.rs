//! TLS for the HTTP server, with rustls (aws-lc-rs as the crypto provider),
//! and the client this host's own commands use to reach the server.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::web_config::{ClientAuth, TlsConfig, TlsVersion, WebConfig};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certificates(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config.{key}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("tls_server_config.{key}: no PEM certificate in it"));
    }
    Ok(certs)
}

/// The rustls server config for `t`; every error names the key whose file
/// is wrong.
pub fn server_config(t: &TlsConfig) -> Result<rustls::ServerConfig, String> {
    let chain = certificates("cert_file", &t.cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&t.key_pem)
        .map_err(|e| format!("tls_server_config.key_file: no PEM private key in it: {e}"))?;
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
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!("tls_server_config: the certificate and the key do not make a pair: {e}")
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
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
