use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::content::{write_blob, Manager};
use crate::digest::Digest;
use crate::layer::Compression;
use crate::reference::Reference;
use crate::snapshot::overlay::OverlaySnapshotter;
use crate::store::{Image, Store};

pub(crate) fn store(dir: &Path) -> Store {
    let snap = OverlaySnapshotter::open(&dir.join("snapshots")).unwrap();
    Store::open(dir, Box::new(snap)).unwrap()
}

/// A layer tar of regular files (`Some`) and whiteouts/dirs (`None` data:
/// a directory when the name ends in '/', else an empty file).
pub(crate) fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        } else {
            let d = data.unwrap_or_default();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(d.len() as u64);
            b.append_data(&mut h, path, d).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// Records an image of `layers` (stored gzip-compressed) tagged `tag`.
pub(crate) fn image(s: &Store, layers: &[Vec<u8>], tag: &str) -> Image {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, l).unwrap();
        let gz = gz.finish().unwrap();
        let info = write_blob(s.content(), &gz, None).unwrap();
        descs.push(json!({"mediaType": Compression::Gzip.media_type(), "digest": info.digest.as_str(), "size": info.size}));
        diff_ids.push(Digest::of(l).to_string());
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": crate::store::MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": crate::store::MEDIA_TYPE_CONFIG, "digest": Digest::of(&config).as_str(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    s.register(&manifest, &config, &[Reference::parse(tag).unwrap()])
        .unwrap()
}

pub(crate) fn three_layers() -> Vec<Vec<u8>> {
    vec![
        layer(&[
            ("etc/", None),
            ("etc/a", Some(b"a1")),
            ("etc/gone", Some(b"x")),
        ]),
        layer(&[
            ("etc/", None),
            ("etc/b", Some(b"b2")),
            ("etc/.wh.gone", None),
        ]),
        layer(&[("srv/", None), ("srv/c", Some(&[7u8; 100_000]))]),
    ]
}

/// Everything a failed load must leave alone.
pub(crate) fn state(s: &Store) -> (Vec<Digest>, Vec<String>, Vec<Image>) {
    (
        s.content()
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.digest)
            .collect(),
        s.snapshotter()
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect(),
        s.images().unwrap(),
    )
}

/// The archive's regular files by path.
fn entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(crate::layer::decompress(archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() == tar::EntryType::Regular {
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            out.insert(p, v);
        }
    }
    out
}

fn save_vec(s: &Store, names: &[&str], opts: &SaveOptions) -> Vec<u8> {
    save(s, names, Vec::new(), opts).unwrap()
}

#[test]
fn saved_archive_has_docker_and_oci_layout_with_verified_blobs() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let img = image(&s, &three_layers(), "app:v1");
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
            let files = entries(&save_vec(
                &s,
                &["app:v1"],
                &SaveOptions {
                    format,
                    compression,
                },
            ));
            for (p, bytes) in &files {
                if let Some(hex) = p.strip_prefix("blobs/sha256/") {
                    assert_eq!(Digest::of(bytes).hex(), hex, "{p}");
                }
            }
            assert_eq!(files["oci-layout"], OCI_LAYOUT);
            let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
            let desc = &index["manifests"][0];
            assert_eq!(
                desc["annotations"][ANNOTATION_IMAGE_NAME],
                "docker.io/library/app:v1"
            );
            assert_eq!(desc["annotations"][ANNOTATION_REF_NAME], "v1");
            let man_hex = desc["digest"]
                .as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .unwrap();
            let man: Value =
                serde_json::from_slice(&files[&format!("blobs/sha256/{man_hex}")]).unwrap();
            assert_eq!(man["config"]["digest"], img.id.as_str());
            let layers = man["layers"].as_array().unwrap();
            assert_eq!(layers.len(), 3);
            for l in layers {
                assert_eq!(l["mediaType"], compression.media_type(), "{compression:?}");
                let bytes =
                    &files[&format!("blobs/sha256/{}", &l["digest"].as_str().unwrap()[7..])];
                assert_eq!(Compression::detect(bytes), compression);
            }
            if compression == Compression::Gzip {
                assert_eq!(
                    Digest::of(&files[&format!("blobs/sha256/{man_hex}")]),
                    img.manifest,
                    "stored blobs and manifest reused as they are"
                );
            }
            match format {
                ArchiveFormat::Docker => {
                    let m: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
                    assert_eq!(m[0]["RepoTags"], json!(["app:v1"]));
                    assert_eq!(m[0]["Config"], format!("blobs/sha256/{}", img.id.hex()));
                    assert_eq!(m[0]["Layers"].as_array().unwrap().len(), 3);
                    assert!(files.contains_key("repositories"));
                }
                ArchiveFormat::Oci => {
                    assert!(!files.contains_key("manifest.json"));
                }
            }
        }
    }
    // By id: no tags, as docker does.
    let files = entries(&save_vec(&s, &[img.id.as_str()], &SaveOptions::default()));
    let m: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(m[0]["RepoTags"], json!([]));
}

