use std::fs;
use std::io::Read;

use super::*;
use crate::content::{Manager, Provider};
use crate::snapshot::overlay::OverlaySnapshotter;
use crate::snapshot::{mount_all, unmount, Kind};

fn store(dir: &Path) -> Store {
    let snap = OverlaySnapshotter::open(&dir.join("snapshots")).unwrap();
    Store::open(dir, Box::new(snap)).unwrap()
}

fn rootfs_tar() -> (tempfile::TempDir, Vec<u8>) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("rootfs.tar");
    berth_testutil::rootfs_tar(&p).unwrap();
    let bytes = fs::read(&p).unwrap();
    (t, bytes)
}

fn small_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    b.append_data(&mut h, "etc/hostname", &b"hello"[..])
        .unwrap();
    b.into_inner().unwrap()
}

/// Blobs, snapshots, images: everything a failed import must not change.
fn state(s: &Store) -> (usize, Vec<String>, usize) {
    (
        s.content().list().unwrap().len(),
        s.snapshotter()
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect(),
        s.images().unwrap().len(),
    )
}

#[test]
fn chain_ids_follow_the_oci_formula() {
    let a = Digest::of(b"a");
    let b = Digest::of(b"b");
    let ids = chain_ids(&[a.clone(), b.clone()]);
    assert_eq!(ids[0], a);
    assert_eq!(ids[1], Digest::of(format!("{a} {b}").as_bytes()));
    assert!(chain_ids(&[]).is_empty());
}

#[test]
fn import_makes_a_one_layer_image() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let (_keep, tar) = rootfs_tar();
    let opts = ImportOptions {
        reference: Some(Reference::parse("myimg:v1").unwrap()),
        changes: vec![
            "CMD [\"/bin/sh\"]".into(),
            "ENV A=b".into(),
            "WORKDIR /root".into(),
        ],
        message: Some("my message".into()),
        source: "-".into(),
    };
    let img = s.import(&tar[..], &opts).unwrap();
    assert_eq!(img.tags, vec![Reference::parse("myimg:v1").unwrap()]);

    // Found by reference, full id and short id.
    assert_eq!(s.image("myimg:v1").unwrap(), img);
    assert_eq!(s.image(img.id.as_str()).unwrap(), img);
    assert_eq!(s.image(img.id.short()).unwrap(), img);
    assert_eq!(s.image("docker.io/library/myimg:v1").unwrap(), img);
    assert_eq!(s.image("myimg:v2").unwrap_err().kind(), ErrorKind::NotFound);

    // The config is a valid OCI config and names the layer's diff id.
    let cfg_bytes = content::read_blob(s.content(), &img.id).unwrap();
    assert_eq!(
        Digest::of(&cfg_bytes),
        img.id,
        "image id is the config digest"
    );
    let cfg: oci_spec::image::ImageConfiguration = serde_json::from_slice(&cfg_bytes).unwrap();
    let diff_id = Digest::of(&tar);
    assert_eq!(cfg.rootfs().diff_ids(), &vec![diff_id.to_string()]);
    let inner = cfg.config().as_ref().unwrap();
    assert_eq!(inner.cmd().as_ref().unwrap(), &vec!["/bin/sh".to_string()]);
    assert_eq!(inner.working_dir().as_deref(), Some("/root"));
    assert_eq!(
        cfg.history().as_ref().unwrap()[0].comment().as_deref(),
        Some("my message")
    );
    assert_eq!(s.config(&img).unwrap()["config"]["Env"], json!(["A=b"]));

    // The manifest points at the config and a gzip blob of the same tar.
    let man_bytes = content::read_blob(s.content(), &img.manifest).unwrap();
    let man: oci_spec::image::ImageManifest = serde_json::from_slice(&man_bytes).unwrap();
    assert_eq!(man.config().digest().to_string(), img.id.to_string());
    let blob = man.layers()[0].digest().to_string();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(s.content().reader(&Digest::parse(&blob).unwrap()).unwrap())
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, tar);

    // The layer is recorded and unpacked once, by chain id.
    let layer = s.layer(&diff_id).unwrap();
    assert_eq!(
        (layer.size, layer.blob.to_string()),
        (tar.len() as u64, blob)
    );
    assert_eq!(
        s.snapshotter().stat(diff_id.as_str()).unwrap().kind,
        Kind::Committed
    );
    assert_eq!(img.top_chain_id.as_ref(), Some(&diff_id));
    assert_eq!(
        s.snapshotter().list().unwrap().len(),
        1,
        "the temporary key is gone"
    );

    // Importing the same bytes again shares the snapshot and the blob.
    let again = s
        .import(
            &tar[..],
            &ImportOptions {
                source: "-".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.top_chain_id, img.top_chain_id);
    assert_eq!(s.snapshotter().list().unwrap().len(), 1);
    assert_eq!(s.images().unwrap().len(), 2);
}

