//! Shared by the integration tests: a store, a busybox image, and helpers.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use berth_image::snapshot::overlay::OverlaySnapshotter;
use berth_image::snapshot::{mount_all, unmount};
use berth_image::store::{Image, ImportOptions, Store};
use berth_image::Reference;

pub fn store(dir: &Path) -> Store {
    let snap = OverlaySnapshotter::open(&dir.join("snapshots")).unwrap();
    Store::open(dir, Box::new(snap)).unwrap()
}

/// Imports the busybox rootfs as `reference`.
pub fn busybox(s: &Store, reference: &str) -> Image {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("rootfs.tar");
    berth_testutil::rootfs_tar(&p).unwrap();
    s.import(
        fs::File::open(&p).unwrap(),
        &ImportOptions {
            reference: Some(Reference::parse(reference).unwrap()),
            changes: vec!["CMD [\"/bin/sh\"]".into()],
            ..Default::default()
        },
    )
    .unwrap()
}

/// Mounts a fresh container snapshot of `image` and says whether busybox
/// runs from it (`busybox true` chrooted is more than we need: the file
/// being there and executable is the run check a library can make).
pub fn rootfs_has_busybox(s: &Store, image: &Image, key: &str) -> bool {
    let mnt = tempfile::tempdir().unwrap();
    mount_all(&s.rootfs(image, key).unwrap(), mnt.path()).unwrap();
    let out = std::process::Command::new("chroot")
        .arg(mnt.path())
        .args(["/bin/busybox", "echo", "ran"])
        .output()
        .unwrap();
    unmount(mnt.path()).unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "ran"
}
