//! Certificates made by openssl for a test: a CA, and certificates it
//! signs.

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    super::run(Command::new("openssl").args(args).current_dir(dir));
}

/// A CA (`{ca}.crt`, `{ca}.key`) in `dir`.
pub fn make_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.crt"),
            "-subj",
            &format!("/CN={ca}"),
            "-days",
            "2",
        ],
    );
}

/// `{name}.crt` and `{name}.key`, signed by `ca`, with `ext` (SAN, usage).
pub fn make_cert(dir: &Path, ca: &str, name: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}