#[test]
fn save_then_load_gives_the_same_images_in_every_format() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let a = image(&s, &three_layers(), "app:v1");
    let b = image(&s, &three_layers()[..2], "base:1");
    s.tag(&a.id, &Reference::parse("app:other").unwrap())
        .unwrap();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
            let archive = save_vec(
                &s,
                &["app:v1", "app:other", "base:1"],
                &SaveOptions {
                    format,
                    compression,
                },
            );
            for wrap in [Compression::None, Compression::Gzip, Compression::Zstd] {
                let input = match wrap {
                    Compression::None => archive.clone(),
                    Compression::Gzip => {
                        let mut gz =
                            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        std::io::Write::write_all(&mut gz, &archive).unwrap();
                        gz.finish().unwrap()
                    }
                    Compression::Zstd => zstd::encode_all(&archive[..], 1).unwrap(),
                };
                let t2 = tempfile::tempdir().unwrap();
                let s2 = store(t2.path());
                let loaded = load(&s2, &input[..]).unwrap();
                let ids: Vec<_> = loaded.iter().map(|i| i.id.clone()).collect();
                assert_eq!(
                    ids,
                    vec![a.id.clone(), b.id.clone()],
                    "{format:?} {compression:?} {wrap:?}"
                );
                let la = s2.image("app:v1").unwrap();
                assert_eq!(la.tags.len(), 2);
                assert_eq!(la.top_chain_id, a.top_chain_id);
                assert_eq!(la.size, a.size);
                assert_eq!(s2.image("base:1").unwrap().id, b.id);
                // Two images, three layers shared by chain id, each once.
                assert_eq!(s2.snapshotter().list().unwrap().len(), 3);
                let check = s2.system_check().unwrap();
                assert!(check.is_consistent(), "{check:?}");
                assert!(
                    check.unreferenced_blobs.is_empty(),
                    "load drops what no image needs: {check:?}"
                );
                let top = s2
                    .snapshotter()
                    .stat(la.top_chain_id.as_ref().unwrap().as_str())
                    .unwrap();
                assert_eq!(fs::read(top.dir.join("srv/c")).unwrap().len(), 100_000);
                // Loading again changes nothing.
                let before = state(&s2);
                load(&s2, &input[..]).unwrap();
                assert_eq!(state(&s2), before);
            }
        }
    }
}

#[test]
fn whiteouts_survive_parallel_unpack_in_overlay_form() {
    if !berth_testutil::require_root("whiteouts_survive_parallel_unpack_in_overlay_form") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let img = image(&s, &three_layers(), "app:v1");
    let archive = save_vec(&s, &["app:v1"], &SaveOptions::default());
    let t2 = tempfile::tempdir().unwrap();
    let s2 = store(t2.path());
    load(&s2, &archive[..]).unwrap();
    let m = s2
        .rootfs(&s2.image(img.id.as_str()).unwrap(), "ctr")
        .unwrap();
    let target = tempfile::tempdir().unwrap();
    crate::snapshot::mount_all(&m, target.path()).unwrap();
    let seen = (
        fs::read(target.path().join("etc/a")).ok(),
        fs::read(target.path().join("etc/b")).ok(),
        target.path().join("etc/gone").exists(),
        target.path().join("srv/c").exists(),
    );
    crate::snapshot::unmount(target.path()).unwrap();
    assert_eq!(
        seen,
        (Some(b"a1".to_vec()), Some(b"b2".to_vec()), false, true)
    );
}

