//! TLS client configuration: the public web roots, plus a mailbox's own CA
//! file when it has one. Certificate verification is always on. Configs are
//! shared: one per distinct CA file content (each holds a copy of the roots
//! and a session cache; built per connection they cost every TLS mailbox
//! ~35 KiB for as long as it idled), which also lets mailboxes on the same
//! server resume TLS sessions after a reconnect storm.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, OnceLock},
};

use rustls_pki_types::{pem::PemObject, CertificateDer};
use tokio_rustls::{
    rustls::{self, ClientConfig, RootCertStore},
    TlsConnector,
};

use super::error::MailboxError;

/// The web roots plus the certificates in `extra_ca` (PEM read from `path`).
fn config(extra_ca: Option<(&Path, &[u8])>) -> Result<Arc<ClientConfig>, MailboxError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some((path, pem)) = extra_ca {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                MailboxError::TlsCertificate(format!("cannot read ca_file {}: {e}", path.display()))
            })?;
        for cert in certs {
            roots.add(cert).map_err(|e| {
                MailboxError::TlsCertificate(format!("ca_file {}: {e}", path.display()))
            })?;
        }
    }
    Ok(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// A connector trusting the web roots and `extra_ca`. The common case (no
/// extra CA) shares one configuration across every mailbox.
pub fn connector(extra_ca: Option<&Path>) -> Result<TlsConnector, MailboxError> {
    static SHARED: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let cfg = match extra_ca {
        None => SHARED
            .get_or_init(|| config(None).unwrap_or_else(|_| no_roots()))
            .clone(),
        Some(p) => {
            let pem = std::fs::read(p).map_err(|e| {
                MailboxError::TlsCertificate(format!("cannot read ca_file {}: {e}", p.display()))
            })?;
            static BY_CA: OnceLock<Mutex<HashMap<Vec<u8>, Arc<ClientConfig>>>> = OnceLock::new();
            let mut configs = BY_CA
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match configs.get(&pem) {
                Some(c) => c.clone(),
                None => {
                    let c = config(Some((p, &pem)))?;
                    configs.insert(pem, c.clone());
                    c
                }
            }
        }
    };
    Ok(TlsConnector::from(cfg))
}

fn no_roots() -> Arc<ClientConfig> {
    // `config(None)` reads no file and so cannot fail; keep a verifying
    // configuration with no roots rather than panicking if it ever did.
    Arc::new(
        ClientConfig::builder()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
    )
}

/// Classifies a handshake failure: a rejected certificate needs an operator,
/// anything else is retried.
pub fn classify(e: std::io::Error) -> MailboxError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(why)) => {
            MailboxError::TlsCertificate(format!("{why:?}"))
        }
        Some(other) => MailboxError::Tls(other.to_string()),
        None => MailboxError::Tls(e.to_string()),
    }
}