#[test]
fn import_accepts_compressed_input_and_computes_the_plain_diff_id() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let tar = small_tar();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let img = s
        .import(
            &zst[..],
            &ImportOptions {
                source: "x.tar.zst".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(img.top_chain_id, Some(Digest::of(&tar)));
    assert_eq!(
        s.config(&img).unwrap()["comment"],
        json!("Imported from x.tar.zst")
    );
    assert!(img.tags.is_empty());
}

#[test]
fn failed_import_leaves_the_store_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    s.import(&small_tar()[..], &ImportOptions::default())
        .unwrap();
    let before = state(&s);

    // A hostile layer fails half way through unpacking.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    b.append_link(&mut h, "evil", "/").unwrap();
    let mut h2 = h.clone();
    h2.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h2, "evil/etc/x", &b""[..]).unwrap();
    let bad = b.into_inner().unwrap();
    let e = s.import(
        &bad[..],
        &ImportOptions {
            reference: Some(Reference::parse("bad").unwrap()),
            ..Default::default()
        },
    );
    let e = e.unwrap_err();
    assert!(e.to_string().contains("evil/etc/x"), "{e}");
    assert_eq!(state(&s), before);

    // Truncated input.
    let full = small_tar();
    let e = s
        .import(&full[..700], &ImportOptions::default())
        .unwrap_err();
    assert_eq!(state(&s), before, "{e}");

    // A bad --change fails before anything is written.
    let e = s
        .import(
            &small_tar()[..],
            &ImportOptions {
                changes: vec!["RUN true".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(state(&s), before);
    assert!(fs::read_dir(t.path().join("content/ingest"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn tags_move_and_lookups_say_what_went_wrong() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let r = Reference::parse("app").unwrap();
    let one = s
        .import(
            &small_tar()[..],
            &ImportOptions {
                reference: Some(r.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let two = s
        .import(
            &small_tar()[..],
            &ImportOptions {
                reference: Some(r.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_ne!(one.id, two.id, "created differs, so the config does");
    assert_eq!(
        s.image("app").unwrap().id,
        two.id,
        "the tag moved to the newer image"
    );
    assert!(
        s.image(one.id.as_str()).unwrap().tags.is_empty(),
        "the old one is dangling"
    );
    s.tag(&one.id, &Reference::parse("app:old").unwrap())
        .unwrap();
    assert_eq!(s.image("app:old").unwrap().id, one.id);
    assert_eq!(
        s.tag(&Digest::of(b"nope"), &r).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.image("Bad_Name").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(s.image("").unwrap_err().kind(), ErrorKind::InvalidArgument);
    // A one-character prefix shared by both ids is ambiguous, if they do
    // share one; find a prefix that does.
    let common: String = one
        .id
        .hex()
        .chars()
        .zip(two.id.hex().chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    if !common.is_empty() {
        assert!(matches!(s.image(&common), Err(StoreError::Ambiguous(_))));
    }
}

#[test]
fn rootfs_gives_a_container_a_writable_view_of_the_image() {
    if !berth_testutil::require_root("rootfs_gives_a_container_a_writable_view_of_the_image") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let (_keep, tar) = rootfs_tar();
    let img = s.import(&tar[..], &ImportOptions::default()).unwrap();
    let m = s.rootfs(&img, "ctr-1").unwrap();
    assert_eq!(
        m[0].kind, "overlay",
        "the layer as lowerdir, the container's own upperdir"
    );
    assert!(m[0].option_value("upperdir").is_some());
    let target = tempfile::tempdir().unwrap();
    mount_all(&m, target.path()).unwrap();
    let ok =
        target.path().join("bin/busybox").is_file() && target.path().join("etc/passwd").is_file();
    fs::write(target.path().join("etc/written"), "x").unwrap();
    unmount(target.path()).unwrap();
    assert!(ok, "the image's files are visible in the container");
    let layer_dir = s
        .snapshotter()
        .stat(img.top_chain_id.as_ref().unwrap().as_str())
        .unwrap()
        .dir;
    assert!(
        !layer_dir.join("etc/written").exists(),
        "the layer is untouched"
    );
}