/// A docker-archive as docker < 25 and podman write it.
fn legacy_archive(layers: &[Vec<u8>], tag: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}})).unwrap();
    let cfg_hex = Digest::of(&config).hex().to_string();
    let mut b = tar::Builder::new(Vec::new());
    let mut paths = Vec::new();
    let file = |b: &mut tar::Builder<Vec<u8>>, p: &str, d: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, d).unwrap();
    };
    for (i, l) in layers.iter().enumerate() {
        let dir = format!("{i:064}");
        file(&mut b, &format!("{dir}/VERSION"), b"1.0");
        file(&mut b, &format!("{dir}/json"), b"{}");
        if i > 0 && layers[i] == layers[0] {
            // docker links a repeated layer to its first copy.
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(
                &mut h,
                format!("{dir}/layer.tar"),
                format!("../{:064}/layer.tar", 0),
            )
            .unwrap();
        } else {
            file(&mut b, &format!("{dir}/layer.tar"), l);
        }
        paths.push(format!("{dir}/layer.tar"));
    }
    file(&mut b, &format!("{cfg_hex}.json"), &config);
    file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(
            &json!([{"Config": format!("{cfg_hex}.json"), "RepoTags": [tag], "Layers": paths}]),
        )
        .unwrap(),
    );
    b.into_inner().unwrap()
}

#[test]
fn legacy_docker_archives_and_oci_archives_load() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let mut layers = three_layers();
    layers.push(layers[0].clone());
    let imgs = load(&s, &legacy_archive(&layers, "legacy:1")[..]).unwrap();
    assert_eq!(imgs[0].tags, vec![Reference::parse("legacy:1").unwrap()]);
    assert_eq!(s.snapshotter().list().unwrap().len(), 4);
    assert!(s.system_check().unwrap().is_consistent());
    // The legacy metadata files were not kept.
    assert!(s.system_check().unwrap().unreferenced_blobs.is_empty());

    let oci = t.path().join("oci.tar");
    berth_testutil::oci_archive(&oci, "docker.io/library/bbtest:latest", &["/bin/sh"]).unwrap();
    let imgs = load(&s, fs::File::open(&oci).unwrap()).unwrap();
    assert_eq!(imgs[0].tags, vec![Reference::parse("bbtest").unwrap()]);
    let top = s
        .snapshotter()
        .stat(imgs[0].top_chain_id.as_ref().unwrap().as_str())
        .unwrap();
    assert!(top.dir.join("bin/busybox").is_file());
}

#[test]
fn corrupt_truncated_and_hostile_archives_fail_and_change_nothing() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let img = image(&s, &three_layers()[..1], "keep:1");
    let src_t = tempfile::tempdir().unwrap();
    let src = store(src_t.path());
    image(&src, &three_layers(), "app:v1");
    let good = save_vec(&src, &["app:v1"], &SaveOptions::default());
    let before = state(&s);
    assert_eq!(before.2[0].id, img.id);

    // A flipped byte inside the big layer: its blob fails its digest.
    let pos = good
        .windows(1000)
        .position(|w| w.iter().all(|b| *b == 7))
        .unwrap()
        + 10;
    let mut bad = good.clone();
    bad[pos] = 8;
    let e = load(&s, &bad[..]).unwrap_err();
    assert!(matches!(e, ArchiveError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("does not match"), "{e}");
    assert_eq!(state(&s), before);

    // Truncated anywhere, plain or compressed.
    let gz = {
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut g, &good).unwrap();
        g.finish().unwrap()
    };
    for input in [&good, &gz] {
        for frac in [0.05, 0.3, 0.6, 0.9, 0.99] {
            let cut = (input.len() as f64 * frac) as usize;
            let e = load(&s, &input[..cut]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
            assert_eq!(state(&s), before, "cut at {cut}: {e}");
        }
    }

    // Entries and references that leave the archive.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "ok", &b"x"[..]).unwrap();
    let mut raw = b.into_inner().unwrap();
    raw[..2].copy_from_slice(b"..");
    raw[2] = b'/';
    let mut hdr = tar::Header::from_byte_slice(&raw[..512]).clone();
    hdr.set_cksum();
    raw[..512].copy_from_slice(hdr.as_bytes());
    let e = load(&s, &raw[..]).unwrap_err();
    assert!(matches!(e, ArchiveError::Unsafe { .. }), "{e}");

    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "a/layer.tar", "../../etc/passwd")
        .unwrap();
    let e = load(&s, &b.into_inner().unwrap()[..]).unwrap_err();
    assert!(e.to_string().contains("leads out of the archive"), "{e}");

    let mut b = tar::Builder::new(Vec::new());
    let m = serde_json::to_vec(&json!([{"Config": "../../etc/passwd", "Layers": []}])).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(m.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "manifest.json", &m[..]).unwrap();
    let e = load(&s, &b.into_inner().unwrap()[..]).unwrap_err();
    assert!(matches!(e, ArchiveError::Unsafe { .. }), "{e}");

    // A layer that writes through a symlink is refused by the unpacker.
    let mut lb = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    lb.append_link(&mut h, "evil", "/").unwrap();
    let mut h2 = h.clone();
    h2.set_entry_type(tar::EntryType::Regular);
    h2.set_size(1);
    h2.set_mode(0o644);
    lb.append_data(&mut h2, "evil/etc/x", &b"x"[..]).unwrap();
    let evil = lb.into_inner().unwrap();
    let e = load(
        &s,
        &legacy_archive(&[three_layers()[0].clone(), evil], "evil:1")[..],
    )
    .unwrap_err();
    assert!(e.to_string().contains("evil/etc/x"), "{e}");
    assert_eq!(state(&s), before);

    // A layer whose content is not the config's diff id.
    let mut other = legacy_archive(&three_layers()[..1], "x:1");
    // The file's data block: 512-aligned inside the layer, so inside the
    // archive too.
    let pos = (0..other.len())
        .step_by(512)
        .find(|&p| other[p..].starts_with(b"a1\0\0"))
        .unwrap();
    other[pos + 1] = b'2';
    let e = load(&s, &other[..]).unwrap_err();
    assert!(e.to_string().contains("diff id"), "{e}");
    assert_eq!(state(&s), before);
    assert!(s.system_check().unwrap().is_consistent());
}

