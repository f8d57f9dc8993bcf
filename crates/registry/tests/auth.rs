//! Authentication against a real registry: htpasswd basic auth over TLS
//! with a CA made here, and token auth with a token server written here.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use berth_image::reference::Reference;
use berth_image::store::{Image, Store};
use berth_registry::{login, logout, CredentialStore, Credentials, ErrorKind, Event, PullOptions};
use berth_testutil::peers::{Registry, RegistryOptions as Options};
use common::image::{read_file, two_layers};
use common::tokens::{client_identity, tls_files, TokenServer};
use common::{client_with, store};

fn no_progress(_: Event) {}

fn docker_config(path: &Path, host: &str, user: &str, password: &str) -> CredentialStore {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let cfg = serde_json::json!({"auths": {host: {"auth": auth}}, "psFormat": "kept"});
    std::fs::write(path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    CredentialStore::new(path)
}

/// Pushes `image` from `src` as `reference` with `c`, pulls it back into a
/// store at `dst` and returns its /etc/hello.
fn round_trip(
    c: &berth_registry::Client,
    src: &Store,
    image: &Image,
    reference: &Reference,
    dst: &Path,
) -> Vec<u8> {
    c.push(src, image, reference, &no_progress).unwrap();
    let dst = store(dst);
    let pulled = c
        .pull(&dst, reference, &PullOptions::default(), &no_progress)
        .unwrap();
    read_file(&dst, &pulled.image, "etc/hello")
}

fn creds(user: &str, password: &str) -> Credentials {
    Credentials {
        username: user.into(),
        password: password.into(),
    }
}

#[test]
fn basic_auth_over_tls_with_a_registry_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(tmp.path());
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let reg = Registry::start_with(Options {
        tls: Some((cert, key)),
        auth: Some(format!(
            "  htpasswd:\n    realm: berth-test\n    path: {}\n",
            htpasswd.display()
        )),
        ..Default::default()
    });
    let host = reg.host();
    // docker's certs.d layout: <dir>/<host:port>/ca.crt
    let certs = tmp.path().join("certs.d");
    std::fs::create_dir_all(certs.join(&host)).unwrap();
    std::fs::copy(&ca, certs.join(&host).join("ca.crt")).unwrap();

    let src = store(&tmp.path().join("src"));
    let name = format!("{host}/private/app:1");
    let img = two_layers("basic", 100 << 10);
    let image = img.register(&src, &name);
    let reference = Reference::parse(&name).unwrap();

    // No credentials: refused, naming the registry.
    let anon = client_with(&certs, None);
    let err = anon
        .push(&src, &image, &reference, &no_progress)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.to_string().contains(&host), "{err}");

    // A wrong password from a docker config: refused cleanly, and the
    // password appears nowhere in the message.
    let wrong = docker_config(
        &tmp.path().join("wrong.json"),
        &host,
        "alice",
        "guess-again",
    );
    let err = client_with(&certs, Some(wrong))
        .push(&src, &image, &reference, &no_progress)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(
        err.to_string().contains(&host) && !err.to_string().contains("guess-again"),
        "{err}"
    );

    // The right one: push and pull.
    let good = docker_config(&tmp.path().join("good.json"), &host, "alice", "s3cret");
    let c = client_with(&certs, Some(good));
    assert_eq!(
        round_trip(&c, &src, &image, &reference, &tmp.path().join("dst")),
        b"hello from basic\n"
    );

    // Without the CA the certificate is not trusted.
    let dst = store(&tmp.path().join("dst"));
    let err = client_with(Path::new("/nonexistent"), None)
        .pull(&dst, &reference, &PullOptions::default(), &no_progress)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains(&host) && err.to_string().contains("certificate"),
        "{err}"
    );
}

