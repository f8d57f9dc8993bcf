//! `berth serve --host tcp://127.0.0.1:PORT --tlsverify ...` with
//! dockerd's flags: the docker client with a certificate the CA signed
//! gets in, one without is refused; TCP off loopback without verified
//! clients is refused at start.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_testutil::peers::free_port;
use berth_testutil::require_root;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

mod common;

use common::*;

/// ca.pem, server-{cert,key}.pem for 127.0.0.1 and cert.pem/key.pem for
/// a client (docker's names for a client's files), all in `dir`.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let leaf = |params: CertificateParams, cert: &str, key: &str| {
        let k = KeyPair::generate().unwrap();
        let c = params.signed_by(&k, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(cert), c.pem()).unwrap();
        std::fs::write(dir.join(key), k.serialize_pem()).unwrap();
    };
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf(server, "server-cert.pem", "server-key.pem");
    let mut client = CertificateParams::new(vec!["berth-test-client".to_string()]).unwrap();
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf(client, "cert.pem", "key.pem");
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

#[test]
fn docker_over_tcp_with_client_certificates() {
    if !require_root("docker_over_tcp_with_client_certificates") || !have_docker() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    certificates(d);
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let s = Served::start_hosts(
        false,
        &[
            "--host".into(),
            host.clone(),
            "--tlsverify".into(),
            "--tlscacert".into(),
            p(d, "ca.pem"),
            "--tlscert".into(),
            p(d, "server-cert.pem"),
            "--tlskey".into(),
            p(d, "server-key.pem"),
        ],
    );
    let docker = |args: &[&str], client_cert: bool| {
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_CONFIG", s.dir.0.join("docker-config"))
            .env_remove("DOCKER_HOST")
            .args(["-H", &host, "--tlsverify", "--tlscacert", &p(d, "ca.pem")]);
        if client_cert {
            c.args(["--tlscert", &p(d, "cert.pem"), "--tlskey", &p(d, "key.pem")]);
        }
        c.args(args).stdin(Stdio::null()).output().unwrap()
    };
    let o = docker(&["version", "--format", "{{.Server.APIVersion}}"], true);
    assert!(o.status.success(), "{}\n{}", show(&o), s.log());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.49");
    let o = docker(
        &["run", "--rm", "--network", "none", "bb", "echo", "hi"],
        true,
    );
    assert!(o.status.success(), "{}\n{}", show(&o), s.log());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
    // No client certificate: the handshake is refused, nothing is served.
    let o = docker(&["version", "--format", "{{.Server.APIVersion}}"], false);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("1.47"),
        "{}",
        show(&o)
    );
    let o = docker(&["ps", "-a"], false);
    assert!(!o.status.success(), "{}", show(&o));
    // Plain HTTP on the TLS port gets no API either.
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/_ping"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&o.stdout), "200", "{}", show(&o));
}

#[test]
fn tcp_off_loopback_without_tls_is_refused() {
    if !require_root("tcp_off_loopback_without_tls_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serve = |extra: &[String]| {
        Command::new(built("berth"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .args(["serve", "--host"])
            .arg(format!("tcp://0.0.0.0:{}", free_port()))
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = serve(&[]);
    assert!(!o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tcp://0.0.0.0") && err.contains("--tlsverify"),
        "{}",
        show(&o)
    );
    // TLS without client verification still gives root to anyone.
    certificates(dir.path());
    let f = |n: &str| p(dir.path(), n);
    let o = serve(&[
        "--tls".into(),
        "--tlscert".into(),
        f("server-cert.pem"),
        "--tlskey".into(),
        f("server-key.pem"),
    ]);
    assert!(!o.status.success(), "{}", show(&o));
    // A certificate flag alone is not silently dropped.
    let o = serve(&["--tlscert".into(), f("server-cert.pem")]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tlscert needs --tls"),
        "{}",
        show(&o)
    );
}
