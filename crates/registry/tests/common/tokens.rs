//! Certificates made in the test (a CA and a server certificate for
//! 127.0.0.1) and a tiny token server that signs ES256 JWTs the
//! distribution registry accepts (`x5c` chain to its `rootcertbundle`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files
/// in `dir`: (ca.crt, server.crt, server.key).
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    signed_by_new_ca(dir, params, ["ca.crt", "server.crt", "server.key"])
}

/// A client identity for mutual TLS: (its CA, its certificate, its key)
/// as PEM files in `dir`.
pub fn client_identity(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let params = CertificateParams::new(vec!["berth-test-client".to_string()]).unwrap();
    signed_by_new_ca(dir, params, ["client-ca.crt", "client.cert", "client.key"])
}

/// A fresh CA, a certificate of `params` it signs and that certificate's
/// key, written to `dir` under `names`.
fn signed_by_new_ca(
    dir: &Path,
    params: CertificateParams,
    names: [&str; 3],
) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let paths = (dir.join(names[0]), dir.join(names[1]), dir.join(names[2]));
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

pub struct TokenServer {
    pub port: u16,
    pub issued: Arc<AtomicUsize>,
    /// The signing certificate, for the registry's `rootcertbundle`.
    pub bundle: PathBuf,
}

pub const SERVICE: &str = "berth-test-registry";
pub const ISSUER: &str = "berth-test-issuer";

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl TokenServer {
    /// Hands out tokens for any requested scope to `user:password`, and
    /// answers 401 to anyone else.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap();
        let rc_key = KeyPair::try_from(pkcs8.as_ref()).unwrap();
        let cert = CertificateParams::new(vec!["token-signer".to_string()])
            .unwrap()
            .self_signed(&rc_key)
            .unwrap();
        let bundle = dir.join("token-signer.crt");
        std::fs::write(&bundle, cert.pem()).unwrap();
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                }
                if auth.as_deref() != Some(expected.as_str()) {
                    let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("");
                let query = target.split_once('?').map_or("", |(_, q)| q);
                let mut access = Vec::new();
                for pair in query.split('&') {
                    if let Some(v) = pair.strip_prefix("scope=") {
                        let v = v
                            .replace("%3A", ":")
                            .replace("%2F", "/")
                            .replace("%2C", ",");
                        let parts: Vec<&str> = v.splitn(3, ':').collect();
                        if let [kind, name, actions] = parts.as_slice() {
                            access.push(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
                        }
                    }
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
                let claims = serde_json::json!({
                    "iss": ISSUER, "sub": "tester", "aud": SERVICE,
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("t{n}"),
                    "access": access,
                });
                let signing_input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let sig = signer
                    .sign(&SystemRandom::new(), signing_input.as_bytes())
                    .unwrap();
                let token = format!("{signing_input}.{}", b64url(sig.as_ref()));
                let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            port,
            issued,
            bundle,
        }
    }

    /// The registry's `auth:` section for this server.
    pub fn auth_yaml(&self) -> String {
        format!(
            "  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.bundle.display()
        )
    }
}
