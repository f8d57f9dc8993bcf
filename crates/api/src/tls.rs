//! TLS for the TCP hosts, with docker's flags: `--tls` (the server's
//! certificate), `--tlsverify` (and every client must show a certificate
//! signed by `--tlscacert`). The API is root on this machine: a TCP host
//! off loopback is refused unless clients are verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::error::Error;
use crate::listen::Host;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// `Some(ca)`: clients must present a certificate signed by it.
    pub client_ca: Option<PathBuf>,
}

/// A TCP host off loopback serves root's powers to the network: only
/// with TLS client certificates.
pub fn check_hosts(hosts: &[Host], tls: Option<&TlsOptions>) -> Result<(), Error> {
    let verified = tls.is_some_and(|t| t.client_ca.is_some());
    for h in hosts {
        if let Host::Tcp(a) = h {
            if !a.ip().is_loopback() && !verified {
                return Err(Error::BadHost {
                    host: format!("tcp://{a}"),
                    why: "a TCP host off loopback needs --tlsverify with --tlscacert, \
                          --tlscert and --tlskey (the API gives root to whoever reaches it)"
                        .into(),
                });
            }
        }
    }
    Ok(())
}

fn tls_err(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Tls {
        what: path.display().to_string(),
        why: why.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(path, e))?;
    if certs.is_empty() {
        return Err(tls_err(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The rustls configuration `opts` describe.
pub fn server_config(opts: &TlsOptions) -> Result<Arc<ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&opts.cert)?;
    let key = PrivateKeyDer::from_pem_file(&opts.key).map_err(|e| tls_err(&opts.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&opts.cert, e))?;
    let builder = match &opts.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| tls_err(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_err(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(&opts.key, e))?;
    // The API is HTTP/1.1 only (upgrades for attach and exec).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_off_loopback_needs_verified_clients() {
        let lo: Host = "tcp://127.0.0.1:2376".parse().unwrap();
        let any: Host = "tcp://0.0.0.0:2376".parse().unwrap();
        let unix: Host = "unix:///run/b.sock".parse().unwrap();
        check_hosts(&[lo.clone(), unix], None).unwrap();
        let e = check_hosts(&[lo.clone(), any.clone()], None).unwrap_err();
        assert!(e.to_string().contains("--tlsverify"), "{e}");
        let tls = TlsOptions {
            cert: "c".into(),
            key: "k".into(),
            client_ca: None,
        };
        assert!(check_hosts(std::slice::from_ref(&any), Some(&tls)).is_err());
        let verified = TlsOptions {
            client_ca: Some("ca".into()),
            ..tls
        };
        check_hosts(&[any], Some(&verified)).unwrap();
    }

    #[test]
    fn certificates_load_and_bad_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key, ca_path) = (
            d.path().join("c.pem"),
            d.path().join("k.pem"),
            d.path().join("ca.pem"),
        );
        std::fs::write(&cert, ca.cert.pem()).unwrap();
        std::fs::write(&key, ca.key_pair.serialize_pem()).unwrap();
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        let opts = TlsOptions {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: Some(ca_path),
        };
        server_config(&opts).unwrap();
        let e = server_config(&TlsOptions {
            cert: key.clone(),
            ..opts.clone()
        })
        .unwrap_err();
        assert!(e.to_string().contains("k.pem"), "{e}");
        let e = server_config(&TlsOptions {
            client_ca: Some(d.path().join("missing.pem")),
            ..opts
        })
        .unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
