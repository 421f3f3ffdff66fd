//! Secure scraping, on real parts: two watchdogs with exporter-toolkit web
//! config files (node a: TLS and bcrypt basic auth; node b: mutual TLS),
//! a real Prometheus (Debian's) scraping them from the lab's cloud
//! namespace, and certificates made by openssl for the test. Each job of
//! Prometheus is one case: the right credentials scrape (`up` 1), every
//! wrong one is refused (`up` 0, with the refusal as the scrape error).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::tls::{make_ca, make_cert};
use common::{Lab, in_ns, watchdog_bin};
use serde_json::Value;

const PASSWORD: &str = "s3cret-scrape";

/// `vip-watchdog hash-password`, the way the docs tell operators to make
/// a `basic_auth_users` entry.
fn hash_password(password: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(watchdog_bin())
        .args(["hash-password", "--cost", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hash-password starts");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "hash-password failed");
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$2"), "not a bcrypt hash: {hash}");
    hash
}

/// curl from the cloud namespace (where Prometheus is): (status, headers, body).
fn curl(ns: &str, ca: &Path, url: &str, user: Option<&str>) -> (u16, String, String) {
    let mut cmd = in_ns(ns);
    cmd.args(["curl", "-sS", "--max-time", "10", "-D", "-", "--cacert"])
        .arg(ca)
        .arg(url);
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "{url}: no HTTP answer: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth_and_mutual_tls_and_is_refused_without() {
    common::require_tools(&["openssl", "prometheus", "curl"]);
    let mut lab = Lab::new();
    lab.add_cloud();
    let pki: PathBuf = lab.a.dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_ca(&pki, "ca");
    make_ca(&pki, "other-ca");
    let server = |ip: &str| {
        format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    };
    make_cert(&pki, "ca", "a", &server("10.213.1.1"));
    make_cert(&pki, "ca", "b", &server("10.213.2.1"));
    let client = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";
    make_cert(&pki, "ca", "prometheus", client);
    make_cert(&pki, "other-ca", "stranger", client);
    std::fs::write(pki.join("password"), PASSWORD).unwrap();

    // a: TLS and basic auth (relative paths: to the web config's folder),
    // plus a response header. b: mutual TLS.
    let web_a = pki.join("web-a.yml");
    std::fs::write(
        &web_a,
        format!(
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  prometheus: '{}'\n",
            hash_password(PASSWORD)
        ),
    )
    .unwrap();
    let web_b = pki.join("web-b.yml");
    std::fs::write(
        &web_b,
        "tls_server_config:\n  cert_file: b.crt\n  key_file: b.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    )
    .unwrap();
    for (n, web) in [(&mut lab.a, &web_a), (&mut lab.b, &web_b)] {
        n.listen = "0.0.0.0:9842".into();
        n.web_config = Some(web.clone());
    }

    // check-config reads the web config and says what it understood; a bad
    // one is a config error (exit 2) naming the key.
    let config_a = lab.a.watchdog_config(false);
    let check = |web: &Path| {
        Command::new(watchdog_bin())
            .args(["check-config", "--config"])
            .arg(&config_a)
            .arg("--keepalived-config")
            .arg(lab.a.dir.join("keepalived.conf"))
            .arg("--web.config.file")
            .arg(web)
            .output()
            .expect("check-config runs")
    };
    let out = check(&web_a);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(tls: on, client certificates: not asked, basic auth users: 1)"),
        "{stdout}"
    );
    let broken = pki.join("web-broken.yml");
    std::fs::write(
        &broken,
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: a.key\n",
    )
    .unwrap();
    let out = check(&broken);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tls_server_config.cert_file: cannot read")
            && stderr.contains("missing.crt"),
        "{stderr}"
    );

    let wa = lab.a.start_watchdog(false);
    let wb = lab.b.start_watchdog(false);
    for w in [&wa, &wb] {
        assert!(
            !w.logged(|e| common::is(e, "http_listening") && e["tls"] == true)
                .is_empty(),
            "{}",
            w.log_text()
        );
    }

    let d = pki.display();
    let job = |name: &str, target: &str, tls: &str, auth: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {d}/ca.crt\n{tls}{auth}    static_configs:\n      - targets: ['{target}']\n"
        )
    };
    let basic =
        format!("    basic_auth:\n      username: prometheus\n      password_file: {d}/password\n");
    let wrong = "    basic_auth:\n      username: prometheus\n      password: not-the-password\n";
    let cert =
        |name: &str| format!("      cert_file: {d}/{name}.crt\n      key_file: {d}/{name}.key\n");
    let a = "10.213.1.1:9842";
    let b = "10.213.2.1:9842";
    let scrapes = [
        job("tls-basic-auth", a, "", &basic),
        job("tls-no-auth", a, "", ""),
        job("tls-wrong-password", a, "", wrong),
        format!("  - job_name: plain-http\n    static_configs:\n      - targets: ['{a}']\n"),
        job("mtls", b, &cert("prometheus"), ""),
        job("mtls-no-client-cert", b, "", ""),
        job("mtls-other-ca", b, &cert("stranger"), ""),
    ]
    .concat();
    let prom = lab.start_prometheus_scraping(&scrapes);

    let targets = prom.wait_scraped(7, Duration::from_secs(60));
    let target = |job: &str| -> &Value {
        targets
            .iter()
            .find(|t| t["labels"]["job"] == job)
            .unwrap_or_else(|| panic!("no target of job {job}: {targets:?}"))
    };
    for job in ["tls-basic-auth", "mtls"] {
        assert_eq!(target(job)["health"], "up", "{job}: {}", target(job));
    }
    // Under TLS 1.3 the server checks the client's certificate after the
    // client has finished its handshake, so a client without one may be
    // writing its request when the server's alert and close arrive: Go
    // then reports the alert ("certificate required") or the closed
    // socket ("broken pipe", "connection reset"), as the race falls. The
    // job beside it, same target and same CA with a certificate, is up,
    // so the certificate is the one difference.
    let cert_refused: &[&str] = &["certificate", "broken pipe", "connection reset"];
    for (job, errors) in [
        ("tls-no-auth", &["401"][..]),
        ("tls-wrong-password", &["401"][..]),
        ("plain-http", &[""][..]),
        ("mtls-no-client-cert", cert_refused),
        ("mtls-other-ca", &[""][..]),
    ] {
        let t = target(job);
        assert_eq!(t["health"], "down", "{job} was not refused: {t}");
        let last = t["lastError"].as_str().unwrap_or_default();
        assert!(
            errors.iter().any(|e| last.contains(e)),
            "{job}: {last:?} says none of {errors:?}"
        );
    }
    // What was scraped over TLS is the watchdog's exposition.
    for job in ["tls-basic-auth", "mtls"] {
        let r = prom.query(&format!("vip_watchdog_build_info{{job=\"{job}\"}}"));
        assert_eq!(r.len(), 1, "{job}: {r:?}");
    }

    // By hand: /v1/status and / are behind the same auth; /healthz is
    // open; the configured header is sent.
    let ns = lab.cloud.as_ref().unwrap().ns.clone();
    let ca = pki.join("ca.crt");
    let url = |path: &str| format!("https://{a}{path}");
    let auth = format!("prometheus:{PASSWORD}");
    for path in ["/v1/status", "/", "/metrics"] {
        let (status, head, _) = curl(&ns, &ca, &url(path), None);
        assert_eq!(status, 401, "{path} without a user");
        assert!(head.contains("www-authenticate: basic"), "{path}: {head}");
        let (status, head, _) = curl(&ns, &ca, &url(path), Some("prometheus:wrong"));
        assert_eq!(status, 401, "{path} with a wrong password");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    }
    let (status, head, body) = curl(&ns, &ca, &url("/v1/status"), Some(&auth));
    assert_eq!(status, 200, "{head}{body}");
    let status_json: Value = serde_json::from_str(&body).expect("/v1/status is JSON");
    assert_eq!(status_json["node"], "a", "{status_json}");
    let (status, _, body) = curl(&ns, &ca, &url("/"), Some(&auth));
    assert_eq!(status, 200);
    assert!(body.contains("href=\"/metrics\""), "{body}");
    let (status, _, body) = curl(&ns, &ca, &url("/healthz"), None);
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // This host's own `health` reaches its TLS listener on loopback.
    common::run(
        in_ns(&lab.a.ns)
            .arg(watchdog_bin())
            .args(["health", "--config"])
            .arg(&config_a)
            .arg("--web.config.file")
            .arg(&web_a),
    );

    // A renewed certificate is served from the next handshake on, with no
    // reload and no restart: the new certificate alone first (it does not
    // match the key on disk: the previous pair is still served), then its
    // key.
    let served = || {
        let out = in_ns(&ns)
            .args(["openssl", "s_client", "-connect", a, "-CAfile"])
            .arg(&ca)
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client runs");
        let text = String::from_utf8_lossy(&out.stdout).replace(' ', "");
        text.lines()
            .find_map(|l| l.strip_prefix("subject=CN="))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no subject in s_client's output: {text}"))
    };
    assert_eq!(served(), "a");
    make_cert(&pki, "ca", "a-renewed", &server("10.213.1.1"));
    std::fs::rename(pki.join("a-renewed.crt"), pki.join("a.crt")).unwrap();
    assert_eq!(served(), "a", "a certificate without its key is not taken");
    std::fs::rename(pki.join("a-renewed.key"), pki.join("a.key")).unwrap();
    assert_eq!(served(), "a-renewed", "the renewed pair, without a reload");
    let (status, _, body) = curl(&ns, &ca, &url("/metrics"), Some(&auth));
    assert_eq!(status, 200, "scraped over the renewed certificate");
    for result in ["applied", "unchanged", "failed"] {
        let n = common::metric(
            &body,
            "vip_watchdog_config_reloads_total",
            &[("result", result)],
        );
        assert_eq!(n, Some(0.0), "no reload ({result}) happened");
    }
    drop((wa, wb));
}
