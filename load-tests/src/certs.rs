//! Test certificates: a CA and a leaf for `localhost` and 127.0.0.1 signed
//! by it (rustls refuses a self-signed CA:TRUE leaf), made with the openssl
//! command line. Used by the farm's TLS listener and the Dovecot tests.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

/// Where [`make_certs`] wrote its files.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate clients trust.
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

/// Makes a CA and a server certificate in `dir` (world-readable: Dovecot
/// reads them as another user).
pub fn make_certs(dir: &Path) -> io::Result<TestCerts> {
    let run = |args: &[&str]| -> io::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| io::Error::other(format!("openssl (install it): {e}")))?;
        out.status.success().then_some(()).ok_or_else(|| {
            io::Error::other(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        })
    };
    let key = ["-newkey", "rsa:2048", "-nodes"];
    run(&[
        &["req", "-x509"],
        &key[..],
        &[
            "-days",
            "2",
            "-subj",
            "/CN=mailgate test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ]
    .concat())?;
    run(&[
        &["req"],
        &key[..],
        &[
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    ]
    .concat())?;
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ])?;
    for f in ["server.pem", "server.key", "ca.pem"] {
        fs::set_permissions(dir.join(f), fs::Permissions::from_mode(0o644))?;
    }
    Ok(TestCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    })
}

/// A rustls server config presenting `certs`.
pub fn server_config(certs: &TestCerts) -> io::Result<Arc<rustls::ServerConfig>> {
    let bad = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let chain = CertificateDer::pem_file_iter(&certs.cert)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_file(&certs.key).map_err(|e| bad(&e))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(&e))?;
    Ok(Arc::new(config))
}