/// The staged directories (layers unpacked but not adopted) under a
/// store made by [`store`].
fn staged_left(dir: &Path) -> Vec<String> {
    fs::read_dir(dir.join("snapshots/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("stage-"))
        .collect()
}

#[test]
fn layers_unpacked_while_loading_are_adopted_or_removed() {
    if !berth_testutil::require_root("layers_unpacked_while_loading_are_adopted_or_removed") {
        return;
    }
    // A bottom layer with a whiteout: unpacked before its place is known,
    // in overlay form, which would leave a 0/0 device at the bottom.
    let bottom = layer(&[
        ("etc/", None),
        ("etc/.wh.old", None),
        ("etc/keep", Some(b"k")),
    ]);
    let layers = vec![bottom, three_layers()[1].clone(), three_layers()[2].clone()];
    let mut archive = legacy_archive(&layers, "early:1");
    // And a layer blob no image names, unpacked all the same.
    archive.truncate(archive.len() - 1024);
    let mut b = tar::Builder::new(Vec::new());
    let extra = layer(&[("stray", Some(b"s"))]);
    let mut h = tar::Header::new_ustar();
    h.set_size(extra.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "extra/layer.tar", &extra[..])
        .unwrap();
    archive.extend(b.into_inner().unwrap());

    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let img = load(&s, &archive[..]).unwrap().remove(0);
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
    let chain = crate::store::chain_ids(&diff_ids);
    let base = s.snapshotter().stat(chain[0].as_str()).unwrap().dir;
    assert!(base.join("etc/keep").is_file());
    assert!(
        fs::symlink_metadata(base.join("etc/old")).is_err(),
        "the bottom layer holds no whiteout"
    );
    let second = s.snapshotter().stat(chain[1].as_str()).unwrap().dir;
    let wh = fs::symlink_metadata(second.join("etc/gone")).unwrap();
    assert!(
        std::os::unix::fs::FileTypeExt::is_char_device(&wh.file_type()),
        "above the bottom, whiteouts stay in overlay form"
    );
    assert_eq!(img.top_chain_id.as_ref(), chain.last());
    assert_eq!(staged_left(t.path()), Vec::<String>::new());
    let check = s.system_check().unwrap();
    assert!(check.is_consistent(), "{check:?}");
    assert!(check.unreferenced_blobs.is_empty(), "{check:?}");

    // A load that fails after staging leaves nothing staged either.
    let t2 = tempfile::tempdir().unwrap();
    let s2 = store(t2.path());
    let cut = archive.len() - 2048;
    load(&s2, &archive[..cut]).unwrap_err();
    assert_eq!(staged_left(t2.path()), Vec::<String>::new());
    assert_eq!(state(&s2), (vec![], vec![], vec![]));
}
