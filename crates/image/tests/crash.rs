//! `load` killed with SIGKILL at many points leaves a store that is
//! consistent, lists no partial image, and loads the archive again.
//! The child is this test binary re-run with an environment variable.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use berth_image::archive::{load, save, SaveOptions};
use berth_image::content::{write_blob, Manager};
use berth_image::{Digest, Reference};
use common::store;
use serde_json::json;

const CHILD_ENV: &str = "BERTH_CRASH_CHILD_STORE";
const ARCHIVE_ENV: &str = "BERTH_CRASH_ARCHIVE";
const KILLS: u32 = 50;

/// The child: load the archive and exit. A no-op in a normal test run.
#[test]
fn crash_child() {
    let (Ok(root), Ok(archive)) = (std::env::var(CHILD_ENV), std::env::var(ARCHIVE_ENV)) else {
        return;
    };
    let s = store(Path::new(&root));
    load(&s, fs::File::open(archive).unwrap()).unwrap();
}

/// A ~20 MB archive of four layers, one with many small files.
fn make_archive(dir: &Path) -> (std::path::PathBuf, u64) {
    let s = store(&dir.join("src"));
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..4u64 {
        let mut b = tar::Builder::new(Vec::new());
        let files: Vec<(String, usize)> = if i == 3 {
            (0..2000).map(|n| (format!("many/f{n}"), 512)).collect()
        } else {
            vec![(format!("big{i}"), 6 << 20)]
        };
        for (name, len) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(len as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1);
            b.append_data(
                &mut h,
                name,
                &berth_testutil::noise(len, i * 7919 + len as u64)[..],
            )
            .unwrap();
        }
        let l = b.into_inner().unwrap();
        let info = write_blob(s.content(), &l, None).unwrap();
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": info.digest.as_str(), "size": info.size}));
        diff_ids.push(info.digest.to_string());
    }
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}})).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "config": {"digest": Digest::of(&config).as_str(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let img = s
        .register(&manifest, &config, &[Reference::parse("crash:1").unwrap()])
        .unwrap();
    let path = dir.join("archive.tar");
    save(
        &s,
        &["crash:1"],
        fs::File::create(&path).unwrap(),
        &SaveOptions::default(),
    )
    .unwrap();
    (path, img.size)
}

fn child(root: &Path, archive: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "crash_child", "--test-threads=1", "--quiet"])
        .env(CHILD_ENV, root)
        .env(ARCHIVE_ENV, archive)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// After a crash: open (sweeps dead writers' files), collect the dead
/// lease's work, and insist everything left is consistent and owned.
fn recover_and_check(root: &Path, round: u32, size: u64) -> bool {
    let s = store(root);
    let before = s.system_check().unwrap();
    assert!(
        before.is_consistent(),
        "round {round}, before gc: {before:?}"
    );
    s.gc().unwrap();
    let check = s.system_check().unwrap();
    assert!(check.is_consistent(), "round {round}: {check:?}");
    assert!(
        check.unreferenced_blobs.is_empty() && check.unreferenced_snapshots.is_empty(),
        "round {round}: {check:?}"
    );
    let images = s.images().unwrap();
    assert!(images.len() <= 1, "round {round}: {images:?}");
    let ingest = fs::read_dir(root.join("content/ingest")).unwrap().count();
    assert_eq!(
        ingest, 0,
        "round {round}: the dead writer's ingests were swept"
    );
    let loaded = images.len() == 1;
    if loaded {
        // Whole, or not listed at all.
        assert_eq!(images[0].size, size, "round {round}");
        s.remove_image("crash:1", true, &HashSet::new()).unwrap();
        assert!(s.content().list().unwrap().is_empty(), "round {round}");
        assert!(s.snapshotter().list().unwrap().is_empty(), "round {round}");
    }
    loaded
}

#[test]
fn load_killed_at_any_point_leaves_a_consistent_store() {
    if !berth_testutil::require_root("load_killed_at_any_point_leaves_a_consistent_store") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (archive, size) = make_archive(t.path());
    let root = t.path().join("store");
    store(&root);

    // How long a whole load takes, to spread the kills over it.
    let start = Instant::now();
    assert!(child(&root, &archive).status().unwrap().success());
    let full = start.elapsed();
    assert!(recover_and_check(&root, 0, size));

    let mut completed = 0;
    for round in 1..=KILLS {
        let delay = full.mul_f64(f64::from(round) / f64::from(KILLS) * 1.1);
        let mut c = child(&root, &archive).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = c.kill(); // SIGKILL
        c.wait().unwrap();
        if recover_and_check(&root, round, size) {
            completed += 1;
        }
    }
    eprintln!("{KILLS} kills over {full:?}: {completed} loads had finished");
    assert!(
        completed < KILLS,
        "the kills landed before the loads finished"
    );

    // And the archive loads again, in this process.
    let s = store(&root);
    load(&s, fs::File::open(&archive).unwrap()).unwrap();
    assert!(s.system_check().unwrap().is_consistent());
    assert_eq!(s.images().unwrap().len(), 1);
}
