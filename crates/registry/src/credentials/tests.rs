use super::*;

use std::os::unix::fs::PermissionsExt;

fn helper(dir: &Path, name: &str) {
    // Stores one secret in a file beside it; prints docker's "not found".
    let script = format!(
        "#!/bin/sh\nd=$(dirname \"$0\")\ncase \"$1\" in\n get) read host; if [ -f \"$d/{name}.json\" ]; then cat \"$d/{name}.json\"; else echo 'credentials not found in native keychain'; exit 1; fi;;\n store) cat > \"$d/{name}.json\";;\n erase) rm -f \"$d/{name}.json\";;\nesac\n"
    );
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn auths_entries_and_docker_hub_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"https://r.example:5000/v1/":{"auth":"YTpiOmM="},"plain.example":{"username":"x","password":"y"}},"other":1}"#,
    )
    .unwrap();
    let s = CredentialStore::new(&path);
    let c = |u: &str, p: &str| {
        Some(Credentials {
            username: u.into(),
            password: p.into(),
        })
    };
    assert_eq!(s.get("docker.io").unwrap(), c("u", "p"));
    assert_eq!(
        s.get("r.example:5000").unwrap(),
        c("a", "b:c"),
        "URL keys match; ':' allowed in passwords"
    );
    assert_eq!(s.get("plain.example").unwrap(), c("x", "y"));
    assert_eq!(s.get("unknown.example").unwrap(), None);
    assert!(
        !format!("{:?}", c("u", "p")).contains("\"p\""),
        "Debug hides the password"
    );

    s.store(
        "new.example",
        &Credentials {
            username: "n".into(),
            password: "m".into(),
        },
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["other"], 1, "unknown fields are kept");
    assert_eq!(v["auths"]["new.example"]["auth"], "bjpt");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(s.erase("new.example").unwrap());
    assert_eq!(s.get("new.example").unwrap(), None);

    std::fs::write(&path, "{not json").unwrap();
    let e = s.get("docker.io").unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn creds_store_and_cred_helpers_run_docker_credential_programs() {
    let dir = tempfile::tempdir().unwrap();
    helper(dir.path(), "fake");
    helper(dir.path(), "special");
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"credsStore":"fake","credHelpers":{"special.example":"special"}}"#,
    )
    .unwrap();
    let s = CredentialStore::new(&path).with_helper_dir(dir.path());
    assert_eq!(
        s.get("r.example").unwrap(),
        None,
        "\"not found\" from a helper is no credentials"
    );
    let creds = Credentials {
        username: "h".into(),
        password: "secret".into(),
    };
    s.store("r.example", &creds).unwrap();
    assert_eq!(s.get("r.example").unwrap(), Some(creds.clone()));
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(
        !file.contains("secret"),
        "with a helper the secret stays out of config.json"
    );
    // credHelpers wins over credsStore for its host.
    assert!(!dir.path().join("special.json").exists());
    s.store("special.example", &creds).unwrap();
    assert!(dir.path().join("special.json").exists());
    assert!(s.erase("r.example").unwrap());
    assert_eq!(s.get("r.example").unwrap(), None);

    let broken = CredentialStore::new(&path).with_helper_dir("/nonexistent");
    let e = broken.get("r.example").unwrap_err();
    assert!(e.to_string().contains("docker-credential-fake"), "{e}");
    assert_eq!(e.kind(), crate::ErrorKind::Unauthorized);
}