#[test]
fn login_checks_then_writes_docker_config_and_logout_forgets() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(tmp.path());
    let hash = bcrypt::hash("pw", 4).unwrap();
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("bob:{hash}\n")).unwrap();
    let reg = Registry::start_with(Options {
        tls: Some((cert, key)),
        auth: Some(format!(
            "  htpasswd:\n    realm: berth-test\n    path: {}\n",
            htpasswd.display()
        )),
        ..Default::default()
    });
    let host = reg.host();
    let certs = tmp.path().join("certs.d");
    std::fs::create_dir_all(certs.join(&host)).unwrap();
    std::fs::copy(&ca, certs.join(&host).join("ca.crt")).unwrap();
    let path = tmp.path().join("docker/config.json");
    let cred_store = CredentialStore::new(&path);

    let err = login(
        &client_with(&certs, None),
        &cred_store,
        &host,
        &creds("bob", "nope"),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(!path.exists(), "a failed login writes nothing");

    login(
        &client_with(&certs, None),
        &cred_store,
        &format!("https://{host}/v1/"),
        &creds("bob", "pw"),
    )
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let auth = written["auths"][&host]["auth"].as_str().unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(auth)
            .unwrap(),
        b"bob:pw"
    );
    assert_eq!(cred_store.get(&host).unwrap(), Some(creds("bob", "pw")));

    assert!(logout(&cred_store, &host).unwrap());
    assert_eq!(cred_store.get(&host).unwrap(), None);
    assert!(!logout(&cred_store, &host).unwrap());
}

#[test]
fn bearer_tokens_from_a_token_server() {
    let tmp = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(tmp.path(), "carol", "tokenpw");
    let reg = Registry::start_with(Options {
        tls: None,
        auth: Some(tokens.auth_yaml()),
        ..Default::default()
    });
    let host = reg.host();
    let src = store(&tmp.path().join("src"));
    let name = format!("{host}/team/app:1");
    let img = two_layers("token", 100 << 10);
    let image = img.register(&src, &name);
    let reference = Reference::parse(&name).unwrap();

    let anon = client_with(Path::new("/nonexistent"), None);
    let err = anon
        .push(&src, &image, &reference, &no_progress)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.to_string().contains(&host), "{err}");

    let good = docker_config(&tmp.path().join("config.json"), &host, "carol", "tokenpw");
    let c = client_with(Path::new("/nonexistent"), Some(good));
    let before = tokens.issued.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        round_trip(&c, &src, &image, &reference, &tmp.path().join("dst")),
        b"hello from token\n"
    );
    // One token per scope (push, then pull), reused across the dozen
    // requests each operation makes.
    let issued = tokens.issued.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(issued <= 2, "{issued} tokens issued");
}

#[test]
fn client_certificate_from_certs_d() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(tmp.path());
    let (client_ca, client_cert, client_key) = client_identity(tmp.path());
    let reg = Registry::start_with(Options {
        tls: Some((cert, key)),
        client_ca: Some(client_ca),
        ..Default::default()
    });
    let host = reg.host();
    // certs.d/<host:port>/: the CA to trust and the identity to show.
    let certs = tmp.path().join("certs.d");
    let dir = certs.join(&host);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&ca, dir.join("ca.crt")).unwrap();
    let src = store(&tmp.path().join("src"));
    let name = format!("{host}/mtls/app:1");
    let img = two_layers("mtls", 10 << 10);
    let image = img.register(&src, &name);
    let reference = Reference::parse(&name).unwrap();

    // The CA alone is not enough: the registry wants a client certificate.
    let err = client_with(&certs, None)
        .push(&src, &image, &reference, &no_progress)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains(&host), "{err}");

    std::fs::copy(&client_cert, dir.join("client.cert")).unwrap();
    std::fs::copy(&client_key, dir.join("client.key")).unwrap();
    let c = client_with(&certs, None);
    assert_eq!(
        round_trip(&c, &src, &image, &reference, &tmp.path().join("dst")),
        b"hello from mtls\n"
    );
}
