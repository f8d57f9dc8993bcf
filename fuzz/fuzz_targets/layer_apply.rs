//! Arbitrary bytes (tar, gzip or zstd by magic) applied as a layer onto a
//! fresh directory. Applying may fail, never panic, and never touch
//! anything outside the directory, even through the symlinks planted in
//! it that point outside.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_image::layer::{self, ApplyOptions, Ownership, Whiteouts};
use libfuzzer_sys::fuzz_target;

/// Every path under `dir` (symlinks not followed) with its size, mode,
/// owner, link count and mtime: what a write through a link would change.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, u32, u32, u32, u64, i64)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            let key = e.path().display().to_string();
            out.insert(
                key,
                (m.len(), m.mode(), m.uid(), m.gid(), m.nlink(), m.mtime()),
            );
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, tar)) = data.split_first() else {
        return;
    };
    let outer = tempfile::tempdir().unwrap();
    let outside = outer.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("file"), b"host").unwrap();
    let root = outer.path().join("root");
    fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink("../outside", root.join("rel")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../outside/file", root.join("filelink")).unwrap();
    let before = snapshot(&outside);

    let opts = ApplyOptions {
        whiteouts: if mode & 1 == 0 {
            Whiteouts::Apply
        } else {
            Whiteouts::Overlay
        },
        ownership: if mode & 2 == 0 {
            Ownership::Ignore
        } else {
            Ownership::Preserve
        },
    };
    let _ = layer::apply(tar, &root, &opts);

    let names: Vec<_> = fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "something was created beside the root: {names:?}"
    );
    assert_eq!(
        snapshot(&outside),
        before,
        "the layer changed a directory outside the root"
    );
    assert_eq!(fs::read(outside.join("file")).unwrap(), b"host");
});
