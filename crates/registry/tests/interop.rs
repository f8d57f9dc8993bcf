//! Interoperability with skopeo (containers/image): what skopeo pushes,
//! berth pulls; what berth pushes, skopeo reads and verifies.

mod common;

use std::process::Command;

use berth_image::reference::Reference;
use berth_registry::{Event, PullOptions};
use berth_testutil::peers::Registry;
use common::image::{read_file, two_layers};
use common::{client, store};

fn no_progress(_: Event) {}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn berth_pulls_what_skopeo_pushed() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("bb.tar");
    berth_testutil::oci_archive(&archive, "docker.io/library/bbtest:latest", &["echo", "hi"])
        .unwrap();
    let name = format!("{}/interop/bb:1", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", archive.display()),
        &format!("docker://{name}"),
    ]);
    let dst = store(&tmp.path().join("dst"));
    let pulled = client()
        .pull(
            &dst,
            &Reference::parse(&name).unwrap(),
            &PullOptions::default(),
            &no_progress,
        )
        .unwrap();
    let config = dst.config(&pulled.image).unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["echo", "hi"]));
    assert!(!read_file(&dst, &pulled.image, "etc/passwd").is_empty());
}

#[test]
fn skopeo_reads_what_berth_pushed() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = store(&tmp.path().join("src"));
    let img = two_layers("skopeo", 100 << 10);
    let name = format!("{}/interop/berth:1", reg.host());
    let image = img.register(&src, &name);
    let digest = client()
        .push(
            &src,
            &image,
            &Reference::parse(&name).unwrap(),
            &no_progress,
        )
        .unwrap();
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Labels"]["test"], "skopeo");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    // A full copy makes skopeo fetch and verify every blob.
    let out = tmp.path().join("oci");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:x", out.display()),
    ]);
    assert!(out.join("index.json").exists());
}
