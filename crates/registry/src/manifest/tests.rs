use super::*;

fn desc(arch: &str, variant: Option<&str>) -> serde_json::Value {
    let mut p = serde_json::json!({"os": "linux", "architecture": arch});
    if let Some(v) = variant {
        p["variant"] = v.into();
    }
    serde_json::json!({"mediaType": OCI_MANIFEST, "digest": Digest::of(arch.as_bytes()).as_str(), "size": 1, "platform": p})
}

#[test]
fn kinds_are_told_apart_and_schema1_is_refused() {
    let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#;
    assert!(matches!(
        Manifest::parse("r", None, image),
        Ok(Manifest::Image(_))
    ));
    // No mediaType in the body: the shape decides.
    let bare_index = br#"{"schemaVersion":2,"manifests":[]}"#;
    assert!(matches!(
        Manifest::parse("r", None, bare_index),
        Ok(Manifest::Index(_))
    ));
    let e = Manifest::parse(
        "docker.io/library/old:1",
        None,
        br#"{"schemaVersion":1,"name":"old","fsLayers":[]}"#,
    )
    .unwrap_err();
    assert!(matches!(e, RegistryError::Schema1 { .. }), "{e}");
    assert!(
        e.to_string().contains("docker.io/library/old:1") && e.to_string().contains("schema 1"),
        "{e}"
    );
    let e = Manifest::parse("r", Some(DOCKER_SCHEMA1_SIGNED), br#"{"name":"old"}"#).unwrap_err();
    assert!(matches!(e, RegistryError::Schema1 { .. }), "{e}");
    let e =
        Manifest::parse("r", None, br#"{"schemaVersion":2,"mediaType":"text/html"}"#).unwrap_err();
    assert!(
        matches!(e, RegistryError::UnsupportedMediaType { .. }),
        "{e}"
    );
    assert!(matches!(
        Manifest::parse("r", None, b"<html>"),
        Err(RegistryError::InvalidManifest { .. })
    ));
}

#[test]
fn platform_parse_and_select() {
    assert_eq!(
        Platform::parse("linux/arm64/v8").unwrap().to_string(),
        "linux/arm64/v8"
    );
    assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
    assert_eq!(
        Platform::parse("linux/x86_64").unwrap().architecture,
        "amd64"
    );
    assert!(Platform::parse("linux//v7").is_err());
    assert!(Platform::parse("a/b/c/d").is_err());

    let index: Index = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "manifests": [desc("amd64", None), desc("arm", Some("v6")), desc("arm", Some("v7")), desc("arm64", None)],
    }))
    .unwrap();
    let pick = |p: &str| {
        index
            .select("r", &Platform::parse(p).unwrap())
            .map(|d| d.digest.clone())
    };
    assert_eq!(pick("linux/amd64").unwrap(), Digest::of(b"amd64"));
    assert_eq!(pick("linux/arm/v7").unwrap(), Digest::of(b"arm"));
    // arm64 without a variant in the index serves a request for v8.
    assert_eq!(pick("linux/arm64/v8").unwrap(), Digest::of(b"arm64"));
    let e = pick("linux/arm/v5").unwrap_err();
    assert!(e.to_string().contains("linux/arm/v6, linux/arm/v7"), "{e}");
    assert!(pick("windows/amd64").is_err());
}
