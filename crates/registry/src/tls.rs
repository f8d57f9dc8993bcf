//! TLS for one registry: the system's roots plus the registry's own CA and
//! client certificate from `certs.d/<host[:port]>/`, as docker reads them.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::error::{RegistryError, Result};

/// The system roots, loaded once: reading the bundle costs milliseconds.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "skipping a system certificate");
        }
        found.certs
    })
}

/// A client config for `host`: system roots, then every `*.crt` in its
/// certs.d directory as an extra CA, and `client.cert`/`client.key` (or
/// any `*.cert` with its `*.key`) as the client identity.
pub fn client_config(host: &str, certs_dir: &Path) -> Result<Arc<ClientConfig>> {
    let tls_err = |reason: String| RegistryError::Tls {
        registry: host.to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(system_roots().iter().cloned());
    let dir = certs_dir.join(host);
    let mut identity = None;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        for path in names {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            match ext {
                "crt" => {
                    for cert in read_certs(&path).map_err(&tls_err)? {
                        roots
                            .add(cert)
                            .map_err(|e| tls_err(format!("{}: {e}", path.display())))?;
                    }
                }
                "cert" => {
                    let key = path.with_extension("key");
                    let certs = read_certs(&path).map_err(&tls_err)?;
                    let key = PrivateKeyDer::from_pem_file(&key)
                        .map_err(|e| tls_err(format!("{}: {e}", key.display())))?;
                    identity = Some((certs, key));
                }
                _ => {}
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots);
    let config = match identity {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| tls_err(format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}
