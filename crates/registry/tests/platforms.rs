//! A multi-platform index pushed by the test: the pull picks the
//! manifest for the asked-for platform, or lists what there is.

mod common;

use berth_image::reference::Reference;
use berth_registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use berth_registry::{Descriptor, ErrorKind, Event, Platform, PullOptions, RegistryError};
use berth_testutil::peers::Registry;
use common::image::{image, layer, read_file, TestImage};
use common::{client, store};
use serde_json::json;

fn no_progress(_: Event) {}

fn push_image(c: &berth_registry::Client, host: &str, img: &TestImage) {
    let tmp = tempfile::tempdir().unwrap();
    let src = store(tmp.path());
    for l in &img.layers {
        berth_image::content::write_blob(src.content(), &l.blob, Some(&l.digest)).unwrap();
    }
    berth_image::content::write_blob(src.content(), &img.config, None).unwrap();
    let by_digest =
        Reference::parse(&format!("{host}/multi/app@{}", img.manifest_digest())).unwrap();
    let descs = img
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.blob.len()))
        .chain([(img.config_digest(), img.config.len())]);
    for (digest, size) in descs {
        let d = Descriptor {
            media_type: "application/octet-stream".into(),
            digest,
            size: size as u64,
            platform: None,
            urls: vec![],
        };
        c.push_blob(&by_digest, src.content(), &d, &[], &no_progress)
            .unwrap();
    }
    let pushed = c
        .put_manifest(&by_digest, OCI_MANIFEST, &img.manifest)
        .unwrap();
    assert_eq!(pushed, img.manifest_digest());
}

#[test]
fn index_pull_picks_the_platform() {
    let reg = Registry::start();
    let c = client();
    let amd = image(vec![layer(&[("arch", b"amd64")])], "amd64", "amd64");
    let arm = image(vec![layer(&[("arch", b"arm64")])], "arm64", "arm64");
    push_image(&c, &reg.host(), &amd);
    push_image(&c, &reg.host(), &arm);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd.manifest_digest().as_str(), "size": amd.manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm.manifest_digest().as_str(), "size": arm.manifest.len(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            // An attestation entry, as buildx adds: never chosen, never listed.
            {"mediaType": OCI_MANIFEST, "digest": amd.manifest_digest().as_str(), "size": amd.manifest.len(),
             "platform": {"os": "unknown", "architecture": "unknown"}},
        ],
    });
    let index = serde_json::to_vec(&index).unwrap();
    let reference = Reference::parse(&format!("{}/multi/app:latest", reg.host())).unwrap();
    let index_digest = c.put_manifest(&reference, OCI_INDEX, &index).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let dst = store(tmp.path());
    let opts = PullOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
    };
    let pulled = c.pull(&dst, &reference, &opts, &no_progress).unwrap();
    assert_eq!(
        pulled.digest, index_digest,
        "the reference resolved to the index"
    );
    assert_eq!(pulled.image.id, arm.config_digest());
    assert_eq!(pulled.image.manifest, arm.manifest_digest());
    assert_eq!(read_file(&dst, &pulled.image, "arch"), b"arm64");

    let opts = PullOptions {
        platform: Some(Platform::parse("linux/amd64").unwrap()),
    };
    let pulled = c.pull(&dst, &reference, &opts, &no_progress).unwrap();
    assert_eq!(pulled.image.id, amd.config_digest());
    assert_eq!(read_file(&dst, &pulled.image, "arch"), b"amd64");

    // The host's platform by default.
    let host = Platform::host();
    if host.architecture == "amd64" || host.architecture == "arm64" {
        let pulled = c
            .pull(&dst, &reference, &PullOptions::default(), &no_progress)
            .unwrap();
        assert_eq!(
            read_file(&dst, &pulled.image, "arch"),
            host.architecture.as_bytes()
        );
    }

    let opts = PullOptions {
        platform: Some(Platform::parse("linux/s390x").unwrap()),
    };
    let err = c.pull(&dst, &reference, &opts, &no_progress).unwrap_err();
    assert!(
        matches!(err, RegistryError::UnsupportedPlatform { .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let msg = err.to_string();
    assert!(
        msg.contains("linux/s390x")
            && msg.contains("linux/amd64, linux/arm64/v8")
            && !msg.contains("unknown"),
        "{msg}"
    );
}
